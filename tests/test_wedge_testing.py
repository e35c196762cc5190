"""The public wedge-author harness serves what it is told to."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from reflex_core.plugin.testing import fake_server_process


@pytest.mark.slow
def test_the_fake_server_applies_the_embodiment_it_is_given(tmp_path: Path) -> None:
    with fake_server_process(
        "--embodiment", "franka", log_path=tmp_path / "log", load_plugins=""
    ) as base:
        health = httpx.get(f"{base}/health", timeout=10).json()
    assert health["embodiment"] == "franka" and health["raw_actions"] is False
