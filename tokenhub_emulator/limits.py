"""Realistic limits: per-key requests- and tokens-per-minute windows, and seeded random faults.

Pure bookkeeping with an injectable clock; `EmulatorState` holds one of each under its lock.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["WINDOW_S", "Admission", "RandomFaults", "RateLimiter", "Refusal"]

WINDOW_S = 60.0


@dataclass
class Admission:
    """One call let through: when, the tokens it counts against the minute, and the
    ``x-ratelimit-*`` headers that tell the client what is left (none without limits)."""

    at: float
    tokens: int
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class _Window:
    calls: deque[Admission] = field(default_factory=deque)


@dataclass(frozen=True)
class Refusal:
    """Why a call is refused, and how many whole seconds until it would be let through."""

    message: str
    retry_after_s: int
    limit: str  # "requests" or "tokens"


class RateLimiter:
    """Sliding one-minute windows per API key.

    A call is let through when fewer than ``rpm`` calls were let through in the last minute and
    the tokens of those calls plus this call's prompt stay within ``tpm``. A call counts its
    prompt tokens when admitted and its completion tokens once its reply is built.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._windows: dict[str, _Window] = {}

    def clear(self) -> None:
        self._windows.clear()

    def admit(
        self, key: str, prompt_tokens: int, rpm: int | None, tpm: int | None
    ) -> Admission | Refusal:
        """Let a call through (and count it), or say why not and for how long."""
        now = self._clock()
        window = self._windows.setdefault(key, _Window())
        calls = window.calls
        while calls and calls[0].at <= now - WINDOW_S:
            calls.popleft()
        if rpm is not None and len(calls) >= rpm:
            wait = calls[len(calls) - rpm].at + WINDOW_S - now
            return Refusal(
                f"Rate limit reached: {rpm} requests per minute. Retry after the time given "
                "in the Retry-After header.",
                _seconds(wait),
                "requests",
            )
        if tpm is not None:
            if prompt_tokens > tpm:
                return Refusal(
                    f"This request's {prompt_tokens} prompt tokens exceed the limit of {tpm} "
                    "tokens per minute on their own; shorten the prompt.",
                    _seconds(WINDOW_S),
                    "tokens",
                )
            used = sum(c.tokens for c in calls)
            if used + prompt_tokens > tpm:
                freed, wait = used, 0.0
                for call in calls:  # oldest first: when will enough tokens have left?
                    freed -= call.tokens
                    wait = call.at + WINDOW_S - now
                    if freed + prompt_tokens <= tpm:
                        break
                return Refusal(
                    f"Rate limit reached: {tpm} tokens per minute ({used} used in the last "
                    "minute). Retry after the time given in the Retry-After header.",
                    _seconds(wait),
                    "tokens",
                )
        headers: list[tuple[str, str]] = []
        if rpm is not None:
            headers += [
                ("x-ratelimit-limit-requests", str(rpm)),
                ("x-ratelimit-remaining-requests", str(rpm - len(calls) - 1)),
            ]
        if tpm is not None:
            left = tpm - sum(c.tokens for c in calls) - prompt_tokens
            headers += [
                ("x-ratelimit-limit-tokens", str(tpm)),
                ("x-ratelimit-remaining-tokens", str(left)),
            ]
        admission = Admission(now, prompt_tokens, tuple(headers))
        calls.append(admission)
        return admission


def _seconds(wait: float) -> int:
    return max(1, math.ceil(wait))


FAULT_KINDS = ("500", "503", "529", "drop")


class RandomFaults:
    """Chaos: each call fails with probability ``rate``, drawn from a seeded generator."""

    def __init__(self, seed: int | None) -> None:
        self._random = random.Random(seed)

    def reseed(self, seed: int | None) -> None:
        self._random.seed(seed)

    def draw(self, rate: float, stream: bool) -> str | None:
        """A fault kind (a status, or ``"drop"`` for a stream cut mid-way), or None."""
        if rate <= 0 or self._random.random() >= rate:
            return None
        kinds = FAULT_KINDS if stream else FAULT_KINDS[:-1]
        return self._random.choice(kinds)
