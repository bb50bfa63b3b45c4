"""SOP playbooks: file:line validation, due times, branching, shipped sop/, the last-good store, the CLI."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import textwrap
from pathlib import Path

import pytest

from bot import cli_sop, content, errors, playbooks
from bot.clock import SHANGHAI

ROOT = Path(__file__).resolve().parents[2]
UTC = dt.UTC

GOOD = """\
id: nurture
name: 新客培育
trigger: {stage_entered: 加微}
steps:
  - id: d1
    day: 1
    at: "10:00"
    content: {text: "{customer_name}您好，我是{guide_name}。"}
    wait: 24h
    on_reply: d2_replied
    on_click: d2_clicked
    otherwise: d3
  - id: d2_replied
    after: 2h
    content: {reply: welcome_ask_baby_age}
    next: d3
  - id: d2_clicked
    after: 30m
    content:
      text: 看到您点开了链接～
      link: {title: 尺码表, url: "https://shop.example.com/size"}
    next: end
  - id: d3
    day: 3
    at: "20:30"
    content: {text: 晚上好}
"""


def load(*texts: str, library: content.ContentSnapshot | None = None, stages=None) -> playbooks.PlaybookSet:
    """Playbooks from texts named a.yaml, b.yaml, ..."""
    files = {f"{chr(97 + i)}.yaml": textwrap.dedent(t) for i, t in enumerate(texts)}
    return playbooks.load_playbooks_from_texts(files, library, stages)


def problems(*texts: str, **kwargs) -> list[str]:
    with pytest.raises(errors.ContentErrors) as info:
        load(*texts, **kwargs)
    return [str(e) for e in info.value.errors]


@pytest.fixture(scope="module")
def library() -> content.ContentSnapshot:
    return content.load_library(ROOT / "content_library")


@pytest.fixture(scope="module")
def nurture() -> playbooks.Playbook:
    playbook = load(GOOD).get("nurture")
    assert playbook is not None
    return playbook


# ---------------------------------------------------------------------------------------- validation


def test_good_playbook_loads_with_defaults(library) -> None:
    loaded = load(GOOD, library=library)
    playbook = loaded.playbooks[0]
    assert loaded.sources == {"nurture": "a.yaml"}
    assert playbook.enabled and playbook.marketing
    assert playbook.max_delay == dt.timedelta(hours=6)
    assert playbook.trigger[0].kind == "stage_entered"
    assert [s.id for s in playbook.steps] == ["d1", "d2_replied", "d2_clicked", "d3"]
    assert playbook.step("d1").at == dt.time(10, 0)
    assert playbook.step("d1").route == ("kf", "mass_task", "guide_notify")
    assert playbook.step("d2_replied").after == dt.timedelta(hours=2)
    assert loaded.triggered_by("stage_entered", "加微") == (playbook,)
    assert loaded.triggered_by("stage_entered", "沉默") == ()
    attachments = playbook.step("d2_clicked").content.attachments()
    assert [(a.type, a.url) for a in attachments] == [("link", "https://shop.example.com/size")]
    assert playbook.step("d2_replied").content.resolve_text(library).startswith("方便问一下宝宝")


def test_every_error_of_several_files_with_file_and_line(library) -> None:
    broken_steps = """\
        id: broken
        name: 坏掉的
        trigger: {stage_entered: 加微}
        max_delay: 6 hours
        steps:
          - id: d1
            day: 1
            at: "25:00"
            content: {text: "{customer} 你好"}
          - id: d1
            after: 2h
            day: 2
            content: {text: 你好}
          - id: d3
            after: 2x
            content: {text: 你好, link: {title: t, url: "ftp://x"}}
            on_reply: d9
          - id: d4
            after: 1h
            when: 'lead_score >= 30 &&  stage == "加微"'
            content: {reply: no_such_script}
            wait: 1d
            otherwise: nowhere
    """
    broken_top = """\
        id: broken
        name: 同名
        trigger: {stage_entered: 加微, tag_added: 孕期}
        exit: {stagee_left: true}
        steps: []
    """
    yaml_error = "id: x\nsteps: [\n"
    assert problems(broken_steps, broken_top, yaml_error, library=library) == [
        "a.yaml:4: max_delay: duration '6 hours' must look like 30m, 2h, 1d or 1d12h",
        "a.yaml:8: steps[0].at: at '25:00' must be a time of day like \"10:00\" (HH:MM, 00:00-23:59)",
        "a.yaml:9: steps[0].content.text: unknown variable {customer}; "
        "known: {brand}, {customer_name}, {guide_name}, {store}",
        "a.yaml:10: steps[1]: a step is timed by day + at or by after, not both",
        "a.yaml:10: duplicate step id 'd1' (first on line 6)",
        "a.yaml:15: steps[2].after: duration '2x' must look like 30m, 2h, 1d or 1d12h",
        "a.yaml:16: steps[2].content.link.url: must be an http(s) URL",
        "a.yaml:17: steps[2].on_reply: 'd9' is not a step id in this playbook (or end)",
        "a.yaml:20: steps[3].when: column 18: use 'and' instead of '&&'",
        "a.yaml:21: steps[3].content.reply: 'no_such_script' is not a script id in replies.yaml",
        "a.yaml:23: steps[3].otherwise: 'nowhere' is not a step id in this playbook (or end)",
        "b.yaml:1: duplicate playbook id 'broken' (first in a.yaml:1)",
        "b.yaml:3: trigger: a trigger is exactly one of stage_entered, tag_added, event or date; "
        "write a list for several",
        "b.yaml:4: exit.stagee_left: Extra inputs are not permitted",
        "b.yaml:5: steps: needs at least one step",
        "c.yaml:3: YAML syntax: while parsing a flow node expected the node content, "
        "but found '<stream end>'",
    ]


@pytest.mark.parametrize(
    ("step", "reason"),
    [
        (
            "{id: s, day: 1, content: {text: x}}",
            'steps[0]: day needs at, the local time to send (e.g. at: "10:00")',
        ),
        (
            '{id: s, at: "10:00", content: {text: x}}',
            "steps[0]: at needs day, the day offset from enrollment",
        ),
        ("{id: s, content: {text: x}}", "steps[0]: a step needs day + at"),
        ("{id: s, day: 1, at: 10:00, content: {text: x}}", "steps[0].at: write the time in quotes"),
        ("{id: s, after: 1h, content: {text: x}, on_reply: end}", "steps[0]: on_reply needs wait"),
        ("{id: s, after: 1h, content: {text: x}, wait: 1d}", "steps[0]: wait needs on_reply, on_click or"),
        (
            "{id: s, after: 1h, content: {text: x}, wait: 1d, otherwise: end, next: end}",
            "steps[0]: otherwise and next",
        ),
        ("{id: s, after: 1h, content: {text: x}, route: [kf, kf]}", "steps[0]: route lists a channel twice"),
        ("{id: s, after: 1h, content: {text: x}, route: [sms]}", "steps[0].route[0]: Input should be 'kf'"),
        (
            "{id: s, after: 1h, content: {text: x, reply: y}}",
            "steps[0].content: content needs exactly one of",
        ),
        ("{id: s, after: 1h, content: {}}", "steps[0].content: content needs exactly one of text or reply"),
        ("{id: end, after: 1h, content: {text: x}}", "steps[0].id: 'end' is reserved"),
        ("{id: S1, after: 1h, content: {text: x}}", "steps[0].id: id 'S1' must be snake_case"),
        (
            "{id: s, after: 1h, when: 'stage ==', content: {text: x}}",
            "steps[0].when: column 9: expected a value",
        ),
        (
            "{id: s, after: 1h, when: 'atributes.x > 1', content: {text: x}}",
            "steps[0].when: unknown fact 'atributes.x'",
        ),
        (
            "{id: s, after: 1h, when: true, content: {text: x}}",
            "steps[0].when: a condition must be text in quotes",
        ),
        (
            "{id: s, after: 1h, content: {text: x, image: {}}}",
            "steps[0].content.image: an image needs exactly one",
        ),
        (
            "{id: s, after: 1h, content: {text: x, link: {url: 'https://a'}}}",
            "steps[0].content.link.title: Field",
        ),
    ],
)
def test_step_rules(step: str, reason: str) -> None:
    found = problems(f"id: p\nname: n\ntrigger: {{tag_added: 孕期}}\nsteps:\n  - {step}\n")
    assert len(found) == 1, found
    assert found[0].startswith(f"a.yaml:5: {reason}"), found


@pytest.mark.parametrize(
    ("head", "reason"),
    [
        (
            "trigger: {}",
            "a.yaml:3: trigger: a trigger is exactly one of stage_entered, tag_added, event or date",
        ),
        ("trigger: []", "a.yaml:3: trigger: needs at least one trigger"),
        ("trigger: {event: order_refunded}", "a.yaml:3: trigger.event: Input should be 'order_paid'"),
        (
            "trigger: {date: {attribute: baby_birth_month, months: []}}",
            "a.yaml:3: trigger.date.months: needs",
        ),
        (
            "trigger: {date: {attribute: baby_birth_month, months: [6, 6]}}",
            "a.yaml:3: trigger.date: months lists",
        ),
        (
            "trigger: {date: {attribute: baby_birth_month, months: -1}}",
            "a.yaml:3: trigger.date.months: Input should be greater",
        ),
        (
            "trigger: {tag_added: 孕期}\nexit: {stage_left: true}",
            "a.yaml:4: exit.stage_left needs a stage_entered trigger",
        ),
        ("trigger: {tag_added: 孕期}\nwhen: 'tags ='", "a.yaml:4: when: column 6: use '==' to compare"),
    ],
)
def test_playbook_rules(head: str, reason: str) -> None:
    found = problems(f"id: p\nname: n\n{head}\nsteps:\n  - {{id: s, after: 1h, content: {{text: x}}}}\n")
    assert len(found) == 1, found
    assert found[0].startswith(reason), found


def test_loops_are_refused_with_the_path() -> None:
    looping = """\
        id: p
        name: n
        trigger: {tag_added: 孕期}
        steps:
          - id: a
            after: 1h
            content: {text: x}
            wait: 1d
            on_reply: b
            otherwise: end
          - id: b
            after: 1h
            content: {text: x}
            next: a
          - id: c
            after: 1h
            content: {text: x}
            wait: 1d
            on_click: c
    """
    assert problems(looping) == [
        "a.yaml:14: steps[1].next: the steps loop (a -> b -> a); every path must end",
        "a.yaml:19: steps[2].on_click: the steps loop (c -> c); every path must end",
    ]


def test_stage_names_are_checked_when_known() -> None:
    text = "id: p\nname: n\ntrigger:\n  - {stage_entered: 睡眠}\n  - {tag_added: x}\n"
    text += "exit: {stage_entered: [流失, 走了]}\n"
    text += "steps:\n  - {id: s, after: 1h, content: {text: x}}\n"
    assert problems(text, stages=("加微", "沉默", "流失")) == [
        "a.yaml:4: stage '睡眠' is not in stages.yaml; known: 加微, 沉默, 流失",
        "a.yaml:6: stage '走了' is not in stages.yaml; known: 加微, 沉默, 流失",
    ]
    assert load(text).playbooks[0].trigger[1].tag_added == "x"  # without stages, names are not checked


def test_empty_file_and_missing_directory(tmp_path) -> None:
    assert problems("# nothing yet\n") == ["a.yaml:1: empty file: a playbook needs id, name, trigger, steps"]
    with pytest.raises(errors.ContentErrors, match="sop directory does not exist"):
        playbooks.load_playbooks(tmp_path / "missing")


# ------------------------------------------------------------------------------------------- shipped


def test_shipped_sop_directory_validates(library) -> None:
    from bot import lifecycle

    loaded = playbooks.load_playbooks(ROOT / "sop", library, lifecycle.STAGES)
    assert {p.id for p in loaded.playbooks} == {"new_contact", "baby_month", "dormant_recall", "after_sales"}
    assert "stages.yaml" not in loaded.files
    new_contact = loaded.get("new_contact")
    assert new_contact is not None and new_contact.marketing
    assert loaded.triggered_by("stage_entered", "加微") == (new_contact,)
    assert [p.id for p, _ in loaded.dated()] == ["baby_month"]
    after_sales = loaded.get("after_sales")
    assert after_sales is not None and not after_sales.marketing
    # The demo story: day 1 asks, a reply within a day branches to the membership invite on day 3.
    assert playbooks.next_step(new_contact, "d1_ask_age", "reply").id == "d3_member"
    assert playbooks.next_step(new_contact, "d1_ask_age", None).id == "d3_feeding_guide"
    enrolled = dt.datetime(2026, 11, 28, 21, 0, tzinfo=SHANGHAI)  # Saturday evening
    first = new_contact.first_step.due_at(enrolled, None)
    assert first == dt.datetime(2026, 11, 28, 22, 0, tzinfo=SHANGHAI)  # in quiet hours: the policy moves it


def test_shipped_baby_month_sends_one_step_per_month(library) -> None:
    baby = playbooks.load_playbooks(ROOT / "sop", library).get("baby_month")
    assert baby is not None
    for months in (1, 3, 6, 8, 12):
        facts = {"tags": [], "attributes": {"baby_age_months": months}}
        sent, step = [], baby.first_step
        while step is not None:
            if step.when is None or step.when.evaluate(facts):
                sent.append(step.id)
            step = playbooks.next_step(baby, step.id, None)
        assert len(sent) == 1 and sent[0].startswith(f"m{months}_"), (months, sent)


# -------------------------------------------------------------------------------------------- timing


def at(day: int, hour: int, minute: int = 0, tz: dt.tzinfo = SHANGHAI) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, minute, tzinfo=tz)


def step(**fields) -> playbooks.Step:
    return playbooks.Step.model_validate({"id": "s", "content": {"text": "x"}, **fields})


@pytest.mark.parametrize(
    ("fields", "enrolled", "previous", "due"),
    [
        ({"day": 1, "at": "10:00"}, at(23, 15), None, at(24, 10)),
        ({"day": 0, "at": "20:30"}, at(23, 15), None, at(23, 20, 30)),
        ({"day": 0, "at": "10:00"}, at(23, 15), None, at(23, 15)),  # already past: due at enrollment
        ({"day": 1, "at": "10:00"}, at(23, 23, 50), None, at(24, 10)),  # late evening enrollment
        ({"day": 1, "at": "00:15"}, at(23, 23, 50), None, at(24, 0, 15)),
        ({"day": 3, "at": "10:00"}, at(28, 9), None, dt.datetime(2026, 12, 1, 10, tzinfo=SHANGHAI)),
        (
            {"day": 7, "at": "10:00"},
            dt.datetime(2026, 12, 29, 9, tzinfo=SHANGHAI),
            None,
            dt.datetime(2027, 1, 5, 10, tzinfo=SHANGHAI),
        ),
        # 16:30 UTC on the 23rd is 00:30 on the 24th in Shanghai: day offsets count local days.
        ({"day": 1, "at": "10:00"}, dt.datetime(2026, 11, 23, 16, 30, tzinfo=UTC), None, at(25, 10)),
        # A branch target reached after its time (a wait ran past it) is due when reached.
        ({"day": 2, "at": "10:00"}, at(23, 9), at(25, 12), at(25, 12)),
        ({"day": 3, "at": "10:00"}, at(23, 9), at(25, 12), at(26, 10)),
        ({"after": "2h"}, at(23, 9), None, at(23, 11)),
        ({"after": "2h"}, at(23, 9), at(24, 23, 30), at(25, 1, 30)),
        ({"after": "1d12h"}, at(23, 9), at(24, 10), at(25, 22)),
        ({"after": "30m"}, at(23, 9), dt.datetime(2026, 11, 24, 2, 0, tzinfo=UTC), at(24, 10, 30)),
    ],
)
def test_due_at(fields: dict, enrolled: dt.datetime, previous: dt.datetime | None, due: dt.datetime) -> None:
    result = step(**fields).due_at(enrolled, previous)
    assert result == due
    assert result.tzinfo is SHANGHAI


def test_due_at_in_another_zone_and_naive_refused() -> None:
    from zoneinfo import ZoneInfo

    tokyo = ZoneInfo("Asia/Tokyo")
    result = step(day=1, at="10:00").due_at(at(23, 23, 30), None, tokyo)  # 00:30 on the 24th in Tokyo
    assert result == dt.datetime(2026, 11, 25, 10, tzinfo=tokyo)
    with pytest.raises(ValueError, match="timezone-aware"):
        step(after="1h").due_at(dt.datetime(2026, 11, 23, 9), None)


@pytest.mark.parametrize(
    ("text", "delta"),
    [
        ("30m", dt.timedelta(minutes=30)),
        ("2h", dt.timedelta(hours=2)),
        ("1d", dt.timedelta(days=1)),
        ("1d12h", dt.timedelta(days=1, hours=12)),
        ("1h30m", dt.timedelta(minutes=90)),
        ("0m", dt.timedelta(0)),
    ],
)
def test_parse_duration(text: str, delta: dt.timedelta) -> None:
    assert playbooks.parse_duration(text) == delta


@pytest.mark.parametrize("text", ["", "2", "h", "2 h", "1.5h", "2h1d", "-1h", "2hours"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="must look like 30m"):
        playbooks.parse_duration(text)


@pytest.mark.parametrize(
    ("late_by", "late"),
    [(dt.timedelta(0), False), (dt.timedelta(hours=6), False), (dt.timedelta(hours=6, seconds=1), True)],
)
def test_is_late(nurture, late_by: dt.timedelta, late: bool) -> None:
    due = at(24, 10)
    assert nurture.is_late(due, due + late_by) is late


@pytest.mark.parametrize(
    ("value", "dates"),
    [
        ("2026-05", ((1, dt.date(2026, 6, 1)), (6, dt.date(2026, 11, 1)), (12, dt.date(2027, 5, 1)))),
        ("2026-08-31", ((1, dt.date(2026, 9, 30)), (6, dt.date(2027, 2, 28)), (12, dt.date(2027, 8, 31)))),
        ("2026-13", ()),
        ("soon", ()),
    ],
)
def test_date_trigger_fire_dates(value: str, dates: tuple) -> None:
    trigger = playbooks.DateTrigger.model_validate({"attribute": "baby_birth_month", "months": [12, 1, 6]})
    assert trigger.fire_dates(value) == dates


# ------------------------------------------------------------------------------------------- branching


@pytest.mark.parametrize(
    ("step_id", "reaction", "expected"),
    [
        ("d1", "reply", "d2_replied"),
        ("d1", "click", "d2_clicked"),
        ("d1", None, "d3"),
        ("d2_replied", None, "d3"),  # next
        ("d2_replied", "reply", "d3"),  # no wait: the reaction does not branch
        ("d2_clicked", None, None),  # next: end
        ("d3", None, None),  # the last step
    ],
)
def test_next_step(nurture, step_id: str, reaction: str | None, expected: str | None) -> None:
    result = playbooks.next_step(nurture, step_id, reaction)  # type: ignore[arg-type]
    assert (result.id if result else None) == expected


def test_next_step_fallbacks() -> None:
    text = """\
        id: p
        name: n
        trigger: {tag_added: 孕期}
        steps:
          - {id: a, after: 1h, content: {text: x}, wait: 1d, on_reply: c}
          - {id: b, after: 1h, content: {text: x}, wait: 1d, on_click: c, otherwise: end}
          - {id: c, after: 1h, content: {text: x}}
    """
    playbook = load(text).playbooks[0]
    assert playbooks.next_step(playbook, "a", "reply").id == "c"
    assert playbooks.next_step(playbook, "a", "click").id == "b"  # no on_click, no otherwise: list order
    assert playbooks.next_step(playbook, "a", None).id == "b"
    assert playbooks.next_step(playbook, "b", "reply") is None  # a reaction without a branch: otherwise
    with pytest.raises(KeyError):
        playbooks.next_step(playbook, "gone", None)


@pytest.mark.parametrize(
    ("facts", "enrolled_stage", "reason"),
    [
        ({"stage": "加微", "tags": []}, "加微", None),
        ({"stage": "活跃", "tags": []}, "加微", "left stage 加微"),
        ({"stage": "流失"}, None, "entered stage 流失"),
        ({"stage": "加微", "tags": ["宝妈", "已购"]}, "加微", "tag 已购"),
        ({"stage": "加微", "unsubscribed": True}, "加微", "unsubscribed"),
        ({"stage": "加微", "lead_score": 90}, "加微", "exit condition lead_score >= 80"),
    ],
)
def test_exit_reason(facts: dict, enrolled_stage: str | None, reason: str | None) -> None:
    exit_ = playbooks.Exit.model_validate(
        {
            "stage_left": True,
            "stage_entered": ["流失"],
            "tags_any": ["已购"],
            "unsubscribed": True,
            "when": "lead_score >= 80",
        }
    )
    assert exit_.reason(facts, enrolled_stage) == reason


# --------------------------------------------------------------------------------------------- store


def write(directory: Path, **files: str) -> None:
    directory.mkdir(exist_ok=True)
    for name, text in files.items():
        (directory / f"{name}.yaml").write_text(textwrap.dedent(text), encoding="utf-8")


async def test_store_keeps_the_last_good_set(tmp_path, caplog) -> None:
    directory = tmp_path / "sop"
    write(directory, nurture=GOOD, stages="retained_after_days: 7\n")
    store = playbooks.PlaybookStore(directory)
    with pytest.raises(RuntimeError):
        store.current  # noqa: B018 - nothing is served before start()
    first = await store.start()
    assert [p.id for p in first.playbooks] == ["nurture"]
    assert await store.refresh() is False  # nothing changed

    write(directory, nurture=GOOD.replace('at: "20:30"', 'at: "20:75"'))
    with caplog.at_level(logging.WARNING, logger="bot.playbooks"):
        assert await store.refresh() is False
        assert await store.refresh() is False  # the same bad version: no second warning
    assert store.current is first
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "nurture.yaml:25: steps[3].at: at '20:75' must be a time of day" in warnings[0]
    assert "晚上好" not in warnings[0]  # where and why, never the message text

    write(directory, nurture=GOOD.replace('at: "20:30"', 'at: "20:45"'))
    assert await store.refresh() is True
    assert store.current.get("nurture").step("d3").at == dt.time(20, 45)


async def test_store_rechecks_when_the_content_library_changes(tmp_path, library) -> None:
    directory = tmp_path / "sop"
    write(directory, nurture=GOOD)
    snapshots = [library]
    store = playbooks.PlaybookStore(directory, content_snapshot=lambda: snapshots[-1])
    first = await store.start()
    # The script d2_replied sends disappears from replies.yaml: the playbook set is not swapped.
    files = dict(library.files)
    files["replies.yaml"] = files["replies.yaml"].replace("welcome_ask_baby_age", "ask_age")
    snapshots.append(content.load_library_from_texts(files))
    assert await store.refresh() is False
    assert store.current is first


async def test_store_refuses_to_start_on_invalid_playbooks(tmp_path) -> None:
    directory = tmp_path / "sop"
    write(directory, nurture=GOOD.replace("on_reply: d2_replied", "on_reply: d2_reply"))
    with pytest.raises(errors.ContentErrors) as info:
        await playbooks.PlaybookStore(directory).start()
    assert [str(e) for e in info.value.errors] == [
        "nurture.yaml:10: steps[0].on_reply: 'd2_reply' is not a step id in this playbook (or end)"
    ]


# ----------------------------------------------------------------------------------------------- cli


def run_validate(capsys, directory: Path) -> tuple[int, list[str]]:
    args = argparse.Namespace(dir=str(directory), content_dir=str(ROOT / "content_library"), config=None)
    code = cli_sop.cmd_validate(args)
    return code, capsys.readouterr().out.splitlines()


def test_cli_validate_ok_on_the_shipped_directory(capsys) -> None:
    code, out = run_validate(capsys, ROOT / "sop")
    assert code == 0
    assert out[0].startswith(f"OK {ROOT / 'sop'}: 4 playbooks (4 enabled), ")
    assert "stages.yaml valid" in out[0]


def test_cli_validate_prints_every_error_with_its_path(tmp_path, capsys) -> None:
    directory = tmp_path / "sop"
    write(
        directory,
        a=GOOD.replace("{guide_name}", "{guide}"),
        b=GOOD.replace("content: {reply: welcome_ask_baby_age}", "content: {reply: gone}"),
        stages="retained_after_days: 30\ndormant_after_days: 7\n",
    )
    code, out = run_validate(capsys, directory)
    assert code == 1
    # stages.yaml's wording is bot/lifecycle.py's; here only that it is reported, with its path and line.
    assert out[0].startswith(f"{directory}/stages.yaml:2: dormant_after_days (7) must be longer")
    assert out[1:] == [
        f"{directory}/a.yaml:8: steps[0].content.text: unknown variable {{guide}}; "
        "known: {brand}, {customer_name}, {guide_name}, {store}",
        f"{directory}/b.yaml:1: duplicate playbook id 'nurture' (first in a.yaml:1)",
        f"{directory}/b.yaml:15: steps[1].content.reply: 'gone' is not a script id in replies.yaml",
        "4 error(s)",
    ]
