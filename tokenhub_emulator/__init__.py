"""A local TokenHub server for offline development, demos and tests (the ``emulator`` extra).

``from tokenhub_emulator import TokenHubEmulator`` imports starlette and uvicorn; importing
this package alone does not, so the pytest plugin stays cheap where they are not installed.
`RemoteEmulator` (scripting an emulator in another process over HTTP) needs httpx only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tokenhub_emulator.control import RemoteEmulator
    from tokenhub_emulator.server import TokenHubEmulator
    from tokenhub_emulator.state import (
        ControlError,
        EmulatorSettings,
        Ledger,
        LedgerEntry,
        RecordedRequest,
    )

__all__ = [
    "ControlError",
    "EmulatorSettings",
    "Ledger",
    "LedgerEntry",
    "RecordedRequest",
    "RemoteEmulator",
    "TokenHubEmulator",
]

_STATE_NAMES = frozenset(
    {"ControlError", "Ledger", "LedgerEntry", "RecordedRequest", "EmulatorSettings"}
)


def __getattr__(name: str) -> Any:
    if name == "TokenHubEmulator":
        from tokenhub_emulator.server import TokenHubEmulator

        return TokenHubEmulator
    if name == "RemoteEmulator":
        from tokenhub_emulator.control import RemoteEmulator

        return RemoteEmulator
    if name in _STATE_NAMES:
        from tokenhub_emulator import state

        return getattr(state, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
