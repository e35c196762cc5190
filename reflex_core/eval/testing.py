"""Checks an env plugin's tests share: the adapter's side of the :class:`~reflex_core.eval.env.
EnvAdapter` contract, the tiny checkpoint re-labelled for its embodiment, and ``reflex eval``
run end to end on the command line.

Each raises :class:`AssertionError` saying what does not hold, so that a plugin's test reads
as the list of what it checks (``reflex_aloha``, ``reflex_robosuite`` and ``reflex_metaworld``'s
tests use them). Nothing here imports a simulator.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REFLEX = str(Path(sys.executable).with_name("reflex"))


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def check_observe(
    env: Any,
    cameras: Sequence[str],
    image_size: int,
    state_dim: int,
    unknown_camera: str = "no-such-camera",
) -> dict[str, Any]:
    """``observe()`` renders nothing and returns the float32 ``state_dim`` state and the prompt;
    ``observe(cameras)`` renders exactly ``cameras``, ``image_size`` square, uint8, not blank;
    ``unknown_camera`` is refused (``ValueError``: ``no camera``). Returns the images."""
    import pytest

    bare = env.observe()
    _check("images" not in bare, f"observe() rendered {sorted(bare.get('images', {}))}")
    state = bare["state"]
    want = (np.dtype(np.float32), (state_dim,))
    _check((state.dtype, state.shape) == want, f"state {state.dtype} {state.shape}")
    _check(bare["prompt"] == env.prompt, f"prompt {bare['prompt']!r}, env {env.prompt!r}")
    images = env.observe(list(cameras))["images"]
    _check(set(images) == set(cameras), f"asked {list(cameras)}, rendered {sorted(images)}")
    for name, image in images.items():
        _check(image.shape == (image_size, image_size, 3), f"{name}: shape {image.shape}")
        _check(image.dtype == np.uint8, f"{name}: dtype {image.dtype}")
        _check(image.std() > 5, f"{name}: a blank render (std {image.std():.2f})")
    with pytest.raises(ValueError, match="no camera"):
        env.observe([unknown_camera])
    return dict(images)


def check_seeded_start(env: Any, read: Callable[[], Any]) -> tuple[Any, Any]:
    """A seed fixes how an episode starts: ``read()`` (e.g. the objects' poses) after
    ``reset(3)``, ``reset(4)`` and ``reset(3)`` again is the same, to the bit, both times seed 3
    starts. Returns what it is after seed 3 and after seed 4, for the test to check what another
    seed moves."""
    starts = []
    for seed in (3, 4, 3):
        env.reset(seed)
        starts.append(read())
    np.testing.assert_equal(starts[2], starts[0])
    return starts[0], starts[1]


def check_holding(env: Any, seed: int, ticks: int, atol: float) -> None:
    """Holding from the start of episode ``seed`` for ``ticks`` keeps the pose (within ``atol``),
    scores no reward and does not succeed."""
    env.reset(seed)
    home = env.state()
    for _ in range(ticks):
        env.hold()
    np.testing.assert_allclose(env.state(), home, atol=atol)
    _check(not env.success and env.reward == 0.0, f"success {env.success}, reward {env.reward}")


def check_refuses_bad_actions(env: Any, action_dim: int) -> None:
    """An action of the wrong length, or with one NaN, is refused (``ValueError``)."""
    import pytest

    env.reset(0)
    with pytest.raises(ValueError):
        env.act(np.zeros(action_dim - 1))
    with_nan = np.zeros(action_dim)
    with_nan[0] = np.nan
    with pytest.raises(ValueError):
        env.act(with_nan)


def check_recovers(env: Any, seed: int) -> None:
    """After a failed episode, ``reset(seed)`` brings the simulation back: it holds for a few
    ticks with a finite state."""
    env.reset(seed)
    for _ in range(5):
        env.hold()
    _check(bool(np.isfinite(env.state()).all()), f"state after reset: {env.state()}")


def check_tiny_checkpoint(
    directory: Path, embodiment: Mapping[str, Any], cameras: Sequence[str]
) -> dict[str, Any]:
    """A tiny checkpoint's lerobot files name ``cameras`` (the config and the processors), the
    embodiment's state and action sizes, and its normalizer stats (the action's min/max its
    ranges). Returns :func:`~reflex_core.eval.tiny.tiny_checkpoint_labels`."""
    from reflex_core.eval.tiny import IMAGE_PREFIX, tiny_checkpoint_labels

    labels = tiny_checkpoint_labels(directory)
    images = [IMAGE_PREFIX + c for c in cameras]
    _check(labels["images"] == images, f"config cameras {labels['images']}, not {images}")
    named = set(labels["processor_images"])
    _check(named <= set(images), f"the processors name {sorted(named)}, not {images}")
    norm = embodiment["normalization"]
    shapes = [labels["state_shape"], labels["action_shape"]]
    dims = [[len(norm["mean_state"])], [int(embodiment["action_space"]["dim"])]]
    _check(shapes == dims, f"state/action shapes {shapes}, not {dims}")
    stats = labels["stats"]
    ranges = np.asarray(embodiment["action_space"]["ranges"], np.float32)
    for key, want in (
        ("observation.state.mean", norm["mean_state"]),
        ("observation.state.std", norm["std_state"]),
        ("action.mean", norm["mean_action"]),
        ("action.std", norm["std_action"]),
        ("action.min", ranges[:, 0]),
        ("action.max", ranges[:, 1]),
    ):
        np.testing.assert_allclose(stats[key], want, rtol=1e-6, err_msg=key)
    return labels


def processes_started_on(ports: set[int]) -> dict[int, str]:
    """Live processes started with ``--port P`` for a P in ``ports`` (the servers ``reflex
    eval`` spawns), pid -> command line, read from ``/proc`` (Linux)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue  # gone meanwhile
        if any(a == "--port" and b.isdigit() and int(b) in ports
               for a, b in zip(argv, argv[1:], strict=False)):  # fmt: skip
            found[int(entry.name)] = " ".join(argv)
    return found


def check_no_expert(env: str) -> None:
    """``reflex eval --expert --env ENV`` is refused up front (``[env-no-expert]``), before any
    server starts: for an env whose simulator ships no scripted policy."""
    result = subprocess.run(
        [REFLEX, "eval", "--expert", "--env", env, "--episodes", "1"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    _check(result.returncode != 0, f"--expert ran: {result.stdout}")
    _check("[env-no-expert]" in result.stderr, f"not env-no-expert: {result.stderr}")
    _check("starting" not in result.stderr, f"a server was started: {result.stderr}")


def tiny_model_episodes(
    workdir: Path,
    write_checkpoint: Callable[[Path], Path],
    embodiment: str,
    env: str,
    max_steps: int,
    *eval_args: str,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``reflex export`` the tiny checkpoint ``write_checkpoint`` writes for ``embodiment``, then
    ``reflex eval --artifact`` it on ``env``: 2 episodes (seeds 5 and 6) of at most
    ``max_steps`` ticks (``eval_args``: more ``reflex eval`` flags). Checks that both commands
    succeed, that every episode ran without a harness error, sent chunks and executed actions,
    and that the random policy succeeded in none. Returns the artifact's ``reflex_config.json``
    and the episode records.
    """
    env_vars = {"MUJOCO_GL": "egl", **os.environ, "OMP_NUM_THREADS": "1"}
    checkpoint = write_checkpoint(workdir / "ckpt")
    artifact = workdir / "artifact"
    export = subprocess.run(
        [REFLEX, "export", str(checkpoint), "--embodiment", embodiment, "-o", str(artifact),
         "--parity-cases", "1", "-q"],
        capture_output=True, text=True, timeout=600, env=env_vars,
    )  # fmt: skip
    _check(export.returncode == 0, f"reflex export failed: {export.stderr}")
    config = json.loads((artifact / "reflex_config.json").read_text())
    out = workdir / "results.jsonl"
    result = subprocess.run(
        [REFLEX, "eval", "--artifact", str(artifact), "--env", env, "--episodes", "2",
         "--max-steps", str(max_steps), "--seed", "5", "--out", str(out), "--no-progress",
         *eval_args],
        capture_output=True, text=True, timeout=600, env=env_vars,
    )  # fmt: skip
    _check(result.returncode == 0, f"reflex eval failed: {result.stdout}{result.stderr}")
    _check(f"reflex eval: {env}" in result.stdout, f"no summary table: {result.stdout}")
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    episodes = [r for r in lines if r["type"] == "episode"]
    (summary,) = [r for r in lines if r["type"] == "summary"]
    _check([r["seed"] for r in episodes] == [5, 6], f"episodes {episodes}")
    for record in episodes:
        _check(record["error"] is None, f"harness error: {record}")
        _check(record["chunks"] >= 1 and record["actions_executed"] >= 1, f"idle: {record}")
        _check(record["latency_ms"]["p50"] > 0, f"no latency: {record}")
    _check(summary["successes"] == 0 and summary["errors"] == 0, f"summary {summary}")
    return config, episodes
