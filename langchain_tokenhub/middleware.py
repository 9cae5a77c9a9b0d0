"""Prompt caching for LangChain agents (`create_agent`) on ChatTokenHub.

langchain-anthropic's ``AnthropicPromptCachingMiddleware`` applies only to ``ChatAnthropic``
instances (it checks the class) and skips any other model with a warning.
`TokenHubPromptCachingMiddleware` takes the same arguments and marks the same places, for
``ChatTokenHub``: the system prompt's last block, the last tool, and the conversation's tail
(the per-call ``cache_control`` keyword the model applies to the last block of the last
message). Needs the ``langchain`` package (``pip install langchain``).
"""

from __future__ import annotations

import warnings
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from langchain.agents.middleware.types import (
    AgentMiddleware,
    ModelCallResult,
    ModelRequest,
    ModelResponse,
)
from langchain_core.messages import SystemMessage
from langchain_core.tools import BaseTool

from langchain_tokenhub.chat_models import ChatTokenHub
from tokenhub_core.errors import InvalidParameterError

__all__ = ["TokenHubPromptCachingMiddleware"]


class TokenHubPromptCachingMiddleware(AgentMiddleware):
    """Cache an agent's stable prefix (system prompt, tools, the conversation so far).

    Example:
        ```python
        from langchain.agents import create_agent

        from langchain_tokenhub import ChatTokenHub
        from langchain_tokenhub.middleware import TokenHubPromptCachingMiddleware

        agent = create_agent(
            ChatTokenHub(protocol="messages"),
            tools=[...],
            system_prompt=LONG_RULES,
            middleware=[TokenHubPromptCachingMiddleware(ttl="1h")],
        )
        ```
    """

    def __init__(
        self,
        type: Literal["ephemeral"] = "ephemeral",
        ttl: Literal["5m", "1h"] = "5m",
        min_messages_to_cache: int = 0,
        unsupported_model_behavior: Literal["ignore", "warn", "raise"] = "warn",
    ) -> None:
        """Args (as ``AnthropicPromptCachingMiddleware``'s):
        type: only ``"ephemeral"``.
        ttl: ``"5m"`` or ``"1h"``.
        min_messages_to_cache: cache only from this many messages on (system prompt included).
        unsupported_model_behavior: for a model that is not a ChatTokenHub: ``"ignore"`` it,
            ``"warn"`` and go on uncached, or ``"raise"``.
        """
        if type != "ephemeral":
            raise InvalidParameterError("type", type, '"ephemeral"')
        if ttl not in ("5m", "1h"):
            raise InvalidParameterError("ttl", ttl, '"5m" or "1h"')
        if unsupported_model_behavior not in ("ignore", "warn", "raise"):
            raise InvalidParameterError(
                "unsupported_model_behavior",
                unsupported_model_behavior,
                '"ignore", "warn" or "raise"',
            )
        super().__init__()
        self.cache_control: dict[str, str] = {"type": type, "ttl": ttl}
        self.min_messages_to_cache = min_messages_to_cache
        self.unsupported_model_behavior = unsupported_model_behavior

    def _applies(self, request: ModelRequest) -> bool:
        if not isinstance(request.model, ChatTokenHub):
            message = (
                "TokenHubPromptCachingMiddleware caches ChatTokenHub calls, "
                f"not {type(request.model).__name__}'s"
            )
            if self.unsupported_model_behavior == "raise":
                raise ValueError(message)
            if self.unsupported_model_behavior == "warn":
                warnings.warn(message, stacklevel=3)
            return False
        count = len(request.messages) + (1 if request.system_message is not None else 0)
        return count >= self.min_messages_to_cache

    def _marked(self, request: ModelRequest) -> ModelRequest:
        changes: dict[str, Any] = {
            "model_settings": {**request.model_settings, "cache_control": self.cache_control}
        }
        if (system := _mark_system(request.system_message, self.cache_control)) is not None:
            changes["system_message"] = system
        if request.tools:
            changes["tools"] = [
                *request.tools[:-1],
                _mark_tool(request.tools[-1], self.cache_control),
            ]
        return request.override(**changes)

    def wrap_model_call(
        self,
        request: ModelRequest,
        handler: Callable[[ModelRequest], ModelResponse],
    ) -> ModelCallResult:
        """Mark the request's cache breakpoints, then call the model."""
        return handler(self._marked(request) if self._applies(request) else request)

    async def awrap_model_call(
        self,
        request: ModelRequest,
        handler: Callable[[ModelRequest], Awaitable[ModelResponse]],
    ) -> ModelCallResult:
        """Mark the request's cache breakpoints, then call the model."""
        return await handler(self._marked(request) if self._applies(request) else request)


def _mark_system(
    system: SystemMessage | None, cache_control: dict[str, str]
) -> SystemMessage | None:
    """A copy of the system message with its last block marked; None when there is nothing."""
    if system is None or not system.content:
        return None
    if isinstance(system.content, str):
        return SystemMessage(
            [{"type": "text", "text": system.content, "cache_control": cache_control}]
        )
    blocks = list(system.content)
    last = blocks[-1]
    text_block = {"type": "text", "text": last} if isinstance(last, str) else last
    blocks[-1] = {**text_block, "cache_control": cache_control}
    return system.model_copy(update={"content": blocks})


def _mark_tool(tool: BaseTool | dict[str, Any], cache_control: dict[str, str]) -> Any:
    """A copy of the tool carrying ``cache_control`` (in ``extras`` for a BaseTool)."""
    if isinstance(tool, BaseTool):
        return tool.model_copy(
            update={"extras": {**(tool.extras or {}), "cache_control": cache_control}}
        )
    return {**tool, "cache_control": cache_control}
