"""The simulated arm shared by the shell examples, kept in a small JSON file between commands
(written atomically: observe.py may read it while act.py writes it)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from reflex_core.embodiments import EmbodimentConfig
from reflex_core.robot.sim import SimArm

EMBODIMENT = "franka"


def load(path: Path) -> SimArm:
    embodiment = EmbodimentConfig.load_preset(EMBODIMENT)
    if path.exists():
        return SimArm.from_dict(json.loads(path.read_text()), embodiment)
    return SimArm(embodiment)


def save(arm: SimArm, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(arm.to_dict()))
    os.replace(tmp, path)
