"""TokenHub for LangChain: ``from langchain_tokenhub import ChatTokenHub``."""

from langchain_tokenhub.chat_models import ChatTokenHub

__all__ = ["ChatTokenHub"]
