"""Session-cached export artifacts of the built-in tiny checkpoints, for any test suite.

Each artifact is a real ``reflex export`` output (torch -> ONNX -> parity gate), exported once per
pytest session under the session's base temp dir and reused: exporting costs 10-30 s, loading a
cached one milliseconds. The cache lives on disk (keyed by the base temp dir), so it is shared
even when this module is loaded more than once (by path from several test modules, or as a
``pytest_plugins`` entry).

Fixtures (all session-scoped):

- ``export_artifact_dir(source, mode) -> Path``: any built-in checkpoint in any mode;
- ``tiny_pi0_decomposed``, ``tiny_pi0_monolithic``, ``tiny_pi05_decomposed``: artifact dirs;
- ``tiny_pi05_monolithic``: the same, with its weights in ONNX external data
  (``policy.onnx.data``) so that path is exercised end to end;
- ``tiny_checkpoint(source) -> LoadedPolicy``: the torch policy, for reference outputs.

Wiring for another suite: from the repository root (``python -m pytest``), add to the root
``conftest.py``: ``pytest_plugins = ["tests.conftest_artifacts"]``; or load this file by path
(see ``tests/test_export.py``). Torch is imported only when an artifact must be exported.
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


def export_cached(root: Path, source: str, mode: str) -> Path:
    """Export ``source`` in ``mode`` under ``root`` unless a verified artifact is already there."""
    from reflex_core.artifact import Artifact
    from reflex_core.errors import ArtifactError

    out = root / f"{source}-{mode}"
    if out.is_dir():
        try:
            Artifact.load(out, verify=True)
            return out
        except ArtifactError:
            pass  # a test corrupted its own copy? re-export below
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
    return out


@pytest.fixture(scope="session")
def export_artifact_dir(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], Path]:
    """``export_artifact_dir(source, mode) -> Path`` (exports on first use)."""
    root = tmp_path_factory.getbasetemp() / "reflex-artifacts"
    root.mkdir(exist_ok=True)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    return functools.partial(export_cached, root)


@pytest.fixture(scope="session")
def tiny_checkpoint() -> Callable[[str], Any]:
    return load_tiny_checkpoint


@pytest.fixture(scope="session")
def tiny_pi0_decomposed(export_artifact_dir: Callable[[str, str], Path]) -> Path:
    return export_artifact_dir("tiny-pi0", "decomposed")


@pytest.fixture(scope="session")
def tiny_pi0_monolithic(export_artifact_dir: Callable[[str, str], Path]) -> Path:
    return export_artifact_dir("tiny-pi0", "monolithic")


@pytest.fixture(scope="session")
def tiny_pi05_decomposed(export_artifact_dir: Callable[[str, str], Path]) -> Path:
    return export_artifact_dir("tiny-pi05", "decomposed")


@pytest.fixture(scope="session")
def tiny_pi05_monolithic(export_artifact_dir: Callable[[str, str], Path]) -> Path:
    return export_artifact_dir("tiny-pi05", "monolithic")
