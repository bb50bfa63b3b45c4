"""The SOP runner's decision for one run: exits, branches, late steps, conditions, routes and manners."""

from __future__ import annotations

import datetime as dt

import pytest

from bot import policy
from bot.clock import SHANGHAI
from bot.playbooks import load_playbooks_from_texts
from handlers.sop_decide import CustomerView, RunView, decide_run

PLAYBOOK = """
id: nurture
name: 测试
trigger: {stage_entered: 加微}
max_delay: 6h
exit: {tags_any: [已购], unsubscribed: true}
steps:
  - id: ask
    day: 1
    at: "10:00"
    content: {text: "宝宝几个月了？"}
    route: [kf, mass_task]
    wait: 24h
    on_reply: replied
    on_click: clicked
    otherwise: quiet
  - id: replied
    day: 3
    at: "20:30"
    content: {text: "谢谢回复"}
  - id: clicked
    after: 1h
    content: {text: "看过了吗"}
  - id: quiet
    day: 3
    at: "10:00"
    when: 'attributes.baby_age_months < 12'
    content: {text: "喂养小抄"}
    route: [mass_task, guide_notify]
"""

ENROLLED = dt.datetime(2026, 11, 23, 9, 0, tzinfo=SHANGHAI)  # Monday
SETTINGS = policy.PolicySettings()


@pytest.fixture(scope="module")
def playbook():
    return load_playbooks_from_texts({"nurture.yaml": PLAYBOOK}).get("nurture")


def run(step: str = "ask", state: str = "due", due: dt.datetime | None = None, reaction: str = "") -> RunView:
    due = due or dt.datetime(2026, 11, 24, 10, 0, tzinfo=SHANGHAI)
    start = ENROLLED.timestamp()
    return RunView(1, "wm1", "nurture", 1, "加微", start, step, state, due.timestamp(), start, reaction)


def customer(**kw) -> CustomerView:
    facts = {"tags": kw.pop("tags", []), "attributes": kw.pop("attributes", {}), "unsubscribed": False}
    history = kw.pop("history", policy.SendHistory())
    return CustomerView("wm1", facts, guide=kw.pop("guide", "xiaolin"), history=history, **kw)


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, minute, tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    ("case", "the_run", "who", "now", "expect"),
    [
        # (outcome of the first log entry, reason, route, state after, step after)
        (
            "due, no kf session: the guide's task",
            run(),
            customer(),
            at(24, 10),
            ("sent", "", "mass_task", "waiting", "ask"),
        ),
        (
            "kf session open: kf first",
            run(),
            customer(open_kfid="wk1", history=policy.SendHistory(kf_last_customer_message_at=at(24, 9))),
            at(24, 10),
            ("sent", "", "kf", "waiting", "ask"),
        ),
        (
            "a purchase tag ends the run",
            run(),
            customer(tags=["已购"]),
            at(24, 10),
            ("exited", "exit", "", "exited", "ask"),
        ),
        (
            "reply branch",
            run(state="waiting", reaction="reply"),
            customer(),
            at(24, 12),
            ("branched", "reply", "", "due", "replied"),
        ),
        (
            "click branch",
            run(state="waiting", reaction="click"),
            customer(),
            at(24, 12),
            ("branched", "click", "", "due", "clicked"),
        ),
        (
            "no reaction",
            run(state="waiting"),
            customer(),
            at(25, 10),
            ("branched", "no_reaction", "", "due", "quiet"),
        ),
        ("late past max_delay", run(), customer(), at(24, 16, 1), ("skipped", "late", "", "due", "quiet")),
        ("just inside max_delay", run(), customer(), at(24, 16), ("sent", "", "mass_task", "waiting", "ask")),
        (
            "condition false: skipped to the end",
            run("quiet", due=at(26, 10)),
            customer(attributes={"baby_age_months": 14}),
            at(26, 10),
            ("skipped", "condition", "", "done", "quiet"),
        ),
        (
            "daily cap: deferred",
            run(),
            customer(history=policy.SendHistory(sent_today=1, sent_this_week=1)),
            at(24, 10),
            ("deferred", "daily_cap", "", "due", "ask"),
        ),
        (
            "no guide, no kf: skipped",
            run(),
            customer(guide=""),
            at(24, 10),
            ("skipped", "kf_window", "", "due", "quiet"),
        ),
    ],
)
def test_decide_run(case, the_run, who, now, expect, playbook) -> None:
    outcome = decide_run(the_run, playbook, who, SETTINGS, now)
    first = outcome.log[0]
    assert (first.outcome, first.reason, first.route, outcome.state, outcome.step_id) == expect, case


def test_quiet_hours_move_a_step_to_the_morning(playbook) -> None:
    late_evening = run("replied", due=at(26, 22, 0))  # a step landing at 22:00
    outcome = decide_run(late_evening, playbook, customer(), SETTINGS, at(26, 22, 0))
    assert (outcome.state, outcome.log[0].reason) == ("due", "quiet_hours")
    assert dt.datetime.fromtimestamp(outcome.due_at, SHANGHAI) == at(27, 8, 30)


def test_reply_branch_is_timed_by_its_own_day_and_time(playbook) -> None:
    outcome = decide_run(run(state="waiting", reaction="reply"), playbook, customer(), SETTINGS, at(24, 12))
    assert dt.datetime.fromtimestamp(outcome.due_at, SHANGHAI) == at(26, 20, 30)


def test_a_removed_playbook_or_step_ends_the_run(playbook) -> None:
    assert decide_run(run(), None, customer(), SETTINGS, at(24, 10)).state == "exited"
    assert decide_run(run("gone"), playbook, customer(), SETTINGS, at(24, 10)).log[0].reason == "step_gone"


def test_the_enrollment_condition_is_checked_at_the_first_step() -> None:
    staff_only = PLAYBOOK.replace("steps:", "when: 'not has_tag(\"员工\")'\nsteps:", 1)
    playbook = load_playbooks_from_texts({"nurture.yaml": staff_only}).get("nurture")
    outcome = decide_run(run(), playbook, customer(tags=["员工"]), SETTINGS, at(24, 10))
    assert (outcome.state, outcome.log[0].reason) == ("exited", "not_eligible")
    assert decide_run(run(), playbook, customer(), SETTINGS, at(24, 10)).log[0].outcome == "sent"


def test_unsubscribed_customer_gets_no_marketing_and_the_run_exits(playbook) -> None:
    who = CustomerView("wm1", {"tags": [], "unsubscribed": True}, guide="xiaolin")
    outcome = decide_run(run(), playbook, who, SETTINGS, at(24, 10))
    assert (outcome.state, outcome.log[0].detail) == ("exited", "unsubscribed")


def test_stage_check_keys_are_per_day_when_far_and_per_minute_when_near() -> None:
    from handlers.lifecycle import check_key

    now = at(24, 10).timestamp()
    far = at(30, 10).timestamp()
    assert (
        check_key("wm1", far, now, SHANGHAI)
        == check_key("wm1", far + 3600, now, SHANGHAI)
        == "stage:wm1:20261130"
    )
    # A check due today must not collide with one that already fired today.
    assert check_key("wm1", now, now, SHANGHAI) == "stage:wm1:202611241000"
    assert check_key("wm1", now + 60, now, SHANGHAI) != check_key("wm1", now, now, SHANGHAI)
