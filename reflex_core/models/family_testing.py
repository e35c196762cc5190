"""A model family's end-to-end test, as a user runs it: ``reflex export`` in both modes (the
parity gate included), then ``reflex serve`` on each artifact answering the same observation.

Every family's ``test_export_serve.py`` (pi0 in the core's tests, ``plugins/reflex-smolvla``,
``plugins/reflex-groot``, the third-party toy family) runs this sequence; a new family's test
calls these helpers and asserts only what is its own (the preprocessing contract it records,
its graphs' inputs, the chunk's shape)::

    outputs = export_both_modes("tiny-mine", tmp_path, env=env)
    manifest = read_manifest(outputs["decomposed"])
    chunks = act_on_each(outputs, {"state": [...], "images": {"front": png_base64(frame)}},
                         env=env, log_dir=tmp_path)
    assert_same_chunk(chunks, shape=(chunk_size, action_dim))

:func:`run_demo` is the other end-to-end test every family has: ``reflex demo --model tiny-NAME``
(export, serve with the installed wedges, the MuJoCo Panda driven through the SDK) checked from
its report.

Subprocesses through the installed ``reflex`` script beside the running interpreter; torch-free
here (the children import it).
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

MODES = ("decomposed", "monolithic")


def reflex_command() -> str:
    """The ``reflex`` console script of the running interpreter's environment."""
    return str(Path(sys.executable).with_name("reflex"))


def png_base64(pixels: np.ndarray) -> str:
    """An (H, W, 3) uint8 frame as the base64 PNG an observation's ``images`` carries."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def export_both_modes(
    source: str,
    root: Path,
    *,
    env: Mapping[str, str],
    args: Sequence[str] = ("--embodiment", "franka"),
    timeout: float = 1500,
) -> dict[str, Path]:
    """``reflex export SOURCE -o ROOT/<mode> --mode <mode> ARGS --json -q`` for both modes.

    :return: mode -> artifact directory.
    :raises AssertionError: an export failed (its stderr tail in the message) or its parity
        gate did not pass.
    """
    outputs = {}
    for mode in MODES:
        out = root / mode
        argv = [reflex_command(), "export", source, "-o", str(out), "--mode", mode, *args]
        result = subprocess.run(
            [*argv, "--json", "-q"],
            capture_output=True,
            text=True,
            env=dict(env),
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(f"reflex export --mode {mode} failed:\n{result.stderr[-4000:]}")
        if json.loads(result.stdout)["parity"]["passed"] is not True:
            raise AssertionError(f"reflex export --mode {mode}: the parity gate did not pass")
        outputs[mode] = out
    return outputs


def read_manifest(artifact: Path) -> dict[str, Any]:
    """An artifact's ``reflex_config.json``."""
    return json.loads((artifact / "reflex_config.json").read_text())


def graph_inputs(manifest: Mapping[str, Any], graph: str) -> list[str]:
    """The input names of one graph (``vlm_prefix``, ``expert_denoise``...) of a manifest."""
    return [i["name"] for i in manifest["graphs"][graph]["inputs"]]


def act_on_each(
    outputs: Mapping[str, Path],
    body: Mapping[str, Any],
    *,
    env: Mapping[str, str],
    log_dir: Path,
    args: Sequence[str] = ("--embodiment", "franka"),
) -> dict[str, np.ndarray]:
    """``reflex serve ARTIFACT ARGS`` per artifact (ready-checked), one ``POST /act`` of
    ``body`` each.

    :return: mode -> the chunk's ``actions`` as an array.
    :raises AssertionError: a server was not ready or did not answer 200.
    """
    import httpx

    from reflex_core.plugin.testing import server_process

    chunks = {}
    for mode, out in outputs.items():
        argv = [reflex_command(), "serve", str(out), *args]
        with server_process(argv, log_path=log_dir / f"{mode}.log", env=dict(env)) as base:
            status = httpx.get(base + "/health", timeout=10).json()["status"]
            if status != "ready":
                raise AssertionError(f"reflex serve {out}: /health says {status!r}")
            reply = httpx.post(base + "/act", json=dict(body), timeout=60)
            if reply.status_code != 200:
                raise AssertionError(f"/act on {mode}: {reply.status_code} {reply.text}")
            chunks[mode] = np.asarray(reply.json()["actions"])
    return chunks


def assert_same_chunk(
    chunks: Mapping[str, np.ndarray], *, shape: tuple[int, int], atol: float = 1e-4
) -> None:
    """The decomposed chunk has ``shape`` and is finite, and every mode answered the same."""
    decomposed = chunks["decomposed"]
    if decomposed.shape != shape:
        raise AssertionError(f"the chunk has shape {decomposed.shape}, expected {shape}")
    if not np.isfinite(decomposed).all():
        raise AssertionError("the chunk is not finite")
    for mode, chunk in chunks.items():
        np.testing.assert_allclose(chunk, decomposed, atol=atol, err_msg=f"{mode} vs decomposed")


def run_demo(model: str, family: str, root: Path, *, steps: int = 40) -> dict[str, Any]:
    """``reflex demo --model MODEL --steps STEPS`` (a fresh cache under ``root``) and the checks
    every family's demo must pass: the export's parity gate, the franka embodiment in the
    artifact, a loop that ran to ``max_steps`` on guarded chunks without clipping the arm, and a
    server that exited cleanly.

    :return: the demo's ``--report-json`` report.
    :raises AssertionError: naming the first check that failed.
    """
    keep, report_path = root / "demo", root / "report.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "REFLEX_CACHE_DIR": str(root / "cache")}
    argv = [reflex_command(), "demo", "--model", model, "--steps", str(steps), "--keep", str(keep)]
    result = subprocess.run(
        [*argv, "--report-json", str(report_path)],
        capture_output=True,
        text=True,
        timeout=1200,
        env=env,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(result.stdout + result.stderr[-4000:])
    report: dict[str, Any] = json.loads(report_path.read_text())
    manifest = read_manifest(keep / "artifact")
    parity, loop = report["parity"], report["loop"]
    checks = {
        "the report names the model": report["model"] == model,
        "parity passed": bool(parity["passed"])
        and parity["end_to_end_max_abs"] <= parity["max_abs_threshold"],
        "the artifact's family": manifest["model"]["family"] == family,
        "the artifact's embodiment is franka": manifest["embodiment"]["name"] == "franka",
        "the loop ran to max_steps": loop["steps"] == steps
        and loop["stop_reason"] == "max_steps"
        and loop["error"] is None,
        "at least two chunks": loop["chunks_received"] >= 2,
        "every chunk has a guard verdict": sum(loop["guard_verdicts"].values())
        == loop["chunks_received"],
        "guarded chunks never command beyond the limits": report["arm"]["clipped"] == 0,
        "the server exited cleanly": report["server"]["exit_code"] == 0
        and report["server"]["gone"],
        "the summary names the model and the gate": model in result.stdout
        and "parity PASSED" in result.stdout,
    }
    failed = [name for name, ok in checks.items() if not ok]
    if failed:
        raise AssertionError(f"reflex demo --model {model}: {failed}; report: {report}")
    return report
