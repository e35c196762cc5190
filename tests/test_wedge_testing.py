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


def test_the_policy_loader_adds_what_it_loads_to_the_context() -> None:
    """``policy_loader=`` gives the context the ``load_policy`` a server gives it: what it loads
    for a slot is then in ``ctx.policies`` (the router's second slot, in a wedge's unit test)."""
    from reflex_core.plugin.testing import wedge_context

    ctx = wedge_context(
        policies={"default": "served"}, policy_loader=lambda source, slot: f"{slot} from {source}"
    )
    assert ctx.load_policy is not None
    assert ctx.load_policy("b", "/models/candidate") == "b from /models/candidate"
    assert ctx.policies == {"default": "served", "b": "b from /models/candidate"}


def test_installed_plugin_says_what_is_not_installed() -> None:
    from reflex_core.plugin.testing import installed_plugin

    with pytest.raises(AssertionError, match="'no-such-plugin'"):
        installed_plugin("no-such-plugin", "reflex-no-such-plugin")
