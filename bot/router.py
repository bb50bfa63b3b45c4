"""Routers: handlers declare what they take; the dispatcher fans an event out to every router.

Within one router the first matching handler wins; every router sees every event, in the order
of `handlers.ROUTERS`. A router that raises is reported back (the inbox retries just that
router) and does not stop the others.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot import errors
from bot.actions import Action
from bot.events import Event, RouteKey

_LOGGER = logging.getLogger(__name__)

Handler = Callable[[Any, Any], "Sequence[Action] | Awaitable[Sequence[Action]]"]
Predicate = Callable[[Any], bool]
Spec = RouteKey | type[Event]


def _matches(spec: Spec, event: Event) -> bool:
    if isinstance(spec, type):
        return isinstance(event, spec)
    return all(want in ("*", got) for want, got in zip(spec, event.route_key, strict=True))


@dataclass(frozen=True)
class Route:
    """One handler and what it takes."""

    specs: tuple[Spec, ...]
    handler: Handler
    when: Predicate | None = None

    def accepts(self, event: Event) -> bool:
        """True if this route takes `event`."""
        return any(_matches(s, event) for s in self.specs) and (self.when is None or self.when(event))

    def describe(self) -> str:
        """Printable spec list."""
        return ", ".join(s.__name__ if isinstance(s, type) else str(s) for s in self.specs)


@dataclass
class Router:
    """A capability's handlers, registered with `@router.on(...)`."""

    name: str
    routes: list[Route] = field(default_factory=list)

    def on(self, *specs: Spec, when: Predicate | None = None) -> Callable[[Handler], Handler]:
        """Register the decorated handler for route keys or event classes."""
        if not specs:
            raise errors.ConfigError(f"router {self.name}: a handler needs at least one route")

        def register(handler: Handler) -> Handler:
            for spec in specs:
                for route in self.routes:
                    if when is None and route.when is None and spec in route.specs:
                        raise errors.ConfigError(
                            f"router {self.name}: {spec} is claimed by {route.handler.__name__} already"
                        )
            self.routes.append(Route(tuple(specs), handler, when))
            return handler

        return register

    def match(self, event: Event) -> Route | None:
        """The first route that takes `event`."""
        return next((r for r in self.routes if r.accepts(event)), None)


@dataclass(frozen=True)
class Outcome:
    """What dispatching one event produced: actions per router, and routers that failed."""

    actions: dict[str, list[Action]]
    failed: dict[str, str]
    unhandled: bool


class Dispatcher:
    """Runs an event through every router in order."""

    def __init__(self, routers: Iterable[Router]) -> None:
        self.routers: tuple[Router, ...] = tuple(routers)
        names = [r.name for r in self.routers]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise errors.ConfigError(f"router included twice: {', '.join(sorted(duplicates))}")

    async def dispatch(self, event: Event, deps: Any, skip: Iterable[str] = ()) -> Outcome:
        """Run `event` through the routers not in `skip`; collect actions and failures."""
        skipped = set(skip)
        actions: dict[str, list[Action]] = {}
        failed: dict[str, str] = {}
        matched = False
        for router in self.routers:
            route = router.match(event)
            if route is None:
                continue
            matched = True
            if router.name in skipped:
                continue
            try:
                result = route.handler(event, deps)
                if inspect.isawaitable(result):
                    result = await result
                actions[router.name] = list(result or ())
            except Exception as exc:  # one capability failing must not stop the others
                _LOGGER.exception("handler failed", extra={"router": router.name, "event": event.dedup_key})
                failed[router.name] = f"{type(exc).__name__}: {exc}"
        return Outcome(actions, failed, unhandled=not matched)

    def table(self) -> list[tuple[str, str, str]]:
        """(router, routes, handler) rows for `siyu routes`."""
        return [
            (router.name, route.describe(), route.handler.__qualname__)
            for router in self.routers
            for route in router.routes
        ]
