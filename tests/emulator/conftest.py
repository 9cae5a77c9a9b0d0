"""Fixtures: an httpx client pointed at the session's emulator."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tokenhub_emulator import TokenHubEmulator


@pytest.fixture(scope="session")
def _http_session(tokenhub_emulator_session: TokenHubEmulator) -> Iterator[httpx.Client]:
    # One client for the session: building an httpx client (its TLS context) costs ~0.1 s.
    with httpx.Client(
        base_url=tokenhub_emulator_session.base_url,
        headers={"Authorization": f"Bearer {tokenhub_emulator_session.api_key}"},
        timeout=10,
    ) as client:
        yield client


@pytest.fixture
def http(tokenhub_emulator: TokenHubEmulator, _http_session: httpx.Client) -> httpx.Client:
    """A plain httpx client with the (freshly reset) emulator's base URL and key."""
    return _http_session
