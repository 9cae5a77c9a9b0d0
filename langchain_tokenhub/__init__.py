"""TokenHub for LangChain."""
