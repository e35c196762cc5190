"""Progress display for the long export steps, on stderr.

On a terminal a step shows a live elapsed-seconds counter (exporting a real model takes
minutes); otherwise (CI logs, pipes) each step prints one line when it starts and one when it
ends. Nothing here is needed for correctness: ``Progress(enabled=False)`` is silent.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


class Progress:
    """Reports steps (``with progress.step("exporting vlm_prefix"): ...``) and notes."""

    def __init__(
        self, stream: TextIO | None = None, *, enabled: bool = True, live: bool | None = None
    ) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.enabled = enabled
        isatty = getattr(self.stream, "isatty", None)
        self.live = bool(isatty and isatty()) if live is None else live
        self.timings: dict[str, float] = {}

    def note(self, message: str) -> None:
        """One line of information (a measured number, a fallback taken)."""
        if self.enabled:
            print(f"  {message}", file=self.stream, flush=True)

    @contextmanager
    def step(self, label: str) -> Iterator[None]:
        """Time a step; its duration is kept in :attr:`timings` under ``label``."""
        start = time.perf_counter()
        stop = threading.Event()
        ticker: threading.Thread | None = None
        if self.enabled:
            if self.live:
                ticker = threading.Thread(target=self._tick, args=(label, start, stop), daemon=True)
                ticker.start()
            else:
                print(f"{label} ...", file=self.stream, flush=True)
        ok = False
        try:
            yield
            ok = True
        finally:
            elapsed = time.perf_counter() - start
            self.timings[label] = elapsed
            stop.set()
            if ticker is not None:
                ticker.join()
            if self.enabled:
                status = "done" if ok else "FAILED"
                prefix = "\r\x1b[K" if self.live else ""
                print(f"{prefix}{label}: {status} in {elapsed:.1f} s", file=self.stream, flush=True)

    def _tick(self, label: str, start: float, stop: threading.Event) -> None:
        while not stop.wait(0.5):
            elapsed = time.perf_counter() - start
            print(f"\r\x1b[K{label} ... {elapsed:.0f} s", end="", file=self.stream, flush=True)


#: A silent instance for library callers that pass no progress.
SILENT = Progress(enabled=False)
