"""Leaving a stream half way, as a script does, in a fresh process: silent, closed, metered."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.offline import offline_env
from tokenhub_emulator import TokenHubEmulator

SCRIPT = r"""
import asyncio, sys
from tokenhub_core import TokenHubClient, track_cost

BASE, KEY, WHICH = sys.argv[1:4]
MESSAGES = [{"role": "user", "content": "hello " * 200}]


async def leave_early():
    if WHICH == "core":
        client = TokenHubClient(api_key=KEY, base_url=BASE)
        async for _ in client.astream(model="claude-haiku-4-5", messages=MESSAGES):
            break
    elif WHICH == "llama-index":
        from llama_index.core.base.llms.types import ChatMessage
        from llama_index_tokenhub import TokenHub

        llm = TokenHub(api_key=KEY, base_url=BASE, model="claude-haiku-4-5")
        async for _ in await llm.astream_chat([ChatMessage(role="user", content="hi " * 200)]):
            break
    else:
        from langchain_tokenhub import ChatTokenHub

        llm = ChatTokenHub(api_key=KEY, base_url=BASE, model="claude-haiku-4-5")
        async for _ in llm.astream("hi " * 200):
            break


with track_cost() as meter:
    asyncio.run(leave_early())
    print(f"calls={meter.calls} in_flight={meter.in_flight_usd}")
"""


@pytest.mark.parametrize("which", ["core", "llama-index", "langchain"])
def test_breaking_out_of_an_async_stream_inside_asyncio_run_is_silent(
    which: str, tokenhub_emulator: TokenHubEmulator, tmp_path: Path
) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-W",
            "always::ResourceWarning",
            "-c",
            SCRIPT,
            tokenhub_emulator.base_url,
            tokenhub_emulator.api_key,
            which,
        ],
        env=offline_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # No "aclose(): asynchronous generator is already running", no unclosed-resource warning.
    assert result.stderr == ""
    assert result.stdout.strip() == "calls=1 in_flight=0.0"
