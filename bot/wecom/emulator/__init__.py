"""Fake WeCom for tests and the demo: real paths, JSON shapes, limits and errcodes; faults on demand.

Modules: `app` (create_emulator), `dispatch` (/cgi-bin pipeline), `state` (EmulatorState + options),
`world` (corp data, demo seed), `journal` (call log, faults), `limits` (45009), `api_*` (one per API
family), `kf_model` (kf sessions/logs), `groupmsg_model` (mass-send tasks and caps), `payloads`
(callback XML/JSON), `delivery` (encrypted callbacks with retries), `simulate` (customer/staff
actions), `control` (/emulator/* endpoints), `hold` (the one wait).
"""

from bot.wecom.emulator.app import EMULATOR_STATE, create_emulator
from bot.wecom.emulator.state import EmulatorOptions, EmulatorState

__all__ = ["EMULATOR_STATE", "EmulatorOptions", "EmulatorState", "create_emulator"]
