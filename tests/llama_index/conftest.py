"""Fixtures for the LlamaIndex tests (defined in `fixtures`, shared with tests/e2e)."""

from tests.llama_index.fixtures import llama_settings, llm, make_llm, sync_loop

__all__ = ["llama_settings", "llm", "make_llm", "sync_loop"]
