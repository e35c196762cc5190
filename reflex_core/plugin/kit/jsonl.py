"""Append-only, crash-safe JSON Lines files (audit logs, shadow-traffic records).

Writer guarantees:

* one JSON object per line, standard JSON only (``NaN``/``Infinity`` are refused: encode them
  yourself), never a newline inside a record;
* :meth:`JsonlWriter.write` / :meth:`~JsonlWriter.write_many` return only after the bytes are
  written, flushed and ``os.fsync``-ed, so a record a caller was told about survives a crash
  (``durable=False`` skips the fsync for throw-away files);
* a crash can leave at most one torn line at the end of the active file. Reopening a file whose
  last byte is not a newline terminates that fragment first, and a failed write does the same
  before the next one, so a new record is never glued to a torn one;
* size-based rotation: when the next group would push the active file past ``max_bytes`` it is
  renamed to ``NAME.000001``, ``NAME.000002``... (increasing, never renamed again, so a crash
  during rotation cannot reorder or lose files) and a fresh file is started.

One writer per path: two processes appending to the same file is not supported.

Reader: :func:`read_jsonl` / :func:`iter_records` walk the rotated files then the active one,
skip lines that do not parse and report them (a torn last line, or a torn fragment terminated
by a later restart), never modifying anything.

:class:`AsyncJsonlWriter` adds group commit for asyncio servers: concurrent ``await append()``
calls share one fsync, done in a dedicated thread so the event loop never blocks on the disk,
and each call returns only once its own record is durable.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import attrs
import numpy as np

log = logging.getLogger(__name__)

_ROTATED_SUFFIX = re.compile(r"^\.(\d{6,})$")


def _default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def encode_record(record: dict[str, Any]) -> bytes:
    """One record as a UTF-8 JSON line (with its trailing newline)."""
    if not isinstance(record, dict):
        raise TypeError(f"a JSONL record must be a dict, got {type(record).__name__}")
    text = json.dumps(
        record, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_default
    )
    return text.encode("utf-8") + b"\n"


def rotated_files(path: str | os.PathLike[str]) -> list[Path]:
    """The rotated siblings of ``path`` (``NAME.000001``...), oldest first."""
    path = Path(path)
    found: list[tuple[int, Path]] = []
    if path.parent.is_dir():
        for sibling in path.parent.iterdir():
            if sibling.name.startswith(path.name):
                match = _ROTATED_SUFFIX.match(sibling.name[len(path.name) :])
                if match:
                    found.append((int(match[1]), sibling))
    return [p for _, p in sorted(found)]


def log_files(path: str | os.PathLike[str]) -> list[Path]:
    """Every file of a log in write order: rotated ones, then the active one if it exists."""
    path = Path(path)
    return rotated_files(path) + ([path] if path.exists() else [])


def _fsync_dir(directory: Path) -> None:
    # A new or renamed file is only durable once its directory entry is.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class JsonlWriter:
    """Append JSON records to ``path``, durably, with optional size-based rotation.

    :param max_bytes: rotate before a write would push the active file past this size
        (a single larger group still goes into a fresh file on its own). None: never rotate.
    :param max_files: keep at most this many rotated files, deleting the oldest. None: keep all
        (the right choice for audit logs).
    :param durable: fsync after every write call (the default; turn off only for scratch data).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_bytes: int | None = None,
        max_files: int | None = None,
        durable: bool = True,
    ) -> None:
        if max_bytes is not None and max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
        if max_files is not None and max_files < 1:
            raise ValueError(f"max_files must be >= 1, got {max_files}")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.max_files = max_files
        self.durable = durable
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._size = 0
        self._suspect_tail = False  # a failed write may have left a partial line
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._open()

    # -- file handling ------------------------------------------------------------------------

    def _open(self) -> None:
        existed = self.path.exists()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._size = os.fstat(self._fd).st_size
        if not existed and self.durable:
            _fsync_dir(self.path.parent)
        self._terminate_torn_tail()

    def _terminate_torn_tail(self) -> None:
        """If the file ends inside a line (a crash or a failed write), end that line so the
        next record starts on its own line. The fragment stays, for the reader to report."""
        if self._size == 0:
            self._suspect_tail = False
            return
        with open(self.path, "rb") as f:
            f.seek(self._size - 1)
            last = f.read(1)
        if last != b"\n":
            log.warning("%s ended with a torn line; terminating it before appending", self.path)
            self._write_all(b"\n")
            if self.durable:
                os.fsync(self._require_fd())
        self._suspect_tail = False

    def _require_fd(self) -> int:
        if self._fd is None:
            raise ValueError(f"JSONL writer for {self.path} is closed")
        return self._fd

    def _write_all(self, data: bytes) -> None:
        fd = self._require_fd()
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
            self._size += written

    def _rotate(self) -> None:
        existing = rotated_files(self.path)
        next_index = int(existing[-1].name[len(self.path.name) + 1 :]) + 1 if existing else 1
        target = self.path.with_name(f"{self.path.name}.{next_index:06d}")
        os.close(self._require_fd())
        self._fd = None
        os.rename(self.path, target)
        if self.durable:
            _fsync_dir(self.path.parent)
        if self.max_files is not None:
            for old in rotated_files(self.path)[: -self.max_files]:
                old.unlink()
        self._open()

    # -- public API ---------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Bytes in the active file."""
        return self._size

    def write(self, record: dict[str, Any]) -> None:
        """Append one record; returns once it is durable."""
        self.write_encoded([encode_record(record)])

    def write_many(self, records: Iterable[dict[str, Any]]) -> None:
        """Append several records with one fsync (group commit); all or an exception."""
        self.write_encoded([encode_record(r) for r in records])

    def write_encoded(self, lines: Sequence[bytes]) -> None:
        """Append lines from :func:`encode_record`; returns once they are durable."""
        if not lines:
            return
        data = b"".join(lines)
        with self._lock:
            self._require_fd()
            try:
                if self._suspect_tail:
                    self._terminate_torn_tail()
                if self.max_bytes is not None and self._size > 0:
                    if self._size + len(data) > self.max_bytes:
                        self._rotate()
                self._write_all(data)
                if self.durable:
                    os.fsync(self._require_fd())
            except OSError:
                self._suspect_tail = True
                raise

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    @property
    def closed(self) -> bool:
        return self._fd is None

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncJsonlWriter:
    """Group commit on top of :class:`JsonlWriter` for asyncio code.

    ``await append(record)`` returns once that record is durable. Records appended while a
    write is in progress are written together by the next one (at most ``max_group`` per
    fsync). The disk work runs on a dedicated thread, in order.
    """

    def __init__(self, writer: JsonlWriter, *, max_group: int = 64) -> None:
        if max_group < 1:
            raise ValueError(f"max_group must be >= 1, got {max_group}")
        self.writer = writer
        self.max_group = max_group
        self._pending: list[tuple[bytes, asyncio.Future[None]]] = []
        self._drain_task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jsonl-writer")
        self.groups_written = 0
        self.records_written = 0

    async def append(self, record: dict[str, Any]) -> None:
        """Queue ``record`` and wait until it is on disk. Encoding errors raise here, at once;
        a disk error raises here for every record of the failed group."""
        line = encode_record(record)  # fail fast, before joining a group
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append((line, future))
        if self._drain_task is None or self._drain_task.done():
            self._drain_task = loop.create_task(self._drain())
        # shield: a caller that goes away must not cancel the write other callers share.
        await asyncio.shield(future)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            group = self._pending[: self.max_group]
            del self._pending[: self.max_group]
            try:
                await loop.run_in_executor(
                    self._executor, self.writer.write_encoded, [line for line, _ in group]
                )
            except BaseException as exc:  # report to every waiter, keep draining the rest
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            self.groups_written += 1
            self.records_written += len(group)
            for _, future in group:
                if not future.done():
                    future.set_result(None)

    async def aclose(self) -> None:
        """Wait for queued records, then close the file."""
        if self._drain_task is not None and not self._drain_task.done():
            await self._drain_task
        self.writer.close()
        self._executor.shutdown(wait=True)

    def close(self) -> None:
        """Synchronous close (records still queued in a running loop are not waited for)."""
        self.writer.close()
        self._executor.shutdown(wait=True)


BadLineReason = Literal["torn", "invalid"]


@attrs.frozen
class BadLine:
    """A line the reader skipped.

    :ivar reason: ``"torn"``: the file's last line, without a newline, that does not parse (a
        write cut short by a crash); ``"invalid"``: a complete line that does not parse (a torn
        fragment terminated when the writer reopened the file, or outside damage).
    """

    path: str
    line: int  # 1-based
    reason: BadLineReason
    text: str  # the start of the line, for the report


@attrs.frozen
class JsonlScan:
    records: list[dict[str, Any]]
    bad_lines: list[BadLine]
    files: list[str]

    @property
    def torn(self) -> list[BadLine]:
        return [b for b in self.bad_lines if b.reason == "torn"]


def _scan_file(path: Path, on_bad: Callable[[BadLine], None]) -> Iterator[dict[str, Any]]:
    data = path.read_bytes()
    if not data:
        return
    lines = data.split(b"\n")
    terminated = data.endswith(b"\n")
    if terminated:
        lines.pop()  # the empty string after the final newline
    for number, raw in enumerate(lines, start=1):
        is_unterminated_last = not terminated and number == len(lines)
        record: Any = None
        try:
            record = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            record = None
        if isinstance(record, dict):
            # An object only parses when it is complete, so an unterminated last line that
            # parses lost nothing but its newline.
            yield record
            continue
        on_bad(
            BadLine(
                path=str(path),
                line=number,
                reason="torn" if is_unterminated_last else "invalid",
                text=raw[:120].decode("utf-8", errors="replace"),
            )
        )


def iter_records(
    path: str | os.PathLike[str],
    *,
    include_rotated: bool = True,
    on_bad: Callable[[BadLine], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield every parsable record of a log, in write order; ``on_bad`` hears about the rest."""
    files = log_files(path) if include_rotated else [Path(path)]
    report = on_bad or (lambda bad: None)
    for file in files:
        if file.exists():
            yield from _scan_file(file, report)


def read_jsonl(path: str | os.PathLike[str], *, include_rotated: bool = True) -> JsonlScan:
    """Read a whole log: its records and the lines that had to be skipped."""
    bad: list[BadLine] = []
    files = log_files(path) if include_rotated else [Path(path)]
    records = list(iter_records(path, include_rotated=include_rotated, on_bad=bad.append))
    return JsonlScan(records=records, bad_lines=bad, files=[str(f) for f in files])
