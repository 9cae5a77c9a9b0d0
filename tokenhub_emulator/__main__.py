"""``python -m tokenhub_emulator``: serve the emulator until Ctrl-C.

The first line printed holds the base URL and a usable key, as shell assignments.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tokenhub_emulator",
        description="Serve a local TokenHub emulator (OpenAI chat-completions wire format).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one")
    parser.add_argument(
        "--latency-ms", type=float, default=0.0, help="delay added before every answer"
    )
    parser.add_argument(
        "--keepalive",
        type=float,
        default=None,
        metavar="S",
        help="send ': keep-alive' SSE comments in streams every S seconds",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator in the foreground; returns the exit status."""
    args = _parser().parse_args(argv)
    from tokenhub_emulator.server import TokenHubEmulator

    emulator = TokenHubEmulator(
        host=args.host,
        port=args.port,
        latency_ms=args.latency_ms,
        keepalive_interval_s=args.keepalive,
    )

    def announce(emu: TokenHubEmulator) -> None:
        print(f"TOKENHUB_BASE_URL={emu.base_url} TOKENHUB_API_KEY={emu.api_key}", flush=True)
        print("TokenHub emulator running (any 'th-' key is accepted); Ctrl-C stops it.", flush=True)

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is the way to stop it
        emulator.serve_forever(on_ready=announce)
    return 0


if __name__ == "__main__":
    sys.exit(main())
