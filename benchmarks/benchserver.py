"""The benchmark's server: the project's emulator in its own process, answering exactly.

The server runs in a child process so that its CPU time never counts as client time. It serves
three emulators: ``short`` answers every call with a short reply (the per-call runs); ``long``
streams a long text as many small content deltas, written in ~4 KiB batches (the per-chunk
runs); ``drip`` streams a shorter text one event at a time with a pause between events, so the
client reads one event per socket read, as it does from a model generating live. The harness
talks to the child over its stdin/stdout: one JSON line with the endpoints at start, then
``reset`` lines (forget recorded requests so memory stays flat; the script is set up again).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

__all__ = ["DRIP_GAP_S", "SHORT_TEXT", "BenchServer", "Endpoint", "words"]

SHORT_TEXT = "Hello! How can I help you today?"
# Words of at most six letters: the emulator streams each (with its leading space) as one delta.
_WORDS = (
    *("the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "seven"),
    *("small", "birds", "sing", "in", "the", "old", "green", "tree", "and", "a", "cat", "naps"),
    *("by", "the", "warm", "door"),
)
DRIP_GAP_S = 0.001  # longer than any contender's CPU per chunk: each event arrives on its own


def words(n: int) -> str:
    """A text of ``n`` short words, which the emulator streams as ``n`` content deltas."""
    return " ".join(_WORDS[i % len(_WORDS)] for i in range(n))


_START_TIMEOUT_S = 60.0
_ROOT = Path(__file__).resolve().parent.parent

# Runs in the child. `times=10**9` makes every call get the queued reply; the usage is fixed so
# the server does not estimate prompt tokens per call, and stays within the request's max_tokens
# (1024), as a real server's does: a client may refuse usage that cannot be true.
_SNIPPET = r"""
import json, sys
from tokenhub_emulator import TokenHubEmulator
from tokenhub_emulator.replies import token_pieces

config = json.loads(sys.argv[1])
emulators = {name: TokenHubEmulator().start() for name in config}

def script():
    for name, emu in emulators.items():
        emu.reset()
        text = config[name]["text"]
        usage = {"prompt_tokens": 10, "completion_tokens": min(len(token_pieces(text)), 1024)}
        emu.queue_reply(text=text, usage=usage, times=10**9)
        if config[name]["drip_s"]:
            emu.slow_drip(config[name]["drip_s"], times=10**9)

script()
info = {
    name: {"base_url": emu.base_url, "api_key": emu.api_key,
           "deltas": len(token_pieces(config[name]["text"]))}
    for name, emu in emulators.items()
}
print(json.dumps(info), flush=True)
for line in sys.stdin:
    if line.strip() == "reset":
        script()
        print("ok", flush=True)
for emu in emulators.values():
    emu.stop()
"""


@dataclass(frozen=True)
class Endpoint:
    """Where a contender sends its requests, and what comes back."""

    base_url: str
    api_key: str
    text: str  # the exact reply text every call gets
    deltas: int  # content deltas in a streamed reply


class BenchServer:
    """The emulator child process; a context manager."""

    def __init__(self, *, long_words: int = 2000, drip_words: int = 300) -> None:
        self._config = {
            "short": {"text": SHORT_TEXT, "drip_s": 0.0},
            "long": {"text": words(long_words), "drip_s": 0.0},
            "drip": {"text": words(drip_words), "drip_s": DRIP_GAP_S},
        }
        self._proc: subprocess.Popen[str] | None = None
        # The child's stderr goes to a file, not a pipe, which could fill up and stall it; the
        # file lives as long as this object.
        self._errors = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
        self.short: Endpoint
        self.long: Endpoint
        self.drip: Endpoint

    def start(self) -> BenchServer:
        """Start the child and read its endpoints."""
        proc = subprocess.Popen(
            [sys.executable, "-c", _SNIPPET, json.dumps(self._config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._errors,
            text=True,
            cwd=_ROOT,
        )
        self._proc = proc
        line = _readline(proc, _START_TIMEOUT_S)
        if not line:
            self.stop()
            raise RuntimeError(f"the benchmark server did not start: {self._stderr()}")
        info = json.loads(line)
        self.short, self.long, self.drip = (
            Endpoint(text=str(self._config[name]["text"]), **info[name])
            for name in ("short", "long", "drip")
        )
        return self

    def reset(self) -> None:
        """Forget the requests recorded so far (the replies stay as they are)."""
        proc = self._require()
        assert proc.stdin is not None
        proc.stdin.write("reset\n")
        proc.stdin.flush()
        if _readline(proc, _START_TIMEOUT_S).strip() != "ok":
            raise RuntimeError(f"the benchmark server stopped answering: {self._stderr()}")

    def stop(self) -> None:
        """Close the child's stdin (it stops its servers and exits); kill it if it hangs."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def _require(self) -> subprocess.Popen[str]:
        if self._proc is None:
            raise RuntimeError("the benchmark server is not running")
        return self._proc

    def _stderr(self) -> str:
        self._errors.seek(0)
        return self._errors.read()[-2000:] or "(nothing on stderr)"

    def __enter__(self) -> BenchServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _readline(proc: subprocess.Popen[str], timeout: float) -> str:
    """One line of the child's stdout, or "" if it exits or says nothing in time."""
    assert proc.stdout is not None
    stdout = proc.stdout
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return result[0] if result else ""
