"""A doctor finding (:class:`Check`) and how a list of them is printed."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import attrs

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"


@attrs.frozen
class Check:
    """One finding. ``hint`` says how to fix a WARN or FAIL."""

    name: str
    status: str
    message: str
    hint: str | None = None
    details: dict[str, Any] = attrs.field(factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def report(checks: Sequence[Check], *, as_json: bool, out: Any = None) -> None:
    stream = out or sys.stdout
    counts = {s: sum(c.status == s for c in checks) for s in (PASS, WARN, FAIL)}
    if as_json:
        payload = {
            "ok": counts[FAIL] == 0,
            "summary": {"pass": counts[PASS], "warn": counts[WARN], "fail": counts[FAIL]},
            "checks": [c.to_dict() for c in checks],
        }
        print(json.dumps(payload, indent=2, default=str), file=stream)
        return
    width = max((len(c.name) for c in checks), default=10) + 2
    for c in checks:
        print(f"{c.status}  {c.name.ljust(width)}{c.message}", file=stream)
        if c.hint and c.status != PASS:
            print(f"{'':6}{'':{width}}fix: {c.hint}", file=stream)
    print(f"\n{counts[PASS]} passed, {counts[WARN]} warnings, {counts[FAIL]} failed", file=stream)
