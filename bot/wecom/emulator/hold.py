"""The emulator's only wait: holding a response or a callback retry for a configured time."""

from __future__ import annotations

import asyncio


async def hold(seconds: float) -> None:
    """Wait `seconds` of real time (no-op for 0)."""
    if seconds > 0:
        # Allowed wait (TID251): a timeout fault must hold the HTTP response in real time so the client's own
        # timeout fires; a FrozenClock cannot make a socket time out. Nothing else in the emulator waits.
        await asyncio.sleep(seconds)  # noqa: TID251
