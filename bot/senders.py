"""How each WeCom action is sent, and what its answer means for our state.

A sender calls the client and returns `Sent(result, follow_up)`: `result` is stored on the
outbox row, `follow_up` are state actions applied in the same transaction that marks the row
sent (profile details, timeline entries). Where WeCom offers its own de-duplication, senders use
it, so a send replayed after a crash between the call and the commit is not delivered twice:
kf/send_msg takes our `msgid`, a WelcomeCode works once, message/send has a duplicate check.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bot import actions as act
from bot import errors, mass_tasks
from bot.config import SopSettings, WelcomeSettings
from bot.content import render
from bot.events import Event, digest
from bot.inbox import Stored
from bot.store.models import ArchiveCursor, CorpTag, Customer, GroupMember, KfCursor, MassTask
from bot.store.sql import insert_ignore
from bot.wecom import callback

_LOGGER = logging.getLogger(__name__)

# externalcontact/get: invalid external_userid / no relation with any member of ours.
NO_RELATION = frozenset({40096, 84061})
# kf/sync_msg Token expired (valid 10 min): pull again without it.
KF_TOKEN_INVALID = 95007
# add_msg_template: nobody in the task can be sent to (not the guide's customer any more).
NOBODY_SENDABLE = 41048
# remind_groupmsg_send: 3 reminders of a task in 24 h already / the task was cancelled.
REMIND_LIMIT, TASK_CANCELLED = 41094, 41093
# groupchat/get of a chat that is gone (dismissed, or never ours): p/90313 "invalid chatid".
CHAT_GONE = 40050


@dataclass(frozen=True)
class Sent:
    """A successful send: what to store, and state changes it implies."""

    result: dict[str, Any] = field(default_factory=dict)
    follow_up: list[act.Action] = field(default_factory=list)


@dataclass(frozen=True)
class SendContext:
    """What senders may use: the client, sessions, the inbox (kf pulls), the clock and the KV."""

    client: Any
    sessions: Any
    inbox: Any
    clock: Any
    kv: Any = None
    """Caches uploaded media_ids (welcome images); without it every welcome uploads its images."""
    media_cache_seconds: float = WelcomeSettings().media_cache_seconds
    archive: Any = None
    """The chat archive (`bot.archive.Archive`); None when not configured."""
    archive_batch: int = 1000
    sop: SopSettings = field(default_factory=SopSettings)
    """When to check mass-send tasks and how often to remind the guide."""
    names: Any = None
    """bot.store.readers.CustomerNames: batched name lookups for `{customer_name}`."""


Sender = Callable[[SendContext, Any], Awaitable[Sent]]
SENDERS: dict[str, Sender] = {}


def sender(kind: str) -> Callable[[Sender], Sender]:
    """Register the sender of one action kind."""

    def register(fn: Sender) -> Sender:
        SENDERS[kind] = fn
        return fn

    return register


def wecom_msgid(idem_key: str) -> str:
    """A msgid WeCom accepts (≤32 bytes of [0-9a-f]) derived from our idempotency key."""
    return hashlib.sha1(idem_key.encode()).hexdigest()[:32]


@sender(act.SendWelcome.kind)
async def send_welcome(ctx: SendContext, action: act.SendWelcome) -> Sent:
    """externalcontact/send_welcome_msg: images uploaded (media_id cached), the customer's name filled in."""
    attachments = [await _wecom_attachment(ctx, item) for item in action.attachments]
    sendable = [item for item in attachments if item is not None]
    text = action.text
    if "{customer_name" in text:
        # The add callback carries no name; use it when a refresh or an earlier add stored one.
        text = render(text, {"customer_name": await _customer_name(ctx, action.external_userid)})
    try:
        await ctx.client.send_welcome_msg(action.welcome_code, text=text or None, attachments=sendable)
    except errors.Permanent as exc:
        reason = WELCOME_FINAL.get(exc.errcode)
        if reason:
            raise errors.Permanent(exc.errcode, reason, api=exc.api) from exc
        raise
    entry = act.RecordTimeline(
        action.external_userid,
        "welcome_sent",
        "已发送欢迎语",
        ctx.clock.timestamp(),
        f"sent:{action.idem_key}",
        {"text": text, "attachments": [item["msgtype"] for item in sendable]},
    )
    return Sent({"attachments": len(sendable), "skipped": len(attachments) - len(sendable)}, [entry])


# Why a welcome was not sent, in the words the timeline shows (send_welcome_msg, p/92137).
WELCOME_FINAL = {
    41051: "客户已收到过欢迎语或已与导购聊过天，不再发送",
    41050: "欢迎语 code 已过期（20 秒内未能发送）",
}


async def _wecom_attachment(ctx: SendContext, item: dict[str, Any]) -> dict[str, Any] | None:
    """An attachment as WeCom takes it: local media become media_ids; None when a file is missing."""
    msgtype = item.get("msgtype", "")
    body = dict(item.get(msgtype) or {})
    for local, remote in (("media_path", "media_id"), ("pic_media_path", "pic_media_id")):
        path = body.pop(local, None)
        if path is None:
            continue
        media_id = await _media_id(ctx, str(path))
        if media_id is None:
            return None
        body[remote] = media_id
    return {"msgtype": msgtype, msgtype: body}


# path -> (digest, read at): a burst of welcomes with one image reads and hashes it once.
_DIGESTS: dict[str, tuple[str, float]] = {}
DIGEST_TTL_SECONDS = 60.0
"""An edited image is picked up within a minute."""


async def _library_file(path: str, now: float) -> tuple[str, bytes | None]:
    """(sha256 of the file, its bytes when they were just read)."""
    known = _DIGESTS.get(path)
    if known is not None and now - known[1] < DIGEST_TTL_SECONDS:
        return known[0], None
    data = await asyncio.to_thread(Path(path).read_bytes)
    digest = hashlib.sha256(data).hexdigest()
    _DIGESTS[path] = (digest, now)
    return digest, data


async def _media_id(ctx: SendContext, path: str) -> str | None:
    """media/upload of a library file, cached by content digest (temp media live 3 days)."""
    try:
        digest, data = await _library_file(path, ctx.clock.monotonic())
    except OSError:
        # Better a welcome without the picture than none at all; validate catches this before serving.
        _LOGGER.warning("welcome attachment file missing", extra={"path": path})
        return None
    key = f"media:image:{digest}"
    if ctx.kv is not None:
        cached = await ctx.kv.get(key)
        if cached:
            return str(cached)
    if data is None:
        data = await asyncio.to_thread(Path(path).read_bytes)
    answer = await ctx.client.upload_media("image", Path(path).name, data)
    media_id = str(answer.get("media_id", ""))
    if ctx.kv is not None and media_id:
        await ctx.kv.set(key, media_id, ttl=ctx.media_cache_seconds)
    return media_id


async def _customer_name(ctx: SendContext, external_userid: str) -> str:
    if ctx.names is not None:
        return await ctx.names.get(external_userid)  # a burst of welcomes shares one query
    async with ctx.sessions() as session:
        name = await session.scalar(select(Customer.name).where(Customer.external_userid == external_userid))
    return name or ""


@sender(act.SendKfText.kind)
async def send_kf_text(ctx: SendContext, action: act.SendKfText) -> Sent:
    """kf/send_msg with a text; our msgid lets WeCom drop a replayed send."""
    answer = await ctx.client.kf_send_msg(
        action.external_userid,
        action.open_kfid,
        "text",
        {"content": action.content},
        msgid=wecom_msgid(action.idem_key),
    )
    now = ctx.clock.timestamp()
    entry = act.RecordTimeline(
        action.external_userid,
        "kf_reply_sent",
        "微信客服已回复",
        now,
        f"sent:{action.idem_key}",
        {"text": action.content, "open_kfid": action.open_kfid},
    )
    return Sent({"msgid": answer.get("msgid", "")}, [entry])


@sender(act.SendKfMenu.kind)
async def send_kf_menu(ctx: SendContext, action: act.SendKfMenu) -> Sent:
    """kf/send_msg of a msgmenu; a click comes back as a text message carrying the item's id."""
    menu = {
        "head_content": action.head,
        "list": [
            {"type": "click", "click": {"id": item_id, "content": text}} for item_id, text in action.items
        ],
        "tail_content": action.tail,
    }
    answer = await ctx.client.kf_send_msg(
        action.external_userid, action.open_kfid, "msgmenu", menu, msgid=wecom_msgid(action.idem_key)
    )
    entry = act.RecordTimeline(
        action.external_userid,
        "kf_menu_sent",
        "微信客服给出了问题菜单",
        ctx.clock.timestamp(),
        f"sent:{action.idem_key}",
        {"items": [text for _, text in action.items], "open_kfid": action.open_kfid},
    )
    return Sent({"msgid": answer.get("msgid", "")}, [entry])


@sender(act.SendKfEventMessage.kind)
async def send_kf_event_message(ctx: SendContext, action: act.SendKfEventMessage) -> Sent:
    """kf/send_msg_on_event with the event's code (single use)."""
    answer = await ctx.client.kf_send_msg_on_event(
        action.code, "text", {"content": action.content}, msgid=wecom_msgid(action.idem_key)
    )
    entry = act.RecordTimeline(
        action.external_userid,
        "kf_welcome_sent",
        "微信客服已发送欢迎语",
        ctx.clock.timestamp(),
        f"sent:{action.idem_key}",
        {"text": action.content},
    )
    return Sent({"msgid": answer.get("msgid", "")}, [entry])


@sender(act.KfHandOff.kind)
async def kf_handoff(ctx: SendContext, action: act.KfHandOff) -> Sent:
    """Tell the customer first (sending is only allowed before the hand-off), then move the session."""
    await ctx.client.kf_send_msg(
        action.external_userid,
        action.open_kfid,
        "text",
        {"content": action.message},
        msgid=wecom_msgid(action.idem_key),
    )
    answer = await ctx.client.kf_service_state_trans(
        action.open_kfid, action.external_userid, action.service_state, action.servicer_userid or None
    )
    entry = act.RecordTimeline(
        action.external_userid,
        "kf_handed_off",
        "已转人工客服" if action.service_state == 3 else "已转入人工客服排队",
        ctx.clock.timestamp(),
        f"sent:{action.idem_key}",
        {"service_state": action.service_state, "open_kfid": action.open_kfid},
    )
    return Sent({"msg_code": answer.get("msg_code", "")}, [entry])


@sender(act.NotifyStaff.kind)
async def notify_staff(ctx: SendContext, action: act.NotifyStaff) -> Sent:
    """message/send to guides, with WeCom's duplicate check on."""
    answer = await ctx.client.send_app_message(
        list(action.touser), action.content, duplicate_check_interval=1800
    )
    return Sent({"msgid": answer.get("msgid", ""), "invaliduser": answer.get("invaliduser", "")})


@sender(act.MarkTags.kind)
async def mark_tags(ctx: SendContext, action: act.MarkTags) -> Sent:
    """externalcontact/mark_tag; tags given by name get their ids from corp_tags now."""
    add_tag = list(action.add_tag)
    missing: list[str] = []
    if action.tag_names:
        ids = await _corp_tag_ids(ctx)
        for pair in action.tag_names:
            tag_id = ids.get((pair[0], pair[1]))
            if tag_id:
                add_tag.append(tag_id)
            else:
                missing.append(pair[1])
    add_tag = list(dict.fromkeys(add_tag))
    if not add_tag and not action.remove_tag:
        # The corp tags could not be created (EnsureCorpTags failed): nothing WeCom would accept.
        return Sent({"skipped": "no tag ids", "missing": missing})
    await ctx.client.mark_tag(
        action.userid, action.external_userid, add_tag=add_tag, remove_tag=action.remove_tag
    )
    follow_up: list[act.Action] = []
    if action.tag_names:
        synced = tuple(name for _, name in action.tag_names if name not in missing)
        follow_up.append(act.MarkTagsSynced(action.external_userid, synced, ctx.clock.timestamp()))
    return Sent({"add_tag": add_tag, "missing": missing}, follow_up)


async def _corp_tag_ids(ctx: SendContext) -> dict[tuple[str, str], str]:
    """Live corp tag ids by (group, tag) name."""
    async with ctx.sessions() as session:
        rows = await session.execute(
            select(CorpTag.group_name, CorpTag.tag_name, CorpTag.tag_id).where(
                CorpTag.deleted.is_(False), CorpTag.tag_id != ""
            )
        )
        return {(g, t): i for g, t, i in rows}


def corp_tag_rows(answer: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(group_name, tag_name, group_id, tag_id) of the live tags in a get_corp_tag_list answer."""
    out: list[tuple[str, str, str, str]] = []
    for group in answer.get("tag_group") or ():
        if group.get("deleted"):
            continue
        for tag in group.get("tag") or ():
            if not tag.get("deleted"):
                names = (str(group["group_name"]), str(tag["name"]))
                out.append((*names, str(group["group_id"]), str(tag["id"])))
    return out


@sender(act.EnsureCorpTags.kind)
async def ensure_corp_tags(ctx: SendContext, action: act.EnsureCorpTags) -> Sent:
    """get_corp_tag_list, add_corp_tag per group for the missing names (https://developer.work.weixin.qq.com/document/path/92117)."""
    rows = corp_tag_rows(await ctx.client.get_corp_tag_list())
    have = {(g, t) for g, t, _, _ in rows}
    group_ids = {g: gid for g, _, gid, _ in rows}
    missing: dict[str, list[str]] = {}
    for group, name in action.tags:
        if (group, name) not in have and name not in missing.get(group, []):
            missing.setdefault(group, []).append(name)
    created: list[str] = []
    for group, names in missing.items():
        # An existing group is addressed by id; a new one is created by name (p/92117).
        if group in group_ids:
            answer = await ctx.client.add_corp_tag(names, group_id=group_ids[group])
        else:
            answer = await ctx.client.add_corp_tag(names, group_name=group)
        rows += corp_tag_rows({"tag_group": [answer.get("tag_group") or {}]})
        created += [f"{group}/{n}" for n in names]
    stored = act.StoreCorpTags(tuple(rows), ctx.clock.timestamp(), complete=True)
    return Sent({"created": created}, [stored])


@sender(act.RefreshCorpTags.kind)
async def refresh_corp_tags(ctx: SendContext, action: act.RefreshCorpTags) -> Sent:
    """get_corp_tag_list into corp_tags; tags no longer listed are marked deleted."""
    rows = corp_tag_rows(await ctx.client.get_corp_tag_list())
    return Sent({"tags": len(rows)}, [act.StoreCorpTags(tuple(rows), ctx.clock.timestamp(), complete=True)])


@sender(act.RefreshCustomer.kind)
async def refresh_customer(ctx: SendContext, action: act.RefreshCustomer) -> Sent:
    """externalcontact/get, stored as the customer's profile and follow relations."""
    try:
        answer = await ctx.client.get_external_contact(action.external_userid)
    except errors.Permanent as exc:
        if exc.errcode in NO_RELATION:
            # Every guide deleted the customer before we asked: nothing left to refresh.
            return Sent({"skipped": exc.errcode})
        raise
    return Sent({}, profile_actions(action.external_userid, answer))


def profile_actions(external_userid: str, answer: dict[str, Any]) -> list[act.Action]:
    """State actions for an externalcontact/get answer (https://developer.work.weixin.qq.com/document/path/92114)."""
    contact = answer.get("external_contact") or {}
    out: list[act.Action] = [
        act.UpdateCustomerProfile(
            external_userid,
            name=str(contact.get("name", "")),
            avatar=str(contact.get("avatar", "")),
            gender=int(contact.get("gender") or 0),
            unionid=str(contact.get("unionid", "")),
            customer_type=int(contact.get("type") or 0),
        )
    ]
    for follow in answer.get("follow_user") or ():
        if not follow.get("userid"):
            continue
        out.append(
            act.UpsertFollow(
                external_userid,
                str(follow["userid"]),
                state=str(follow.get("state", "")),
                added_at=float(follow.get("createtime") or 0),
                remark=str(follow.get("remark", "")),
                add_way=int(follow.get("add_way") or 0),
            )
        )
    return out


@sender(act.SyncKf.kind)
async def sync_kf(ctx: SendContext, action: act.SyncKf) -> Sent:
    """kf/sync_msg from the stored cursor; each page and its cursor commit together."""
    token: str | None = action.token or None
    pulled = pages = 0
    while True:
        async with ctx.sessions() as session:
            cursor = await session.scalar(
                select(KfCursor.cursor).where(KfCursor.open_kfid == action.open_kfid)
            )
        try:
            answer = await ctx.client.kf_sync_msg(action.open_kfid, cursor=cursor or None, token=token)
        except errors.Permanent as exc:
            if exc.errcode == KF_TOKEN_INVALID and token:
                token = None  # the 10-minute Token lapsed while we retried; pull without it
                continue
            raise
        items = [_stored_kf_item(item) for item in answer.get("msg_list") or ()]
        async with ctx.sessions.begin() as session:
            pulled += await ctx.inbox.put_in(session, [i for i in items if i is not None])
            await _save_cursor(
                session, action.open_kfid, str(answer.get("next_cursor", "")), ctx.clock.timestamp()
            )
        pages += 1
        if not answer.get("has_more"):
            break
    if pulled:
        ctx.inbox.wakeup.set()
    return Sent({"new_messages": pulled, "pages": pages})


def _stored_kf_item(item: dict[str, Any]) -> Any:
    try:
        event: Event = callback.parse_kf_item(item)
    except errors.MalformedCallback:
        return None  # no msgid to de-duplicate on; nothing a handler could use
    return Stored(callback.KF_ITEM, json.dumps(item, ensure_ascii=False, sort_keys=True), event)


async def _save_cursor(session: Any, open_kfid: str, cursor: str, now: float) -> None:
    if not cursor:
        return
    await session.execute(
        insert_ignore(session, KfCursor).values(open_kfid=open_kfid, cursor=cursor, updated_at=now)
    )
    row = await session.get(KfCursor, open_kfid)
    row.cursor, row.updated_at = cursor, now


@sender(act.SyncArchive.kind)
async def sync_archive(ctx: SendContext, action: act.SyncArchive) -> Sent:
    """The chat archive from the stored seq; each page's messages and its seq commit together."""
    if ctx.archive is None:
        return Sent({"skipped": "archive not configured"})
    from bot.archive import CURSOR_NAME  # the archive module loads only where it is used

    pulled = pages = undecryptable = 0
    while True:
        async with ctx.sessions() as session:
            seq = await session.scalar(select(ArchiveCursor.seq).where(ArchiveCursor.name == CURSOR_NAME))
        page = await ctx.archive.fetch(int(seq or 0), ctx.archive_batch)
        items = [_stored_archive_item(record.message) for record in page.records]
        async with ctx.sessions.begin() as session:
            pulled += await ctx.inbox.put_in(session, [i for i in items if i is not None])
            await _save_archive_seq(session, CURSOR_NAME, page.next_seq, ctx.clock.timestamp())
        pages += 1
        undecryptable += page.undecryptable
        seen = len(page.records) + page.undecryptable
        if seen < ctx.archive_batch or page.next_seq <= int(seq or 0):
            break
    if pulled:
        ctx.inbox.wakeup.set()
    return Sent({"new_messages": pulled, "pages": pages, "undecryptable": undecryptable})


def _stored_archive_item(message: dict[str, Any]) -> Any:
    try:
        event: Event = callback.parse_archive_item(message)
    except errors.MalformedCallback:
        return None  # no msgid to de-duplicate on
    return Stored(callback.ARCHIVE_ITEM, json.dumps(message, ensure_ascii=False, sort_keys=True), event)


async def _save_archive_seq(session: Any, name: str, seq: int, now: float) -> None:
    await session.execute(insert_ignore(session, ArchiveCursor).values(name=name, seq=seq, updated_at=now))
    row = await session.get(ArchiveCursor, name)
    if seq >= row.seq:
        row.seq, row.updated_at = seq, now


@sender(act.SyncChannels.kind)
async def sync_channels(ctx: SendContext, action: act.SyncChannels) -> Sent:
    """Channel live codes: reconcile with WeCom, then schedule the next day's sync."""
    from bot.channel_sync import run_sync_action  # imported here to keep this block self-contained

    result, follow_up = await run_sync_action(ctx, action)
    return Sent(result, follow_up)


# --- mass-send tasks (企业群发, wecom-api.md §7) ------------------------------------------------------


@sender(act.CreateMassTask.kind)
async def create_mass_task(ctx: SendContext, action: act.CreateMassTask) -> Sent:
    """add_msg_template for one customer, sent by her guide once confirmed; then a check is scheduled.

    https://developer.work.weixin.qq.com/document/path/92135 — 41048 (nobody sendable) is an
    outcome, not a failure: the task is recorded as not_sendable.
    """
    attachments = [await _wecom_attachment(ctx, item) for item in action.attachments]
    sendable = [item for item in attachments if item is not None]
    text = action.text
    if "{customer_name" in text:
        text = render(text, {"customer_name": await _customer_name(ctx, action.external_userid)})
    now = ctx.clock.timestamp()
    try:
        answer = await ctx.client.add_msg_template(
            chat_type="single",
            external_userid=[action.external_userid],
            sender=action.sender,
            text=text or None,
            attachments=sendable,
        )
    except errors.Permanent as exc:
        if exc.errcode != NOBODY_SENDABLE:
            raise
        answer = {"msgid": "", "fail_list": [action.external_userid]}
    msgid = str(answer.get("msgid") or "")
    failed = action.external_userid in (answer.get("fail_list") or ()) or not msgid
    status = "not_sendable" if failed else "created"
    record = act.RecordMassTask(
        idem_key=action.idem_key,
        external_userid=action.external_userid,
        userid=action.sender,
        at=now,
        msgid=msgid,
        enrollment_id=action.enrollment_id,
        step_id=action.step_id,
        status=status,
        reminders=0,
    )
    summary = (
        f"客户不是导购 {action.sender} 可群发的客户，群发任务未创建"
        if failed
        else f"已创建群发任务，等待导购 {action.sender} 确认发送"
    )
    follow_up: list[act.Action] = [
        record,
        _mass_entry(action.external_userid, summary, now, action.idem_key, msgid, status, action.step_id),
    ]
    if not failed:
        due = now + ctx.sop.check_after_hours * 3600
        follow_up.append(mass_tasks.check_timer(action, msgid, 1, due))
    return Sent(
        {
            "msgid": msgid,
            "status": status,
            "attachments": len(sendable),
            "skipped": len(attachments) - len(sendable),
        },
        follow_up,
    )


@sender(act.CheckMassTask.kind)
async def check_mass_task(ctx: SendContext, action: act.CheckMassTask) -> Sent:
    """get_groupmsg_send_result for the customer; remind the guide while unsent, else record the outcome.

    https://developer.work.weixin.qq.com/document/path/93338 (status 0 unsent, 1 sent, 2 not a
    friend, 3 over the per-customer cap), https://developer.work.weixin.qq.com/document/path/97610.
    """
    items = await ctx.client.all_groupmsg_send_results(action.msgid, action.sender)
    mine = next((i for i in items if i.get("external_userid") == action.external_userid), None)
    status = None if mine is None else int(mine.get("status") or 0)
    decision = mass_tasks.decide_check(status, action.check, ctx.sop.max_reminders)
    now = ctx.clock.timestamp()
    task_key = f"mass:{action.task_key}"
    base = {
        "idem_key": task_key,
        "external_userid": action.external_userid,
        "userid": action.sender,
        "at": now,
    }
    follow_up: list[act.Action] = []
    result: dict[str, Any] = {"send_status": status, "decision": decision}
    if decision == "remind":
        reminded = True
        try:
            await ctx.client.remind_groupmsg_send(action.msgid)
        except errors.Permanent as exc:
            if exc.errcode == TASK_CANCELLED:
                decision = "unsent"
            elif exc.errcode != REMIND_LIMIT:
                raise
            reminded = False
            result["remind_errcode"] = exc.errcode
    if decision == "remind":
        earlier = await _mass_task_reminders(ctx, task_key)
        count = earlier + (1 if reminded else 0)
        follow_up.append(act.RecordMassTask(**base, status="reminded", reminders=count))
        summary = (
            f"导购 {action.sender} 尚未发送群发任务，已提醒（第 {count} 次）"
            if reminded
            else f"导购 {action.sender} 尚未发送群发任务（今日提醒次数已用完）"
        )
        due = now + ctx.sop.check_after_hours * 3600
        follow_up.append(mass_tasks.check_timer(action, action.msgid, action.check + 1, due))
        record_status = "reminded"
    else:
        sent_at = float(mine.get("send_time") or now) if decision == "sent" and mine else None
        follow_up.append(act.RecordMassTask(**base, status=decision, sent_at=sent_at))
        summary = _MASS_OUTCOMES[decision].format(sender=action.sender)
        record_status = decision
    follow_up.append(
        _mass_entry(action.external_userid, summary, now, action.idem_key, action.msgid, record_status)
    )
    return Sent(result, follow_up)


# What a check found, as the timeline shows it.
_MASS_OUTCOMES = {
    "sent": "导购 {sender} 已发送群发任务",
    "not_friend": "客户已不是导购 {sender} 的好友，群发任务未送达",
    "over_cap": "群发任务超出客户接收上限，未送达",
    "unsent": "导购 {sender} 未发送群发任务，已记为未发送",
    "not_sendable": "客户不在导购 {sender} 的群发任务中，未送达",
}


def _mass_entry(
    customer: str, summary: str, at: float, source: str, msgid: str, status: str, step_id: str = ""
) -> act.RecordTimeline:
    data = {"msgid": msgid, "status": status}
    if step_id:
        data["step_id"] = step_id
    return act.RecordTimeline(customer, "mass_task", summary, at, f"sent:{source}", data)


async def _mass_task_reminders(ctx: SendContext, idem_key: str) -> int:
    async with ctx.sessions() as session:
        count = await session.scalar(select(MassTask.reminders).where(MassTask.idem_key == idem_key[:255]))
    return int(count or 0)


# --- customer groups (wecom-api.md §6) ------------------------------------------------------------

STAGE_CHECK = "stage_check"
"""Timer kind the lifecycle registers: re-evaluate a customer's stage (payload external_userid, trigger)."""
GROUP_DISMISSED = "dismissed:"
"""RefreshGroup.reason_key prefix of a dismissed group: nobody is in it, WeCom is not asked."""


@sender(act.RefreshGroup.kind)
async def refresh_group(ctx: SendContext, action: act.RefreshGroup) -> Sent:
    """groupchat/get: the group's customers now; each one who joined or left gets a stage check.

    Member callbacks may lack ids (older clients) and groupchat/get may lag them briefly
    (p/96338), so membership always comes from a fresh groupchat/get diffed with group_members.
    """
    gone: dict[str, Any] = {"group_chat": {"member_list": []}}
    if action.reason_key.startswith(GROUP_DISMISSED):
        answer = gone
    else:
        try:
            answer = await ctx.client.get_group_chat(action.chat_id)
        except errors.Permanent as exc:
            if exc.errcode != CHAT_GONE:
                raise
            answer = gone  # dismissed meanwhile: nobody is in it any more
    group = answer.get("group_chat") or {}
    members = tuple(
        sorted(
            {
                str(m["userid"])
                for m in group.get("member_list") or ()
                if int(m.get("type") or 0) == EXTERNAL_MEMBER and m.get("userid")
            }
        )
    )
    async with ctx.sessions() as session:
        rows = await session.scalars(
            select(GroupMember.external_userid).where(
                GroupMember.chat_id == action.chat_id, GroupMember.left_at.is_(None)
            )
        )
        before = set(rows.all())
    now = ctx.clock.timestamp()
    joined, left = sorted(set(members) - before), sorted(before - set(members))
    follow_up: list[act.Action] = [act.SetGroupMembers(action.chat_id, members, now)]
    follow_up += group_change_checks(action.chat_id, joined, left, now, action.idem_key)
    return Sent({"members": len(members), "joined": joined, "left": left}, follow_up)


EXTERNAL_MEMBER = 2
"""groupchat/get member_list[].type: 1 a member of the corp, 2 an external contact."""


def group_change_checks(
    chat_id: str, joined: list[str], left: list[str], at: float, reason: str
) -> list[act.Action]:
    """A stage_check timer, due now, for every customer who joined or left the group."""
    unique = digest(chat_id, reason)
    return [
        act.Schedule(
            key=f"stage:{customer}:{trigger}:{unique}",
            kind=STAGE_CHECK,
            due_at=at,
            payload={"external_userid": customer, "trigger": trigger, "chat_id": chat_id},
        )
        for trigger, customers in (("group_joined", joined), ("group_left", left))
        for customer in customers
    ]
