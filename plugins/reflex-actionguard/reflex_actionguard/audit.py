"""The guard's audit log: one JSON line per decision, durable before the chunk is returned.

Record shapes (``event`` says which):

* ``decision``: ``ts``, ``ts_ns``, ``request_id`` (the server's: ``X-Request-ID``),
  ``observation_request_id`` (the observation's own ``request_id``, its idempotency key, or
  null), ``episode_id``, ``policy``, ``mode``,
  ``verdict`` (``pass`` / ``clamped`` / ``rejected``), ``violations`` (list of
  :class:`~reflex_actionguard.checks.Violation` dicts), and the chunk: ``chunk`` (``sha256``,
  ``shape``) for a pass; ``before`` and ``after`` (``sha256``, ``shape``, ``values``) otherwise,
  non-finite values written as the strings ``"nan"``, ``"inf"``, ``"-inf"`` (JSON has none).
* ``refused``: an /act answered 503 ``guard-tripped`` without running the policy.
* ``trip`` / ``reset``: the guard tripped after N violating chunks / an operator reset it.

The sha256 is over the float32 C-order bytes of the (T, D) chunk, so a chunk a client logged
can be matched to its record.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from reflex_core.plugin.kit.jsonl import BadLine, iter_records

# Chunks up to this many numbers are written out in full; larger ones by hash only.
MAX_LOGGED_VALUES = 4096


def chunk_digest(actions: np.ndarray) -> str:
    array = np.ascontiguousarray(np.asarray(actions, dtype=np.float32))
    return hashlib.sha256(array.tobytes()).hexdigest()


def _encode_value(x: float) -> float | str:
    if np.isnan(x):
        return "nan"
    if np.isinf(x):
        return "inf" if x > 0 else "-inf"
    return float(x)


def describe_chunk(actions: np.ndarray, *, with_values: bool) -> dict[str, Any]:
    array = np.asarray(actions, dtype=np.float32)
    described: dict[str, Any] = {"sha256": chunk_digest(array), "shape": list(array.shape)}
    if with_values and array.size <= MAX_LOGGED_VALUES:
        if np.isfinite(array).all():
            described["values"] = array.tolist()
        else:
            described["values"] = [
                [_encode_value(x) for x in row] for row in array.reshape(array.shape[0], -1)
            ]
    return described


def timestamp() -> dict[str, Any]:
    now_ns = time.time_ns()
    iso = datetime.fromtimestamp(now_ns / 1e9, tz=UTC).isoformat(timespec="milliseconds")
    return {"ts": iso, "ts_ns": now_ns}


@attrs.define
class AuditSummary:
    """What ``reflex guard audit`` prints."""

    files: list[str] = attrs.field(factory=list)
    records: int = 0
    verdicts: Counter[str] = attrs.field(factory=Counter)
    events: Counter[str] = attrs.field(factory=Counter)
    # joint -> kind -> violating steps
    violations: dict[str, Counter[str]] = attrs.field(factory=dict)
    chunks_with_violation: Counter[str] = attrs.field(factory=Counter)  # joint -> chunks
    bad_lines: list[BadLine] = attrs.field(factory=list)
    first_ts: str | None = None
    last_ts: str | None = None

    def add(self, record: dict[str, Any]) -> None:
        self.records += 1
        event = str(record.get("event", "decision"))
        self.events[event] += 1
        if event == "decision":
            self.verdicts[str(record.get("verdict", "?"))] += 1
        elif event == "refused":
            self.verdicts["refused"] += 1
        ts = record.get("ts")
        if isinstance(ts, str):
            self.first_ts = self.first_ts or ts
            self.last_ts = ts
        seen: set[str] = set()
        for violation in record.get("violations") or []:
            if not isinstance(violation, dict):
                continue
            joint = str(violation.get("joint") or "(chunk)")
            kind = str(violation.get("kind", "?"))
            steps = violation.get("steps", 1)
            self.violations.setdefault(joint, Counter())[kind] += (
                int(steps) if isinstance(steps, int) else 1
            )
            if joint not in seen:
                seen.add(joint)
                self.chunks_with_violation[joint] += 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "records": self.records,
            "verdicts": dict(self.verdicts),
            "events": dict(self.events),
            "violations_by_joint": {
                joint: {"chunks": self.chunks_with_violation[joint], "steps_by_kind": dict(kinds)}
                for joint, kinds in sorted(self.violations.items())
            },
            "skipped_lines": [attrs.asdict(b) for b in self.bad_lines],
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
        }

    def render(self) -> str:
        lines = [f"audit log: {len(self.files)} file(s), {self.records} record(s)"]
        for f in self.files:
            lines.append(f"  {f}")
        if self.first_ts:
            lines.append(f"from {self.first_ts} to {self.last_ts}")
        order = ["pass", "clamped", "rejected", "refused"]
        verdicts = sorted(self.verdicts, key=lambda v: (order.index(v) if v in order else 99, v))
        lines.append(
            "verdicts: " + (", ".join(f"{v} {self.verdicts[v]}" for v in verdicts) or "none")
        )
        other = {e: n for e, n in self.events.items() if e not in ("decision", "refused")}
        if other:
            lines.append("events: " + ", ".join(f"{e} {n}" for e, n in sorted(other.items())))
        if self.violations:
            lines.append("violations by joint (chunks; violating steps by kind):")
            width = max(len(j) for j in self.violations)
            for joint, kinds in sorted(self.violations.items()):
                detail = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
                lines.append(
                    f"  {joint:<{width}}  {self.chunks_with_violation[joint]} chunk(s); {detail}"
                )
        else:
            lines.append("violations: none")
        if self.bad_lines:
            torn = [b for b in self.bad_lines if b.reason == "torn"]
            invalid = [b for b in self.bad_lines if b.reason == "invalid"]
            lines.append(
                f"skipped lines: {len(torn)} torn (a write cut short by a crash), "
                f"{len(invalid)} unparsable"
            )
            for b in self.bad_lines:
                lines.append(f"  {b.path}:{b.line} {b.reason}: {b.text[:60]!r}")
        else:
            lines.append("skipped lines: none")
        return "\n".join(lines)


def summarize(path: str | Path, records: Iterable[dict[str, Any]] | None = None) -> AuditSummary:
    """Summarize the audit log at ``path`` (its rotated files included)."""
    from reflex_core.plugin.kit.jsonl import log_files

    summary = AuditSummary(files=[str(f) for f in log_files(path)])
    source = records if records is not None else iter_records(path, on_bad=summary.bad_lines.append)
    for record in source:
        summary.add(record)
    return summary
