"""Static checks of Dockerfile, .dockerignore and docker-compose.yml (no Docker engine on CI)."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, SecretStr

from bot.config import Settings, env_overrides, load_settings, secret_values

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config.yaml"
# SIYU_* names that are not settings paths but are read by load_settings itself.
SPECIAL_VARS = {"SIYU_CONFIG", "SIYU_SECRETS_FILE"}
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::?[-?+](?P<default>[^}]*))?\}")


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction: keyword, raw arguments and its build stage index."""

    keyword: str
    args: str
    stage: int


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions of a Dockerfile, continuation lines joined and comments dropped."""
    out: list[Instruction] = []
    stage = -1
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction is skipped by Docker too
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if not full:
            continue
        keyword, _, args = full.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        out.append(Instruction(keyword, args.strip(), stage))
    assert not pending, "Dockerfile ends inside a continued line"
    return out


def exec_form(args: str) -> list[str]:
    """CMD/ENTRYPOINT arguments as argv (JSON exec form or shell form)."""
    args = args.strip()
    if args.startswith("["):
        value = json.loads(args)
        assert isinstance(value, list)
        return [str(v) for v in value]
    return shlex.split(args)


def env_pairs(args: str) -> dict[str, str]:
    """`ENV A=1 B=2` (or legacy `ENV A 1`) as a dict."""
    parts = shlex.split(args)
    if parts and "=" not in parts[0]:
        return {parts[0]: " ".join(parts[1:])}
    return dict(part.split("=", 1) for part in parts)


def flags_and_paths(args: str) -> tuple[dict[str, str], list[str]]:
    """COPY/ADD `--flag=value` options and the remaining paths (sources..., destination)."""
    flags: dict[str, str] = {}
    paths: list[str] = []
    for part in shlex.split(args):
        if part.startswith("--") and not paths:
            name, _, value = part[2:].partition("=")
            flags[name] = value
        else:
            paths.append(part)
    return flags, paths


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    """The parsed Dockerfile."""
    return parse_dockerfile((ROOT / "Dockerfile").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def final_stage(dockerfile: list[Instruction]) -> list[Instruction]:
    """Instructions of the last stage: what the image runs."""
    last = max(i.stage for i in dockerfile)
    return [i for i in dockerfile if i.stage == last]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """docker-compose.yml as data (YAML anchors and merge keys resolved)."""
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def demo_secrets() -> list[str]:
    """The DEMO secrets of the committed config.yaml: they must never be deployment values."""
    values = secret_values(load_settings(CONFIG, environ={}))
    assert values, "config.yaml should carry the emulator's demo secrets"
    return values


def _placeholder(var: str, default: str | None) -> str:
    """A well-typed stand-in for a `${VAR}` the user supplies in .env."""
    if default and not default.startswith(("set ", "Set ")) and "in .env" not in default:
        return default
    if var.endswith("AES_KEY"):
        return "P" * 43  # an EncodingAESKey is 43 characters
    if var.endswith("AGENT_ID"):
        return "1000009"
    if var.endswith("URL"):
        return "https://siyu.example.com"
    return f"placeholder-{var.lower()}"


def interpolate(value: str) -> str:
    """Resolve compose `${VAR}`, `${VAR:?msg}`, `${VAR:-default}` with stand-in values."""
    return INTERPOLATION.sub(lambda m: _placeholder(m["name"], m["default"]), value)


def service_env(service: dict[str, Any]) -> dict[str, str]:
    """A compose service's `environment` (map or list form) as a dict, interpolated."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): interpolate(str(v)) for k, v in env.items()}


def setting_at(settings: Settings, var: str) -> Any:
    """The settings value that `SIYU_A__B__C` addresses, secrets unwrapped."""
    value: Any = settings
    for part in var[len("SIYU_") :].lower().split("__"):
        value = value[part] if isinstance(value, dict) else getattr(value, part)
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def assert_vars_are_settings(env: dict[str, str]) -> Settings:
    """Every SIYU_* variable in `env` names a real settings field and lands there."""
    siyu_vars = {k: v for k, v in env.items() if k.startswith("SIYU_") and k not in SPECIAL_VARS}
    overrides = env_overrides(siyu_vars)
    # env_overrides silently skips unknown sections; a typo'd section must fail here instead.
    sections = set(Settings.model_fields)
    unknown = [k for k in siyu_vars if k[5:].split("__")[0].lower() not in sections]
    assert not unknown, f"not settings sections: {unknown}"
    assert overrides or not siyu_vars
    # extra="forbid" on every section makes a misspelt nested key a validation error.
    settings = load_settings(CONFIG, environ=siyu_vars)
    for var, raw in siyu_vars.items():
        value = setting_at(settings, var)
        assert str(value).lower() == raw.lower() or value == yaml.safe_load(raw), (var, raw, value)
    return settings


# --- Dockerfile ----------------------------------------------------------------------------------


def test_every_stage_is_python_311_or_newer_slim(dockerfile: list[Instruction]) -> None:
    """FROM python:3.11+-slim in every stage (the package needs >= 3.11; slim keeps it small)."""
    froms = [i.args.split()[0] for i in dockerfile if i.keyword == "FROM"]
    assert froms
    for image in froms:
        match = re.fullmatch(r"(?:docker\.io/)?(?:library/)?python:3\.(\d+)(?:\.\d+)?-slim(?:-\w+)?", image)
        assert match, f"{image} is not a python:3.x-slim image"
        assert int(match[1]) >= 11, image


def test_runs_as_non_root(final_stage: list[Instruction]) -> None:
    """The last USER of the final stage is neither root nor uid 0."""
    users = [i.args.split(":")[0] for i in final_stage if i.keyword == "USER"]
    assert users, "no USER in the final stage: the service would run as root"
    assert users[-1] not in {"root", "0"}


def test_cmd_is_siyu_serve(final_stage: list[Instruction]) -> None:
    """The image runs `siyu serve` (exec form, so SIGTERM reaches it for a graceful shutdown)."""
    cmds = [i for i in final_stage if i.keyword == "CMD"]
    assert cmds
    assert cmds[-1].args.startswith("["), "use the exec form so siyu is PID 1 and gets SIGTERM"
    assert exec_form(cmds[-1].args)[:2] == ["siyu", "serve"]
    assert not [i for i in final_stage if i.keyword == "ENTRYPOINT"]


def test_healthcheck_asks_healthz_without_curl(final_stage: list[Instruction]) -> None:
    """HEALTHCHECK hits /healthz with python's urllib (slim images have no curl or wget)."""
    checks = [i for i in final_stage if i.keyword == "HEALTHCHECK"]
    assert checks
    args = checks[-1].args
    assert "/healthz" in args
    assert "urllib" in args
    assert "curl" not in args and "wget" not in args


def test_listens_on_all_interfaces_port_8080(final_stage: list[Instruction]) -> None:
    """EXPOSE 8080 and SIYU_SERVICE__HOST=0.0.0.0 (the default 127.0.0.1 is unreachable in a container)."""
    assert any("8080" in i.args.split() for i in final_stage if i.keyword == "EXPOSE")
    env: dict[str, str] = {}
    for i in final_stage:
        if i.keyword == "ENV":
            env.update(env_pairs(i.args))
    assert env.get("SIYU_SERVICE__HOST") == "0.0.0.0"
    assert env.get("SIYU_SERVICE__PORT", "8080") == "8080"


def test_dockerfile_env_vars_are_settings(final_stage: list[Instruction]) -> None:
    """Every SIYU_* ENV of the image is a real setting."""
    env: dict[str, str] = {}
    for i in final_stage:
        if i.keyword == "ENV":
            env.update(env_pairs(i.args))
    assert any(k.startswith("SIYU_") for k in env)
    assert_vars_are_settings(env)


def test_copy_sources_exist_and_are_not_ignored(dockerfile: list[Instruction]) -> None:
    """Every COPY/ADD from the build context names a file that exists and .dockerignore keeps."""
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for i in dockerfile:
        if i.keyword not in {"COPY", "ADD"}:
            continue
        flags, paths = flags_and_paths(i.args)
        if "from" in flags:
            continue  # from another stage, not the context
        assert len(paths) >= 2, i.args
        for source in paths[:-1]:
            assert (ROOT / source).exists(), f"COPY source {source} does not exist"
            if source in {".", "./"}:
                continue
            name = source.strip("/")
            assert not any(fnmatch.fnmatch(name, pattern) for pattern in ignored), (
                f"{source} is excluded by .dockerignore"
            )


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    """The build context never carries git history, virtualenvs, local databases or .env files."""
    ignored = set((ROOT / ".dockerignore").read_text(encoding="utf-8").split())
    for pattern in (".git", ".venv", ".env", "secrets.yaml", ".siyu", "*.db"):
        assert pattern in ignored, pattern


def test_image_carries_what_serve_reads(dockerfile: list[Instruction]) -> None:
    """pyproject.toml's packages and config.yaml reach the image (via the build stage)."""
    text = " ".join(i.args for i in dockerfile if i.keyword in {"COPY", "ADD", "RUN"})
    assert "config.yaml" in text
    assert "pip" in text
    for needed in ("pyproject.toml", "README.md", "bot", "handlers", "config.yaml"):
        assert (ROOT / needed).exists(), needed


# --- docker-compose.yml --------------------------------------------------------------------------


def test_compose_has_siyu_postgres_redis(compose: dict[str, Any]) -> None:
    """Services siyu, PostgreSQL 15 and Redis 7; PostgreSQL keeps its data in a named volume."""
    services = compose["services"]
    assert {"siyu", "postgres", "redis"} <= set(services)
    assert str(services["postgres"]["image"]).startswith("postgres:15")
    assert str(services["redis"]["image"]).startswith("redis:7")
    volumes = services["postgres"].get("volumes") or []
    named = [str(v).split(":")[0] for v in volumes if ":" in str(v) and "/var/lib/postgresql/data" in str(v)]
    assert named, "postgres needs a volume on /var/lib/postgresql/data"
    assert named[0] in (compose.get("volumes") or {}), "postgres volume should be a declared named volume"
    assert services["siyu"].get("build") in (".", {"context": "."}) or services["siyu"]["build"].get(
        "context"
    ) in (".", "./")


def test_compose_backing_services_have_healthchecks(compose: dict[str, Any]) -> None:
    """PostgreSQL and Redis report health so siyu waits for them."""
    for name in ("postgres", "redis"):
        check = compose["services"][name].get("healthcheck")
        assert check and check.get("test"), f"{name} has no healthcheck"
        assert not check.get("disable")


def test_siyu_waits_for_healthy_backends_and_the_schema(compose: dict[str, Any]) -> None:
    """siyu starts after PostgreSQL and Redis are healthy and after `siyu db upgrade` ran."""
    siyu = compose["services"]["siyu"]
    depends = siyu.get("depends_on")
    assert isinstance(depends, dict), "use the long depends_on form with conditions"
    for name in ("postgres", "redis"):
        assert depends[name]["condition"] == "service_healthy"
    # serve refuses a behind-schema PostgreSQL: the schema must be upgraded by someone first.
    command = " ".join(
        exec_form(siyu["command"]) if isinstance(siyu.get("command"), str) else siyu.get("command") or []
    )
    upgrades_inline = "db upgrade" in command and "serve" in command
    one_shot = [
        name
        for name, cond in depends.items()
        if cond.get("condition") == "service_completed_successfully"
        and "db upgrade" in " ".join(compose["services"][name].get("command") or [])
    ]
    assert upgrades_inline or one_shot, "nothing runs `siyu db upgrade` before `siyu serve`"


def test_siyu_uses_postgres_and_redis(compose: dict[str, Any]) -> None:
    """SIYU_DATABASE__URL is asyncpg on the postgres service; SIYU_REDIS__URL points at redis."""
    env = service_env(compose["services"]["siyu"])
    assert env["SIYU_DATABASE__URL"].startswith("postgresql+asyncpg://")
    assert "@postgres:" in env["SIYU_DATABASE__URL"]
    assert env["SIYU_REDIS__URL"].startswith("redis://redis:")
    assert env["SIYU_SERVICE__HOST"] == "0.0.0.0"


def test_compose_env_vars_are_settings(compose: dict[str, Any]) -> None:
    """Every SIYU_* variable of every service maps onto a real settings field."""
    seen = 0
    for service in compose["services"].values():
        env = service_env(service)
        if any(k.startswith("SIYU_") for k in env):
            settings = assert_vars_are_settings(env)
            seen += 1
            assert settings.database.url.startswith("postgresql+asyncpg://")
    assert seen


def test_compose_sets_every_secret_from_the_environment(compose: dict[str, Any]) -> None:
    """Each app's secrets are placeholders for .env, so the image's DEMO values are never used."""
    raw = compose["services"]["siyu"]["environment"]
    demo = load_settings(CONFIG, environ={})
    for path in _secret_paths(demo):
        var = "SIYU_" + "__".join(p.upper() for p in path)
        assert var in raw, f"{var} is not set: the demo value of config.yaml would be used"
        assert INTERPOLATION.search(str(raw[var])), f"{var} must come from the environment (${{...}})"


def test_no_demo_or_literal_secrets_in_deploy_files(compose: dict[str, Any], demo_secrets: list[str]) -> None:
    """Neither file carries config.yaml's demo credentials or a literal password."""
    for name in ("docker-compose.yml", "Dockerfile", ".dockerignore"):
        text = (ROOT / name).read_text(encoding="utf-8")
        for secret in demo_secrets:
            assert secret not in text, f"{name} contains a demo secret from config.yaml"
    for service in compose["services"].values():
        env = service.get("environment") or {}
        for key, value in env.items() if isinstance(env, dict) else []:
            if any(word in key.upper() for word in ("PASSWORD", "SECRET", "TOKEN", "AES_KEY")):
                assert INTERPOLATION.fullmatch(str(value)), f"{key} holds a literal value"
        url = str(env.get("SIYU_DATABASE__URL", "")) if isinstance(env, dict) else ""
        if "@" in url:
            creds = url.split("//", 1)[1].split("@", 1)[0]
            if ":" in creds:
                assert INTERPOLATION.fullmatch(creds.split(":", 1)[1]), "database password is a literal"


def _secret_paths(model: BaseModel, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Dotted paths of every SecretStr field that has a value in `model`."""
    found: list[tuple[str, ...]] = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, SecretStr) and value.get_secret_value():
            found.append((*prefix, name))
        elif isinstance(value, BaseModel):
            found.extend(_secret_paths(value, (*prefix, name)))
    return found


def test_parser_joins_continuations() -> None:
    """The Dockerfile parser used above handles continuations, comments and stages."""
    parsed = parse_dockerfile(
        '# c\nFROM python:3.11-slim AS b\nRUN a \\\n  # inner\n  && b\nFROM python:3.12-slim\nCMD ["x"]\n'
    )
    assert [(i.keyword, i.stage) for i in parsed] == [("FROM", 0), ("RUN", 0), ("FROM", 1), ("CMD", 1)]
    assert parsed[1].args == "a && b"
