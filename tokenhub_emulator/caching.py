"""Prompt caching as Claude does it: prefixes up to cache breakpoints, per key and model.

A request is a sequence of pieces in Anthropic's order (tools, system blocks, message blocks),
each with its tokens; a piece carrying ``cache_control`` ends a cacheable prefix. The longest
prefix seen before within its TTL is read from the cache (and its TTL refreshed); the prefixes
past it are written, their tokens split by TTL; ``input_tokens`` is only what neither covers.
Prefixes shorter than the model's minimum are never cached. Bookkeeping only, with an
injectable clock; `EmulatorState` holds one cache under its lock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "LOOKBACK",
    "TTL_SECONDS",
    "CacheUsage",
    "Piece",
    "PromptCache",
    "minimum_cacheable_tokens",
]

TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}
LOOKBACK = 20  # how many pieces before a breakpoint Claude checks for an earlier cached prefix
# Anthropic's published minimums (platform.claude.com prompt-caching docs, read 2026-11);
# Opus 4.7's from secondary sources; any other model: 1024.
_MINIMUMS = {
    "anthropic/claude-opus-4-7": 2048,
    "anthropic/claude-opus-4-6": 4096,
    "anthropic/claude-opus-4-5": 4096,
    "anthropic/claude-haiku-4-5": 4096,
    "anthropic/claude-3-5-haiku-latest": 2048,
}
_DEFAULT_MINIMUM = 1024


def minimum_cacheable_tokens(model_id: str) -> int:
    """The shortest prefix (in tokens) that ``model_id`` caches."""
    return _MINIMUMS.get(model_id, _DEFAULT_MINIMUM)


@dataclass(frozen=True)
class Piece:
    """One cacheable unit of a request: its canonical bytes, tokens, and its breakpoint TTL."""

    key: bytes
    tokens: int
    ttl: str | None = None  # "5m" or "1h" when cache_control marks this piece


@dataclass(frozen=True)
class CacheUsage:
    """How a request's prompt splits: uncached input, cache reads, and writes by TTL."""

    input_tokens: int
    read: int = 0
    write_5m: int = 0
    write_1h: int = 0

    @property
    def write(self) -> int:
        return self.write_5m + self.write_1h

    @property
    def prompt_tokens(self) -> int:
        """The whole prompt: uncached + read + written."""
        return self.input_tokens + self.read + self.write

    def native(self) -> dict[str, Any]:
        """The cache fields of a native ``usage``."""
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.write,
            "cache_read_input_tokens": self.read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.write_5m,
                "ephemeral_1h_input_tokens": self.write_1h,
            },
        }


@dataclass
class _Entry:
    expires_at: float
    ttl: str


class PromptCache:
    """Cached prefixes by digest, with their expiry on ``clock``'s time line (seconds)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._entries: dict[bytes, _Entry] = {}

    def __len__(self) -> int:
        now = self._clock()
        return sum(1 for e in self._entries.values() if e.expires_at > now)

    def clear(self) -> None:
        self._entries.clear()

    def use(self, scope: str, pieces: Sequence[Piece], minimum: int) -> CacheUsage:
        """Read and write the prefixes of ``pieces`` for ``scope`` (API key and model).

        Each breakpoint also finds a prefix cached at any of the ``LOOKBACK`` pieces before
        it, as Claude does, so a conversation that moves its breakpoint to the newest message
        reads what the previous turn wrote.
        """
        running = hashlib.sha256(scope.encode())
        digests: list[bytes] = []
        ends: list[int] = []  # the prompt tokens up to and including each piece
        tokens = 0
        for piece in pieces:
            running.update(len(piece.key).to_bytes(8, "big"))
            running.update(piece.key)
            digests.append(running.copy().digest())
            tokens += piece.tokens
            ends.append(tokens)
        marks = [i for i, p in enumerate(pieces) if p.ttl is not None and ends[i] >= minimum]
        if not marks:
            return CacheUsage(tokens)
        now = self._clock()
        self._prune(now)
        hit = -1
        for mark in reversed(marks):
            for j in range(mark, max(-1, mark - LOOKBACK), -1):
                entry = self._entries.get(digests[j])
                if entry is not None:
                    entry.expires_at = now + TTL_SECONDS[entry.ttl]  # a read refreshes the TTL
                    hit = j
                    break
            if hit >= 0:
                break
        covered = read = ends[hit] if hit >= 0 else 0
        written = {"5m": 0, "1h": 0}
        for mark in marks:
            if mark <= hit:
                continue
            ttl = pieces[mark].ttl or "5m"
            written[ttl] += ends[mark] - covered
            covered = ends[mark]
            self._entries[digests[mark]] = _Entry(now + TTL_SECONDS[ttl], ttl)
        return CacheUsage(tokens - covered, read, written["5m"], written["1h"])

    def _prune(self, now: float) -> None:
        expired = [d for d, e in self._entries.items() if e.expires_at <= now]
        for digest in expired:
            del self._entries[digest]
