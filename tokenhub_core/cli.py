"""The ``tokenhub`` command: ``models``, ``chat``, ``batch`` and ``emulator``.

argparse only; no runtime dependency beyond the core's. Failures print one line and exit non-zero.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, NoReturn, TextIO

from tokenhub_core.catalog import DEFAULT_MODEL, MODELS, price_usage
from tokenhub_core.client import TokenHubClient
from tokenhub_core.errors import TokenHubError
from tokenhub_core.params import PROTOCOLS
from tokenhub_core.wire import Usage

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tokenhub", description="TokenHub (Claude) from the command line.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    commands.add_parser("models", help="the model catalog: tiers, ids, prices, limits")

    chat = commands.add_parser("chat", help="ask a question; the answer streams to the terminal")
    chat.add_argument("prompt")
    chat.add_argument("--model", default=DEFAULT_MODEL, help=f"model id (default {DEFAULT_MODEL})")
    chat.add_argument("--system", help="a system prompt")
    chat.add_argument("--max-tokens", type=int, default=None, help="maximum output tokens")
    chat.add_argument("--temperature", type=float, default=None, help="0.0 to 1.0")
    chat.add_argument("--no-stream", action="store_true", help="wait for the whole answer")
    chat.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="chat/completions",
        help="the wire protocol: chat/completions (default) or Claude's own messages",
    )
    chat.add_argument(
        "--thinking",
        type=_positive(int),
        help="extended thinking budget in tokens (>= 1024; needs --protocol messages)",
    )

    _add_batch_parser(commands)

    # Its options belong to tokenhub_emulator (`python -m tokenhub_emulator --help`): main()
    # hands everything after "emulator" over before parsing.
    commands.add_parser(
        "emulator", help="serve the local TokenHub emulator (see: tokenhub emulator --help)"
    )
    return parser


def _positive(kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> int | float:
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in "invalid int value"
    return parse


def _add_batch_parser(commands: Any) -> None:
    batch = commands.add_parser(
        "batch",
        help="run a JSONL batch (OpenAI Batch format): resumable, rate-capped, within a budget",
        description="Send every row of a JSONL file and append one result line per row to the "
        "output. Rerunning with the same output resumes: answered rows are skipped.",
    )
    batch.add_argument("requests", help="input JSONL: OpenAI Batch requests or plain rows")
    batch.add_argument("-o", "--output", required=True, help="output JSONL (appended, resumable)")
    batch.add_argument("--model", help="send every row to this model instead of the row's own")
    batch.add_argument("--rpm", type=_positive(float), help="cap on requests per minute")
    batch.add_argument("--tpm", type=_positive(float), help="cap on tokens per minute")
    batch.add_argument("--budget-usd", type=_positive(float), help="stop before spending more")
    batch.add_argument(
        "--max-concurrency", type=_positive(int), default=64, help="requests in flight (64)"
    )
    batch.add_argument(
        "--max-attempts", type=_positive(int), default=6, help="attempts per row (6)"
    )
    batch.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="chat/completions",
        help="the wire protocol: chat/completions (default) or Claude's own messages",
    )
    batch.add_argument("--quiet", action="store_true", help="no progress output")


def _batch(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from tokenhub_core.batch import BatchInputError, run_batch
    from tokenhub_core.batch.progress import ProgressPrinter

    printer = None if args.quiet else ProgressPrinter(err)
    try:
        summary = run_batch(
            args.requests,
            args.output,
            model=args.model,
            rpm=args.rpm,
            tpm=args.tpm,
            budget_usd=args.budget_usd,
            max_concurrency=args.max_concurrency,
            max_attempts=args.max_attempts,
            progress=printer,
            client=TokenHubClient(max_retries=0, protocol=args.protocol),
        )
    except (FileNotFoundError, IsADirectoryError) as exc:
        raise _Usage(f"cannot read {exc.filename}: {exc.strerror}") from None
    except BatchInputError as exc:
        raise _Usage(str(exc)) from None
    if printer is not None:
        printer.finish()
    out.write(f"{summary}\n")
    if summary.stopped and not summary.stopped_by_budget:
        err.write(f"tokenhub: error: {summary.stopped}\n")
        return 1
    if summary.not_sent:
        out.write(f"{summary.not_sent} rows left: rerun the same command to continue\n")
        return 3
    return 0


def _models_table() -> str:
    header = ("tier", "model id", "short id", "in $/Mtok", "out $/Mtok", "context", "max out")
    rows = [header] + [
        (
            m.tier + (" *" if m.recommended else ""),
            m.id,
            m.short_id,
            f"{m.input_usd_per_mtok:.2f}",
            f"{m.output_usd_per_mtok:.2f}",
            f"{m.context_window:,}",
            f"{m.max_output_tokens:,}",
        )
        for m in MODELS.values()
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("* recommended default")
    return "\n".join(lines)


def _summary(model: str, usage: Usage | None) -> str:
    if usage is None:
        return f"[{model}: the server reported no usage]"
    _, cost = price_usage(model, None, usage)
    price = "cost unknown (model not in the catalog)" if cost is None else f"${cost:.6f}"
    cached = ""
    if usage.cache_read_tokens or usage.cache_creation_tokens:
        cached = (
            f" ({usage.cache_read_tokens} read from cache, {usage.cache_creation_tokens} written)"
        )
    return (
        f"[{model}: {usage.prompt_tokens} input{cached} + {usage.completion_tokens} output tokens,"
        f" {price}]"
    )


def _chat(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    messages = [{"role": "user", "content": args.prompt}]
    if args.system:
        messages.insert(0, {"role": "system", "content": args.system})
    params = {"max_tokens": args.max_tokens, "temperature": args.temperature}
    if args.thinking is not None:
        params["thinking"] = args.thinking
        params["max_tokens"] = params["max_tokens"] or args.thinking + 1024
    client = TokenHubClient(protocol=args.protocol)
    if args.no_stream:
        completion = client.chat(model=args.model, messages=messages, **params)
        if completion.choices[0].message.reasoning_content:
            err.write(completion.choices[0].message.reasoning_content + "\n")
        out.write((completion.choices[0].message.content or "") + "\n")
        served, usage = completion.model or args.model, completion.usage
    else:
        stream = client.stream(model=args.model, messages=messages, **params)
        thinking_shown = False
        for chunk in stream:
            for choice in chunk.choices:
                for thinking in choice.delta.thinking_blocks or ():
                    if thinking.get("thinking"):
                        err.write(thinking["thinking"])
                        err.flush()
                        thinking_shown = True
                if thinking_shown and (choice.delta.content or choice.finish_reason):
                    err.write("\n")
                    thinking_shown = False
                if choice.delta.content:
                    out.write(choice.delta.content)
                    out.flush()
        out.write("\n")
        final = stream.completion()
        served, usage = final.model or args.model, final.usage
    err.write(_summary(served, usage) + "\n")
    return 0


def _emulator(argv: Sequence[str]) -> int:
    try:
        from tokenhub_emulator.__main__ import main as serve

        return serve(argv, prog="tokenhub emulator")
    except ImportError as exc:
        raise _Usage(
            f"the emulator needs the 'emulator' extra ({exc.name} is missing): "
            "pip install 'tokenhub-integrations[emulator]'"
        ) from None


class _Usage(Exception):
    pass


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tokenhub`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["emulator"]:
        try:
            return _emulator(argv[1:])
        except _Usage as exc:
            print(f"tokenhub: error: {exc}", file=sys.stderr)
            return 1
    args = _build_parser().parse_args(argv)
    try:
        if args.command == "models":
            print(_models_table())
            return 0
        if args.command == "chat":
            return _chat(args, sys.stdout, sys.stderr)
        if args.command == "batch":
            return _batch(args, sys.stdout, sys.stderr)
        return 0  # "emulator" was handled above
    except (TokenHubError, _Usage) as exc:
        print(f"tokenhub: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
