"""The notebooks, executed with nbclient against the emulator they start themselves.

Each runs in a fresh ipykernel of this interpreter, with no TOKENHUB_* variable and the loopback
guard of `tests.e2e.offline`, so its connect cell takes the emulator branch. A second set of
checks reads the committed files: executed in order, from an emulator run, nothing of this machine.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell

from tests.e2e.offline import offline_env
from tokenhub_core import MODELS

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
NAMES = [
    "01_langchain_quickstart",
    "02_llamaindex_rag",
    "03_agents",
    "04_models_and_cost",
    "05_batch",
    "06_claude_features",
]
KERNEL = "tokenhub-test-python"
CELL_TIMEOUT_S = 60
EMULATOR_BANNER = "No TOKENHUB_API_KEY: using the local TokenHub emulator."
PROBE = "import socket, sys\nprint(sys.executable, socket.getaddrinfo.__module__)"
# Nothing of the machine that ran a notebook: paths, the emulator's address or its key.
MACHINE = re.compile(r"/work/|/tmp/|/home/|/root/|127\.0\.0\.1|localhost|th-emulator-")


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A kernelspec running ipykernel on this very interpreter, and the kernel's environment."""
    root = tmp_path_factory.mktemp("kernel")
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "tokenhub tests", "language": "python"})
    )
    return root / "kernels", offline_env(root)


def _execute(name: str, kernel: tuple[Path, dict[str, str]]) -> NotebookNode:
    kernel_dir, env = kernel
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    manager = AsyncKernelManager(
        kernel_name=KERNEL, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel_dir)])
    )
    client = NotebookClient(
        nb,
        km=manager,
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
        coalesce_streams=False,  # keep one output per flush, to see streaming
    )
    # A last cell, run and removed: the kernel is this interpreter, with the loopback guard on.
    nb.cells.append(new_code_cell(PROBE))
    client.execute(env=env, cleanup_kc=True)  # shut the kernel down although we made its manager
    probe = nb.cells.pop()
    assert _stdout(probe).split() == [sys.executable, "sitecustomize"]
    return nb


def _code_cells(nb: NotebookNode) -> list[NotebookNode]:
    return [c for c in nb.cells if c.cell_type == "code"]


def _cell(nb: NotebookNode, snippet: str) -> NotebookNode:
    """The code cell whose source is, or else is the one to contain, ``snippet``."""
    cells = _code_cells(nb)
    [cell] = [c for c in cells if c.source == snippet] or [c for c in cells if snippet in c.source]
    return cell


def _stdout(cell: NotebookNode) -> str:
    return "".join(o.text for o in cell.outputs if o.output_type == "stream")


def _data(cell: NotebookNode, mime: str) -> list[str]:
    return [o.data[mime] for o in cell.outputs if mime in o.get("data", {})]


def _check_streamed(cell: NotebookNode, starts: str) -> None:
    pieces = [o.text for o in cell.outputs if o.output_type == "stream"]
    assert len(pieces) > 5, "tokens are printed as they arrive, not at the end"
    assert "".join(pieces).startswith(starts)


def _check_meter(html: str, models: dict[str, int]) -> None:
    assert html.startswith("<table>")
    for model, calls in models.items():
        assert f"<td><code>{model}</code></td><td>{calls}</td>" in html
    total = re.search(r"<th>total</th><th>(\d+)</th>.*?<th>\$(\d+\.\d+)</th>", html)
    assert total is not None
    assert int(total[1]) == sum(models.values()) and float(total[2]) > 0


def _quickstart(nb: NotebookNode) -> None:
    assert _stdout(_cell(nb, "heritage apple")).startswith("[emulator] You said: In one sentence")
    _check_streamed(_cell(nb, "llm.stream("), "[emulator] You said: Name three things")
    assert _stdout(_cell(nb, "llm.batch(")).count("A: [emulator] You said:") == 3
    tools = _stdout(_cell(nb, "bind_tools("))
    assert "tool call: crate_price({'variety': 'Duskwine'}) -> 22.00 USD per crate" in tools
    assert "[emulator] Tool results: crate_price returned 22.00 USD per crate" in tools
    [facts] = _data(_cell(nb, "with_structured_output("), "text/plain")
    assert (
        facts == "AppleFacts(variety='Copperbell', harvest='late September', good_for_cider=True)"
    )
    image = _cell(nb, '"type": "image"')
    assert len(_data(image, "image/png")) == 1
    assert "[1 image: 1 base64 image/png]" in _stdout(image)
    cost = _cell(nb, "with track_cost() as meter:")
    assert "'input_tokens':" in _stdout(cost) and "claude-haiku-4-5: $0.0000" in _stdout(cost)
    [html] = _data(cost, "text/html")
    _check_meter(html, {"anthropic/claude-haiku-4-5": 1, "anthropic/claude-sonnet-4-6": 1})


def _rag(nb: NotebookNode) -> None:
    files = "['about.md', 'cider_rules.md', 'lantern_festival.md', 'varieties.md']"
    assert _stdout(_cell(nb, "SimpleDirectoryReader(")).strip() == files
    query = _cell(nb, "as_query_engine(streaming=True")
    # Answers come from the documents' sentences, not from a quote of the prompt.
    _check_streamed(query, "[emulator] The Lantern Harvest is Marrowfield's autumn festival.")
    assert "first Saturday of October" in _stdout(query)
    assert "sources: " in _stdout(query) and "lantern_festival.md" in _stdout(query)
    chat = _stdout(_cell(nb, "as_chat_engine("))
    assert "Only Copperbell and Duskwine apples may be pressed." in chat
    assert "fermented in oak barrels in the packing house cellar for at least five months" in chat
    assert "You said" not in chat
    [variety] = _data(_cell(nb, "structured_predict("), "text/plain")
    assert variety == "Variety(name='Duskwine', harvest='mid October', crate_price_usd=22.0)"
    [html] = _data(_cell(nb, "with track_cost() as meter:"), "text/html")
    _check_meter(html, {"anthropic/claude-sonnet-4-6": 1})


def _agents(nb: NotebookNode) -> None:
    langgraph = _stdout(_cell(nb, "create_agent("))
    for line in (
        "[model] call crate_price({'variety': 'Copperbell'})",
        "[model] call harvest_month({'variety': 'Copperbell'})",
        "[tools] crate_price returned '18.50 USD per crate'",
        "[tools] harvest_month returned 'late September'",
        "[model] answer: [emulator] Tool results: crate_price returned 18.50 USD per crate;",
    ):
        assert line in langgraph
    llamaindex = _stdout(_cell(nb, "FunctionAgent("))
    for line in (
        "call crate_price({'variety': 'Copperbell'})",
        "call harvest_month({'variety': 'Copperbell'})",
        "crate_price returned '18.50 USD per crate'",
        "harvest_month returned 'late September'",
        "answer: [emulator] Tool results: crate_price returned 18.50 USD per crate;",
    ):
        assert line in llamaindex
    for meter in ("langgraph_cost", "llamaindex_cost"):
        [html] = _data(_cell(nb, meter), "text/html")  # the cell that only shows the meter
        _check_meter(html, {"anthropic/claude-sonnet-4-6": 2})


def _models_and_cost(nb: NotebookNode) -> None:
    [catalog] = _data(_cell(nb, "MODELS\n"), "text/html")
    assert all(f"<code>{model_id}</code>" in catalog for model_id in MODELS)
    [workload] = _data(_cell(nb, "workload = ["), "text/html")
    _check_meter(workload, {"anthropic/claude-sonnet-4-6": 3})
    chart = _cell(nb, "plt.subplots(")
    assert len(_data(chart, "image/png")) == 1
    budget = _cell(nb, "track_cost(budget_usd=")
    stopped = re.search(
        r"stopped after (\d+) calls: budget of \$0\.005 would be exceeded", _stdout(budget)
    )
    assert stopped is not None and int(stopped[1]) > 1
    [html] = _data(budget, "text/html")
    _check_meter(html, {"anthropic/claude-haiku-4-5": int(stopped[1])})
    spent = re.search(r"<th>total</th>.*?<th>\$(\d+\.\d+)</th>", html)
    assert spent is not None and 0 < float(spent[1]) <= 0.005
    assert "<p>budget: $0.005 </p>" in html


def _batch(nb: NotebookNode) -> None:
    run = _stdout(_cell(nb, "summary = await arun_batch("))
    assert run.startswith("300 answered, 0 failed, 0 skipped (already in the output), 0 not sent")
    assert "anthropic/claude-haiku-4-5: 300 calls" in run
    answers = _stdout(_cell(nb, "answers = {}"))
    assert answers.startswith("300 answers\nticket-0: '[emulator] You said: Ticket 0:")
    [tally] = _data(_cell(nb, "summary.cost"), "text/html")
    _check_meter(tally, {"anthropic/claude-haiku-4-5": 300})
    assert len(_data(_cell(nb, "plt.subplots("), "image/png")) == 1
    assert _stdout(_cell(nb, "again = await arun_batch(")) == "300 skipped, 0 sent\n"
    partial = _stdout(_cell(nb, "budget_usd=0.005"))
    assert "stopped early: the budget is spent" in partial
    spent = re.search(r"spent \$(\d+\.\d+) of \$0\.005; (\d+) rows saved", partial)
    assert spent is not None and 0 < float(spent[1]) <= 0.005
    assert f"{spent[2]} answered, 0 failed" in partial and int(spent[2]) < 300
    [langchain] = _data(_cell(nb, "abatch("), "text/html")
    _check_meter(langchain, {"anthropic/claude-haiku-4-5": 20})
    assert _stdout(_cell(nb, "abatch(")).startswith("20 replies; [emulator]")
    [llamaindex] = _data(_cell(nb, "IngestionPipeline("), "text/html")
    _check_meter(llamaindex, {"anthropic/claude-haiku-4-5": 20})
    assert _stdout(_cell(nb, "IngestionPipeline(")).startswith("20 nodes; [emulator]")


def _claude_features(nb: NotebookNode) -> None:
    turns = _stdout(_cell(nb, "reply = llm.invoke(history)")).splitlines()
    written = re.fullmatch(
        r"turn 1: ([\d,]+) input tokens \(([\d,]+) written to the cache, 0 read from it\), \d+ output",
        turns[0],
    )
    assert written is not None and int(written[2].replace(",", "")) > 1024, turns[0]
    cached = written[2]
    for n, line in enumerate(turns[1:6], start=2):  # every later turn reads the handbook back
        assert line.startswith(f"turn {n}: ") and f"(0 written to the cache, {cached} read" in line
    assert turns[6].startswith("last answer: [emulator] You said: When is the Lantern Harvest")
    meter = _cell(nb, "conversation_cost.cache_saved_usd")
    saved = re.search(r"saved \$(\d+\.\d+)", _stdout(meter))
    assert saved is not None and float(saved[1]) > 0
    [html] = _data(meter, "text/html")
    _check_meter(html, {"anthropic/claude-sonnet-4-6": 6})
    chart = _cell(nb, "plt.subplots(")
    assert len(_data(chart, "image/png")) == 1
    less = re.search(
        r"6 turns: \$[\d.]+ with caching, \$[\d.]+ without \((\d+)% less\)", _stdout(chart)
    )
    assert less is not None and int(less[1]) > 50
    llamaindex = _stdout(_cell(nb, "li_llm.chat(li_history)")).splitlines()
    assert len(llamaindex) == 4 and all(
        f" {cached} read from the cache" in x for x in llamaindex[:3]
    )
    streamed = _cell(nb, "thinker.stream(")
    _check_streamed(streamed, '\n[thinking] The user asks: "A crate holds 20 kg.')
    assert "\n[answer] [emulator] You said: A crate holds 20 kg." in _stdout(streamed)
    assert _stdout(_cell(nb, "temperature=0.2")).startswith(
        "InvalidParameterError: invalid temperature=0.2"
    )
    carried = _stdout(_cell(nb, "li_thinker.chat(chat)"))
    assert carried.startswith("1 thinking block(s); the first begins: 'The user asks:")
    assert "next turn: [emulator] You said: And for 2,000 kg?" in carried
    assert "bytes, starts b'%PDF-1.4'" in _stdout(_cell(nb, "one_page_pdf(\n"))
    for snippet, label in (
        ("answer = llm.invoke([message])", "PDF"),
        ("DocumentBlock(", 'PDF "Price list"'),
    ):
        answer = _stdout(_cell(nb, snippet))
        assert "Duskwine: 22.00 USD per 20 kg crate" in answer  # read out of the PDF
        assert f"[1 document: {label}, 1 page]" in answer
    refused = _stdout(_cell(nb, 'ChatTokenHub(model="claude-sonnet-4-6").invoke([message])'))
    assert refused.startswith("InvalidParameterError:") and "use protocol='messages'" in refused


CHECKS: dict[str, Callable[[NotebookNode], None]] = {
    "01_langchain_quickstart": _quickstart,
    "02_llamaindex_rag": _rag,
    "03_agents": _agents,
    "04_models_and_cost": _models_and_cost,
    "05_batch": _batch,
    "06_claude_features": _claude_features,
}


def _check_clean_run(nb: NotebookNode) -> None:
    """Every code cell ran once, in order, without an error or a warning; the emulator answered."""
    cells = _code_cells(nb)
    assert [c.execution_count for c in cells] == list(range(1, len(cells) + 1))
    for cell in cells:
        for output in cell.outputs:
            assert output.output_type != "error", output
            assert output.get("name") != "stderr", output.text
            shown = json.dumps(
                {k: v for k, v in output.get("data", {}).items() if "image" not in k}
            )
            assert not MACHINE.search(shown + output.get("text", "")), output
    assert _stdout(cells[0]).startswith(EMULATOR_BANNER)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_against_the_emulator(name: str, kernel: tuple[Path, dict[str, str]]) -> None:
    nb = _execute(name, kernel)
    _check_clean_run(nb)
    CHECKS[name](nb)


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_holds_a_clean_emulator_run(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    _check_clean_run(nb)
    assert all(c.outputs for c in _code_cells(nb) if "print(" in c.source)


def test_every_notebook_opens_with_the_same_connect_cell() -> None:
    first = [_code_cells(nbformat.read(NOTEBOOKS / f"{n}.ipynb", as_version=4))[0] for n in NAMES]
    sources = {cell.source for cell in first}
    assert len(sources) == 1
    [source] = sources
    assert 'if os.environ.get("TOKENHUB_API_KEY"):' in source
    assert "TokenHubEmulator().start()" in source
    assert 'os.environ["TOKENHUB_BASE_URL"] = emulator.base_url' in source


def test_the_shipped_data_is_small_and_local() -> None:
    data = NOTEBOOKS / "data"
    documents = sorted(p.name for p in data.glob("*.md"))
    assert documents == ["about.md", "cider_rules.md", "lantern_festival.md", "varieties.md"]
    assert all(len((data / d).read_text().split()) < 300 for d in documents)
    png = (data / "copperbell.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) < 10_000
