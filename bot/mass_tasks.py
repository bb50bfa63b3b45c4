"""Following a 1:1 mass-send task (add_msg_template) until the guide sends it, or we give up.

A `CreateMassTask` send schedules a `mass_task_check` timer `check_after_hours` later; the timer
becomes a `CheckMassTask` (get_groupmsg_send_result), which records the outcome or, while the
task is unsent and reminders are left, reminds the guide and schedules the next check.
Idempotency: timer `masscheck:{task key}:{n}` and outbox `masscheck:{task key}:{n}` per check n.
Register `on_check_timer` for `TIMER_KIND` with the scheduler.
"""

from __future__ import annotations

from typing import Any

from bot import actions as act

TIMER_KIND = "mass_task_check"

# get_groupmsg_send_result status (p/93338) -> what we record.
SENT, NOT_FRIEND, OVER_CAP, UNSENT = 1, 2, 3, 0
STATUS_NAMES = {SENT: "sent", NOT_FRIEND: "not_friend", OVER_CAP: "over_cap"}


def decide_check(status: int | None, check: int, max_reminders: int) -> str:
    """What check number `check` does with the customer's send status (None: not in the task).

    Returns a status to record (`sent`, `not_friend`, `over_cap`, `unsent`, `not_sendable`) or
    `remind` (remind the guide, record `reminded`, check again).
    """
    if status is None:
        return "not_sendable"
    if status in STATUS_NAMES:
        return STATUS_NAMES[status]
    return "remind" if check <= max_reminders else "unsent"


def check_timer(
    action: act.CreateMassTask | act.CheckMassTask, msgid: str, check: int, due_at: float
) -> act.Schedule:
    """The timer for check number `check` of a task."""
    if isinstance(action, act.CreateMassTask):
        task_key, customer, sender = action.key, action.external_userid, action.sender
    else:
        task_key, customer, sender = action.task_key, action.external_userid, action.sender
    return act.Schedule(
        key=f"masscheck:{task_key}:{check}",
        kind=TIMER_KIND,
        due_at=due_at,
        payload={
            "task_key": task_key,
            "msgid": msgid,
            "external_userid": customer,
            "sender": sender,
            "check": check,
        },
    )


def on_check_timer(timer: Any, deps: Any) -> list[act.Action]:
    """A `mass_task_check` timer is due: look at the task (through the outbox)."""
    p = timer.payload
    return [
        act.CheckMassTask(
            task_key=str(p["task_key"]),
            msgid=str(p["msgid"]),
            external_userid=str(p["external_userid"]),
            sender=str(p["sender"]),
            check=int(p["check"]),
        )
    ]
