"""Tags, attributes and lead score from what customers say; the tags go to WeCom as corp tags.

Triggers: KfCustomerMessage (text the customer typed; a menu click is our own words, a RobotMessage
is staff), ArchiveMessage from a customer (会话内容存档; a guide's own messages are not the customer's
words), CorpTagChanged (change_external_tag: an admin edited corp tags in the console), and the
`tags_sync` timer. Actions: TagCustomer, SetAttribute, AddLeadScore, RecordTimeline, Schedule; from
the timer EnsureCorpTags then one MarkTags per guide who follows the customer; RefreshCorpTags.
Idempotency: tags are unique on customer x tag, attributes on customer x key (latest message wins),
points on `score:{message dedup key}`, the summary on `tagging:{message dedup key}`; the sync timer
is keyed `tags_sync:{external_userid}:{window}`, so a burst of messages makes one mark_tag per guide,
and its outbox rows share the customer's partition, so the ids exist before mark_tag runs.
Config: `tagging.sync_delay_seconds`; content: `content_library/tagging.yaml` (a bad edit keeps the
last good rules serving).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
from collections.abc import Mapping
from typing import Any

from bot import actions as act
from bot import errors
from bot import events as ev
from bot.clock import SHANGHAI
from bot.deps import Deps, TagSyncView
from bot.router import Router
from bot.scheduler import Timer
from bot.tagging import TAGGING_FILE, TaggingRules, load_rules_text
from handlers.tag_extract import CompiledRules, Extraction, compile_rules, extract

_LOGGER = logging.getLogger(__name__)

router = Router("tagging")

SYNC_TIMER = "tags_sync"

# Compiled rules by the rules file's digest; the last good version serves while an edit is invalid.
_COMPILED: dict[str, CompiledRules] = {}
_REJECTED: set[str] = set()
_last_good: CompiledRules | None = None


# --- rules ---------------------------------------------------------------------------------------


def rules_digest(files: Mapping[str, str]) -> str:
    """sha256 of the tagging rules text ('' when the library has none)."""
    text = files.get(TAGGING_FILE)
    return hashlib.sha256(text.encode("utf-8")).hexdigest() if text is not None else ""


def compile_text(text: str) -> CompiledRules:
    """Validate and compile rules given as YAML text (CPU work: call it off the event loop)."""
    return compile_rules(load_rules_text(text, TAGGING_FILE))


def prepare_rules(snapshot: Any) -> CompiledRules | None:
    """Compile the snapshot's tagging rules into the cache (sync; a content index builder may call it).

    An invalid file is logged once per version and the last good rules keep serving.
    """
    global _last_good
    files: Mapping[str, str] = getattr(snapshot, "files", {}) or {}
    digest = rules_digest(files)
    if not digest:
        return None
    if digest in _COMPILED:
        _last_good = _COMPILED[digest]
        return _last_good
    if digest in _REJECTED:
        return _last_good
    try:
        compiled = compile_text(files[TAGGING_FILE])
    except errors.ContentErrors as exc:
        _REJECTED.add(digest)
        _LOGGER.warning(
            "tagging rules %s rejected, %s: %d error(s)\n%s",
            digest[:12],
            "still serving the last good rules" if _last_good else "tagging is off",
            len(exc.errors),
            "\n".join(str(e) for e in exc.errors),
        )
        return _last_good
    if len(_COMPILED) >= 4:
        _COMPILED.pop(next(iter(_COMPILED)))
    _COMPILED[digest] = compiled
    _last_good = compiled
    _LOGGER.info("tagging rules loaded: digest=%s rules=%d", digest[:12], len(compiled.rules.rules))
    return compiled


async def current_rules(snapshot: Any) -> CompiledRules | None:
    """The compiled rules of `snapshot`, compiled in a thread the first time a version is seen."""
    digest = rules_digest(getattr(snapshot, "files", {}) or {})
    if not digest:
        return None
    if digest in _COMPILED:
        return _COMPILED[digest]
    if digest in _REJECTED:
        return _last_good
    return await asyncio.to_thread(prepare_rules, snapshot)


def group_of(rules: TaggingRules) -> dict[str, str]:
    """Tag name -> its group name."""
    return {tag: group for group, tags in rules.groups.items() for tag in tags}


# --- decisions -----------------------------------------------------------------------------------


def sync_key(external_userid: str, now: float, delay: float) -> str:
    """The debounce timer's key: one per customer per `delay` window (a fired timer never re-arms)."""
    window = int(now // delay) if delay > 0 else int(now)
    return f"{SYNC_TIMER}:{external_userid}:{window}"


def learnt_actions(
    external_userid: str,
    source_key: str,
    extraction: Extraction,
    rules: TaggingRules,
    *,
    at: float,
    sync_delay: float,
) -> list[act.Action]:
    """State actions for what one message said: tags, attributes, points, a timeline entry, the sync timer."""
    if not extraction.tags and not extraction.attributes:
        return []
    why = {r.tag_or_attr: r for r in extraction.reasons}
    groups = group_of(rules)
    out: list[act.Action] = []
    for tag in extraction.tags:
        reason = why.get(tag)
        out.append(
            act.TagCustomer(
                external_userid, tag, groups.get(tag, ""), reason.rule_id if reason else "", source_key, at
            )
        )
    for key, value in extraction.attributes.items():
        reason = why.get(key)
        out.append(
            act.SetAttribute(
                external_userid,
                key,
                str(value),
                reason.rule_id if reason else "",
                source_key,
                reason.matched_text if reason else "",
                at,
            )
        )
    if extraction.score:
        out.append(act.AddLeadScore(external_userid, extraction.score, source_key, at))
    parts = []
    if extraction.tags:
        parts.append("标签 " + "、".join(extraction.tags))
    if extraction.attributes:
        parts.append("属性 " + "、".join(f"{k}={v}" for k, v in extraction.attributes.items()))
    if extraction.score:
        parts.append(f"线索分 +{extraction.score}")
    out.append(
        act.RecordTimeline(
            external_userid,
            "tags_learnt",
            "从客户消息识别：" + "；".join(parts),
            at,
            f"tagging:{source_key}",
            {
                "message_key": source_key,
                "tags": list(extraction.tags),
                "attributes": {k: v for k, v in extraction.attributes.items()},
                "points": extraction.score,
                "reasons": [[r.tag_or_attr, r.rule_id, r.matched_text] for r in extraction.reasons],
            },
        )
    )
    if extraction.tags:
        out.append(
            act.Schedule(
                sync_key(external_userid, at, sync_delay),
                SYNC_TIMER,
                at + sync_delay,
                {"external_userid": external_userid},
            )
        )
    return out


def sync_actions(external_userid: str, view: TagSyncView, key: str) -> list[act.Action]:
    """WeCom calls for a due sync: corp tags first, then one mark_tag per guide (nothing without a guide)."""
    if not view.tags or not view.guides:
        return []  # a kf-only customer keeps local tags: mark_tag needs a guide's relation
    out: list[act.Action] = [act.EnsureCorpTags(external_userid, view.tags, key)]
    out += [act.MarkTags(guide, external_userid, key=key, tag_names=view.tags) for guide in view.guides]
    return out


def lifecycle_actions(
    deps: Deps, external_userid: str, extraction: Extraction, source_key: str, at: float
) -> list[act.Action]:
    """What a learnt tag or attribute starts elsewhere: tag-triggered playbooks, dated playbooks
    (the baby's 6-month birthday from her birth month), and a stage check for a purchase tag."""
    from bot import lifecycle
    from handlers import sop

    out: list[act.Action] = []
    stages = deps.stages() or lifecycle.StagesConfig()
    for tag in extraction.tags:
        out += sop.enroll_on(deps, external_userid, "tag_added", tag, at, "", once=True)
        if lifecycle.is_purchase_tag(tag, stages):
            payload = {"external_userid": external_userid, "trigger": "tag_added"}
            out.append(
                act.Schedule(f"stage:{external_userid}:tag:{source_key}"[:255], "stage_check", at, payload)
            )
    for key, value in extraction.attributes.items():
        out += sop.date_timers(deps, external_userid, key, str(value), at)
    return out


def is_customer_text(event: ev.KfCustomerMessage) -> bool:
    """True for text the customer typed (a menu click carries our own question text)."""
    return event.msg_type == "text" and not event.menu_id and bool(event.content.strip())


# --- entry points ----------------------------------------------------------------------------------


@router.on(ev.KfCustomerMessage)
async def on_customer_message(event: ev.KfCustomerMessage, deps: Deps) -> list[act.Action]:
    """A customer wrote in kf: learn tags, attributes and points from the text."""
    if not event.external_userid or not is_customer_text(event):
        return []
    rules = await current_rules(deps.content())
    if rules is None:
        return []
    # The message's own time, not the handling time: a replay reads the same birth month and window.
    at = float(event.send_time) if event.send_time else deps.clock.timestamp()
    extraction = extract(event.content, rules, today=dt.datetime.fromtimestamp(at, SHANGHAI).date())
    learnt = learnt_actions(
        event.external_userid,
        event.dedup_key,
        extraction,
        rules.rules,
        at=at,
        sync_delay=deps.settings.tagging.sync_delay_seconds,
    )
    return learnt + lifecycle_actions(deps, event.external_userid, extraction, event.dedup_key, at)


def is_customer_archive_text(event: ev.ArchiveMessage) -> bool:
    """True for text a customer sent in a 1:1 chat or a group; a guide's own words are not the customer's."""
    return (
        event.from_customer
        and event.action == "send"
        and event.msg_type == "text"
        and bool(event.content.strip())
    )


@router.on(ev.ArchiveMessage)
async def on_archive_message(event: ev.ArchiveMessage, deps: Deps) -> list[act.Action]:
    """A customer wrote to a guide or in a group (会话内容存档): learn from the sender's own words only."""
    if not is_customer_archive_text(event):
        return []
    rules = await current_rules(deps.content())
    if rules is None:
        return []
    at = event.msgtime / 1000 if event.msgtime else deps.clock.timestamp()
    extraction = extract(event.content, rules, today=dt.datetime.fromtimestamp(at, SHANGHAI).date())
    learnt = learnt_actions(
        event.from_id,
        event.dedup_key,
        extraction,
        rules.rules,
        at=at,
        sync_delay=deps.settings.tagging.sync_delay_seconds,
    )
    return learnt + lifecycle_actions(deps, event.from_id, extraction, event.dedup_key, at)


_CHANNELS: dict[str, tuple[Any, ...]] = {}


def channels_of(snapshot: Any) -> tuple[Any, ...]:
    """The snapshot's channels.yaml, parsed once per version; none when absent or invalid."""
    text = (getattr(snapshot, "files", None) or {}).get("channels.yaml")
    if not text:
        return ()
    key = rules_digest({"channels.yaml": text})
    if key not in _CHANNELS:
        from bot.channels import load_channels_text

        try:
            _CHANNELS[key] = load_channels_text(text, "channels.yaml")
        except errors.ContentErrors:
            _CHANNELS[key] = ()  # `siyu content validate` reports it; entry tags wait for a good file
    return _CHANNELS[key]


def entry_tag_actions(
    event: ev.ContactAdded | ev.ContactHalfAdded, channels: tuple[Any, ...], *, at: float, sync_delay: float
) -> list[act.Action]:
    """The channel's entry tags for a customer who came through its code (State)."""
    from bot.channels import channel_for_state

    channel = channel_for_state(channels, event.state) if event.state else None
    if channel is None or not channel.entry_tags:
        return []
    out: list[act.Action] = []
    for name in channel.entry_tags:
        group, _, tag = name.partition("/")
        out.append(
            act.TagCustomer(event.external_userid, tag, group, f"channel:{channel.key}", event.dedup_key, at)
        )
    out.append(
        act.Schedule(
            sync_key(event.external_userid, at, sync_delay),
            SYNC_TIMER,
            at + sync_delay,
            {"external_userid": event.external_userid},
        )
    )
    return out


@router.on(ev.ContactAdded, ev.ContactHalfAdded)
def on_contact_added(event: ev.ContactAdded | ev.ContactHalfAdded, deps: Deps) -> list[act.Action]:
    """A customer came through a channel code: apply the channel's entry tags."""
    at = float(event.create_time) if event.create_time else deps.clock.timestamp()
    return entry_tag_actions(
        event, channels_of(deps.content()), at=at, sync_delay=deps.settings.tagging.sync_delay_seconds
    )


@router.on(ev.CorpTagChanged)
def on_corp_tag_changed(event: ev.CorpTagChanged, deps: Deps) -> list[act.Action]:
    """An admin changed corp tags in the console: re-read the list into corp_tags."""
    return [act.RefreshCorpTags(event.dedup_key)]


async def on_tags_sync(timer: Timer, deps: Deps) -> list[act.Action]:
    """The `tags_sync` timer: send the customer's new tags to WeCom (register with the scheduler)."""
    if deps.customer_tags is None:
        raise errors.ConfigError("tags_sync needs Deps.customer_tags")
    external_userid = str(timer.payload.get("external_userid", ""))
    if not external_userid:
        return []
    view = await deps.customer_tags.pending_sync(external_userid)
    return sync_actions(external_userid, view, timer.key)
