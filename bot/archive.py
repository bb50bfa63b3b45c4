"""会话内容存档 (chat archive): WeCom's only source of what customers write to guides in 1:1 chats and groups.

Triggers: ArchiveMessagesWaiting (msgaudit_notify), and the `archive_poll` timer every
`archive.poll_interval_seconds`. Actions: SyncArchive, whose sender (`bot/senders.py`) pulls from
the stored seq, stores every message as an inbox row keyed by its msgid and the new seq in the same
transaction, so nothing is lost and nothing is handled twice. The notify carries no id (two in one
second are one inbox row) and can be lost, so the timer is the safety net: one pull per interval
(idempotency key `archivesync:archive_poll:{interval}:{slot}`), and it arms the next one.

The archive sits behind `Archive`: `FinanceSdkArchive` wraps WeCom's Finance SDK
(libWeWorkFinanceSdk_C.so) through ctypes, loaded only when configured; `EmulatorArchive` reads the
emulator's feed, which serves the documented decrypted message format
(https://developer.work.weixin.qq.com/document/path/91774).
"""

from __future__ import annotations

import asyncio
import base64
import ctypes
import json
import logging
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from bot import actions as act
from bot import errors
from bot import events as ev
from bot.config import Settings
from bot.deps import Deps
from bot.router import Router

_LOGGER = logging.getLogger(__name__)

router = Router("archive_sync")

CURSOR_NAME = "default"
POLL_TIMER = "archive_poll"
EMULATOR_FEED_PATH = "/emulator/archive/chatdata"


@router.on(ev.ArchiveMessagesWaiting)
def on_messages_waiting(event: ev.ArchiveMessagesWaiting, deps: Deps) -> list[act.Action]:
    """Pull the archive's new messages (nothing when the archive is not configured)."""
    if not deps.settings.archive.enabled:
        return []
    return [act.SyncArchive(event.dedup_key)]


def next_poll_at(now: float, interval: int) -> float:
    """The first multiple of `interval` epoch seconds strictly after `now`."""
    return float((math.floor(now / interval) + 1) * interval)


def schedule_next_poll(now: float, settings: Settings) -> act.Schedule:
    """The Schedule action for the next safety-net pull, keyed by its interval slot."""
    interval = settings.archive.poll_interval_seconds
    due = next_poll_at(now, interval)
    slot = int(due // interval)
    # Slots are aligned to the epoch, so every replica and every restart names the same timer: the
    # first insert wins and the chain never doubles.
    return act.Schedule(
        key=f"{POLL_TIMER}:{interval}:{slot}",
        kind=POLL_TIMER,
        due_at=due,
        payload={"interval": interval, "slot": slot},
    )


def on_archive_poll(timer: Any, deps: Deps) -> list[act.Action]:
    """Timer handler for `archive_poll`: pull once for this interval, then arm the next one."""
    if not deps.settings.archive.enabled:
        return []  # switched off since it was armed: the chain ends here
    # The next slot after now, not after this one: a service that was down does not replay each
    # missed interval.
    return [act.SyncArchive(timer.key), schedule_next_poll(deps.clock.timestamp(), deps.settings)]


@dataclass(frozen=True)
class ArchiveRecord:
    """One archive entry: its seq and the decrypted message (msgid, action, from, tolist, ...)."""

    seq: int
    msgid: str
    message: dict[str, Any]


@dataclass(frozen=True)
class ArchivePage:
    """What one fetch returned; `next_seq` is the seq to continue from (the last one seen)."""

    records: list[ArchiveRecord]
    next_seq: int
    undecryptable: int = 0


class Archive(Protocol):
    """Where archived chat messages come from."""

    async def fetch(self, seq: int, limit: int) -> ArchivePage:
        """Messages after `seq`, at most `limit` of them."""
        ...

    async def close(self) -> None:
        """Release what the archive holds (the SDK instance, ...)."""
        ...


class ArchiveError(errors.Transient):
    """The archive could not be read (SDK return code or errcode); the pull is retried."""


def create_archive(settings: Settings, http: aiohttp.ClientSession | None = None) -> Archive | None:
    """The configured archive; None when disabled. The SDK library is loaded only here, only for `sdk`."""
    cfg = settings.archive
    if not cfg.enabled:
        return None
    if cfg.adapter == "emulator":
        return EmulatorArchive(settings.wecom.base_url, http, timeout=settings.wecom.timeout_seconds)
    if not cfg.sdk_library or cfg.secret is None:
        raise errors.ConfigError("archive.adapter sdk needs archive.sdk_library and archive.secret")
    return FinanceSdkArchive(
        cfg.sdk_library,
        settings.wecom.corp_id,
        cfg.secret.get_secret_value(),
        load_private_key(settings),
        proxy=cfg.proxy,
        proxy_password=cfg.proxy_password.get_secret_value() if cfg.proxy_password else "",
        timeout=cfg.timeout_seconds,
    )


def load_private_key(settings: Settings) -> Any:
    """The RSA private key that decrypts each message's encrypt_random_key."""
    from cryptography.hazmat.primitives import serialization

    cfg = settings.archive
    if cfg.private_key is not None:
        pem = cfg.private_key.get_secret_value().encode()
    elif cfg.private_key_file:
        pem = Path(cfg.private_key_file).read_bytes()
    else:
        raise errors.ConfigError("archive.adapter sdk needs archive.private_key or archive.private_key_file")
    return serialization.load_pem_private_key(pem, password=None)


def decrypt_random_key(private_key: Any, encrypt_random_key: str) -> str:
    """base64 + RSA PKCS#1 v1.5, as the archive documents it: the key DecryptData takes."""
    from cryptography.hazmat.primitives.asymmetric import padding

    return str(private_key.decrypt(base64.b64decode(encrypt_random_key), padding.PKCS1v15()).decode())


# --- emulator --------------------------------------------------------------------------------------


class EmulatorArchive:
    """The emulator's archive feed over HTTP (the messages come already decrypted)."""

    def __init__(self, base_url: str, http: aiohttp.ClientSession | None, *, timeout: float = 5.0) -> None:
        self._url = base_url.rstrip("/") + EMULATOR_FEED_PATH
        self._http = http
        self._owns_http = http is None
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def fetch(self, seq: int, limit: int) -> ArchivePage:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        params = {"seq": str(seq), "limit": str(limit)}
        try:
            async with self._http.get(self._url, params=params, timeout=self._timeout) as resp:
                if resp.status != 200:
                    raise ArchiveError(resp.status, "archive feed HTTP error", api="archive")
                data = await resp.json()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ArchiveError(-1, str(exc) or type(exc).__name__, api="archive") from exc
        if data.get("errcode"):
            raise ArchiveError(int(data["errcode"]), str(data.get("errmsg", "")), api="archive")
        records = [
            ArchiveRecord(int(item["seq"]), str(item.get("msgid", "")), dict(item["message"]))
            for item in data.get("chatdata") or ()
        ]
        return ArchivePage(records, max([seq, *(r.seq for r in records)]))

    async def close(self) -> None:
        if self._owns_http and self._http is not None:
            await self._http.close()


# --- WeCom Finance SDK (ctypes) --------------------------------------------------------------------


class FinanceSdkArchive:
    """libWeWorkFinanceSdk_C.so through ctypes; every SDK call is a blocking C call, run in a thread.

    C API mirrored here: NewSdk, Init, GetChatData, DecryptData, NewSlice, FreeSlice,
    GetContentFromSlice, GetSliceLen, DestroySdk.
    """

    def __init__(
        self,
        library: str,
        corp_id: str,
        secret: str,
        private_key: Any,
        *,
        proxy: str = "",
        proxy_password: str = "",
        timeout: int = 5,
    ) -> None:
        self._lib = _load_sdk(library)
        self._private_key = private_key
        self._proxy, self._passwd, self._timeout = proxy.encode(), proxy_password.encode(), timeout
        self._lock = threading.Lock()
        self._sdk: int | None = self._lib.NewSdk()
        if not self._sdk:
            raise errors.ConfigError(f"NewSdk failed in {library}")
        rc = self._lib.Init(self._sdk, corp_id.encode(), secret.encode())
        if rc != 0:
            self._lib.DestroySdk(self._sdk)
            self._sdk = None
            raise errors.ConfigError(f"Finance SDK Init failed: {rc}")

    async def fetch(self, seq: int, limit: int) -> ArchivePage:
        return await asyncio.to_thread(self.fetch_blocking, seq, limit)

    def fetch_blocking(self, seq: int, limit: int) -> ArchivePage:
        """GetChatData, then RSA-decrypt each random key and DecryptData each message (blocking)."""
        with self._lock:
            if self._sdk is None:
                raise ArchiveError(-1, "archive is closed", api="GetChatData")
            raw = self._call_with_slice(
                "GetChatData",
                lambda out: self._lib.GetChatData(
                    self._sdk, seq, limit, self._proxy, self._passwd, self._timeout, out
                ),
            )
            data = json.loads(raw)
            if data.get("errcode"):
                raise ArchiveError(int(data["errcode"]), str(data.get("errmsg", "")), api="GetChatData")
            records: list[ArchiveRecord] = []
            next_seq, bad = seq, 0
            for item in data.get("chatdata") or ():
                item_seq = int(item["seq"])
                next_seq = max(next_seq, item_seq)
                try:
                    key = decrypt_random_key(self._private_key, str(item["encrypt_random_key"]))
                    plain = self._call_with_slice(
                        "DecryptData",
                        lambda out, k=key, m=str(item["encrypt_chat_msg"]): self._lib.DecryptData(
                            k.encode(), m.encode(), out
                        ),
                    )
                    message = json.loads(plain)
                except (ValueError, KeyError, ArchiveError) as exc:
                    # A key of another publickey_ver, or a corrupt item: counted and logged, not a
                    # reason to stop every later message.
                    bad += 1
                    _LOGGER.warning(
                        "archive message not decryptable",
                        extra={"seq": item_seq, "msgid": item.get("msgid", ""), "error": str(exc)},
                    )
                    continue
                records.append(ArchiveRecord(item_seq, str(item.get("msgid", "")), message))
            return ArchivePage(records, next_seq, bad)

    def _call_with_slice(self, name: str, call: Any) -> str:
        out = self._lib.NewSlice()
        try:
            rc = call(out)
            if rc != 0:
                raise ArchiveError(int(rc), f"{name} returned {rc}", api=name)
            length = self._lib.GetSliceLen(out)
            pointer = self._lib.GetContentFromSlice(out)
            return ctypes.string_at(pointer, length).decode("utf-8") if pointer and length > 0 else ""
        finally:
            self._lib.FreeSlice(out)

    async def close(self) -> None:
        with self._lock:
            if self._sdk is not None:
                self._lib.DestroySdk(self._sdk)
                self._sdk = None


def _load_sdk(library: str) -> ctypes.CDLL:
    """Load the SDK and declare its C signatures (WeWorkFinanceSdk_C.h)."""
    try:
        lib = ctypes.CDLL(library)
    except OSError as exc:
        raise errors.ConfigError(f"cannot load the Finance SDK {library!r}: {exc}") from exc
    c = ctypes
    lib.NewSdk.restype, lib.NewSdk.argtypes = c.c_void_p, []
    lib.Init.restype, lib.Init.argtypes = c.c_int, [c.c_void_p, c.c_char_p, c.c_char_p]
    lib.GetChatData.restype = c.c_int
    lib.GetChatData.argtypes = [
        c.c_void_p,
        c.c_uint64,
        c.c_uint32,
        c.c_char_p,
        c.c_char_p,
        c.c_int,
        c.c_void_p,
    ]
    lib.DecryptData.restype, lib.DecryptData.argtypes = c.c_int, [c.c_char_p, c.c_char_p, c.c_void_p]
    lib.NewSlice.restype, lib.NewSlice.argtypes = c.c_void_p, []
    lib.FreeSlice.restype, lib.FreeSlice.argtypes = None, [c.c_void_p]
    lib.GetContentFromSlice.restype, lib.GetContentFromSlice.argtypes = c.c_void_p, [c.c_void_p]
    lib.GetSliceLen.restype, lib.GetSliceLen.argtypes = c.c_int, [c.c_void_p]
    lib.DestroySdk.restype, lib.DestroySdk.argtypes = None, [c.c_void_p]
    return lib
