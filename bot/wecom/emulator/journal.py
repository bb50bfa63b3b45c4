"""The call journal (every /cgi-bin call, secrets masked) and scripted faults."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

# Query parameters whose values never reach the journal.
MASKED_PARAMS = frozenset({"access_token", "corpsecret"})


def mask_query(query: Mapping[str, str]) -> dict[str, str]:
    """The query as a dict with credentials replaced by "***"."""
    return {k: ("***" if k in MASKED_PARAMS else v) for k, v in query.items()}


def normalize_path(path: str) -> str:
    """ "/cgi-bin/kf/sync_msg", "kf/sync_msg" and "/kf/sync_msg" all name the same API."""
    path = path.strip()
    if path.startswith("/cgi-bin/"):
        return path
    return "/cgi-bin/" + path.lstrip("/")


@dataclass
class Fault:
    """A scripted answer for the next `count` calls to `path`."""

    path: str
    errcode: int | None = None
    timeout: bool = False
    delay_seconds: float = 0.0
    http_status: int | None = None
    count: int = 1

    def as_dict(self) -> dict[str, Any]:
        """JSON form for GET /emulator/faults."""
        return asdict(self)


class FaultBook:
    """Pending faults, consumed first-in first-out per path."""

    def __init__(self) -> None:
        self.pending: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        """Queue `fault` (its path normalised)."""
        if fault.count < 1:
            raise ValueError("count must be >= 1")
        if fault.errcode is None and not fault.timeout and fault.http_status is None:
            raise ValueError("a fault needs errcode, timeout or http_status")
        fault.path = normalize_path(fault.path)
        self.pending.append(fault)
        return fault

    def take(self, path: str) -> Fault | None:
        """The fault for this call, if any; decrements its count and drops it at zero."""
        for fault in self.pending:
            if fault.path == path:
                fault.count -= 1
                if fault.count <= 0:
                    self.pending.remove(fault)
                return fault
        return None

    def clear(self) -> None:
        """Drop every pending fault."""
        self.pending.clear()


class Journal:
    """Append-only list of call entries with a running sequence number."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self._seq = 0

    def record(
        self, *, method: str, path: str, query: Mapping[str, str], body: Any, errcode: int | None, at: float
    ) -> dict[str, Any]:
        """Append one entry and return it."""
        self._seq += 1
        entry = {
            "seq": self._seq,
            "method": method,
            "path": path,
            "query": mask_query(query),
            "body": body,
            "errcode": errcode,
            "at": at,
        }
        self.entries.append(entry)
        return entry

    def clear(self) -> None:
        """Forget every entry (sequence numbers keep counting)."""
        self.entries.clear()

    def calls(self, path_suffix: str) -> list[dict[str, Any]]:
        """Entries whose path ends with `path_suffix` (e.g. "kf/send_msg")."""
        return [e for e in self.entries if e["path"].endswith(path_suffix)]
