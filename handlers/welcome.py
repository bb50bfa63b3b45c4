"""Welcome: greet a new contact with the script the rules choose, inside WeCom's 20 s window.

Triggers: ContactAdded, ContactHalfAdded and ArchiveConsent (each may carry a WelcomeCode).
Actions: SendWelcome (the text with every variable filled in, {customer_name} from the profile as
it stands when the add is read; attachments as WeCom shapes, local images by path for the sender
to upload); RecordWelcomeAssignment (script and A/B variant, the first per customer x guide sticks);
RecordTimeline when an add came without a WelcomeCode or no welcome.yaml is configured.
Idempotency: the outbox key `welcome:{welcome_code}` (a code works once), its deadline the event's
CreateTime + `welcome.window_seconds`; the assignment is unique per customer x guide; the "no
welcome" entry is keyed by the event.
Config: `content_library/welcome.yaml` (bot/welcome_rules.py), `settings.welcome`, `settings.content.dir`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot import actions as act
from bot import events as ev
from bot.actions import Action
from bot.clock import SHANGHAI
from bot.content import ImageAttachment, LinkAttachment, MiniprogramAttachment, render
from bot.deps import Deps, WelcomeHistory
from bot.router import Router
from bot.welcome_rules import Script, Variant, WelcomeRules, rules_from_files

router = Router("welcome")

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
NO_CODE = "未发送欢迎语：这次添加没有 WelcomeCode（管理后台已配置欢迎语，或客户与导购已聊过天）"
NO_RULES = "未发送欢迎语：没有配置欢迎语（welcome.yaml）"


@dataclass(frozen=True)
class Pick:
    """The chosen script and variant, and the rule that chose it ("" for the default)."""

    script: Script
    variant: Variant
    rule_id: str = ""


def pick_variant(script: Script, external_userid: str) -> Variant:
    """The customer's variant: a hash of (customer, script) placed on the weights, so it never changes."""
    digest = hashlib.sha256(f"{external_userid}\x1f{script.id}".encode()).digest()
    total = sum(v.weight for v in script.variants)
    point = int.from_bytes(digest[:8], "big") / 2**64 * total
    running = 0.0
    for variant in script.variants:
        running += variant.weight
        if point < running:
            return variant
    return script.variants[-1]  # float rounding at the very top


def pick_welcome(
    event: ev.ContactEvent, rules: WelcomeRules, history: WelcomeHistory, now: dt.datetime
) -> Pick:
    """The first rule that matches the add (channel, guide, department, time, tags), else the default."""
    guide = rules.guides.get(event.userid)
    for rule in rules.rules:
        if rule.matches(
            state=str(getattr(event, "state", "")),
            userid=event.userid,
            department=guide.department if guide else "",
            tags=history.tags,
            returning=history.returning,
            now=now,
        ):
            script = rules.by_id[rule.script]
            return Pick(script, pick_variant(script, event.external_userid), rule.id)
    script = rules.by_id[rules.default]
    return Pick(script, pick_variant(script, event.external_userid))


def fill(text: str, values: dict[str, str]) -> str:
    """`text` with the variables in `values` filled; the others (and `{{ }}`) stay for a later render."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None or name not in values:
            return match.group(0)
        return values[name].replace("{", "{{").replace("}", "}}")

    return _PLACEHOLDER.sub(one, text)


def wecom_attachment(
    item: ImageAttachment | LinkAttachment | MiniprogramAttachment, library: Path
) -> dict[str, Any]:
    """An attachment in send_welcome_msg's shape; library files stay paths for the sender to upload."""
    match item:
        case ImageAttachment(media_path=str(path)):
            return {"msgtype": "image", "image": {"media_path": str(library / path)}}
        case ImageAttachment(pic_url=url):
            return {"msgtype": "image", "image": {"pic_url": url}}
        case LinkAttachment():
            link = {"title": item.title, "url": item.url, "desc": item.desc}
            if item.picurl:
                link["picurl"] = item.picurl
            return {"msgtype": "link", "link": link}
        case MiniprogramAttachment():
            return {
                "msgtype": "miniprogram",
                "miniprogram": {
                    "title": item.title,
                    "appid": item.appid,
                    "page": item.page,
                    "pic_media_path": str(library / item.pic_media_path),
                },
            }
    raise TypeError(f"unknown attachment {type(item).__name__}")


def welcome_actions(
    event: ev.ContactEvent,
    pick: Pick,
    rules: WelcomeRules,
    *,
    brand: str,
    library: Path,
    at: float,
    window_seconds: float,
    customer_name: str | None = None,
) -> list[Action]:
    """The send and the assignment for one add with a WelcomeCode (None name: the sender looks it up)."""
    code = str(getattr(event, "welcome_code", ""))
    guide = rules.guides.get(event.userid)
    values = {
        "brand": rules.brand or brand,
        "guide_name": guide.name if guide else "",
        "store": guide.store if guide else "",
    }
    variant = pick.variant
    if customer_name is None:
        text = fill(variant.text, values)  # the sender fills {customer_name}
    else:
        text = render(variant.text, {**values, "customer_name": customer_name})
    return [
        act.SendWelcome(
            code,
            event.external_userid,
            text=text,
            attachments=tuple(wecom_attachment(a, library) for a in variant.attachments),
            event_time=at,
            window_seconds=window_seconds,
        ),
        act.RecordWelcomeAssignment(
            event.external_userid, event.userid, pick.script.id, variant.id, code, at
        ),
    ]


def skipped(event: ev.ContactEvent, summary: str, at: float, reason: str) -> list[Action]:
    """The timeline entry saying why this add got no welcome from us."""
    data = {"userid": event.userid, "reason": reason}
    key = f"welcome:skipped:{event.dedup_key}"
    return [act.RecordTimeline(event.external_userid, "welcome_skipped", summary, at, key, data)]


@router.on(ev.ContactAdded, ev.ContactHalfAdded, ev.ArchiveConsent)
async def on_added(event: ev.ContactEvent, deps: Deps) -> list[Action]:
    """A customer added a guide (or agreed to archiving): greet them with the chosen script."""
    at = float(event.create_time) if event.create_time else deps.clock.timestamp()
    if not getattr(event, "welcome_code", ""):
        # A consent without a code is normal; an add without one is worth a line on the timeline.
        return [] if isinstance(event, ev.ArchiveConsent) else skipped(event, NO_CODE, at, "no_welcome_code")
    snapshot = deps.content()
    rules = rules_from_files(snapshot.files) if snapshot is not None else None
    if rules is None:
        return skipped(event, NO_RULES, at, "no_welcome_rules")
    history = WelcomeHistory()
    if deps.welcome_history is not None:
        history = await deps.welcome_history.get(event.external_userid, event.userid, at)
    pick = pick_welcome(event, rules, history, dt.datetime.fromtimestamp(at, SHANGHAI))
    return welcome_actions(
        event,
        pick,
        rules,
        brand=snapshot.faq.brand,
        library=Path(deps.settings.content.dir),
        at=at,
        window_seconds=deps.settings.welcome.window_seconds,
        customer_name=history.name if deps.welcome_history is not None else None,
    )
