"""`make demo`: a LangGraph agent with two tools, a streamed LlamaIndex RAG answer, and their cost.

With ``TOKENHUB_API_KEY`` set it talks to TokenHub (real Claude, billed to that key; a few cents
at most). Without one it starts the local TokenHub emulator first, and says so in its first line:
the emulator's answers are canned, deterministic and start with ``[emulator]``. Either way the code
path is the same. Any failure exits non-zero.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenhub_core import DEFAULT_BASE_URL, CostMeter, TokenHubError, track_cost

if TYPE_CHECKING:
    from tokenhub_emulator import TokenHubEmulator

DATA_DIR = Path(__file__).resolve().parent.parent / "notebooks" / "data"
MAX_TOKENS = 400  # keeps a real run cheap

# The fictional cooperative of the sample documents in notebooks/data, as two tools' data.
CRATE_PRICES_USD = {"copperbell": 18.50, "duskwine": 22.00, "glimmerpip": 14.00}
HARVEST_MONTHS = {"copperbell": "late September", "duskwine": "mid October", "glimmerpip": "August"}


def crate_price(variety: str) -> str:
    """Price of a 20 kg crate of a Marrowfield apple variety (Copperbell, Duskwine, Glimmerpip)."""
    price = CRATE_PRICES_USD.get(variety.strip().lower())
    return f"{price:.2f} USD per crate" if price is not None else f"unknown variety {variety!r}"


def harvest_month(variety: str) -> str:
    """When a Marrowfield apple variety (Copperbell, Duskwine, Glimmerpip) is harvested."""
    return HARVEST_MONTHS.get(variety.strip().lower(), f"unknown variety {variety!r}")


def connect() -> TokenHubEmulator | None:
    """Use TokenHub when a key is set, else start the emulator; the first line says which."""
    if os.environ.get("TOKENHUB_API_KEY"):
        base_url = os.environ.get("TOKENHUB_BASE_URL") or DEFAULT_BASE_URL
        print(f"TOKENHUB_API_KEY is set: using TokenHub at {base_url}")
        return None
    from tokenhub_emulator import TokenHubEmulator

    emulator = TokenHubEmulator().start()
    os.environ["TOKENHUB_BASE_URL"] = emulator.base_url
    os.environ["TOKENHUB_API_KEY"] = emulator.api_key
    print(
        "No TOKENHUB_API_KEY set: running against the local TokenHub emulator, not a real model."
        " Its answers are canned and start with '[emulator]'."
    )
    return emulator


def run_agent() -> None:
    """A LangGraph agent (langchain.agents.create_agent) that answers with two tools."""
    from langchain.agents import create_agent
    from langchain_core.messages import AIMessage, ToolMessage

    from langchain_tokenhub import ChatTokenHub

    question = (
        "What is the crate price of Copperbell apples, and what is their harvest month? "
        "Use the crate_price and harvest_month tools."
    )
    agent = create_agent(
        ChatTokenHub(max_tokens=MAX_TOKENS),
        tools=[crate_price, harvest_month],
        system_prompt="You answer questions about the Marrowfield orchard cooperative, briefly.",
    )
    print(f"\n== 1. LangGraph agent with two tools (LangChain: ChatTokenHub)\nQ: {question}")
    for step in agent.stream({"messages": [("user", question)]}, stream_mode="updates"):
        for update in step.values():
            for message in update["messages"]:
                if isinstance(message, AIMessage) and message.tool_calls:
                    for call in message.tool_calls:
                        args = ", ".join(f"{k}={v!r}" for k, v in call["args"].items())
                        print(f"  tool call   -> {call['name']}({args})")
                elif isinstance(message, ToolMessage):
                    print(f"  tool result <- {message.name}: {message.content}")
                elif isinstance(message, AIMessage):
                    print(f"A: {message.text}")


def _file_name(path: str) -> dict[str, Any]:
    """Document metadata: the file name only (the default adds absolute paths to the prompt)."""
    return {"file_name": Path(path).name}


def run_rag() -> None:
    """A LlamaIndex query over notebooks/data/, with the answer printed as it streams."""
    from llama_index.core import SimpleDirectoryReader, VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding

    from llama_index_tokenhub import TokenHub

    print(f"\n== 2. LlamaIndex RAG over {DATA_DIR.parent.name}/{DATA_DIR.name}/ (TokenHub LLM)")
    documents = SimpleDirectoryReader(
        str(DATA_DIR), required_exts=[".md"], file_metadata=_file_name
    ).load_data()
    # MockEmbedding keeps the demo offline and download-free, but it cannot rank: every text
    # gets the same vector. So the query retrieves all the (short) documents. In production use
    # a real embedding model (e.g. HuggingFaceEmbedding or OpenAIEmbedding) and a smaller top-k.
    index = VectorStoreIndex.from_documents(documents, embed_model=MockEmbedding(embed_dim=8))
    print(
        f"Indexed {len(documents)} documents with MockEmbedding, an offline placeholder"
        " (production: a real embedding model)."
    )
    engine = index.as_query_engine(
        llm=TokenHub(max_tokens=MAX_TOKENS), streaming=True, similarity_top_k=len(documents)
    )
    question = "When is the Lantern Harvest festival held, and what happens there?"
    print(f"Q: {question}\nA: ", end="", flush=True)
    response = engine.query(question)
    chunks = 0
    for token in response.response_gen:  # type: ignore[union-attr]
        print(token, end="", flush=True)
        chunks += 1
    sources = ", ".join(node.metadata["file_name"] for node in response.source_nodes)
    print(f"\n(streamed in {chunks} chunks; sources: {sources})")


def print_cost(meter: CostMeter, emulator: TokenHubEmulator | None) -> None:
    """The whole run's calls, tokens and USD by model, from `track_cost()`."""
    print("\n== 3. Cost of this run (track_cost)")
    rows = [("model", "calls", "input tokens", "output tokens", "USD")]
    rows += [
        (model, str(s.calls), str(s.input_tokens), str(s.output_tokens), f"${s.cost:.6f}")
        for model, s in sorted(meter.by_model.items())
    ]
    rows.append(
        (
            "total",
            str(meter.calls),
            str(meter.input_tokens),
            str(meter.output_tokens),
            f"${meter.total:.6f}",
        )
    )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for model, *numbers in rows:
        cells = [model.ljust(widths[0])]
        cells += [n.rjust(w) for n, w in zip(numbers, widths[1:], strict=True)]
        print("  " + "  ".join(cells))
    if emulator is not None:
        ledger = emulator.ledger()
        print(
            f"The emulator billed {ledger.calls} calls, ${ledger.total_usd:.6f}"
            " (emulator prices follow the catalog; no real money)."
        )


def main() -> int:
    emulator = connect()
    try:
        with track_cost() as meter:
            run_agent()
            run_rag()
        print_cost(meter, emulator)
    except TokenHubError as exc:
        print(f"\ndemo failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        if emulator is not None:
            emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
