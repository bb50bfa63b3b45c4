"""Reconcile channel live codes with WeCom: add / update / delete contact ways, store each config_id.

WeCom does not show API-made codes in its console and the `config_id` is the only handle (§5.3),
so every successful call is stored in `channel_codes` right away, one channel per transaction. A
failing channel is reported and the others go on. The daily timer (`channels_sync`) re-runs the
sync so guides at their cap come off the codes and the day's rota goes on.

A process that dies between add_contact_way and the insert leaves a code WeCom holds and we do
not know. So each sync first reconciles with WeCom's own list (`list_contact_way`, its default
window of the last 90 days, then `get_contact_way` for each unknown config_id): a code carrying
one of our states that the database lacks is adopted instead of adding another, and further codes
with that state are deleted as duplicates. Codes with other states are not ours and left alone.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select

from bot import actions as act
from bot import errors
from bot.channels import SCENE_QR, Channel, Op, code_type, load_channels, plan, way_digest
from bot.clock import SHANGHAI
from bot.store.db import Sessions
from bot.store.models import ChannelCode, Follow

__all__ = [
    "TIMER_KIND",
    "Result",
    "count_adds",
    "listed_config_ids",
    "next_sync_at",
    "on_channels_sync_timer",
    "reconcile",
    "run_sync_action",
    "schedule_next_sync",
    "stored_codes",
    "sync",
]

_LOGGER = logging.getLogger(__name__)

TIMER_KIND = "channels_sync"
LIST_PAGE = 1000
"""list_contact_way's largest page."""


@dataclass(frozen=True)
class Result:
    """What the sync did to one channel; `error` is set when it failed."""

    key: str
    name: str
    state: str
    users: tuple[str, ...]
    config_id: str
    qr_code: str
    change: str
    error: str = ""


def midnight(day: dt.date) -> float:
    """Epoch seconds of `day`'s 00:00 in Asia/Shanghai."""
    return dt.datetime.combine(day, dt.time(0, 0), SHANGHAI).timestamp()


async def count_adds(
    sessions: Sessions, channels: Sequence[Channel], day: dt.date
) -> dict[str, dict[str, int]]:
    """Channel key -> guide -> follows added with the channel's state since `day`'s local midnight."""
    by_state = {c.state: c.key for c in channels}
    if not by_state:
        return {}
    since = midnight(day)
    query = (
        select(Follow.state, Follow.userid, func.count())
        .where(Follow.state.in_(list(by_state)), Follow.added_at >= since, Follow.added_at < since + 86400)
        .group_by(Follow.state, Follow.userid)
    )
    out: dict[str, dict[str, int]] = {}
    async with sessions() as session:
        for state, userid, count in (await session.execute(query)).all():
            out.setdefault(by_state[state], {})[userid] = int(count)
    return out


async def stored_codes(sessions: Sessions) -> dict[str, ChannelCode]:
    """Every stored code by channel key (detached rows: read-only)."""
    async with sessions() as session:
        rows = (await session.scalars(select(ChannelCode).order_by(ChannelCode.key))).all()
        session.expunge_all()
    return {row.key: row for row in rows}


async def sync(
    client: Any,
    sessions: Sessions,
    channels: Sequence[Channel],
    day: dt.date,
    adds: Mapping[str, Mapping[str, int]] | None = None,
    *,
    now: float,
    dry_run: bool = False,
) -> list[Result]:
    """Make WeCom's codes match `channels` on `day`; `adds` default to the follows stored today."""
    if adds is None:
        adds = await count_adds(sessions, channels, day)
    stored = await stored_codes(sessions)
    notes: dict[str, list[str]] = {}
    if not dry_run:
        # Before any add: a code a crashed run made must be adopted, not made a second time.
        notes = await reconcile(client, sessions, channels, stored, now)
        if notes:
            stored = await stored_codes(sessions)
    results: list[Result] = []
    for op in plan(channels, stored, day, adds):
        row = stored.get(op.key)
        if dry_run or op.kind == "unchanged":
            results.append(_result(op, row, op.kind if not dry_run else f"would {op.kind}"))
            continue
        try:
            results.append(await _apply(client, sessions, op, row, now))
        except errors.SiyuError as exc:
            # One bad channel (a guide left, a quota) must not keep the other codes stale.
            _LOGGER.warning("channel sync failed", extra={"channel": op.key, "error": str(exc)})
            results.append(_result(op, row, "failed", error=str(exc)))
    return [_noted(r, notes.get(r.key, ())) for r in results]


def _noted(result: Result, notes: Sequence[str]) -> Result:
    """`adopted` replaces `unchanged` and leads any other change; other notes follow it."""
    if not notes:
        return result
    change = result.change
    if "adopted" in notes:
        change = "adopted" if change == "unchanged" else f"adopted, {change}"
    extra = [n for n in notes if n != "adopted"]
    return replace(result, change=", ".join([change, *extra]))


# -------------------------------------------------------------------------------- reconciliation


async def listed_config_ids(client: Any) -> list[str]:
    """Every config_id list_contact_way gives for its default window (the last 90 days), all pages."""
    ids: list[str] = []
    cursor = ""
    seen: set[str] = set()
    while True:
        page = await client.list_contact_way(cursor=cursor or None, limit=LIST_PAGE)
        ids += [str(item["config_id"]) for item in page.get("contact_way") or () if item.get("config_id")]
        cursor = str(page.get("next_cursor") or "")
        if not cursor or cursor in seen:  # a repeated cursor would loop forever
            return ids
        seen.add(cursor)


async def reconcile(
    client: Any,
    sessions: Sessions,
    channels: Sequence[Channel],
    stored: Mapping[str, ChannelCode],
    now: float,
) -> dict[str, list[str]]:
    """Adopt the codes with our states that WeCom holds and the database lost; delete duplicates.

    Returns notes per channel key (`adopted`, `N duplicates deleted`) for the result table.
    """
    wanted = {c.state: c for c in channels}
    by_state = {row.state: row for row in stored.values()}
    known = {row.config_id for row in stored.values() if row.config_id}
    found: dict[str, list[dict[str, Any]]] = {}
    for config_id in await listed_config_ids(client):
        if config_id in known:
            continue
        way = await _get_way(client, config_id)
        # Only our states matter; a temporary-session way is never a channel code.
        if way is not None and way.get("state") in wanted.keys() | by_state.keys() and not way.get("is_temp"):
            found.setdefault(str(way["state"]), []).append(way)
    notes: dict[str, list[str]] = {}
    for state, ways in found.items():
        channel, row = wanted.get(state), by_state.get(state)
        keep: dict[str, Any] | None = None
        if channel is not None and (
            row is None or (row.key == channel.key and not await _exists(client, row.config_id))
        ):
            # The newest QR code: most likely the one the interrupted run made.
            keep = next((w for w in reversed(ways) if w.get("scene") == SCENE_QR), None)
        key = channel.key if channel is not None else row.key if row is not None else state
        if keep is not None:
            await _store(
                sessions,
                key,
                state,
                str(keep["config_id"]),
                str(keep.get("qr_code") or ""),
                way_digest(keep),
                [str(u) for u in keep.get("user") or ()],
                now,
            )
            _LOGGER.warning(
                "adopted a channel code missing from the database",
                extra={"channel": key, "config_id": keep["config_id"]},
            )
            notes.setdefault(key, []).append("adopted")
        deleted = 0
        for way in ways:
            if way is keep:
                continue
            try:
                await _delete_way(client, str(way["config_id"]))
            except errors.SiyuError as exc:
                _LOGGER.warning(
                    "duplicate channel code not deleted",
                    extra={"channel": key, "config_id": way["config_id"], "error": str(exc)},
                )
                continue
            deleted += 1
            _LOGGER.warning(
                "deleted a duplicate channel code", extra={"channel": key, "config_id": way["config_id"]}
            )
        if deleted:
            notes.setdefault(key, []).append(f"{deleted} duplicate{'s' if deleted > 1 else ''} deleted")
    return notes


async def _get_way(client: Any, config_id: str) -> dict[str, Any] | None:
    """get_contact_way's `contact_way`; None when it was deleted since it was listed (41044)."""
    try:
        answer = await client.get_contact_way(config_id)
    except errors.Permanent as exc:
        if exc.errcode == 41044:
            return None
        raise
    way = answer.get("contact_way")
    return dict(way) if isinstance(way, dict) else None


async def _exists(client: Any, config_id: str) -> bool:
    """Whether WeCom still holds `config_id` (a run may have died after deleting it, in a replace)."""
    return bool(config_id) and await _get_way(client, config_id) is not None


def _result(op: Op, row: ChannelCode | None, change: str, error: str = "") -> Result:
    channel = op.channel
    return Result(
        key=op.key,
        name=channel.name if channel else "",
        state=channel.state if channel else (row.state if row else ""),
        users=op.users if channel else tuple(row.users if row else ()),
        config_id=row.config_id if row else "",
        qr_code=row.qr_code if row else "",
        change=change,
        error=error,
    )


async def _apply(client: Any, sessions: Sessions, op: Op, row: ChannelCode | None, now: float) -> Result:
    """Do one op against WeCom, then store what WeCom answered."""
    if op.kind == "delete":
        await _delete_way(client, op.config_id)
        async with sessions.begin() as session:
            await session.execute(delete(ChannelCode).where(ChannelCode.key == op.key))
        return _result(op, row, "deleted")
    channel = op.channel
    assert channel is not None
    if op.kind == "update":
        await client.update_contact_way(
            op.config_id,
            remark=channel.remark,
            skip_verify=channel.skip_verify,
            state=channel.state,
            user=op.users,
        )
        config_id, qr_code = op.config_id, row.qr_code if row else ""
    else:
        if op.kind == "replace":
            # type is immutable on update_contact_way: a new code is the only way (a new QR as well).
            await _delete_way(client, op.config_id)
        answer = await client.add_contact_way(
            code_type(channel),
            SCENE_QR,
            user=op.users,
            state=channel.state,
            remark=channel.remark,
            skip_verify=channel.skip_verify,
        )
        config_id, qr_code = str(answer["config_id"]), str(answer.get("qr_code", ""))
    await _store(sessions, op.key, channel.state, config_id, qr_code, op.digest, list(op.users), now)
    change = {"add": "added", "update": "updated", "replace": "replaced"}[op.kind]
    return Result(op.key, channel.name, channel.state, op.users, config_id, qr_code, change)


async def _store(
    sessions: Sessions,
    key: str,
    state: str,
    config_id: str,
    qr_code: str,
    digest: str,
    users: list[str],
    now: float,
) -> None:
    """Insert or update the channel's row: what WeCom holds for it now."""
    async with sessions.begin() as session:
        stored = await session.get(ChannelCode, key)
        if stored is None:
            stored = ChannelCode(key=key)
            session.add(stored)
        stored.state = state
        stored.config_id = config_id
        stored.qr_code = qr_code
        stored.spec_digest = digest
        stored.users = users
        stored.synced_at = now


async def _delete_way(client: Any, config_id: str) -> None:
    """del_contact_way; a config WeCom no longer knows (41044) is as good as deleted."""
    if not config_id:
        return
    try:
        await client.del_contact_way(config_id)
    except errors.Permanent as exc:
        if exc.errcode != 41044:
            raise


# -------------------------------------------------------------------------------------- daily timer


def next_sync_at(after: dt.datetime, at: str) -> dt.datetime:
    """The first `at` (HH:MM, Asia/Shanghai) strictly after `after`."""
    hour, minute = (int(part) for part in at.split(":", 1))
    local = after.astimezone(SHANGHAI)
    candidate = dt.datetime.combine(local.date(), dt.time(hour, minute), SHANGHAI)
    if candidate <= local:
        candidate = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(hour, minute), SHANGHAI)
    return candidate


def _schedule_at(when: dt.datetime) -> act.Schedule:
    day = when.date().isoformat()
    # One timer per day: the key makes scheduling it from startup and from yesterday's run idempotent.
    return act.Schedule(
        key=f"{TIMER_KIND}:{day}", kind=TIMER_KIND, due_at=when.timestamp(), payload={"day": day}
    )


def schedule_next_sync(now: dt.datetime, settings: Any) -> act.Schedule:
    """The Schedule action for the next daily sync (`settings.channels.daily_sync_at`)."""
    return _schedule_at(next_sync_at(now, settings.channels.daily_sync_at))


def on_channels_sync_timer(timer: Any, deps: Any) -> list[act.Action]:
    """Timer handler for `channels_sync`: queue the sync itself as an outbox action (it calls WeCom)."""
    settings = deps.settings
    return [
        act.SyncChannels(
            day=str(timer.payload.get("day") or deps.clock.now().date().isoformat()),
            path=str(Path(settings.content.dir) / "channels.yaml"),
            sync_at=settings.channels.daily_sync_at,
        )
    ]


def _load_if_present(path: Path) -> tuple[Channel, ...] | None:
    return load_channels(path) if path.is_file() else None


async def run_sync_action(ctx: Any, action: act.SyncChannels) -> tuple[dict[str, Any], list[act.Action]]:
    """Sender body of SyncChannels: sync the file's channels, then schedule the next day's run."""
    day = dt.date.fromisoformat(action.day)
    follow_up: list[act.Action] = [
        _schedule_at(next_sync_at(dt.datetime.combine(day, dt.time(23, 59, 59), SHANGHAI), action.sync_at))
    ]
    try:
        # Reading and validating YAML is file I/O and CPU: keep it off the loop.
        channels = await asyncio.to_thread(_load_if_present, Path(action.path))
    except errors.ContentErrors as exc:
        # The old codes keep working; ops see the problems in the outbox result and the log.
        _LOGGER.error("channels.yaml invalid, codes left as they are", extra={"errors": str(exc)})
        return {"invalid": str(exc)[:1000]}, follow_up
    if channels is None:
        return {"skipped": f"{action.path} not found"}, follow_up
    results = await sync(ctx.client, ctx.sessions, channels, day, now=ctx.clock.timestamp())
    summary: dict[str, Any] = {r.key: r.change for r in results}
    failed = {r.key: r.error for r in results if r.error}
    if failed:
        summary["errors"] = failed
    return summary, follow_up
