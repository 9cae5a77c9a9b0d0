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
        Ledger,
        LedgerEntry,
        RecordedRequest,
        Settings,
    )

__all__ = [
    "ControlError",
    "Ledger",
    "LedgerEntry",
    "RecordedRequest",
    "RemoteEmulator",
    "Settings",
    "TokenHubEmulator",
]

_STATE_NAMES = frozenset({"ControlError", "Ledger", "LedgerEntry", "RecordedRequest", "Settings"})


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
