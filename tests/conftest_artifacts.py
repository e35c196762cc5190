"""Session-cached export artifacts of the built-in tiny checkpoints, for any test suite.

Each artifact is a real ``reflex export`` output (torch -> ONNX -> parity gate), exported once per
pytest session under the session's base temp dir and reused: exporting costs 10-30 s, loading a
cached one milliseconds. The cache lives on disk (keyed by the base temp dir), so it is shared
even when this module is loaded more than once (by path from several test modules, or as a
``pytest_plugins`` entry), and by every pytest-xdist worker of the session: it sits in the
directory their base temp dirs share, and each export holds a file lock, so the first worker to
need an artifact exports it and the others wait for it and reuse it.

Fixtures (all session-scoped):

- ``export_artifact_dir(source, mode) -> Path``: any built-in checkpoint in any mode;
- ``tiny_pi0_decomposed``, ``tiny_pi0_monolithic``, ``tiny_pi05_decomposed``: artifact dirs;
- ``tiny_pi05_monolithic``: the same, with its weights in ONNX external data
  (``policy.onnx.data``) so that path is exercised end to end;
- ``tiny_checkpoint(source) -> LoadedPolicy``: the torch policy, for reference outputs.

Wiring for another suite: from the repository root (``python -m pytest``), add to the root
``conftest.py``: ``pytest_plugins = ["tests.conftest_artifacts"]``; or load this file by path
(see ``load_helper`` in ``tests/conftest.py``). Torch is imported only when an artifact must be
exported.
"""

from __future__ import annotations

import functools
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

#: Exports whose graphs carry their weights in external data (the .data path is tested).
EXTERNAL_DATA = {("tiny-pi05", "monolithic")}
#: Parity cases per cached export: every batch size (1, 2, 3) once.
PARITY_CASES = 3


@functools.cache
def load_tiny_checkpoint(source: str) -> Any:
    """The LoadedPolicy of a built-in checkpoint (torch), once per process."""
    from reflex_core.models import load_policy_checkpoint

    return load_policy_checkpoint(source)


def session_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's base temp dir; under pytest-xdist, the one the workers' base temp dirs
    (``<session base>/popen-gwN``) share, so a cache there is the whole session's."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def export_cached(root: Path, source: str, mode: str) -> Path:
    """Export ``source`` in ``mode`` under ``root`` unless a verified artifact is already there.
    The check and the export hold ``<name>.lock``: one process exports, the others wait. Each
    artifact is alone in a directory of its own (``<name>/<name>``): what an export leaves
    beside its output is its own, never another worker's export in progress."""
    from filelock import FileLock

    name = f"{source}-{mode}"
    out = root / name / name
    with FileLock(root / f"{name}.lock"):
        if not _verified(out):
            out.parent.mkdir(exist_ok=True)
            _export(root, out, source, mode)
    return out


def _verified(out: Path) -> bool:
    from reflex_core.artifact import Artifact
    from reflex_core.errors import ArtifactError

    if not out.is_dir():
        return False
    try:
        Artifact.load(out, verify=True)
        return True
    except ArtifactError:
        return False  # a test corrupted the cached copy? re-export it


def _export(root: Path, out: Path, source: str, mode: str) -> None:
    from reflex_core.export.parity import ParitySettings
    from reflex_core.export.pipeline import ExportRequest, export_artifact
    from reflex_core.export.progress import Progress

    log = io.StringIO()
    request = ExportRequest(
        source=source,
        output=out,
        mode=mode,
        force=True,
        external_data=True if (source, mode) in EXTERNAL_DATA else None,
        parity=ParitySettings(cases=PARITY_CASES, threads=1),
    )
    export_artifact(
        request, progress=Progress(log, live=False), policy=load_tiny_checkpoint(source)
    )
    (root / f"{source}-{mode}.log").write_text(log.getvalue())


@pytest.fixture(scope="session")
def export_artifact_dir(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], Path]:
    """``export_artifact_dir(source, mode) -> Path`` (exports on first use)."""
    root = session_root(tmp_path_factory) / "reflex-artifacts"
    root.mkdir(exist_ok=True)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    return functools.partial(export_cached, root)


@pytest.fixture(scope="session")
def tiny_checkpoint() -> Callable[[str], Any]:
    return load_tiny_checkpoint


def _artifact_dir_fixture(source: str, mode: str) -> Any:
    """The session fixture ``<source>_<mode>`` (dashes as underscores): that artifact's dir."""

    @pytest.fixture(scope="session", name=f"{source.replace('-', '_')}_{mode}")
    def artifact_dir(export_artifact_dir: Callable[[str, str], Path]) -> Path:
        return export_artifact_dir(source, mode)

    return artifact_dir


tiny_pi0_decomposed = _artifact_dir_fixture("tiny-pi0", "decomposed")
tiny_pi0_monolithic = _artifact_dir_fixture("tiny-pi0", "monolithic")
tiny_pi05_decomposed = _artifact_dir_fixture("tiny-pi05", "decomposed")
tiny_pi05_monolithic = _artifact_dir_fixture("tiny-pi05", "monolithic")
