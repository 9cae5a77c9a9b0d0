"""TokenHub for LlamaIndex: ``from llama_index_tokenhub import TokenHub``."""

from llama_index_tokenhub.base import DEFAULT_CONTEXT_WINDOW, TokenHub

__all__ = ["DEFAULT_CONTEXT_WINDOW", "TokenHub"]
