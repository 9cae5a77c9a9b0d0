"""The frameworks alone: a LangChain chat model and a LlamaIndex LLM that answer with no I/O.

They do what any adapter must do and nothing else: one framework message per call, one framework
chunk per content delta (LlamaIndex's carrying the cumulative text, as its contract asks), usage
and finish metadata where the framework expects them. Their cost is the framework's own share of
a call or a chunk, which no adapter can remove; raw httpx plus this is the floor for an adapter.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from benchserver import Endpoint
from ops import (
    CALL_PROMPT,
    CONTEXT_WINDOW,
    MAX_TOKENS,
    MODEL,
    STREAM_PROMPT,
    AsyncOps,
    SyncOps,
)

__all__ = ["build_langchain_alone", "build_llamaindex_alone"]

_USAGE: Any = {"input_tokens": 10, "output_tokens": 8, "total_tokens": 18}


def _pieces(text: str) -> list[str]:
    """The text as the emulator streams it: each word with its leading space."""
    first, *rest = text.split(" ")
    return [first, *(" " + word for word in rest)]


def _langchain_model(short: Endpoint, long: Endpoint) -> Any:
    from langchain_core.callbacks import (
        AsyncCallbackManagerForLLMRun,
        CallbackManagerForLLMRun,
    )
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
    from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

    reply, pieces = short.text, _pieces(long.text)

    class CannedChatModel(BaseChatModel):
        """Answers every call with ``reply`` and every stream with ``pieces``."""

        @property
        def _llm_type(self) -> str:
            return "canned"

        def _generate(
            self,
            messages: list[BaseMessage],
            stop: list[str] | None = None,
            run_manager: CallbackManagerForLLMRun | None = None,
            **kwargs: Any,
        ) -> ChatResult:
            message = AIMessage(
                content=reply,
                usage_metadata=_USAGE,
                response_metadata={"model_name": MODEL, "finish_reason": "stop"},
                id="canned",
            )
            return ChatResult(generations=[ChatGeneration(message=message)])

        async def _agenerate(
            self,
            messages: list[BaseMessage],
            stop: list[str] | None = None,
            run_manager: AsyncCallbackManagerForLLMRun | None = None,
            **kwargs: Any,
        ) -> ChatResult:
            return self._generate(messages, stop, None, **kwargs)

        def _chunks(self) -> Iterator[ChatGenerationChunk]:
            for piece in pieces:
                yield ChatGenerationChunk(message=AIMessageChunk(content=piece, id="canned"))
            last = AIMessageChunk(
                content="",
                usage_metadata=_USAGE,
                response_metadata={"model_name": MODEL, "finish_reason": "stop"},
                id="canned",
                chunk_position="last",
            )
            yield ChatGenerationChunk(message=last)

        def _stream(
            self,
            messages: list[BaseMessage],
            stop: list[str] | None = None,
            run_manager: CallbackManagerForLLMRun | None = None,
            **kwargs: Any,
        ) -> Iterator[ChatGenerationChunk]:
            for chunk in self._chunks():
                if run_manager:
                    run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                yield chunk

        async def _astream(
            self,
            messages: list[BaseMessage],
            stop: list[str] | None = None,
            run_manager: AsyncCallbackManagerForLLMRun | None = None,
            **kwargs: Any,
        ) -> AsyncIterator[ChatGenerationChunk]:
            for chunk in self._chunks():
                if run_manager:
                    await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                yield chunk

    return CannedChatModel()


def build_langchain_alone(is_async: bool) -> Callable[[Endpoint, Endpoint], SyncOps | AsyncOps]:
    """Ops of the canned LangChain model (``invoke``/``stream`` or their async twins)."""

    def build(short: Endpoint, long: Endpoint) -> SyncOps | AsyncOps:
        from langchain_core.messages import HumanMessage

        model = _langchain_model(short, long)
        call_messages = [HumanMessage(CALL_PROMPT)]
        stream_messages = [HumanMessage(STREAM_PROMPT)]

        def text(message: Any) -> str:
            return str(message.content)

        def piece(chunk: Any) -> str | None:
            return chunk.content if isinstance(chunk.content, str) else None

        if not is_async:
            return SyncOps(
                lambda: model.invoke(call_messages),
                text,
                lambda: model.stream(stream_messages),
                piece,
            )

        async def call() -> Any:
            return await model.ainvoke(call_messages)

        async def open_stream() -> Any:
            return model.astream(stream_messages)

        return AsyncOps(call, text, open_stream, piece)

    return build


def _llamaindex_llm(short: Endpoint, long: Endpoint) -> Any:
    from llama_index.core.base.llms.types import (
        ChatMessage,
        ChatResponse,
        ChatResponseAsyncGen,
        ChatResponseGen,
        CompletionResponse,
        CompletionResponseAsyncGen,
        CompletionResponseGen,
        LLMMetadata,
        MessageRole,
    )
    from llama_index.core.llms.callbacks import llm_chat_callback
    from llama_index.core.llms.llm import LLM

    reply, pieces = short.text, _pieces(long.text)
    raw_usage = {"usage": {"prompt_tokens": 10, "completion_tokens": 8, "total_tokens": 18}}

    def responses() -> ChatResponseGen:
        text = ""
        for piece in pieces:
            text += piece
            message = ChatMessage(role=MessageRole.ASSISTANT, content=text)
            yield ChatResponse(message=message, delta=piece)
        message = ChatMessage(role=MessageRole.ASSISTANT, content=text)
        yield ChatResponse(message=message, delta="", raw=raw_usage)

    class CannedLLM(LLM):
        """Answers every chat with ``reply`` and every stream with ``pieces``."""

        @property
        def metadata(self) -> LLMMetadata:
            return LLMMetadata(
                context_window=CONTEXT_WINDOW,
                num_output=MAX_TOKENS,
                is_chat_model=True,
                is_function_calling_model=True,
                model_name=MODEL,
            )

        @llm_chat_callback()
        def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
            message = ChatMessage(role=MessageRole.ASSISTANT, content=reply)
            return ChatResponse(message=message, raw=raw_usage)

        @llm_chat_callback()
        def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
            return responses()

        @llm_chat_callback()
        async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
            message = ChatMessage(role=MessageRole.ASSISTANT, content=reply)
            return ChatResponse(message=message, raw=raw_usage)

        @llm_chat_callback()
        async def astream_chat(
            self, messages: Sequence[ChatMessage], **kwargs: Any
        ) -> ChatResponseAsyncGen:
            async def gen() -> ChatResponseAsyncGen:
                for response in responses():
                    yield response

            return gen()

        def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
            raise NotImplementedError

        def stream_complete(
            self, prompt: str, formatted: bool = False, **kwargs: Any
        ) -> CompletionResponseGen:
            raise NotImplementedError

        async def acomplete(
            self, prompt: str, formatted: bool = False, **kwargs: Any
        ) -> CompletionResponse:
            raise NotImplementedError

        async def astream_complete(
            self, prompt: str, formatted: bool = False, **kwargs: Any
        ) -> CompletionResponseAsyncGen:
            raise NotImplementedError

    return CannedLLM()


def build_llamaindex_alone(is_async: bool) -> Callable[[Endpoint, Endpoint], SyncOps | AsyncOps]:
    """Ops of the canned LlamaIndex LLM (``chat``/``stream_chat`` or their async twins)."""

    def build(short: Endpoint, long: Endpoint) -> SyncOps | AsyncOps:
        from llama_index.core.base.llms.types import ChatMessage

        llm = _llamaindex_llm(short, long)
        call_messages = [ChatMessage(role="user", content=CALL_PROMPT)]
        stream_messages = [ChatMessage(role="user", content=STREAM_PROMPT)]

        def text(response: Any) -> str:
            return str(response.message.content)

        def piece(response: Any) -> str | None:
            return response.delta  # type: ignore[no-any-return]

        if not is_async:
            return SyncOps(
                lambda: llm.chat(call_messages),
                text,
                lambda: llm.stream_chat(stream_messages),
                piece,
            )

        async def call() -> Any:
            return await llm.achat(call_messages)

        async def open_stream() -> Any:
            return await llm.astream_chat(stream_messages)

        return AsyncOps(call, text, open_stream, piece)

    return build
