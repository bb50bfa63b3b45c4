"""Content library: YAML with lines, every error as file:line: reason, hours, reload keeping the last good."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import textwrap
import threading
from pathlib import Path

import pytest

from bot import cli_content, content, errors, yamlfile
from bot.clock import SHANGHAI

ROOT = Path(__file__).resolve().parents[2]
EVAL_LIBRARY = ROOT.parent / "shared" / "eval" / "faq" / "library.yaml"

FAQ = """\
brand: 小禾母婴
faqs:
  - id: formula_brewing
    questions: [奶粉怎么冲泡, 冲奶粉水温多少]
    keywords: [冲泡, 水温]
    answer: 用40–50℃的温开水，先加水再加奶粉。
  - id: diaper_size
    questions: [纸尿裤怎么选尺码]
    answer: "{customer_name}，按体重选码最准。"
"""
KNOWN = "known: {brand}, {customer_name}, {guide_name}, {store}"
OVERNIGHT = "overnight hours are not supported"
REPLIES = "categories:\n  - name: a\n    scripts:\n      - {{id: s, title: t, text: x, faq_ref: {ref}}}\n"


def lib(**files: str) -> dict[str, str]:
    """A library as {file name: text}: the good FAQ unless replaced; `faq` -> faq.yaml."""
    out = {"faq.yaml": FAQ}
    out.update({f"{name}.yaml": textwrap.dedent(text) for name, text in files.items()})
    return out


def error_lines(files: dict[str, str]) -> list[str]:
    with pytest.raises(content.ContentErrors) as info:
        content.load_library_from_texts(files)
    return [str(e) for e in info.value.errors]


# ------------------------------------------------------------------------------------------ yamlfile


def test_yamlfile_records_key_and_item_lines():
    loaded = yamlfile.load_text("a: 1\nb:\n  - x: 1\n    y: [1, 2]\n  - z\n", "t.yaml")
    assert loaded.data == {"a": 1, "b": [{"x": 1, "y": [1, 2]}, "z"]}
    assert loaded.line_of(("b", 0, "y")) == 4
    assert loaded.line_of(("b", 1)) == 5
    # A missing field falls back to its parent; segments the document lacks are skipped.
    assert loaded.line_of(("b", 0, "missing")) == 3
    assert loaded.line_of(("b", 0, "some_union_tag", "y")) == 4


def test_yamlfile_syntax_error_reports_its_line():
    with pytest.raises(errors.ContentError) as info:
        yamlfile.load_text("a: 1\nb: [1, 2\nc: 3\n", "t.yaml")
    assert (info.value.file, info.value.line) == ("t.yaml", 3)
    assert info.value.reason.startswith("YAML syntax:")


def test_yamlfile_duplicate_key_is_a_problem():
    loaded = yamlfile.load_text("a: 1\nb: 2\na: 3\n", "t.yaml")
    assert [str(p) for p in loaded.problems] == ["t.yaml:3: duplicate key 'a' (first on line 1)"]


# ---------------------------------------------------------------------------------------- good files


@pytest.mark.skipif(not EVAL_LIBRARY.exists(), reason=f"{EVAL_LIBRARY} is not checked out beside the repo")
def test_public_eval_sample_loads_as_is():
    library = content.load_faq_file(EVAL_LIBRARY)
    assert library.brand == "栖木咖啡"
    assert len(library.faqs) >= 30
    refund = library.get("refund")
    assert refund is not None and refund.channels == "both" and refund.enabled
    # The same text is a whole library on its own: the other files are optional.
    snapshot = content.load_library_from_texts({"faq.yaml": EVAL_LIBRARY.read_text(encoding="utf-8")})
    assert snapshot.replies.categories == () and "转人工" in snapshot.handoff.phrases


def test_shipped_library_validates():
    snapshot = content.load_library(ROOT / "content_library")
    assert snapshot.faq.brand == "小禾母婴"
    assert 35 <= len(snapshot.faq.faqs) <= 45
    brewing = snapshot.faq.get("formula_brewing")
    assert brewing is not None and "奶粉怎么冲泡" in brewing.questions and brewing.usable_in("kf")
    assert {s.faq_ref for s in snapshot.replies.scripts() if s.faq_ref} <= {f.id for f in snapshot.faq.faqs}
    assert 4 <= len(snapshot.replies.categories) <= 6
    assert snapshot.synonyms.variants()["尿不湿"] == "纸尿裤"
    assert snapshot.digest == content.digest_files(content.read_library_files(ROOT / "content_library"))


def test_defaults_and_channels():
    files = lib(
        faq="""\
        brand: 小禾母婴
        faqs:
          - id: only_guides
            questions: [囤货有优惠吗]
            answer: 整箱买再减60元。
            channels: guide
          - id: paused
            questions: [双十一什么时候]
            answer: 还没定。
            enabled: false
        """,
        synonyms="",  # an empty optional file means its defaults
    )
    snapshot = content.load_library_from_texts(files)
    assert [e.id for e in snapshot.faq.usable("guide")] == ["only_guides"]
    assert snapshot.faq.usable("kf") == []
    assert snapshot.faq.kf.menu_head == "您是想问："
    assert snapshot.synonyms.synonyms == {}
    assert content.is_open(snapshot.handoff.hours, dt.datetime(2026, 3, 2, 9, 0, tzinfo=SHANGHAI))


def test_numbers_are_read_as_words():
    snapshot = content.load_library_from_texts(lib(handoff="complaint_words: [投诉, 12315]\n"))
    assert snapshot.handoff.complaint_words == ("投诉", "12315")


def test_attachments():
    files = lib(
        faq="""\
        brand: 小禾母婴
        faqs:
          - id: mini_program
            questions: [小程序在哪]
            answer: 点卡片进入。
            attachments:
              - {type: image, pic_url: "https://example.com/a.png"}
              - {type: link, title: 商城, url: "https://example.com/"}
              - {type: miniprogram, title: 商城, appid: wx1, page: pages/index, pic_media_path: media/a.png}
        """
    )
    entry = content.load_library_from_texts(files).faq.faqs[0]
    assert [type(a).__name__ for a in entry.attachments] == [
        "ImageAttachment",
        "LinkAttachment",
        "MiniprogramAttachment",
    ]


# ---------------------------------------------------------------------------------------------- errors

ERROR_CASES = {
    "yaml syntax": (
        lib(faq="brand: x\nfaqs:\n  - id: a\n    questions: [q\n    answer: b\n"),
        ["faq.yaml:5: YAML syntax: while parsing a flow sequence expected ',' or ']', but got ':'"],
    ),
    "faq.yaml missing": ({"synonyms.yaml": "brand_words: []\n"}, ["faq.yaml: required file is missing"]),
    "missing field": (
        lib(faq="brand: x\nfaqs:\n  - id: a\n    questions: [q]\n"),
        ["faq.yaml:3: faqs[0].answer: Field required"],
    ),
    "extra field": (
        lib(faq="brand: x\nfaqs:\n  - id: a\n    questions: [q]\n    answer: b\n    anwser: c\n"),
        ["faq.yaml:6: faqs[0].anwser: Extra inputs are not permitted"],
    ),
    "no questions": (
        lib(faq="brand: x\nfaqs:\n  - id: a\n    questions: []\n    answer: b\n"),
        ["faq.yaml:4: faqs[0].questions: needs at least one question"],
    ),
    "no faqs": (lib(faq="brand: x\nfaqs: []\n"), ["faq.yaml:2: faqs: needs at least one FAQ"]),
    "id not snake_case": (
        lib(faq="brand: x\nfaqs:\n  - id: Formula-Brewing\n    questions: [q]\n    answer: b\n"),
        [
            "faq.yaml:3: faqs[0].id: id 'Formula-Brewing' must be snake_case "
            "(a-z, 0-9, _; starting with a letter)"
        ],
    ),
    "unknown answer variable": (
        lib(faq="brand: x\nfaqs:\n  - id: a\n    questions: [q]\n    answer: 您好{name}\n"),
        [
            "faq.yaml:5: faqs[0].answer: unknown variable {name}; "
            "known: {brand}, {customer_name}, {guide_name}, {store}"
        ],
    ),
    "unknown kf variable": (
        lib(
            faq="brand: x\nkf:\n  welcome: 欢迎{shop}\nfaqs:\n  - id: a\n    questions: [q]\n    answer: b\n"
        ),
        ["faq.yaml:3: kf.welcome: unknown variable {shop}; " + KNOWN],
    ),
    "bad channel": (
        lib(faq="brand: x\nfaqs:\n  - id: a\n    questions: [q]\n    answer: b\n    channels: wechat\n"),
        ["faq.yaml:6: faqs[0].channels: Input should be 'kf', 'guide' or 'both'"],
    ),
    "image without a source": (
        lib(
            faq="brand: x\nfaqs:\n  - id: a\n    questions: [q]\n    answer: b\n"
            "    attachments:\n      - type: image\n"
        ),
        ["faq.yaml:7: faqs[0].attachments[0]: an image needs exactly one of media_path or pic_url"],
    ),
    "link with a bad url": (
        lib(
            faq="brand: x\nfaqs:\n  - id: a\n    questions: [q]\n    answer: b\n    attachments:\n"
            "      - type: link\n        title: t\n        url: ftp://x\n"
        ),
        ["faq.yaml:9: faqs[0].attachments[0].url: must be an http(s) URL"],
    ),
    "duplicate faq id": (
        lib(
            faq="brand: x\nfaqs:\n  - id: a\n    questions: [q]\n    answer: b\n"
            "  - id: a\n    questions: [r]\n    answer: c\n"
        ),
        ["faq.yaml:6: duplicate FAQ id 'a' (first on line 3)"],
    ),
    "duplicate yaml key": (
        lib(faq="brand: x\nfaqs:\n  - id: a\n    questions: [q]\n    answer: b\n    answer: c\n"),
        ["faq.yaml:6: duplicate key 'answer' (first on line 5)"],
    ),
    "synonym variant twice": (
        lib(synonyms="synonyms:\n  纸尿裤: [尿不湿]\n  拉拉裤: [尿不湿]\n"),
        ["synonyms.yaml:3: variant '尿不湿' of '拉拉裤' is already a variant of '纸尿裤' (line 2)"],
    ),
    "synonym variant is canonical": (
        lib(synonyms="synonyms:\n  纸尿裤: [尿不湿]\n  尿不湿: [尿片]\n"),
        ["synonyms.yaml:2: variant '尿不湿' of '纸尿裤' is itself a canonical word"],
    ),
    "unknown days": (
        lib(handoff='hours:\n  mon-fry: "09:00-21:00"\n'),
        [
            "handoff.yaml:2: hours.mon-fry: unknown days 'mon-fry': "
            "use mon..sun, a range like mon-fri, or daily"
        ],
    ),
    "overnight hours": (
        lib(handoff='hours:\n  fri: "22:00-02:00"\n'),
        ["handoff.yaml:2: hours.fri: hours '22:00-02:00' end before they start: " + OVERNIGHT],
    ),
    "hours not a range": (
        lib(handoff='hours:\n  sat: "9点到5点"\n'),
        ["handoff.yaml:2: hours.sat: hours '9点到5点' must look like 09:00-21:00 (or closed)"],
    ),
    "hours out of the day": (
        lib(handoff='hours:\n  sat: "09:00-25:00"\n'),
        ["handoff.yaml:2: hours.sat: hours '09:00-25:00' is not a time of day"],
    ),
    "day covered twice": (
        lib(handoff='hours:\n  mon-fri: "09:00-21:00"\n  fri: "10:00-18:00"\n'),
        ["handoff.yaml:1: hours: fri is covered twice (mon-fri and fri)"],
    ),
    "bad holiday": (
        lib(handoff="hours:\n  daily: 09:00-21:00\n  holidays: [2026-10-01, 国庆]\n"),
        ["handoff.yaml:3: hours.holidays[1]: Input should be a valid date or datetime, input is too short"],
    ),
    "outside_hours variables": (
        lib(handoff="messages:\n  outside_hours: '{next_open}上线'\n  handoff: '{next_open}上线'\n"),
        [
            "handoff.yaml:3: messages.handoff: unknown variable {next_open}; "
            "known: {brand}, {customer_name}, {guide_name}, {store}"
        ],
    ),
    "unresolved faq_ref": (
        lib(replies=REPLIES.format(ref="nope")),
        ["replies.yaml:4: faq_ref 'nope' is not an FAQ id in faq.yaml"],
    ),
    "duplicate script id": (
        lib(
            replies="categories:\n  - name: a\n    scripts:\n      - {id: s, title: t, text: x}\n"
            "  - name: b\n    scripts:\n      - {id: s, title: t, text: y}\n"
        ),
        ["replies.yaml:7: duplicate script id 's' (first on line 4)"],
    ),
    "duplicate category": (
        lib(
            replies="categories:\n  - name: a\n    scripts:\n      - {id: s, title: t, text: x}\n"
            "  - name: a\n    scripts:\n      - {id: r, title: t, text: y}\n"
        ),
        ["replies.yaml:5: duplicate category 'a' (first on line 2)"],
    ),
    "empty category": (
        lib(replies="categories:\n  - name: a\n    scripts: []\n"),
        ["replies.yaml:3: categories[0].scripts: needs at least one script"],
    ),
}


@pytest.mark.parametrize("files, expected", list(ERROR_CASES.values()), ids=list(ERROR_CASES))
def test_each_error_is_reported_with_file_and_line(files, expected):
    assert error_lines(files) == expected


def test_every_error_in_every_file_is_reported_in_one_run():
    files = lib(
        faq="""\
        brand: 小禾母婴
        faqs:
          - id: a
            questions: []
            answer: 您好{name}
          - id: a
            questions: [q]
            answer: ok
          - id: b
            questions: [q]
        """,
        handoff="""\
        hours:
          mon-fri: "09:00-21:00"
          sat: "22:00-02:00"
        """,
        replies="""\
        categories:
          - name: 售后
            scripts:
              - id: s1
                title: 退货
                text: 您好{guide}
                faq_ref: return_policy
        """,
    )
    assert error_lines(files) == [
        "faq.yaml:4: faqs[0].questions: needs at least one question",
        "faq.yaml:5: faqs[0].answer: unknown variable {name}; " + KNOWN,
        "faq.yaml:6: duplicate FAQ id 'a' (first on line 3)",
        "faq.yaml:9: faqs[2].answer: Field required",
        "handoff.yaml:3: hours.sat: hours '22:00-02:00' end before they start: " + OVERNIGHT,
        "replies.yaml:6: categories[0].scripts[0].text: unknown variable {guide}; "
        "known: {brand}, {customer_name}, {guide_name}, {store}",
        "replies.yaml:7: faq_ref 'return_policy' is not an FAQ id in faq.yaml",
    ]


def test_faq_syntax_error_does_not_flood_replies_with_unresolved_refs():
    files = lib(
        faq="brand: [x\n",
        replies=REPLIES.format(ref="formula_brewing"),
    )
    lines = error_lines(files)
    assert len(lines) == 1 and lines[0].startswith("faq.yaml:2: YAML syntax:")


# -------------------------------------------------------------------------------------------- render


def test_render_fills_variables_and_keeps_literal_braces():
    text = "{customer_name}您好，{{活动}}在{store}，{unknown}"
    assert content.template_variables(text) == ["customer_name", "store", "unknown"]
    assert (
        content.render(text, {"customer_name": "王女士", "store": "徐汇店"}) == "王女士您好，{活动}在徐汇店，"
    )


# --------------------------------------------------------------------------------------------- hours

HOURS = content.ServiceHours.model_validate(
    {"mon-fri": "09:00-21:00", "sat-sun": "10:00-18:00", "holidays": [dt.date(2026, 10, 1)]}
)


def at(day: int, hour: int, minute: int = 0, month: int = 3) -> dt.datetime:
    """2026-03-02 is a Monday."""
    return dt.datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    "now, expected",
    [
        (at(2, 8, 59), False),  # Monday, a minute before opening
        (at(2, 9, 0), True),  # opening minute
        (at(2, 20, 59), True),
        (at(2, 21, 0), False),  # closing time is exclusive
        (at(6, 12, 0), True),  # Friday
        (at(7, 9, 30), False),  # Saturday opens at 10
        (at(7, 10, 0), True),
        (at(8, 17, 59), True),  # Sunday
        (at(8, 18, 0), False),
        (dt.datetime(2026, 10, 1, 12, 0, tzinfo=SHANGHAI), False),  # a Thursday holiday
        (dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC), True),  # 09:00 in Shanghai
    ],
)
def test_is_open(now, expected):
    assert content.is_open(HOURS, now) is expected


@pytest.mark.parametrize(
    "now, expected",
    [
        (at(2, 8, 0), at(2, 9, 0)),  # before opening: today
        (at(2, 12, 0), at(2, 12, 0)),  # open: now
        (at(2, 21, 0), at(3, 9, 0)),  # after closing: tomorrow
        (at(6, 22, 0), at(7, 10, 0)),  # Friday night: Saturday's later opening
        (at(8, 18, 30), at(9, 9, 0)),  # Sunday evening: Monday
        (dt.datetime(2026, 9, 30, 21, 30, tzinfo=SHANGHAI), dt.datetime(2026, 10, 2, 9, 0, tzinfo=SHANGHAI)),
    ],
)
def test_next_open(now, expected):
    assert content.next_open(HOURS, now) == expected


def test_next_open_is_none_when_nobody_ever_answers():
    closed = content.ServiceHours.model_validate({"daily": "closed"})
    assert content.next_open(closed, at(2, 12)) is None
    assert content.is_open(closed, at(2, 12)) is False


def test_hours_up_to_midnight_and_day_lists():
    hours = content.ServiceHours.model_validate({"fri-sun": "18:00-24:00", "mon,wed": "09:00-12:00"})
    assert content.is_open(hours, at(6, 23, 59))  # Friday
    assert not content.is_open(hours, at(7, 0, 0))  # Saturday 00:00: the range starts at 18:00
    assert content.is_open(hours, at(4, 10))  # Wednesday
    assert not content.is_open(hours, at(3, 10))  # Tuesday
    assert content.next_open(hours, at(3, 10)) == at(4, 9)


@pytest.mark.parametrize(
    "when, expected",
    [
        (at(2, 9), "今天 09:00"),
        (at(3, 9), "明天 09:00"),
        (at(4, 9), "后天 09:00"),
        (at(6, 10), "周五 10:00"),
        (at(20, 9), "3月20日 09:00"),
    ],
)
def test_format_next_open(when, expected):
    assert content.format_next_open(when, at(2, 8)) == expected


# -------------------------------------------------------------------------------------- ContentStore


def write(directory: Path, files: dict[str, str]) -> None:
    directory.mkdir(exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")


@pytest.fixture
def library_dir(tmp_path) -> Path:
    directory = tmp_path / "library"
    write(directory, lib())
    return directory


@pytest.fixture
def store_factory(settings_factory, clock, library_dir):
    def make(**kwargs) -> content.ContentStore:
        settings = settings_factory(**{"content.dir": str(library_dir)})
        return content.ContentStore(settings, clock, **kwargs)

    return make


async def test_start_refuses_invalid_content(store_factory, library_dir):
    write(library_dir, {"faq.yaml": "brand: x\nfaqs: []\n"})
    store = store_factory()
    with pytest.raises(content.ContentErrors) as info:
        await store.start()
    assert [str(e) for e in info.value.errors] == ["faq.yaml:2: faqs: needs at least one FAQ"]
    with pytest.raises(RuntimeError):
        store.current  # noqa: B018 - nothing is served


async def test_reload_keeps_last_good_and_warns_once_per_bad_version(store_factory, library_dir, caplog):
    store = store_factory()
    first = await store.start()
    assert await store.refresh() is False  # nothing changed

    write(library_dir, {"faq.yaml": FAQ.replace("answer: 用40", "anwser: 用40")})
    with caplog.at_level(logging.WARNING, logger="bot.content"):
        assert await store.refresh() is False
        assert await store.refresh() is False  # the same bad version: no second warning
    assert store.current is first
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "faq.yaml:6: faqs[0].anwser: Extra inputs are not permitted" in message
    assert "faq.yaml:3: faqs[0].answer: Field required" in message
    assert "温开水" not in message  # no content text in logs, only where and why

    fixed = FAQ.replace("用40–50℃的温开水", "用45℃左右的温开水")
    write(library_dir, {"faq.yaml": fixed})
    assert await store.refresh() is True
    assert store.current is not first
    assert store.current.faq.faqs[0].answer.startswith("用45℃")
    assert store.current.digest == content.digest_files({"faq.yaml": fixed})


async def test_reload_picks_up_a_new_file(store_factory, library_dir):
    store = store_factory()
    await store.start()
    write(library_dir, {"synonyms.yaml": "synonyms:\n  纸尿裤: [尿不湿]\n"})
    assert await store.refresh() is True
    assert store.current.synonyms.variants() == {"尿不湿": "纸尿裤"}


async def test_index_is_built_off_the_event_loop(store_factory, library_dir):
    loop_thread = threading.get_ident()
    built_in: list[int] = []

    def builder(snapshot: content.ContentSnapshot) -> object:
        built_in.append(threading.get_ident())
        return {entry.id for entry in snapshot.faq.faqs}

    store = store_factory(index_builder=builder)
    snapshot = await store.start()
    assert snapshot.index == {"formula_brewing", "diaper_size"}
    assert built_in and all(ident != loop_thread for ident in built_in)

    write(library_dir, {"faq.yaml": FAQ.replace("diaper_size", "diaper_sizes")})
    assert await store.refresh() is True
    assert store.current.index == {"formula_brewing", "diaper_sizes"}
    assert len(built_in) == 2 and loop_thread not in built_in


async def test_a_failing_index_build_keeps_the_last_good(store_factory, library_dir, caplog):
    calls = []

    def builder(snapshot: content.ContentSnapshot) -> object:
        calls.append(snapshot.digest)
        if len(calls) > 1:
            raise ValueError("boom")
        return "index"

    store = store_factory(index_builder=builder)
    first = await store.start()
    write(library_dir, {"faq.yaml": FAQ.replace("diaper_size", "diaper_sizes")})
    with caplog.at_level(logging.ERROR, logger="bot.content"):
        assert await store.refresh() is False
        assert await store.refresh() is False
    assert store.current is first
    assert len(calls) == 2  # the failed version is not rebuilt on every check
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1


async def test_run_refreshes_until_stopped(settings_factory, clock, library_dir):
    settings = settings_factory(**{"content.dir": str(library_dir), "content.reload_interval_seconds": 0.001})
    store = content.ContentStore(settings, clock)
    await store.start()
    swapped = asyncio.Event()
    refresh = store.refresh

    async def refresh_and_tell() -> bool:
        changed = await refresh()
        if changed:
            swapped.set()
        return changed

    store.refresh = refresh_and_tell  # type: ignore[method-assign]
    write(library_dir, {"faq.yaml": FAQ.replace("diaper_size", "diaper_sizes")})
    stopping = asyncio.Event()
    task = asyncio.create_task(store.run(stopping))
    await asyncio.wait_for(swapped.wait(), 5)
    stopping.set()
    await asyncio.wait_for(task, 5)
    assert store.current.faq.get("diaper_sizes") is not None


async def test_run_returns_at_once_when_stopping(store_factory, library_dir):
    store = store_factory()
    first = await store.start()
    write(library_dir, {"faq.yaml": FAQ.replace("diaper_size", "diaper_sizes")})
    stopping = asyncio.Event()
    stopping.set()
    await asyncio.wait_for(store.run(stopping), 5)
    assert store.current is first


def test_database_source_needs_sessions(settings_factory, clock):
    with pytest.raises(errors.ConfigError):
        content.ContentStore(settings_factory(**{"content.source": "database"}), clock)


# ----------------------------------------------------------------------------------------------- CLI


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    cli_content.add_content_commands(parser.add_subparsers())
    return parser.parse_args(argv)


def test_cli_validate_ok(capsys):
    args = parse("validate", "--dir", str(ROOT / "content_library"))
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK ") and "44 FAQs" in out


def test_cli_validate_lists_every_error_and_exits_1(tmp_path, capsys):
    write(
        tmp_path,
        lib(
            faq="brand: x\nfaqs:\n  - id: a\n    questions: [q]\n",
            replies=REPLIES.format(ref="nope"),
        ),
    )
    args = parse("validate", "--dir", str(tmp_path))
    assert args.func(args) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{tmp_path / 'faq.yaml'}:3: faqs[0].answer: Field required",
        f"{tmp_path / 'replies.yaml'}:4: faq_ref 'nope' is not an FAQ id in faq.yaml",
        "2 error(s)",
    ]


def test_cli_validate_defaults_to_the_settings_dir(tmp_path, monkeypatch, settings_factory, capsys):
    write(tmp_path / "lib", lib())
    settings = settings_factory(**{"content.dir": str(tmp_path / "lib")})
    monkeypatch.setattr(cli_content, "load_settings", lambda path: settings)
    args = parse("validate")
    assert args.func(args) == 0
    assert "2 FAQs" in capsys.readouterr().out


def test_validate_also_checks_the_tagging_rules(tmp_path, capsys) -> None:
    import argparse
    import shutil

    from bot import cli_content

    library = tmp_path / "content_library"
    shutil.copytree(Path(__file__).resolve().parents[2] / "content_library", library)
    assert cli_content.cmd_validate(argparse.Namespace(dir=str(library), config=None)) == 0
    assert "tagging rules valid" in capsys.readouterr().out
    (library / "tagging.yaml").write_text(
        "brand: x\ngroups: {人群: [宝妈]}\nrules:\n  - id: r1\n    tag: 不存在的标签\n    any: [宝宝]\n"
    )
    assert cli_content.cmd_validate(argparse.Namespace(dir=str(library), config=None)) == 1
    assert "tagging.yaml:" in capsys.readouterr().out
