"""TokenHub for LlamaIndex."""
