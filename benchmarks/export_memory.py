"""Peak memory and time of ``reflex export`` on a real-size SmolVLA (issue 11 section 5).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/export_memory.py [--workdir DIR]
        [--checkpoint DIR] [--modes decomposed,monolithic] [--tokenizer FILE]

1. the checkpoint: random weights at the real ``lerobot/smolvla_base`` dimensions (450,046,176
   parameters, 1.8 GB fp32), written once by ``python -m reflex_smolvla.write_checkpoint
   --real-size`` into ``WORKDIR/smolvla-real`` and reused (``--checkpoint`` takes another one);
2. per mode, ONE ``reflex export`` per child process, exactly as a user runs it (fp32, the
   default parity gate, ``--isolate auto``: at this size the torch stages run in fresh processes
   of their own, :mod:`reflex_core.export.stages`). Its peak is the larger of the kernel's
   ``ru_maxrss`` (``os.wait4``: the largest single process) and the resident size of the whole
   process tree, summed, sampled every 50 ms from ``/proc`` against the export's progress lines
   (which also say in which step the peak happened);
3. a child that only imports the export stack gives the process baseline (torch, onnx,
   onnxruntime, transformers), which counts against the ratio like everything else.

Real lerobot repos ship no tokenizer and nothing may come from the Hub here, so the export gets
the tiny built-in tokenizer (``--tokenizer`` takes SmolVLM2's ``tokenizer.json`` if you have
it): token ids only pick embedding rows, so the graphs, weights and memory are the same.

Prints a table, then ONE JSON line: ``model_bytes`` (the checkpoint's ``model.safetensors``),
``peak_rss_bytes`` and ``peak_rss_over_model`` (worst mode), and per mode the same plus the
export seconds per graph, the wall time, the parity verdict, which graphs use external data and
where the peak was. Target: ``peak_rss_over_model`` <= 2.0.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TARGET = 2.0
SAMPLE_S = 0.05


def _python() -> str:
    return sys.executable


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        "HF_HUB_OFFLINE": "1",
    }


def _rss_bytes(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmRSS:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else None


def _tree(pid: int) -> list[int]:
    """``pid`` and every live descendant (the export's stage processes)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def _tree_rss_bytes(pid: int) -> int | None:
    """Resident bytes of the process tree, summed: what the export holds at that moment."""
    sizes = [r for r in (_rss_bytes(p) for p in _tree(pid)) if r is not None]
    return sum(sizes) if sizes else None


def run_measured(argv: list[str], log_path: Path) -> dict[str, Any]:
    """Run ``argv`` as a child; its peak RSS (``wait4``), samples, stderr lines with times."""
    start = time.monotonic()
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), text=True
    )
    lines: list[tuple[float, str]] = []
    samples: list[tuple[float, int]] = []
    stdout_parts: list[str] = []
    done = threading.Event()

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append((time.monotonic() - start, line.rstrip("\n")))

    def read_stdout() -> None:
        assert proc.stdout is not None
        stdout_parts.append(proc.stdout.read())

    def sample() -> None:
        while not done.is_set():
            rss = _tree_rss_bytes(proc.pid)
            if rss is not None:
                samples.append((time.monotonic() - start, rss))
            done.wait(SAMPLE_S)

    threads = [threading.Thread(target=f, daemon=True) for f in (read_stderr, read_stdout, sample)]
    for t in threads:
        t.start()
    # wait4 on this very child: its own ru_maxrss (KiB on Linux), not the max over all children.
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - start
    done.set()
    for t in threads:
        t.join(timeout=10)
    log_path.write_text("\n".join(f"{t:8.2f}s {line}" for t, line in lines) + "\n")
    peak_phase = None
    if samples:
        peak_t, _ = max(samples, key=lambda s: s[1])
        before = [line for t, line in lines if t <= peak_t and line.strip()]
        peak_phase = before[-1].strip() if before else "startup"
    sampled = max((s[1] for s in samples), default=0)
    return {
        "returncode": proc.returncode,
        # The larger of: the kernel's peak of the child (wait4 reports the largest single process
        # of its tree) and the sampled peak of the whole tree's summed resident size.
        "peak_rss_bytes": max(int(usage.ru_maxrss) * 1024, sampled),
        "maxrss_single_process_bytes": int(usage.ru_maxrss) * 1024,
        "sampled_peak_bytes": sampled or None,
        "peak_phase": peak_phase,
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        "stdout": "".join(stdout_parts),
        "stderr_tail": "\n".join(line for _, line in lines[-30:]),
    }


def ensure_checkpoint(workdir: Path, given: Path | None) -> Path:
    if given is not None:
        return given
    directory = workdir / "smolvla-real"
    if (directory / "model.safetensors").is_file() and (directory / "config.json").is_file():
        return directory
    print(f"writing the real-size random checkpoint into {directory} ...", file=sys.stderr)
    subprocess.run(
        [_python(), "-m", "reflex_smolvla.write_checkpoint", "--real-size", str(directory)],
        check=True,
        env=_env(),
    )
    return directory


def ensure_tokenizer(workdir: Path, given: Path | None) -> Path:
    if given is not None:
        return given
    path = workdir / "tiny-tokenizer.json"
    if not path.is_file():
        from reflex_core.models.tiny_tokenizer import build_tiny_tokenizer

        build_tiny_tokenizer().save(str(path))
    return path


def baseline(workdir: Path) -> int:
    """Peak RSS of a child that imports the export stack and nothing else."""
    code = (
        "import torch, onnx, onnxruntime, transformers, onnxscript\n"
        "import reflex_core.export.pipeline, reflex_core.cli\n"
    )
    result = run_measured([_python(), "-c", code], workdir / "baseline.log")
    return int(result["peak_rss_bytes"])


def _dir_bytes(directory: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in sorted(directory.iterdir()) if p.is_file()}


def export_once(
    checkpoint: Path, tokenizer: Path, mode: str, workdir: Path, isolate: str
) -> dict[str, Any]:
    out = workdir / f"export-{mode}"
    reflex = str(Path(_python()).with_name("reflex"))
    argv = [reflex, "export", str(checkpoint), "-o", str(out), "--mode", mode,
            "--tokenizer", str(tokenizer), "--force", "--json", "--isolate", isolate]  # fmt: skip
    result = run_measured(argv, workdir / f"export-{mode}.log")
    if result["returncode"] != 0:
        raise SystemExit(f"reflex export --mode {mode} failed:\n{result['stderr_tail']}")
    summary = json.loads(result["stdout"])
    manifest = json.loads((out / "reflex_config.json").read_text())
    report = json.loads((out / "parity_report.json").read_text())
    files = _dir_bytes(out)
    return {
        "isolate": isolate,
        "peak_rss_bytes": result["peak_rss_bytes"],
        "maxrss_single_process_bytes": result["maxrss_single_process_bytes"],
        "sampled_peak_bytes": result["sampled_peak_bytes"],
        "peak_phase": result["peak_phase"],
        "wall_seconds": result["wall_seconds"],
        "cpu_seconds": result["cpu_seconds"],
        "export_seconds": {
            name: graph["export_seconds"] for name, graph in summary["graphs"].items()
        },
        "parity_seconds": report.get("seconds"),
        "parity_passed": summary["parity"]["passed"],
        "parity_worst": summary["parity"]["worst"],
        "external_data": {
            name: graph.get("external_data") is not None
            for name, graph in manifest["graphs"].items()
        },
        "artifact_bytes": sum(files.values()),
        "files": files,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(os.environ.get("REFLEX_BENCH_DIR", Path.home() / ".cache/reflex/bench")),
        help="checkpoint cache and exports (default ~/.cache/reflex/bench)",
    )
    parser.add_argument("--checkpoint", type=Path, help="an existing real-size checkpoint")
    parser.add_argument("--tokenizer", type=Path, help="a tokenizer.json (default: the tiny one)")
    parser.add_argument("--modes", default="decomposed,monolithic")
    parser.add_argument("--keep", action="store_true", help="keep the exported artifacts")
    parser.add_argument(
        "--isolate",
        default="auto",
        help="reflex export --isolate (auto: fresh processes for the torch stages at this size)",
    )
    args = parser.parse_args(argv)

    workdir = args.workdir.expanduser().absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    checkpoint = ensure_checkpoint(workdir, args.checkpoint)
    tokenizer = ensure_tokenizer(workdir, args.tokenizer)
    model_bytes = (checkpoint / "model.safetensors").stat().st_size
    base = baseline(workdir)

    modes: dict[str, Any] = {}
    for mode in [m for m in args.modes.split(",") if m]:
        print(f"reflex export --mode {mode} ...", file=sys.stderr)
        modes[mode] = export_once(checkpoint, tokenizer, mode, workdir, args.isolate)
        modes[mode]["peak_rss_over_model"] = round(modes[mode]["peak_rss_bytes"] / model_bytes, 3)
        if not args.keep:
            import shutil

            shutil.rmtree(workdir / f"export-{mode}", ignore_errors=True)

    gib = 1024**3
    print(f"model.safetensors {model_bytes / gib:.2f} GiB; baseline process {base / gib:.2f} GiB")
    print(f"{'mode':<12}{'peak RSS':>10}{'x model':>9}{'wall s':>8}  export s per graph; peak at")
    for mode, m in modes.items():
        per_graph = ", ".join(f"{k} {v:.0f}" for k, v in m["export_seconds"].items())
        print(
            f"{mode:<12}{m['peak_rss_bytes'] / gib:>9.2f}G{m['peak_rss_over_model']:>9.2f}"
            f"{m['wall_seconds']:>8.0f}  {per_graph}; {m['peak_phase']}"
        )
    worst = max(modes.values(), key=lambda m: m["peak_rss_bytes"])
    line = {
        "benchmark": "export_memory",
        "checkpoint": "smolvla real size, random weights (450,046,176 parameters, fp32)",
        "model_bytes": model_bytes,
        "baseline_rss_bytes": base,
        "peak_rss_bytes": worst["peak_rss_bytes"],
        "peak_rss_over_model": round(worst["peak_rss_bytes"] / model_bytes, 3),
        "target": TARGET,
        "within_target": worst["peak_rss_bytes"] / model_bytes <= TARGET,
        "modes": {k: {kk: vv for kk, vv in v.items() if kk != "files"} for k, v in modes.items()},
        "files": {k: v["files"] for k, v in modes.items()},
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
