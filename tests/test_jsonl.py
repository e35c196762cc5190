"""Crash-safe JSONL: durable appends, torn-line handling, rotation, group commit."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from reflex_core.plugin.kit.jsonl import (
    AsyncJsonlWriter,
    JsonlWriter,
    encode_record,
    iter_records,
    log_files,
    read_jsonl,
    rotated_files,
)


def test_one_object_per_line_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    with JsonlWriter(path) as writer:
        writer.write({"i": 0, "text": "line\nbreak", "arr": np.arange(3), "x": np.float32(1.5)})
        writer.write_many([{"i": 1}, {"i": 2}])
    raw = path.read_bytes()
    assert raw.count(b"\n") == 3 and raw.endswith(b"\n")
    scan = read_jsonl(path)
    assert scan.bad_lines == []
    assert scan.records[0] == {"i": 0, "text": "line\nbreak", "arr": [0, 1, 2], "x": 1.5}
    assert [r["i"] for r in scan.records] == [0, 1, 2]


def test_appends_to_an_existing_log(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    with JsonlWriter(path) as w:
        w.write({"i": 0})
    with JsonlWriter(path) as w:
        w.write({"i": 1})
    assert [r["i"] for r in read_jsonl(path).records] == [0, 1]


def test_refuses_non_standard_json_and_non_objects(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        encode_record({"x": float("nan")})
    with pytest.raises(TypeError):
        encode_record([1, 2])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        encode_record({"x": object()})
    path = tmp_path / "log.jsonl"
    with JsonlWriter(path) as w:
        with pytest.raises(ValueError):
            w.write_many([{"ok": 1}, {"bad": float("inf")}])
    # nothing of the failed group reached the file
    assert path.read_bytes() == b""


def test_torn_last_line_is_reported_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    with JsonlWriter(path) as w:
        w.write_many([{"i": i} for i in range(3)])
    with open(path, "ab") as f:
        f.write(b'{"i": 3, "trunc')  # a write cut short by a crash
    scan = read_jsonl(path)
    assert [r["i"] for r in scan.records] == [0, 1, 2]
    assert len(scan.torn) == 1
    assert scan.torn[0].line == 4 and scan.torn[0].text.startswith('{"i": 3')


def test_unterminated_but_complete_last_record_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"i":0}\n{"i":1}')
    scan = read_jsonl(path)
    assert [r["i"] for r in scan.records] == [0, 1]
    assert scan.bad_lines == []


def test_reopening_after_a_crash_never_glues_records_to_the_fragment(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"i":0}\n{"i":1,"tor')
    with JsonlWriter(path) as w:
        w.write({"i": 2})
    scan = read_jsonl(path)
    assert [r["i"] for r in scan.records] == [0, 2]
    # the fragment is kept as evidence and reported as an invalid (terminated) line
    assert [(b.line, b.reason) for b in scan.bad_lines] == [(2, "invalid")]


def test_a_failed_write_is_terminated_before_the_next_record(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    writer = JsonlWriter(path)
    writer.write({"i": 0})
    # simulate a write that failed half-way (disk full): bytes reached the file, then OSError
    real_write = os.write
    calls = {"n": 0}

    def half_then_fail(fd: int, data: bytes) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            return real_write(fd, bytes(data[:5]))
        raise OSError(28, "No space left on device")

    os_write = os.write
    try:
        os.write = half_then_fail  # type: ignore[assignment]
        with pytest.raises(OSError):
            writer.write({"i": 1, "payload": "x" * 50})
    finally:
        os.write = os_write  # type: ignore[assignment]
    writer.write({"i": 2})
    writer.close()
    scan = read_jsonl(path)
    assert [r["i"] for r in scan.records] == [0, 2]
    assert len(scan.bad_lines) == 1 and scan.bad_lines[0].reason == "invalid"


def test_size_rotation_keeps_every_record_in_order(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    line_len = len(encode_record({"i": 0, "pad": "x" * 20}))
    with JsonlWriter(path, max_bytes=3 * line_len) as w:
        for i in range(10):
            w.write({"i": i, "pad": "x" * 20})
            assert w.size <= 3 * line_len
    rotated = rotated_files(path)
    assert [p.name for p in rotated] == [
        "audit.jsonl.000001",
        "audit.jsonl.000002",
        "audit.jsonl.000003",
    ]
    assert log_files(path) == [*rotated, path]
    for p in rotated:
        assert p.stat().st_size <= 3 * line_len
    scan = read_jsonl(path)
    assert [r["i"] for r in scan.records] == list(range(10))
    assert len(scan.files) == 4
    assert [r["i"] for r in read_jsonl(path, include_rotated=False).records] == [9]


def test_rotation_continues_numbering_and_can_prune(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    size = len(encode_record({"i": 0}))
    with JsonlWriter(path, max_bytes=size) as w:
        for i in range(3):
            w.write({"i": i})
    with JsonlWriter(path, max_bytes=size, max_files=2) as w:
        w.write({"i": 3})
    assert [p.name[-6:] for p in rotated_files(path)] == ["000002", "000003"]
    assert [r["i"] for r in iter_records(path)] == [1, 2, 3]


def test_oversized_record_goes_alone_into_a_fresh_file(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    with JsonlWriter(path, max_bytes=20) as w:
        w.write({"i": 0})
        w.write({"big": "y" * 100})
        w.write({"i": 1})
    assert [r.get("i", "big") for r in read_jsonl(path).records] == [0, "big", 1]


def test_closed_writer_refuses_writes(tmp_path: Path) -> None:
    w = JsonlWriter(tmp_path / "x.jsonl")
    w.close()
    assert w.closed
    with pytest.raises(ValueError, match="closed"):
        w.write({"i": 0})


def test_async_group_commit_shares_fsyncs_and_keeps_every_record(tmp_path: Path) -> None:
    path = tmp_path / "g.jsonl"

    async def main() -> AsyncJsonlWriter:
        writer = AsyncJsonlWriter(JsonlWriter(path), max_group=16)
        await asyncio.gather(*(writer.append({"i": i}) for i in range(100)))
        # every append returned, so every record must already be on disk
        assert len(read_jsonl(path).records) == 100
        await writer.aclose()
        return writer

    writer = asyncio.run(main())
    assert writer.records_written == 100
    assert writer.groups_written < 100  # grouped: fewer fsyncs than records
    assert sorted(r["i"] for r in read_jsonl(path).records) == list(range(100))


def test_async_encoding_error_fails_only_that_call(tmp_path: Path) -> None:
    path = tmp_path / "g.jsonl"

    async def main() -> None:
        writer = AsyncJsonlWriter(JsonlWriter(path))
        results = await asyncio.gather(
            writer.append({"i": 0}),
            writer.append({"i": float("nan")}),
            writer.append({"i": 2}),
            return_exceptions=True,
        )
        assert results[0] is None and results[2] is None
        assert isinstance(results[1], ValueError)
        await writer.aclose()

    asyncio.run(main())
    assert [r["i"] for r in read_jsonl(path).records] == [0, 2]


def test_async_disk_error_reaches_every_waiter_of_the_group(tmp_path: Path) -> None:
    path = tmp_path / "g.jsonl"

    async def main() -> None:
        inner = JsonlWriter(path)
        writer = AsyncJsonlWriter(inner)
        inner.close()  # every write now fails
        results = await asyncio.gather(
            *(writer.append({"i": i}) for i in range(3)), return_exceptions=True
        )
        assert all(isinstance(r, ValueError) for r in results)
        writer.close()

    asyncio.run(main())


CRASH_WRITER = textwrap.dedent(
    """
    import sys
    from reflex_core.plugin.kit.jsonl import JsonlWriter
    writer = JsonlWriter(sys.argv[1], max_bytes=4096)
    i = 0
    while True:
        writer.write({"i": i, "pad": "z" * 64})
        # acknowledged only after write() returned, i.e. after the fsync
        sys.stdout.write(f"{i}\\n")
        sys.stdout.flush()
        i += 1
    """
)


@pytest.mark.slow
def test_sigkill_loses_no_acknowledged_record(tmp_path: Path) -> None:
    path = tmp_path / "crash.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASH_WRITER, str(path)],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.stdout is not None
    acked: list[int] = []
    deadline = time.monotonic() + 20
    while len(acked) < 200 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        acked.append(int(line))
    os.kill(proc.pid, signal.SIGKILL)
    # drain what the writer printed before it died: those were acknowledged too
    rest, _ = proc.communicate()
    acked.extend(int(x) for x in rest.split())
    assert len(acked) >= 200, "the writer did not get going"
    scan = read_jsonl(path)
    written = [r["i"] for r in scan.records]
    assert written[: len(acked)] == acked  # every acknowledged record, in order
    assert len(written) <= len(acked) + 1  # at most the one in flight
    assert len(scan.bad_lines) <= 1 and all(b.reason == "torn" for b in scan.bad_lines)
    assert len(rotated_files(path)) >= 1  # the run crossed a rotation
    for record in scan.records:
        json.dumps(record)
