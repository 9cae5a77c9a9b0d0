"""pytest plugin (entry point ``pytest11``): the ``tokenhub_emulator`` fixture.

One emulator server runs per test session; each test gets it reset, with ``TOKENHUB_API_KEY`` and
``TOKENHUB_BASE_URL`` pointing at it, so clients built without arguments talk to the emulator.
Starlette and uvicorn are imported only when a test asks for the fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tokenhub_emulator.server import TokenHubEmulator


@pytest.fixture(scope="session")
def tokenhub_emulator_session() -> Iterator[TokenHubEmulator]:
    """The session's emulator server, shared and not reset between tests."""
    try:
        from tokenhub_emulator.server import TokenHubEmulator
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "the tokenhub_emulator fixture needs the emulator extra: "
            "pip install 'tokenhub-integrations[emulator]'"
        ) from exc
    with TokenHubEmulator() as emulator:
        yield emulator


@pytest.fixture
def tokenhub_emulator(
    tokenhub_emulator_session: TokenHubEmulator, monkeypatch: pytest.MonkeyPatch
) -> TokenHubEmulator:
    """A running, freshly reset emulator; the environment points TokenHub clients at it."""
    emulator = tokenhub_emulator_session
    emulator.reset()
    monkeypatch.setenv("TOKENHUB_API_KEY", emulator.api_key)
    monkeypatch.setenv("TOKENHUB_BASE_URL", emulator.base_url)
    return emulator
