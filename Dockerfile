# Siyu production image: `siyu serve` as a non-root user, settings from SIYU_* environment variables.
#
#   docker build -t siyu .
#   docker run -p 8080:8080 --env-file .env siyu
#
# Secrets (app secrets, callback tokens, EncodingAESKeys, the database password) come from the
# environment or a secrets file (SIYU_SECRETS_FILE, e.g. a Docker secret under /run/secrets);
# the image's config.yaml carries only the emulator's DEMO values, which production must override.

# --- build: wheels for siyu and every dependency, so the runtime stage needs no compiler ---------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# .dockerignore keeps .git, virtualenvs, local databases and secrets out of the context.
COPY . /src
# content_library/ and sop/ may still be empty in git (and so absent from a fresh clone);
# creating them keeps the runtime COPY below valid either way.
RUN mkdir -p content_library sop \
    && pip wheel --wheel-dir /wheels .

# --- runtime ---------------------------------------------------------------------------------
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SIYU_CONFIG=/app/config.yaml \
    SIYU_SERVICE__HOST=0.0.0.0 \
    SIYU_SERVICE__PORT=8080 \
    SIYU_DATABASE__URL=sqlite+aiosqlite:////data/siyu.db \
    SIYU_LOGGING__FORMAT=json

RUN groupadd --system --gid 10001 siyu \
    && useradd --system --uid 10001 --gid siyu --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin siyu

COPY --from=build /wheels /tmp/wheels
# --no-index: install exactly the wheels built above, nothing fetched at this stage.
RUN pip install --no-index --find-links /tmp/wheels siyu \
    && rm -rf /tmp/wheels

WORKDIR /app
COPY --from=build /src/config.yaml /app/config.yaml
COPY --from=build /src/content_library /app/content_library
COPY --from=build /src/sop /app/sop
# The embedded default (SQLite) writes under /data; with PostgreSQL the volume stays empty.
RUN mkdir -p /data && chown siyu:siyu /data
VOLUME ["/data"]

USER siyu:siyu
EXPOSE 8080
# slim has no curl: ask /healthz with the interpreter the image already has.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('SIYU_SERVICE__PORT', '8080'), timeout=4)"]
# SIGTERM lets `siyu serve` stop accepting and finish in-flight work (service.shutdown_timeout_seconds).
STOPSIGNAL SIGTERM
CMD ["siyu", "serve"]
