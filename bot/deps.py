"""What handlers may read: given to every handler, built once per app."""

from __future__ import annotations

from dataclasses import dataclass

from bot.clock import Clock
from bot.config import Settings


@dataclass(frozen=True)
class Deps:
    """Handler dependencies: the clock and the settings (readers join as features need them)."""

    clock: Clock
    settings: Settings
