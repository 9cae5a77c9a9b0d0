"""Progress of a batch run: one redrawn bar on a terminal, else a plain line now and then."""

from __future__ import annotations

import time
from typing import TextIO

from tokenhub_core.batch.engine import BatchProgress

__all__ = ["ProgressPrinter"]

_BAR_WIDTH = 24


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, secs = divmod(int(seconds + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class ProgressPrinter:
    """A ``progress`` callback for `run_batch`: a bar on a terminal, else a line every few seconds.

    Shows rows done of the total, the rate, the time left and the cost so far.
    """

    def __init__(self, out: TextIO, *, tty: bool | None = None, every_s: float | None = None):
        self.out = out
        self.tty = out.isatty() if tty is None else tty
        self.every_s = every_s if every_s is not None else (0.1 if self.tty else 5.0)
        self._last = 0.0
        self._shown: BatchProgress | None = None

    def __call__(self, progress: BatchProgress) -> None:
        now = time.monotonic()
        if now - self._last < self.every_s:
            return
        self._last = now
        self._show(progress)

    def _show(self, p: BatchProgress) -> None:
        done = p.skipped + p.finished
        share = done / p.total if p.total else 1.0
        text = (
            f"{done:,}/{p.total:,} rows ({share:.0%}), {p.failed:,} failed, "
            f"{p.rows_per_s:,.1f} rows/s, ETA {_duration(p.eta_s)}, ${p.cost_usd:.6f}"
        )
        if self.tty:
            filled = round(share * _BAR_WIDTH)
            self.out.write(f"\r[{'#' * filled}{'.' * (_BAR_WIDTH - filled)}] {text}\x1b[K")
        else:
            self.out.write(f"batch: {text}\n")
        self.out.flush()
        self._shown = p

    def finish(self, progress: BatchProgress | None = None) -> None:
        """Show the final state (and end the bar's line)."""
        final = progress or self._shown
        if final is not None:
            self._show(final)
        if self.tty and final is not None:
            self.out.write("\n")
            self.out.flush()
