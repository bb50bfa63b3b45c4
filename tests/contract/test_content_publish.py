"""Publishing the content library to the database, and replicas serving it, on SQLite and PostgreSQL."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot import cli_content, content
from bot.store.models import ContentVersion

FAQ = """\
brand: 小禾母婴
faqs:
  - id: formula_brewing
    questions: [奶粉怎么冲泡]
    answer: 用40–50℃的温开水，先加水再加奶粉。
"""


def write(directory: Path, **files: str) -> Path:
    directory.mkdir(exist_ok=True)
    for name, text in files.items():
        (directory / f"{name}.yaml").write_text(text, encoding="utf-8")
    return directory


@pytest.fixture
def library(tmp_path) -> Path:
    return write(tmp_path / "library", faq=FAQ)


@pytest.fixture
def db_store(settings_factory, clock, sessions):
    """A replica serving what was published (its own files directory does not exist)."""
    settings = settings_factory(**{"content.source": "database", "content.dir": "/nonexistent"})
    return content.ContentStore(settings, clock, sessions=sessions)


async def count_versions(sessions) -> int:
    async with sessions() as session:
        return (await session.execute(select(func.count()).select_from(ContentVersion))).scalar_one()


async def test_publish_stores_the_files_once_per_digest(sessions, library, clock):
    version = await content.publish(sessions, library, "ops-小王", clock=clock)
    assert version is not None
    assert version.digest == content.digest_files({"faq.yaml": FAQ})
    assert version.files == {"faq.yaml": FAQ}
    assert (version.published_by, version.published_at) == ("ops-小王", clock.timestamp())
    assert await content.publish(sessions, library, "ops-小王", clock=clock) is None  # idempotent
    assert await count_versions(sessions) == 1


async def test_publish_refuses_an_invalid_library(sessions, tmp_path, clock):
    bad = write(tmp_path / "bad", faq="brand: x\nfaqs: []\n")
    with pytest.raises(content.ContentErrors) as info:
        await content.publish(sessions, bad, "ops", clock=clock)
    assert [str(e) for e in info.value.errors] == ["faq.yaml:2: faqs: needs at least one FAQ"]
    assert await count_versions(sessions) == 0


async def test_database_source_refuses_to_start_with_nothing_published(db_store):
    with pytest.raises(content.ContentErrors, match="nothing published yet"):
        await db_store.start()


async def test_replica_picks_up_a_new_publish_and_a_rollback(db_store, sessions, library, clock):
    first = await db_store.publish(sessions, library, "ops")
    assert first is not None
    served = await db_store.start()
    assert served.digest == first.digest
    assert await db_store.refresh() is False

    clock.advance(60)
    write(library, faq=FAQ.replace("40–50℃", "45℃左右"))
    second = await db_store.publish(sessions, library, "ops")
    assert second is not None and second.digest != first.digest
    assert await db_store.refresh() is True
    assert db_store.current.digest == second.digest
    assert "45℃左右" in db_store.current.faq.faqs[0].answer

    # Publishing the first version again makes it the newest: a rollback without a restart.
    write(library, faq=FAQ)
    again = await db_store.publish(sessions, library, "ops")
    assert again is not None and again.digest == first.digest
    assert await count_versions(sessions) == 2
    assert await db_store.refresh() is True
    assert db_store.current.digest == first.digest


async def test_replica_keeps_the_last_good_when_a_bad_version_lands(
    db_store, sessions, library, clock, caplog
):
    await db_store.publish(sessions, library, "ops")
    good = await db_store.start()
    # A version stored by older code (or by hand) that this code finds invalid.
    async with sessions() as session, session.begin():
        session.add(
            ContentVersion(
                digest="f" * 64,
                files={"faq.yaml": "brand: x\nfaqs: []\n"},
                published_by="x",
                published_at=1.0,
            )
        )
    with caplog.at_level(logging.WARNING, logger="bot.content"):
        assert await db_store.refresh() is False
        assert await db_store.refresh() is False
    assert db_store.current is good
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "faq.yaml:2: faqs: needs at least one FAQ" in warnings[0]


async def test_cli_publish(engine, sessions, library, settings_factory, monkeypatch, capsys):
    url = engine.url.render_as_string(hide_password=False)
    settings = settings_factory(**{"database.url": url})
    monkeypatch.setattr(cli_content, "load_settings", lambda path: settings)
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    cli_content.add_content_commands(parser.add_subparsers())

    args = parser.parse_args(["publish", "--dir", str(library), "--by", "ops-小王"])
    assert await asyncio.to_thread(args.func, args) == 0
    digest = content.digest_files({"faq.yaml": FAQ})
    assert capsys.readouterr().out == f"published {digest} (1 files) by ops-小王\n"
    assert await asyncio.to_thread(args.func, args) == 0
    assert capsys.readouterr().out == f"{digest} is already the newest published version\n"
    assert await count_versions(sessions) == 1

    write(library, faq="brand: x\nfaqs: []\n")
    assert await asyncio.to_thread(args.func, args) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{library / 'faq.yaml'}:2: faqs: needs at least one FAQ",
        "1 error(s)",
    ]
