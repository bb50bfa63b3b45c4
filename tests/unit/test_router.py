"""Router and dispatcher: matching, first match within a router, fan-out, failure isolation."""

from __future__ import annotations

import pytest

from bot import actions as act
from bot import errors, events
from bot.events import RouteKey
from bot.router import Dispatcher, Router


def added(external_userid: str = "wm1") -> events.ContactAdded:
    return events.ContactAdded(
        app="contact",
        create_time=1,
        route_key=RouteKey("event", "change_external_contact", "add_external_contact"),
        dedup_key=f"k:{external_userid}",
        userid="xiaolin",
        external_userid=external_userid,
        state="store_12",
    )


def note(text: str) -> act.RecordTimeline:
    return act.RecordTimeline("wm1", "note", text, 0.0, text)


async def test_first_match_wins_within_a_router_and_all_routers_run() -> None:
    first, second = Router("first"), Router("second")

    @first.on(RouteKey("event", "change_external_contact", "add_external_contact"))
    def exact(event, deps):
        return [note("exact")]

    @first.on(events.ContactEvent, when=lambda e: True)
    def fallback(event, deps):
        return [note("fallback")]

    @second.on(RouteKey("event", "change_external_contact", "*"))
    async def wildcard(event, deps):
        return [note("wildcard")]

    outcome = await Dispatcher([first, second]).dispatch(added(), deps=None)
    assert outcome.actions == {"first": [note("exact")], "second": [note("wildcard")]}
    assert not outcome.failed and not outcome.unhandled


async def test_a_failing_router_does_not_stop_the_others_and_can_be_skipped() -> None:
    broken, fine = Router("broken"), Router("fine")

    @broken.on(events.ContactAdded)
    def boom(event, deps):
        raise RuntimeError("bug")

    @fine.on(events.ContactAdded)
    def ok(event, deps):
        return [note("ok")]

    dispatcher = Dispatcher([broken, fine])
    outcome = await dispatcher.dispatch(added(), deps=None)
    assert outcome.actions == {"fine": [note("ok")]}
    assert "RuntimeError: bug" in outcome.failed["broken"]
    retried = await dispatcher.dispatch(added(), deps=None, skip=["fine"])
    assert retried.actions == {} and "broken" in retried.failed


async def test_unhandled_event_is_reported() -> None:
    router = Router("only_groups")

    @router.on(events.GroupEvent)
    def group(event, deps):
        return []

    outcome = await Dispatcher([router]).dispatch(added(), deps=None)
    assert outcome.unhandled and outcome.actions == {}


def test_router_included_twice_fails_at_start() -> None:
    router = Router("twice")
    with pytest.raises(errors.ConfigError, match="twice"):
        Dispatcher([router, router])


def test_two_handlers_claiming_one_key_fail_at_registration() -> None:
    router = Router("dup")

    @router.on(events.ContactAdded)
    def one(event, deps):
        return []

    with pytest.raises(errors.ConfigError, match="claimed"):

        @router.on(events.ContactAdded)
        def two(event, deps):
            return []
