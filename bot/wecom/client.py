"""WeComClient: one method per WeCom API endpoint, all through one private `_call`.

`_call` picks the app's access token (query parameter, never the body), checks our own per-API rate
limit, applies the timeout, maps transport failures and errcodes to `errors.TokenExpired`,
`errors.Transient` or `errors.Permanent` (bot/wecom/errcodes.py), replays once after a token error,
and records metrics. It never sleeps or loops: retries with backoff belong to the outbox, which
reschedules durable rows. Paths and payloads follow docs/wecom-api.md; `base_url` points at the
emulator in tests and the demo.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import aiohttp

from bot import errors
from bot.clock import Clock
from bot.kv import KV
from bot.metrics import WECOM_CALLS, WECOM_LATENCY
from bot.wecom import errcodes
from bot.wecom.tokens import TokenCache

if TYPE_CHECKING:
    from bot.config import Settings

_LOGGER = logging.getLogger(__name__)

RATE_WINDOW_SECONDS = 60.0
# Transport failures carry WeCom's "system busy" code: the caller's move is the same (retry later).
TRANSPORT_ERRCODE = -1

Json = dict[str, Any]


class WeComClient:
    """Typed access to the WeCom server API for the corp's apps (contact, kf)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        corp_id: str,
        secrets: Mapping[str, str],
        agent_ids: Mapping[str, int],
        tokens: TokenCache,
        kv: KV,
        clock: Clock,
        timeout: float,
        rate_limit_per_minute: int = 6000,
        rate_limits: Mapping[str, int] | None = None,
    ) -> None:
        self._session = session
        self._base_url = base_url.rstrip("/") + "/cgi-bin/"
        self._corp_id = corp_id
        self._secrets = dict(secrets)
        self._agent_ids = dict(agent_ids)
        self._tokens = tokens
        self._kv = kv
        self._clock = clock
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._rate_limit = rate_limit_per_minute
        self._rate_limits = dict(rate_limits or {})
        self._unavailable = False

    @classmethod
    def from_settings(
        cls, settings: Settings, session: aiohttp.ClientSession, tokens: TokenCache, kv: KV, clock: Clock
    ) -> WeComClient:
        """A client for the apps configured in `settings.wecom` (apps without a secret are skipped)."""
        wecom = settings.wecom
        secrets, agent_ids = {}, {}
        for name in ("contact", "kf", "robot"):
            app = settings.app(name)
            if app.secret is not None and app.secret.get_secret_value():
                secrets[name] = app.secret.get_secret_value()
            if app.agent_id is not None:
                agent_ids[name] = app.agent_id
        return cls(
            session,
            base_url=wecom.base_url,
            corp_id=wecom.corp_id,
            secrets=secrets,
            agent_ids=agent_ids,
            tokens=tokens,
            kv=kv,
            clock=clock,
            timeout=wecom.timeout_seconds,
            rate_limit_per_minute=wecom.rate_limit_per_minute,
            rate_limits=wecom.rate_limits,
        )

    # -- access token ------------------------------------------------------------------------------

    async def get_token(self, app: str) -> Json:
        """Fetch a new access_token for `app` (bypasses the cache): https://developer.work.weixin.qq.com/document/path/91039"""
        secret = self._secrets.get(app)
        if not secret:
            raise errors.ConfigError(f"wecom.apps.{app}.secret is not set")
        return await self._send(
            "GET", "gettoken", params={"corpid": self._corp_id, "corpsecret": secret}, token=None
        )

    # -- customers ---------------------------------------------------------------------------------

    async def get_external_contact(self, external_userid: str, cursor: str | None = None) -> Json:
        """Customer detail and its followers: https://developer.work.weixin.qq.com/document/path/92114"""
        params = {"external_userid": external_userid}
        if cursor:
            params["cursor"] = cursor
        return await self._call("contact", "GET", "externalcontact/get", params=params)

    async def list_external_contacts(self, userid: str) -> Json:
        """external_userids of one member's customers: https://developer.work.weixin.qq.com/document/path/92113"""
        return await self._call("contact", "GET", "externalcontact/list", params={"userid": userid})

    async def get_follow_user_list(self) -> Json:
        """Members with customer contact enabled: https://developer.work.weixin.qq.com/document/path/92571"""
        return await self._call("contact", "GET", "externalcontact/get_follow_user_list")

    async def remark(
        self,
        userid: str,
        external_userid: str,
        *,
        remark: str | None = None,
        description: str | None = None,
        remark_company: str | None = None,
        remark_mobiles: Sequence[str] | None = None,
        remark_pic_mediaid: str | None = None,
    ) -> Json:
        """Set a member's remark on a customer (only the fields given): https://developer.work.weixin.qq.com/document/path/92115"""
        body = _compact(
            userid=userid,
            external_userid=external_userid,
            remark=remark,
            description=description,
            remark_company=remark_company,
            remark_mobiles=list(remark_mobiles) if remark_mobiles is not None else None,
            remark_pic_mediaid=remark_pic_mediaid,
        )
        return await self._call("contact", "POST", "externalcontact/remark", json=body)

    # -- corp tags ---------------------------------------------------------------------------------

    async def get_corp_tag_list(self, tag_ids: Sequence[str] = (), group_ids: Sequence[str] = ()) -> Json:
        """Corp tag groups and tags, all or filtered by id: https://developer.work.weixin.qq.com/document/path/92117"""
        body = _compact(tag_id=list(tag_ids) or None, group_id=list(group_ids) or None)
        return await self._call("contact", "POST", "externalcontact/get_corp_tag_list", json=body)

    async def add_corp_tag(
        self,
        tags: Sequence[str | Mapping[str, Any]],
        *,
        group_id: str | None = None,
        group_name: str | None = None,
        order: int | None = None,
    ) -> Json:
        """Add tags (names or {name, order}) to a group by id or name: https://developer.work.weixin.qq.com/document/path/92117"""
        tag = [{"name": t} if isinstance(t, str) else dict(t) for t in tags]
        body = _compact(group_id=group_id, group_name=group_name, order=order, tag=tag)
        return await self._call("contact", "POST", "externalcontact/add_corp_tag", json=body)

    async def edit_corp_tag(self, tag_id: str, *, name: str | None = None, order: int | None = None) -> Json:
        """Rename or reorder a tag or tag group: https://developer.work.weixin.qq.com/document/path/92117"""
        body = _compact(id=tag_id, name=name, order=order)
        return await self._call("contact", "POST", "externalcontact/edit_corp_tag", json=body)

    async def del_corp_tag(self, tag_ids: Sequence[str] = (), group_ids: Sequence[str] = ()) -> Json:
        """Delete tags and tag groups: https://developer.work.weixin.qq.com/document/path/92117"""
        body = _compact(tag_id=list(tag_ids) or None, group_id=list(group_ids) or None)
        return await self._call("contact", "POST", "externalcontact/del_corp_tag", json=body)

    async def mark_tag(
        self,
        userid: str,
        external_userid: str,
        add_tag: Sequence[str] = (),
        remove_tag: Sequence[str] = (),
    ) -> Json:
        """Add and remove corp tags on a member's customer: https://developer.work.weixin.qq.com/document/path/92118"""
        body = _compact(
            userid=userid,
            external_userid=external_userid,
            add_tag=list(add_tag) or None,
            remove_tag=list(remove_tag) or None,
        )
        return await self._call("contact", "POST", "externalcontact/mark_tag", json=body)

    # -- contact ways (channel live codes) ---------------------------------------------------------

    async def add_contact_way(
        self,
        type: int,
        scene: int,
        *,
        user: Sequence[str] = (),
        party: Sequence[int] = (),
        state: str | None = None,
        remark: str | None = None,
        skip_verify: bool | None = None,
        style: int | None = None,
        is_temp: bool | None = None,
        expires_in: int | None = None,
        chat_expires_in: int | None = None,
        unionid: str | None = None,
        conclusions: Mapping[str, Any] | None = None,
    ) -> Json:
        """Create a 「联系我」 config; returns config_id (and qr_code for scene 2): https://developer.work.weixin.qq.com/document/path/92228"""
        body = _compact(
            type=type,
            scene=scene,
            style=style,
            remark=remark,
            skip_verify=skip_verify,
            state=state,
            user=list(user) or None,
            party=list(party) or None,
            is_temp=is_temp,
            expires_in=expires_in,
            chat_expires_in=chat_expires_in,
            unionid=unionid,
            conclusions=dict(conclusions) if conclusions is not None else None,
        )
        return await self._call("contact", "POST", "externalcontact/add_contact_way", json=body)

    async def get_contact_way(self, config_id: str) -> Json:
        """One 「联系我」 config: https://developer.work.weixin.qq.com/document/path/92228"""
        body = {"config_id": config_id}
        return await self._call("contact", "POST", "externalcontact/get_contact_way", json=body)

    async def list_contact_way(
        self,
        *,
        start_time: int | None = None,
        end_time: int | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Json:
        """One page of config ids made in [start_time, end_time] (default: last 90 days; temp ways never): https://developer.work.weixin.qq.com/document/path/92228"""
        body = _compact(start_time=start_time, end_time=end_time, cursor=cursor or None, limit=limit)
        return await self._call("contact", "POST", "externalcontact/list_contact_way", json=body)

    async def update_contact_way(
        self,
        config_id: str,
        *,
        remark: str | None = None,
        skip_verify: bool | None = None,
        style: int | None = None,
        state: str | None = None,
        user: Sequence[str] | None = None,
        party: Sequence[int] | None = None,
        expires_in: int | None = None,
        chat_expires_in: int | None = None,
        unionid: str | None = None,
        conclusions: Mapping[str, Any] | None = None,
    ) -> Json:
        """Update a 「联系我」 config; given lists replace the old ones: https://developer.work.weixin.qq.com/document/path/92228"""
        body = _compact(
            config_id=config_id,
            remark=remark,
            skip_verify=skip_verify,
            style=style,
            state=state,
            user=list(user) if user is not None else None,
            party=list(party) if party is not None else None,
            expires_in=expires_in,
            chat_expires_in=chat_expires_in,
            unionid=unionid,
            conclusions=dict(conclusions) if conclusions is not None else None,
        )
        return await self._call("contact", "POST", "externalcontact/update_contact_way", json=body)

    async def del_contact_way(self, config_id: str) -> Json:
        """Delete a 「联系我」 config: https://developer.work.weixin.qq.com/document/path/92228"""
        body = {"config_id": config_id}
        return await self._call("contact", "POST", "externalcontact/del_contact_way", json=body)

    # -- customer groups -------------------------------------------------------------------------

    async def get_group_chat(self, chat_id: str, *, need_name: bool = False) -> Json:
        """A customer group and its members (type 1 member, 2 external): https://developer.work.weixin.qq.com/document/path/92122"""
        body = {"chat_id": chat_id, "need_name": 1 if need_name else 0}
        return await self._call("contact", "POST", "externalcontact/groupchat/get", json=body)

    # -- messages ----------------------------------------------------------------------------------

    async def send_welcome_msg(
        self, welcome_code: str, text: str | None = None, attachments: Sequence[Mapping[str, Any]] = ()
    ) -> Json:
        """Send the new-customer welcome (code valid 20 s, once): https://developer.work.weixin.qq.com/document/path/92137"""
        body = _compact(
            welcome_code=welcome_code,
            text={"content": text} if text is not None else None,
            attachments=[dict(a) for a in attachments] or None,
        )
        return await self._call("contact", "POST", "externalcontact/send_welcome_msg", json=body)

    async def send_app_message(
        self,
        touser: Sequence[str],
        content: str,
        *,
        app: str = "contact",
        duplicate_check_interval: int | None = None,
    ) -> Json:
        """Send a text app message to members (staff notifications): https://developer.work.weixin.qq.com/document/path/90236"""
        agent_id = self._agent_ids.get(app)
        if agent_id is None:
            raise errors.ConfigError(f"wecom.apps.{app}.agent_id is not set")
        body: Json = {"touser": "|".join(touser), "msgtype": "text", "agentid": agent_id}
        body["text"] = {"content": content}
        if duplicate_check_interval is not None:
            body["enable_duplicate_check"] = 1
            body["duplicate_check_interval"] = duplicate_check_interval
        return await self._call(app, "POST", "message/send", json=body)

    # -- mass sending (企业群发) ----------------------------------------------------------------------

    async def add_msg_template(
        self,
        *,
        chat_type: str = "single",
        external_userid: Sequence[str] = (),
        chat_id_list: Sequence[str] = (),
        sender: str | None = None,
        text: str | None = None,
        attachments: Sequence[Mapping[str, Any]] = (),
        allow_select: bool | None = None,
        tag_filter: Mapping[str, Any] | None = None,
    ) -> Json:
        """Create a mass-send task (members confirm it; returns msgid, fail_list): https://developer.work.weixin.qq.com/document/path/92135"""
        body = _compact(
            chat_type=chat_type,
            external_userid=list(external_userid) or None,
            chat_id_list=list(chat_id_list) or None,
            tag_filter=dict(tag_filter) if tag_filter is not None else None,
            sender=sender,
            allow_select=allow_select,
            text={"content": text} if text is not None else None,
            attachments=[dict(a) for a in attachments] or None,
        )
        return await self._call("contact", "POST", "externalcontact/add_msg_template", json=body)

    async def get_groupmsg_list_v2(
        self,
        chat_type: str,
        start_time: int,
        end_time: int,
        *,
        creator: str | None = None,
        filter_type: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Json:
        """Mass-send tasks created in a time span of at most a month: https://developer.work.weixin.qq.com/document/path/93338"""
        body = _compact(
            chat_type=chat_type,
            start_time=start_time,
            end_time=end_time,
            creator=creator,
            filter_type=filter_type,
            limit=limit,
            cursor=cursor or None,
        )
        return await self._call("contact", "POST", "externalcontact/get_groupmsg_list_v2", json=body)

    async def get_groupmsg_task(
        self, msgid: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Json:
        """Members of a mass-send task and whether each has sent: https://developer.work.weixin.qq.com/document/path/93338"""
        body = _compact(msgid=msgid, limit=limit, cursor=cursor or None)
        return await self._call("contact", "POST", "externalcontact/get_groupmsg_task", json=body)

    async def get_groupmsg_send_result(
        self, msgid: str, userid: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Json:
        """One member's recipients of a task and their status (0-3): https://developer.work.weixin.qq.com/document/path/93338"""
        body = _compact(msgid=msgid, userid=userid, limit=limit, cursor=cursor or None)
        return await self._call("contact", "POST", "externalcontact/get_groupmsg_send_result", json=body)

    async def all_groupmsg_send_results(self, msgid: str, userid: str, *, limit: int = 1000) -> list[Json]:
        """Every `send_list` item of one member's part, following next_cursor to the end."""
        items: list[Json] = []
        cursor: str | None = None
        while True:
            page = await self.get_groupmsg_send_result(msgid, userid, limit=limit, cursor=cursor)
            items.extend(page.get("send_list", []))
            cursor = page.get("next_cursor") or None
            if cursor is None:
                return items

    async def remind_groupmsg_send(self, msgid: str) -> Json:
        """Notify the members of a task again (≤3 per task per 24 h, then 41094): https://developer.work.weixin.qq.com/document/path/97610"""
        body = {"msgid": msgid}
        return await self._call("contact", "POST", "externalcontact/remind_groupmsg_send", json=body)

    async def cancel_groupmsg_send(self, msgid: str) -> Json:
        """Stop a task's unsent parts (41093 once cancelled): https://developer.work.weixin.qq.com/document/path/97611"""
        body = {"msgid": msgid}
        return await self._call("contact", "POST", "externalcontact/cancel_groupmsg_send", json=body)

    # -- 微信客服 (kf) -------------------------------------------------------------------------------

    async def kf_sync_msg(
        self, open_kfid: str, *, cursor: str | None = None, token: str | None = None, limit: int = 1000
    ) -> Json:
        """Pull kf messages and events after `cursor` (callback `token` lifts the limit): https://developer.work.weixin.qq.com/document/path/94670"""
        body = _compact(cursor=cursor, token=token, limit=limit, open_kfid=open_kfid)
        return await self._call("kf", "POST", "kf/sync_msg", json=body)

    async def kf_send_msg(
        self,
        touser: str,
        open_kfid: str,
        msgtype: str,
        content: Mapping[str, Any],
        *,
        msgid: str | None = None,
    ) -> Json:
        """Send a kf message to a customer (≤5 per 48 h after their last): https://developer.work.weixin.qq.com/document/path/94677"""
        body = _compact(touser=touser, open_kfid=open_kfid, msgid=msgid, msgtype=msgtype)
        body[msgtype] = dict(content)
        return await self._call("kf", "POST", "kf/send_msg", json=body)

    async def kf_send_msg_on_event(
        self, code: str, msgtype: str, content: Mapping[str, Any], *, msgid: str | None = None
    ) -> Json:
        """Send the one message an event code allows (e.g. enter_session welcome): https://developer.work.weixin.qq.com/document/path/95122"""
        body = _compact(code=code, msgid=msgid, msgtype=msgtype)
        body[msgtype] = dict(content)
        return await self._call("kf", "POST", "kf/send_msg_on_event", json=body)

    async def kf_service_state_get(self, open_kfid: str, external_userid: str) -> Json:
        """A kf session's state and servicer: https://developer.work.weixin.qq.com/document/path/94669"""
        body = {"open_kfid": open_kfid, "external_userid": external_userid}
        return await self._call("kf", "POST", "kf/service_state/get", json=body)

    async def kf_service_state_trans(
        self, open_kfid: str, external_userid: str, service_state: int, servicer_userid: str | None = None
    ) -> Json:
        """Move a kf session to another state (3 needs a servicer): https://developer.work.weixin.qq.com/document/path/94669"""
        body = _compact(
            open_kfid=open_kfid,
            external_userid=external_userid,
            service_state=service_state,
            servicer_userid=servicer_userid,
        )
        return await self._call("kf", "POST", "kf/service_state/trans", json=body)

    async def kf_account_list(self, offset: int = 0, limit: int = 100) -> Json:
        """kf accounts visible to the kf app: https://developer.work.weixin.qq.com/document/path/94661"""
        body = {"offset": offset, "limit": limit}
        return await self._call("kf", "POST", "kf/account/list", json=body)

    # -- media -------------------------------------------------------------------------------------

    async def upload_media(
        self, media_type: str, filename: str, content: bytes, app: str = "contact"
    ) -> Json:
        """Upload temporary media (media_id valid 3 days): https://developer.work.weixin.qq.com/document/path/90253"""

        def form() -> aiohttp.FormData:
            data = aiohttp.FormData()
            data.add_field("media", content, filename=filename, content_type="application/octet-stream")
            return data

        return await self._call(app, "POST", "media/upload", params={"type": media_type}, data=form)

    # -- the one place that talks HTTP -------------------------------------------------------------

    async def _call(
        self,
        app: str,
        method: str,
        api_path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Json | None = None,
        data: Callable[[], aiohttp.FormData] | None = None,
    ) -> Json:
        """Call `api_path` with `app`'s token; after a token error, refresh and replay exactly once."""
        app_key = f"{self._corp_id}:{app}"
        token = await self._tokens.get(app_key, lambda: self._fetch_token(app))
        try:
            return await self._send(method, api_path, params=params, json=json, data=data, token=token)
        except errors.TokenExpired:
            # Revoked or expired early: drop it (unless another caller already replaced it), replay once.
            await self._tokens.invalidate(app_key, token)
            token = await self._tokens.get(app_key, lambda: self._fetch_token(app))
            return await self._send(method, api_path, params=params, json=json, data=data, token=token)

    async def _fetch_token(self, app: str) -> tuple[str, int]:
        answer = await self.get_token(app)
        return str(answer["access_token"]), int(answer.get("expires_in", 7200))

    async def _send(
        self,
        method: str,
        api_path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Json | None = None,
        data: Callable[[], aiohttp.FormData] | None = None,
        token: str | None,
    ) -> Json:
        """One HTTP request: local rate limit, timeout, transport and errcode mapping, metrics."""
        limit = self._rate_limits.get(api_path, self._rate_limit)
        wait = await self._kv.hit(f"rl:{api_path}", limit=limit, window=RATE_WINDOW_SECONDS)
        if wait > 0:
            # Refuse locally instead of sleeping: the outbox reschedules the row after retry_after.
            WECOM_CALLS.labels(api=api_path, errcode="local_limit").inc()
            raise errors.Transient(45009, "local rate limit", api=api_path, retry_after=wait)
        query = dict(params or {})
        if token is not None:
            query["access_token"] = token
        started = self._clock.monotonic()
        try:
            async with self._session.request(
                method,
                self._base_url + api_path,
                params=query,
                json=json,
                # A FormData body can be sent only once, and the call may be replayed: build it anew.
                data=data() if data is not None else None,
                timeout=self._timeout,
            ) as response:
                status = response.status
                body = await response.json(content_type=None) if status < 400 else None
        except TimeoutError:
            raise self._transport_failure(api_path, "timeout", started) from None
        except ValueError:
            raise self._transport_failure(api_path, "bad_json", started) from None
        except aiohttp.ClientError as exc:
            # Only the class name: aiohttp messages may contain the URL, and the URL holds the token.
            raise self._transport_failure(api_path, "connection", started, type(exc).__name__) from None
        WECOM_LATENCY.labels(api=api_path).observe(max(0.0, self._clock.monotonic() - started))
        if status >= 500 or status == 429:
            raise self._transport_failure(api_path, f"http_{status}", None)
        if status >= 400 or not isinstance(body, dict):
            WECOM_CALLS.labels(api=api_path, errcode=f"http_{status}").inc()
            raise errors.Permanent(TRANSPORT_ERRCODE, f"HTTP {status}", api=api_path)
        self._available()
        errcode = int(body.get("errcode", 0) or 0)
        WECOM_CALLS.labels(api=api_path, errcode=str(errcode)).inc()
        errcodes.raise_for(errcode, str(body.get("errmsg", "")), api_path)
        return body

    def _transport_failure(
        self, api_path: str, kind: str, started: float | None, detail: str = ""
    ) -> errors.Transient:
        if started is not None:
            WECOM_LATENCY.labels(api=api_path).observe(max(0.0, self._clock.monotonic() - started))
        WECOM_CALLS.labels(api=api_path, errcode=kind).inc()
        if not self._unavailable:
            self._unavailable = True
            _LOGGER.warning("WeCom API unavailable (%s %s)", api_path, kind)
        message = f"{kind}: {detail}" if detail else kind
        return errors.Transient(TRANSPORT_ERRCODE, message, api=api_path)

    def _available(self) -> None:
        if self._unavailable:
            self._unavailable = False
            _LOGGER.info("WeCom API available again")


def _compact(**fields: Any) -> Json:
    """The fields that were given: WeCom treats a present-but-null field differently from a missing one."""
    return {name: value for name, value in fields.items() if value is not None}
