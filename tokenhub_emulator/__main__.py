"""``python -m tokenhub_emulator`` (and ``tokenhub emulator``): serve the emulator until Ctrl-C.

The first line printed holds the base URL and a usable key, as shell assignments.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text}: expected a number > 0")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: expected an integer >= 1")
    return value


def _rate(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text}: expected a number from 0 to 1")
    return value


def _parser(prog: str = "python -m tokenhub_emulator") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Serve a local TokenHub emulator (OpenAI chat-completions wire format). "
        "Every limit is off unless given, except Claude's own rules.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one")
    parser.add_argument(
        "--latency-ms", type=float, default=0.0, help="delay added before every answer"
    )
    parser.add_argument(
        "--keepalive",
        type=_positive,
        default=None,
        metavar="S",
        help="send ': keep-alive' SSE comments in streams every S seconds",
    )
    parser.add_argument(
        "--tokens-per-second",
        type=_positive,
        default=None,
        metavar="N",
        help="stream replies at about N tokens per second",
    )
    parser.add_argument(
        "--rpm", type=_count, default=None, help="requests per minute per key (429 beyond)"
    )
    parser.add_argument(
        "--tpm", type=_count, default=None, help="tokens per minute per key (429 beyond)"
    )
    parser.add_argument(
        "--fault-rate",
        type=_rate,
        default=0.0,
        metavar="P",
        help="fail a fraction P of calls at random (500, 503, 529, stream cuts)",
    )
    parser.add_argument("--seed", type=int, default=None, help="seed of the random faults")
    parser.add_argument(
        "--no-claude-rules",
        dest="claude_rules",
        action="store_false",
        help="accept what Claude refuses (over-long prompts, empty or user-less conversations)",
    )
    parser.add_argument(
        "--control-token",
        default=None,
        metavar="TOKEN",
        help="require 'Authorization: Bearer TOKEN' on the control API (/_emulator/...) and "
        "accept it from any address; without one it answers loopback clients only",
    )
    return parser


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Run the emulator in the foreground; returns the exit status."""
    args = _parser(prog or "python -m tokenhub_emulator").parse_args(argv)
    from tokenhub_emulator.server import TokenHubEmulator

    emulator = TokenHubEmulator(
        host=args.host,
        port=args.port,
        latency_ms=args.latency_ms,
        keepalive_interval_s=args.keepalive,
        tokens_per_second=args.tokens_per_second,
        rpm=args.rpm,
        tpm=args.tpm,
        fault_rate=args.fault_rate,
        seed=args.seed,
        claude_rules=args.claude_rules,
        control_token=args.control_token,
    )

    def announce(emu: TokenHubEmulator) -> None:
        print(f"TOKENHUB_BASE_URL={emu.base_url} TOKENHUB_API_KEY={emu.api_key}", flush=True)
        print("TokenHub emulator running (any 'th-' key is accepted); Ctrl-C stops it.", flush=True)
        where = (
            "from any address, with the control token" if args.control_token else "loopback only"
        )
        print(f"Control API: {emu.control_url} ({where}).", flush=True)
        print(
            f"Claude's native API (anthropic SDK, Claude Code): ANTHROPIC_BASE_URL={emu.url} "
            f"ANTHROPIC_API_KEY={emu.api_key}",
            flush=True,
        )
        if not _is_loopback(args.host) and not args.control_token:
            print(
                "Note: without --control-token the control API refuses non-loopback clients.",
                flush=True,
            )

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is the way to stop it
        emulator.serve_forever(on_ready=announce)
    return 0


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


if __name__ == "__main__":
    sys.exit(main())
