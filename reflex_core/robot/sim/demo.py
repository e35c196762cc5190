"""``reflex demo``: the whole pipeline on one machine, in under a minute.

1. export a built-in tiny model (``--model``, tiny pi0.5 by default) with the franka embodiment (``reflex export``: torch -> ONNX,
   parity gate), unless ``--artifact`` names an existing export;
2. start ``reflex serve`` on it as a real subprocess on 127.0.0.1, with the installed wedges
   switched on (ActionGuard clamping with an audit log, the deadline with tail fallback);
3. drive a Franka Panda simulated by MuJoCo (:class:`~reflex_core.robot.sim.SimArm`) through the SDK
   and the chunk execution loop at the embodiment's 15 Hz;
4. stop the server (and check it is gone) and print a report.

The tiny model has seeded random weights: its chunks leave the joint limits all the time, so
the guard clamps nearly every chunk. That is the point of showing it; the guard's trip switch
(refuse everything after N violating chunks) is off for the demo.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import attrs
import numpy as np

from reflex_core.errors import ConfigError, ReflexError
from reflex_core.serve.child import (
    SPAWNED_SERVE_FLAGS,
    ServerProcess,
    child_env,
    free_port,
    reflex_argv,
)

MODEL = "tiny-pi05"
EMBODIMENT = "franka"
PROMPT = "pick up the red block"


@attrs.define
class DemoOptions:
    steps: int = 300
    keep: Path | None = None
    artifact: Path | None = None
    merge: str = "weighted_average"
    rate_hz: float | None = None
    deadline_ms: float = 250.0
    report_json: Path | None = None
    server_timeout_s: float = 120.0
    model: str = MODEL


def export_tiny_model(out: Path, log: TextIO, model: str = MODEL) -> float:
    """``reflex export MODEL --embodiment franka -o OUT``; its progress goes to ``log``."""
    if importlib.util.find_spec("torch") is None:
        raise ConfigError(
            "reflex demo exports a PyTorch model: install reflex-core[export] (or pass "
            "--artifact DIR with an existing export)",
            slug="export-unavailable",
        )
    started = time.monotonic()
    result = subprocess.run(
        reflex_argv("export", model, "--embodiment", EMBODIMENT, "-o", str(out)),
        stdout=log,
        stderr=log,
        env=child_env(),
    )
    if result.returncode != 0:
        raise ReflexError(
            f"reflex export failed (exit {result.returncode}); see the output above",
            slug="demo-export-failed",
        )
    return time.monotonic() - started


def parity_summary(artifact: Path) -> dict[str, Any]:
    """The parity gate's verdict from ``parity_report.json``: end-to-end worst max abs error
    and lowest cosine over the seeded cases, and the worst graph output."""
    report = json.loads((artifact / "parity_report.json").read_text())
    end_to_end = report.get("end_to_end") or {}
    max_abs, min_cos = 0.0, 1.0
    for case in end_to_end.get("cases", []):
        for output in (case.get("outputs") or {}).values():
            max_abs = max(max_abs, float(output.get("max_abs_error", 0.0)))
            min_cos = min(min_cos, float(output.get("cosine", 1.0)))
    worst = report.get("worst") or {}
    return {
        "passed": bool(report.get("passed")),
        "cases": len(end_to_end.get("cases", [])),
        "end_to_end_max_abs": max_abs,
        "end_to_end_min_cos": min_cos,
        "worst_graph": worst.get("graph"),
        "worst_output": worst.get("output"),
        "worst_max_abs": worst.get("max_abs_error"),
        "worst_cos": worst.get("cosine"),
        "max_abs_threshold": (report.get("thresholds") or {}).get("max_abs"),
        "min_cos_threshold": (report.get("thresholds") or {}).get("min_cos"),
        "mode": report.get("mode"),
        "precision": report.get("precision"),
    }


def wedge_flags(registry: Any, work: Path, deadline_ms: float) -> list[str]:
    """Flags for the installed wedges the demo shows (a wedge that is not installed is left
    out; the core runs without any)."""
    flags: list[str] = []
    if "actionguard" in registry.wedges:
        flags += ["--guard", "clamp", "--guard-trip-after", "0"]
        flags += ["--guard-audit-log", str(work / "guard-audit.jsonl")]
    if "deadline" in registry.wedges:
        flags += ["--deadline-ms", f"{deadline_ms:g}", "--deadline-fallback", "tail"]
    return flags


class Progress:
    """One status line on stderr: rewritten in place on a terminal, a line every few seconds
    otherwise (CI logs)."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.stream = stream
        self.live = stream.isatty()
        self._last = 0.0

    def __call__(self, tick: int, report: Any) -> None:
        now = time.monotonic()
        if tick != self.total and now - self._last < (0.25 if self.live else 3.0):
            return
        self._last = now
        p50 = f"{np.percentile(report.latency_ms, 50):.1f} ms" if report.latency_ms else "-"
        line = (
            f"  step {tick}/{self.total}  chunks {report.chunks_received}  "
            f"latency p50 {p50}  clamped {report.guard_verdicts.get('clamped', 0)}  "
            f"fallbacks {report.fallbacks}"
        )
        if self.live:
            self.stream.write("\r" + line + ("\n" if tick == self.total else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


@contextlib.contextmanager
def workdir(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    path = Path(tempfile.mkdtemp(prefix="reflex-demo-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def drive(base: str, embodiment: Any, options: DemoOptions, err: TextIO) -> tuple[Any, Any]:
    """Run the simulated arm from the server; returns (loop report, arm)."""
    from reflex_core.robot.control import ControlLoop, StreamChunkSource
    from reflex_core.robot.sdk import ActionStream
    from reflex_core.robot.sim import SimArm

    rate = options.rate_hz or embodiment.control.frequency_hz
    arm = SimArm(embodiment, frequency_hz=rate)
    stream = ActionStream(
        base, embodiment=embodiment, prompt=PROMPT, episode_id=f"demo-{uuid.uuid4().hex[:8]}"
    )
    with stream:
        loop = ControlLoop.for_embodiment(
            arm,
            StreamChunkSource(stream, timeout_s=10.0),
            embodiment,
            frequency_hz=rate,
            merge=options.merge,
            on_step=Progress(options.steps, err),
        )
        try:
            report = loop.run(options.steps)
        finally:
            arm.close()
    return report, arm


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "n/a" if value is None or not np.isfinite(value) else format(value, spec)


def render_report(result: dict[str, Any]) -> str:
    parity, loop, server = result["parity"], result["loop"], result["server"]
    lat, step = loop["latency_ms"], loop["step_ms"]
    verdicts = loop["guard_verdicts"]
    lines = [
        f"Reflex demo: {result['model']} -> ONNX (parity gate) -> reflex serve -> MuJoCo Franka Panda",
        f"  export      {result['model']} {parity['mode']} {parity['precision']}, parity "
        f"{'PASSED' if parity['passed'] else 'FAILED'} on {parity['cases']} seeded cases: "
        f"end-to-end max abs {parity['end_to_end_max_abs']:.3g} "
        f"(limit {parity['max_abs_threshold']:g}), cos {parity['end_to_end_min_cos']:.9f}",
        f"              worst graph output: {parity['worst_graph']}.{parity['worst_output']} "
        f"max abs {_fmt(parity['worst_max_abs'], '.3g')}, cos {_fmt(parity['worst_cos'], '.9f')}",
        f"  server      {server['url']}  wedges: {', '.join(server['wedges']) or 'none'}",
        f"  control     {loop['steps']} steps at {loop['frequency_hz']:g} Hz "
        f"(horizon {result['execution_horizon']}, merge {result['merge']}): "
        f"{loop['actions_executed']} actions executed, {loop['starved_ticks']} waiting for a chunk",
        f"  chunks      {loop['chunks_received']} received ({loop['requests_sent']} requested), "
        f"{loop['actions_stale_dropped']} stale actions dropped, {loop['actions_merged']} merged",
        f"  latency     p50 {_fmt(lat['p50'])} ms, p99 {_fmt(lat['p99'])} ms "
        "(observation capture -> chunk received)",
        f"  step time   p50 {_fmt(step['p50'], '.2f')} ms, p99 {_fmt(step['p99'], '.2f')} ms "
        "(observe + merge + act, per control tick)",
        f"  guard       {verdicts.get('clamped', 0)} chunks clamped, "
        f"{verdicts.get('pass', 0)} passed, {verdicts.get('rejected', 0)} rejected",
        f"  fallbacks   {loop['fallbacks']} (deadline {result['deadline_ms']:g} ms, tail)",
        f"  sim arm     {result['arm']['steps']} ticks, tracking error "
        f"{result['arm']['tracking_error']:.3f} rad, {result['arm']['clipped']} targets "
        "outside the joint limits",
        f"  shutdown    server exit code {server['exit_code']}, process gone: {server['gone']}",
    ]
    return "\n".join(lines)


def run_demo(options: DemoOptions, registry: Any, out: TextIO, err: TextIO) -> int:
    from reflex_core.embodiments import EmbodimentConfig

    embodiment = EmbodimentConfig.load_preset(EMBODIMENT)
    with workdir(options.keep) as work:
        if options.artifact is not None:
            from reflex_core.artifact import Artifact

            artifact = options.artifact
            Artifact.load(artifact, verify=True)  # hashes and parity verdict, before serving
            err.write(f"reflex demo: using the export in {artifact}\n")
        else:
            artifact = work / "artifact"
            if artifact.exists():
                shutil.rmtree(artifact)
            err.write(
                f"reflex demo: exporting {options.model} with the {EMBODIMENT} embodiment ...\n"
            )
            err.flush()
            seconds = export_tiny_model(artifact, err, options.model)
            err.write(f"reflex demo: exported in {seconds:.1f} s\n")
        parity = parity_summary(artifact)

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        flags = wedge_flags(registry, work, options.deadline_ms)
        argv = reflex_argv(
            "serve",
            str(artifact),
            "--embodiment",
            EMBODIMENT,
            "--port",
            str(port),
            *SPAWNED_SERVE_FLAGS,
            *flags,
        )
        err.write(f"reflex demo: starting reflex serve on {base} {' '.join(flags)}\n")
        err.flush()
        server = ServerProcess(argv, base, work / "server.log", slug="demo-server-failed")
        try:
            health = server.wait_ready(options.server_timeout_s)
            err.write(f"reflex demo: driving the simulated arm for {options.steps} steps\n")
            err.flush()
            report, arm = drive(base, embodiment, options, err)
        finally:
            exit_code = server.stop()
        gone = server.proc.poll() is not None
        result = {
            "model": options.model if options.artifact is None else str(options.artifact),
            "parity": parity,
            "server": {
                "url": base,
                "wedges": health.get("wedges", []),
                "exit_code": exit_code,
                "gone": gone,
            },
            "loop": report.summary(),
            "execution_horizon": embodiment.control.rtc_execution_horizon,
            "merge": options.merge,
            "deadline_ms": options.deadline_ms,
            "arm": {
                "steps": arm.steps,
                "tracking_error": arm.tracking_error(),
                "clipped": arm.clipped,
            },
            "workdir": str(work) if options.keep else None,
        }
        out.write(render_report(result) + "\n")
        if options.report_json is not None:
            options.report_json.write_text(json.dumps(result, indent=2))
        ok = parity["passed"] and gone and report.actions_executed > 0
        return 0 if ok else 1
