"""The robot's commands as subprocesses: the long-running observer, and one-shot commands
(act, safe-stop, observe --once) run with stdin, a timeout, and their whole process group
killed when they overrun (a shell script's children must not outlive it)."""

from __future__ import annotations

import logging
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Sequence

import attrs

log = logging.getLogger("reflex.connect")

_EOF = object()
_STDERR_TAIL = 2000


def kill_group(proc: subprocess.Popen[bytes], grace_s: float = 0.5) -> None:
    """SIGTERM the process group, SIGKILL it if still alive after ``grace_s``, reap."""
    if proc.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


@attrs.frozen
class CommandResult:
    returncode: int | None  # None: timed out (and killed)
    stdout: bytes
    stderr: bytes
    seconds: float

    @property
    def timed_out(self) -> bool:
        return self.returncode is None

    def stderr_tail(self) -> str:
        text = self.stderr.decode("utf-8", "replace").strip()
        return text[-_STDERR_TAIL:]


def run_command(argv: Sequence[str], stdin: bytes, timeout_s: float) -> CommandResult:
    """Run ``argv`` with ``stdin``; on timeout kill its process group. Any exception (a
    signal arriving mid-run) also kills it before propagating."""
    started = time.monotonic()
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(stdin, timeout=timeout_s)
        return CommandResult(proc.returncode, out, err, time.monotonic() - started)
    except subprocess.TimeoutExpired:
        kill_group(proc, grace_s=0.1)
        out, err = proc.communicate()
        return CommandResult(None, out or b"", err or b"", time.monotonic() - started)
    finally:
        kill_group(proc, grace_s=0.1)


class LineReader:
    """A long-running command whose stdout is read line by line in a thread.

    ``next_line(timeout)`` returns the newest complete line, waiting up to ``timeout`` for
    one; older lines that piled up since the last call are returned in ``skipped`` (an
    observer printing faster than the control rate must not feed it stale observations).
    """

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = list(argv)
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        self._lines: queue.Queue[object] = queue.Queue()
        self._thread = threading.Thread(target=self._read, name="observe-reader", daemon=True)
        self._thread.start()
        self.eof = False

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(_EOF)

    def next_line(self, timeout: float) -> tuple[bytes | None, list[bytes]]:
        """``(newest line or None at end of output, skipped older lines)``.

        :raises TimeoutError: no line within ``timeout``.
        """
        if self.eof:
            return None, []
        try:
            items = [self._lines.get(timeout=timeout)]
        except queue.Empty:
            raise TimeoutError from None
        while True:
            try:
                items.append(self._lines.get_nowait())
            except queue.Empty:
                break
        if _EOF in items:
            self.eof = True
            items = items[: items.index(_EOF)]
            if not items:
                return None, []
        lines = [i for i in items if isinstance(i, bytes)]
        return lines[-1], lines[:-1]

    def returncode(self, wait_s: float = 2.0) -> int | None:
        try:
            return self.proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        kill_group(self.proc)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
