"""Sending real encrypted callbacks to the service, with WeCom's timeout and retries (§2, p/90930).

Each delivery is recorded in `state.callbacks` as {seq, app, event, at, url, attempts, plaintext}.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import aiohttp

from bot.wecom import CALLBACK_PATHS
from bot.wecom.crypto import CallbackCrypto, envelope_json, envelope_xml
from bot.wecom.emulator.hold import hold

if TYPE_CHECKING:
    from bot.clock import Clock
    from bot.config import Settings
    from bot.wecom.emulator.state import EmulatorOptions
    from bot.wecom.emulator.world import IdFactory

# Apps whose events are "system" events (customer contact, kf) rather than member messages.
SYSTEM_EVENT_APPS = frozenset({"contact", "kf"})


class DeliveryMixin:
    """Callback building and delivery, mixed into EmulatorState."""

    settings: Settings
    clock: Clock
    ids: IdFactory
    options: EmulatorOptions
    session: aiohttp.ClientSession | None
    owns_session: bool
    callback_base_url: str
    callbacks: list[dict[str, Any]]

    def crypto_for(self, app: str) -> CallbackCrypto:
        """The app's CallbackCrypto; receive id = corp id, or "" for the smart robot (p/91144)."""
        creds = self.settings.app(app)
        receive_id = "" if app == "robot" else self.settings.wecom.corp_id
        return CallbackCrypto(
            creds.callback_token.get_secret_value(), creds.encoding_aes_key.get_secret_value(), receive_id
        )

    def build_callback(
        self,
        app: str,
        plaintext: str,
        *,
        timestamp: str | None = None,
        nonce: str | None = None,
        event_kind: str = "message",
    ) -> tuple[dict[str, str], str]:
        """Encrypt and sign `plaintext` for `app`: (query params, POST body)."""
        timestamp = timestamp or str(int(self.clock.timestamp()))
        nonce = nonce or self.ids.digits(10)
        encrypt, msg_signature = self.crypto_for(app).encrypt(plaintext, timestamp, nonce)
        params = {"msg_signature": msg_signature, "timestamp": timestamp, "nonce": nonce}
        if app == "robot":
            return params, envelope_json(encrypt)
        agent_id = self.settings.app(app).agent_id
        if event_kind == "system" and self.options.empty_agent_id_for_system_events:
            agent = ""
        else:
            agent = "" if agent_id is None else str(agent_id)
        return params, envelope_xml(self.settings.wecom.corp_id, agent, encrypt)

    def callback_url(self, app: str) -> str:
        """Where `app`'s callbacks go on the service."""
        return self.callback_base_url.rstrip("/") + CALLBACK_PATHS[app]

    async def client_session(self) -> aiohttp.ClientSession:
        """The injected session, or one the emulator owns (closed on app cleanup)."""
        if self.session is None or self.session.closed:
            self.session = aiohttp.ClientSession()
            self.owns_session = True
        return self.session

    async def deliver(
        self, app: str, plaintext: str, *, event: str = "", kind: str | None = None
    ) -> dict[str, Any]:
        """POST the encrypted callback; re-send the identical payload on timeout/connection error."""
        kind = kind or ("system" if app in SYSTEM_EVENT_APPS else "message")
        params, body = self.build_callback(app, plaintext, event_kind=kind)
        content_type = "application/json" if app == "robot" else "text/xml"
        record: dict[str, Any] = {
            "seq": len(self.callbacks) + 1,
            "app": app,
            "event": event,
            "at": self.clock.timestamp(),
            "url": self.callback_url(app),
            "attempts": [],
            "plaintext": plaintext,
        }
        self.callbacks.append(record)
        session = await self.client_session()
        timeout = aiohttp.ClientTimeout(total=self.settings.emulator.callback_timeout_seconds)
        for attempt in range(1 + self.settings.emulator.callback_retries):
            if attempt:
                await hold(self.options.callback_retry_interval_seconds)
                if self.options.callback_resign_on_retry:
                    params, body = self.build_callback(app, plaintext, event_kind=kind)
            outcome = await self._post(session, record["url"], params, body, content_type, timeout)
            record["attempts"].append(outcome)
            if not _should_retry(outcome, self.options.callback_retry_on_non_200):
                break
        record["delivered"] = record["attempts"][-1] == 200
        return {k: v for k, v in record.items() if k != "plaintext"}

    async def _post(
        self,
        session: aiohttp.ClientSession,
        url: str,
        params: dict[str, str],
        body: str,
        content_type: str,
        client_timeout: aiohttp.ClientTimeout,
    ) -> int | str:
        try:
            async with session.post(
                url,
                params=params,
                data=body.encode(),
                timeout=client_timeout,
                headers={"Content-Type": content_type},
            ) as resp:
                await resp.read()
                return resp.status
        except TimeoutError:
            return "timeout"
        except aiohttp.ClientError:
            return "error"

    async def verify_url(self, app: str) -> dict[str, Any]:
        """The GET echostr handshake (§2.1): the service must answer the bare plaintext within 1 s."""
        expected = self.ids.text(19, "0123456789")
        timestamp = str(int(self.clock.timestamp()))
        nonce = self.ids.digits(10)
        echostr, msg_signature = self.crypto_for(app).encrypt(expected, timestamp, nonce)
        params = {"msg_signature": msg_signature, "timestamp": timestamp, "nonce": nonce, "echostr": echostr}
        session = await self.client_session()
        try:
            async with session.get(
                self.callback_url(app), params=params, timeout=aiohttp.ClientTimeout(total=1.0)
            ) as resp:
                text = await resp.text()
                status: int | str = resp.status
        except TimeoutError:
            return {"ok": False, "status": "timeout", "body": None}
        except aiohttp.ClientError:
            return {"ok": False, "status": "error", "body": None}
        return {"ok": status == 200 and text == expected, "status": status, "body": text}


def _should_retry(outcome: int | str, retry_on_non_200: bool) -> bool:
    # Current wording of p/90930: only connection failures and timeouts are retried (§2.6).
    if isinstance(outcome, str):
        return True
    return retry_on_non_200 and outcome != 200
