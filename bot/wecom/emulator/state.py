"""EmulatorState: the corp's data, tokens, journal, faults, limits and the test hooks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bot.clock import Clock
from bot.config import Settings
from bot.wecom.emulator.api_token import TokenStore
from bot.wecom.emulator.common import ApiError
from bot.wecom.emulator.delivery import DeliveryMixin
from bot.wecom.emulator.journal import Fault, FaultBook, Journal, normalize_path
from bot.wecom.emulator.limits import RateLimiter
from bot.wecom.emulator.simulate import SimulateMixin
from bot.wecom.emulator.world import IdFactory, Media, World, demo_world


@dataclass
class EmulatorOptions:
    """Knobs for behaviour the doc leaves open (each UNCONFIRMED item is one field here)."""

    # §14.2: no dedicated errcode for a wrong HTTP method or an unparsable body.
    bad_json_errcode: int = 40035
    wrong_method_errcode: int = 40035
    # §1/§14.4: a token of another app on a foreign API is "invalid" (40014), per p/90313's note.
    foreign_token_errcode: int = 40014
    # §1: ~2000 failed gettoken calls/hour -> 1 h block (community report). None disables.
    gettoken_failure_limit_per_hour: int | None = 2000
    # §14.5: concurrent in-flight calls per API before 45033. None = unlimited.
    concurrency_limit: int | None = None
    # §5.3: contact ways + join ways created by API share 500,000 per corp.
    contact_way_quota: int = 500_000
    # §5.3 list_contact_way: the doc gives the defaults (last 90 days) but no cap on the span
    # between start_time and end_time (UNCONFIRMED). None = any span; a number of days -> 40035.
    list_contact_way_max_span_days: int | None = None
    # §5.2: deleting every tag of a group removes the group (UNCONFIRMED).
    delete_empty_tag_group: bool = True
    # §8.3 kf/send_msg msgid: a repeated msgid returns the original msgid without sending again.
    # UNCONFIRMED: the doc only says msgid is unique per account. "dedupe" | "error" (INVALID_PARAM).
    kf_duplicate_msgid: str = "dedupe"
    # §8.5: whether 0/1/2 -> 4 (end) is allowed by service_state/trans (UNCONFIRMED).
    kf_allow_end_from_unassigned: bool = False
    # §8.4: errcode for an unknown/expired/used send_msg_on_event code (not documented).
    kf_event_code_errcode: int = 40035
    # §2.6: retry interval between callback attempts (undocumented; 0 = immediately).
    callback_retry_interval_seconds: float = 0.0
    # §2.6: legacy wording also retried on non-200 answers.
    callback_retry_on_non_200: bool = False
    # §2.6: whether a retry re-signs with a new timestamp/nonce (UNCONFIRMED; default identical).
    callback_resign_on_retry: bool = False
    # §2.2: AgentID in the envelope of customer-contact/kf events may be empty (UNCONFIRMED).
    empty_agent_id_for_system_events: bool = False
    # §4.1: a console welcome message suppresses WelcomeCode (per member userid).
    console_welcome_for: set[str] = field(default_factory=set)
    # §7: per-recipient mass-send cap, counted at delivery: "monthly_days" (current doc: as many per
    # natural month as the month has days), "4_per_month" (earlier doc), "7_per_week", "1_per_day".
    groupmsg_cap_policy: str = "monthly_days"
    # §7: 41063 "still being dispatched" for get_groupmsg_task/send_result this many seconds after
    # creation. The doc names the code but not the delay (UNCONFIRMED); 0 turns it off.
    groupmsg_dispatch_seconds: float = 0.0


class EmulatorState(DeliveryMixin, SimulateMixin):
    """In-memory fake WeCom corp; `app[EMULATOR_STATE]` of the emulator application."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        session: aiohttp.ClientSession | None = None,
        *,
        seed: int | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.session = session
        self.owns_session = False
        self.options = EmulatorOptions()
        self.ids = IdFactory(seed)
        self.world: World = demo_world(int(clock.timestamp()))
        self.tokens = TokenStore()
        self.journal_book = Journal()
        self.faults = FaultBook()
        self.limiter = RateLimiter()
        self.in_flight: dict[str, int] = {}
        self.callback_base_url: str = settings.emulator.callback_base_url
        self.callbacks: list[dict[str, Any]] = []
        self.contact_way_quota_used = 0

    # -- journal ----------------------------------------------------------------------------------

    @property
    def journal(self) -> list[dict[str, Any]]:
        """Every /cgi-bin call so far, oldest first."""
        return self.journal_book.entries

    def clear_journal(self) -> None:
        """Forget the recorded calls."""
        self.journal_book.clear()

    def calls(self, path_suffix: str) -> list[dict[str, Any]]:
        """Journal entries whose path ends with `path_suffix`."""
        return self.journal_book.calls(path_suffix)

    # -- faults and limits -----------------------------------------------------------------------

    def add_fault(
        self,
        path: str,
        *,
        errcode: int | None = None,
        timeout: bool = False,
        http_status: int | None = None,
        count: int = 1,
        delay_seconds: float | None = None,
    ) -> Fault:
        """Answer the next `count` calls to `path` with an errcode, a held response or an HTTP status."""
        if timeout and delay_seconds is None:
            delay_seconds = self.settings.wecom.timeout_seconds + 1.0
        fault = Fault(
            path=path,
            errcode=errcode,
            timeout=timeout,
            delay_seconds=delay_seconds or 0.0,
            http_status=http_status,
            count=count,
        )
        return self.faults.add(fault)

    def clear_faults(self) -> None:
        """Drop every pending fault."""
        self.faults.clear()

    def set_rate_limit(self, path: str | None, per_minute: int) -> None:
        """Per-minute limit for one API path (or the default for all when `path` is None)."""
        if path is None:
            self.limiter.per_minute = per_minute
        else:
            self.limiter.overrides[normalize_path(path)] = per_minute

    # -- token hooks -----------------------------------------------------------------------------

    def revoke_token(self, app: str, *, errcode: int = 40014) -> str | None:
        """Invalidate the app's live token early; later calls with it answer `errcode` (40014/42001)."""
        return self.tokens.revoke(app, errcode)

    def rotate_token(self, app: str) -> None:
        """Make the next gettoken for `app` issue a fresh token (the old one lives until expiry)."""
        self.tokens.rotate(app)

    def current_token(self, app: str) -> str | None:
        """The app's live token value, if one was issued."""
        token = self.tokens.current.get(app)
        return token.value if token else None

    # -- welcome-code hooks ----------------------------------------------------------------------

    def hold_welcome_code(self, code: str) -> None:
        """Mark a WelcomeCode as being sent by another app (callers get 41096 until released)."""
        self._welcome(code).status = "in_flight"

    def release_welcome_code(self, code: str, *, delivered: bool) -> None:
        """End the in-flight hold: delivered -> used (41051 afterwards), else usable again."""
        self._welcome(code).status = "used" if delivered else "fresh"

    def _welcome(self, code: str) -> Any:
        try:
            return self.world.welcome_codes[code]
        except KeyError:
            raise KeyError(f"unknown welcome code {code!r}") from None

    # -- media -----------------------------------------------------------------------------------

    def add_media(self, type_: str = "image", *, size: int = 1024, filename: str = "demo.jpg") -> str:
        """Create a temp media item directly (as if uploaded now) and return its media_id."""
        media = Media(
            media_id=self.new_media_id(),
            type=type_,
            created_at=int(self.clock.timestamp()),
            size=size,
            filename=filename,
        )
        self.world.media[media.media_id] = media
        return media.media_id

    def new_media_id(self) -> str:
        return "3" + self.ids.text(63)

    def check_media(self, media_id: Any) -> None:
        """ApiError 40007 unless `media_id` is a temp media item younger than 3 days."""
        media = self.world.media.get(media_id) if isinstance(media_id, str) else None
        if media is None or self.clock.timestamp() - media.created_at >= 3 * 86400:
            raise ApiError(40007, str(media_id))
