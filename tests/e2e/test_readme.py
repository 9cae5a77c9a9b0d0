"""README.md as a test: every ```python block runs against the emulator, and what it shows is true.

Fences other than ``python`` are ``bash`` (the two commands, install lines, the CLI), ``console``
(a shell session with its output) and ``text`` (the error tree, the layout): none is Python, so
none is executed. A ``def test_...(tokenhub_emulator)`` in a block is run with the fixture, as
pytest would run it in a user's project.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Iterator
from importlib.metadata import metadata
from pathlib import Path
from typing import Any

import pytest
from llama_index.core import Settings

from langchain_tokenhub import ChatTokenHub
from llama_index_tokenhub import TokenHub
from tokenhub_core import DEFAULT_BASE_URL, DEFAULT_MODEL, TokenHubClient
from tokenhub_core.params import DEFAULT_MAX_TOKENS
from tokenhub_emulator import TokenHubEmulator

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
KINDS = {"python", "bash", "console", "text"}

# What a block must print, keyed by a snippet that identifies the block.
EXPECTED = {
    'llm.invoke("Explain the CAP theorem': ["[emulator] You said: Explain the CAP theorem"],
    "create_agent(ChatTokenHub()": ["[emulator] Tool results: get_weather returned Sunny"],
    "VectorStoreIndex.from_documents(docs)": [
        "[emulator] TokenHub serves Claude models through one OpenAI-compatible endpoint."
    ],
    "client.stream(": ["[emulator] You said: Name three sorting algorithms."],
    "track_cost(budget_usd=": ["budget of $0.005 would be exceeded", "anthropic/claude-haiku-4-5"],
    "top_p=0.9,": ["invalid top_p=0.9: set temperature or top_p, not both (temperature=0.5)"],
    "with TokenHubEmulator() as emu:": ["[emulator] You said: Hello!", "Paris.", "[200, 429, 200]"],
    'TokenHubClient(protocol="messages")': ["written: 0 read: ", "cache_saved_usd="],
    'HumanMessage("Who approves exceptions?")': [
        "{'cache_creation': 2603, 'cache_read': 0}",
        "{'cache_creation': 0, 'cache_read': 2603}",
    ],
    'extra["cache_creation_input_tokens"]': ["2603 0 0.00998925", "0 2603 0.0010059"],
    "summary = run_batch(": [
        "2 answered, 0 failed, 0 skipped",
        "anthropic/claude-haiku-4-5: 2 calls",
    ],
}


def _blocks() -> list[tuple[str, str, int]]:
    """(info string, code, line number) of every fenced block."""
    return [
        (m[1].strip(), m[2], README.count("\n", 0, m.start()) + 1) for m in FENCE.finditer(README)
    ]


PYTHON = [(code, line) for kind, code, line in _blocks() if kind == "python"]


@pytest.fixture
def llama_globals() -> Iterator[None]:
    """A README block sets LlamaIndex's global ``Settings``; put them back afterwards.

    Also gives llama-index's sync paths a current event loop, closed afterwards (otherwise
    ``asyncio.get_event_loop()`` inside them makes one nobody closes).
    """
    slots = ("_llm", "_embed_model", "_callback_manager", "_tokenizer", "_node_parser")
    saved = {slot: getattr(Settings, slot) for slot in slots}
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        yield
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        asyncio.set_event_loop(None)
        for slot, value in saved.items():
            setattr(Settings, slot, value)


def test_every_block_is_of_a_known_kind() -> None:
    kinds = [kind for kind, _, _ in _blocks()]
    assert set(kinds) <= KINDS, "a new fence kind would escape this test: use python if it is code"
    assert kinds.count("python") == len(PYTHON) >= 8


@pytest.mark.parametrize(("code", "line"), PYTHON, ids=[f"line-{line}" for _, line in PYTHON])
def test_python_block_runs_against_the_emulator(
    code: str,
    line: int,
    tokenhub_emulator: TokenHubEmulator,
    llama_globals: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    namespace: dict[str, Any] = {"__name__": f"readme_line_{line}"}
    exec(compile(code, f"README.md, block at line {line}", "exec"), namespace)
    tests = [f for name, f in namespace.items() if name.startswith("test_") and callable(f)]
    for test in tests:
        assert list(inspect.signature(test).parameters) == ["tokenhub_emulator"]
        tokenhub_emulator.reset()
        test(tokenhub_emulator)
    out = capsys.readouterr().out
    expected = [text for key, texts in EXPECTED.items() if key in code for text in texts]
    assert expected or tests, "say in EXPECTED what this block shows"
    for text in expected:
        assert text in out


def test_the_two_commands_come_first() -> None:
    kind, code, _ = _blocks()[0]
    assert kind == "bash"
    assert code.splitlines()[0].startswith("make demo")
    assert code.splitlines()[1].startswith("make test")


def test_install_lines_name_real_extras() -> None:
    extras = set(metadata("tokenhub-integrations").get_all("Provides-Extra") or [])
    named = set(re.findall(r'pip install "tokenhub-integrations\[([\w-]+)\]"', README))
    assert named == {"langchain", "llama-index", "emulator", "all", "ray"}
    assert named <= extras


def test_the_configuration_table_tells_the_defaults() -> None:
    rows = {
        line.split("|")[1].strip(): line for line in README.splitlines() if line.startswith("|")
    }
    assert "`TOKENHUB_API_KEY`" in rows["API key"]
    assert f"`{DEFAULT_BASE_URL}`" in rows["base URL"] and "`TOKENHUB_BASE_URL`" in rows["base URL"]
    assert f"`{DEFAULT_MODEL}`" in rows["model"]
    assert rows["max output tokens"].rstrip(" |").endswith(str(DEFAULT_MAX_TOKENS))
    defaults = inspect.signature(TokenHubClient).parameters
    assert (
        rows["timeout (seconds to connect, and for each read)"]
        .rstrip(" |")
        .endswith(f"{defaults['timeout'].default:g}")
    )
    assert (
        rows["deadline (seconds one attempt may take in all)"]
        .rstrip(" |")
        .endswith(f"{defaults['deadline'].default:g}")
    )
    assert (
        rows["retries (429, 5xx, connection errors)"]
        .rstrip(" |")
        .endswith(str(defaults["max_retries"].default))
    )
    for adapter in (ChatTokenHub(), TokenHub()):
        assert (adapter.model, adapter.max_tokens) == (DEFAULT_MODEL, DEFAULT_MAX_TOKENS)
        assert (adapter.timeout, adapter.max_retries, adapter.deadline) == (60, 2, 300)


def test_the_feature_table_cites_tests_that_exist() -> None:
    proofs = README[README.index("<!-- Proofs") : README.index("-->", README.index("<!-- Proofs"))]
    cited = re.findall(r"(tests/[\w/]+\.py)::(\w+)", proofs)
    rows = re.findall(r"^(\d+)\. ", proofs, re.MULTILINE)
    table = README[README.index("| | `ChatTokenHub` / `TokenHub`") :].split("\n\n")[0]
    assert len(rows) == len(table.splitlines()) - 2  # one proof entry per row
    assert len(cited) >= len(rows)
    for path, name in cited:
        source = (ROOT / path).read_text()
        assert re.search(rf"^(async )?def {name}\(", source, re.MULTILINE), f"{path}::{name}"


def test_notebook_links_point_at_the_notebooks() -> None:
    links = set(re.findall(r"\]\((notebooks/[\w./]+)\)", README))
    notebooks = {f"notebooks/{p.name}" for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert notebooks and notebooks <= links
    assert all((ROOT / link).exists() for link in links)
