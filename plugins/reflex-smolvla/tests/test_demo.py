"""``reflex demo --model tiny-smolvla``: the built-in SmolVLA exported with the franka embodiment
(parity gate), served by a real ``reflex serve`` with the installed wedges, driving the MuJoCo
Panda through the SDK and the control loop, with no process left behind (the checks every
family's demo passes: :func:`reflex_core.models.family_testing.run_demo`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reflex_core.models import family_testing as kit

pytestmark = pytest.mark.slow


def test_demo_runs_tiny_smolvla(tmp_path: Path) -> None:
    kit.run_demo("tiny-smolvla", "smolvla", tmp_path)
