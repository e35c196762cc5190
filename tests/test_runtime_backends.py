"""Runtime backends (``reflex_register_runtime_backends``): a plugin's runtime chosen by
``--providers NAME``, never automatically, never a silent fallback.

The backend here is a test double that runs the toy artifact's graphs in onnxruntime behind the
backend surface (no io_binding), so the choice logic is tested without any backend package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from reflex_core.errors import ConfigError
from reflex_core.plugin import registry
from reflex_core.plugin.hookspecs import hookimpl
from reflex_core.runtime import load_policy
from reflex_core.runtime.providers import choose_backend
from reflex_core.wire.types import Observation


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory, runtime_graphs: Any) -> Path:
    return runtime_graphs.write_artifact(tmp_path_factory.mktemp("backend") / "art")


class _Session:
    """onnxruntime behind the backend surface: run / get_inputs / get_outputs / get_providers."""

    def __init__(self, path: Path, label: str) -> None:
        self._session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self._label = label

    def get_inputs(self) -> Any:
        return self._session.get_inputs()

    def get_outputs(self) -> Any:
        return self._session.get_outputs()

    def get_providers(self) -> list[str]:
        return [self._label]

    def run(self, names: Any, feeds: Any) -> Any:
        return self._session.run(names, feeds)


class FakeBackend:
    def __init__(self, name: str = "fakert", why: str | None = None) -> None:
        self.opened: list[tuple[str, int | None]] = []
        self.spec = registry.RuntimeBackend(
            name=name, probe=lambda: why, open_session=self.open, description="test double"
        )

    def open(self, artifact: Any, role: str, *, threads: int | None = None) -> _Session:
        self.opened.append((role, threads))
        return _Session(artifact.graph_path(role), f"{self.spec.name} (test)")


def _obs(policy: Any) -> Observation:
    h, w = policy.image_size
    rng = np.random.default_rng(0)
    return Observation(
        state=rng.uniform(-1, 2, policy.state_dim).astype(np.float32),
        images={c: rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for c in policy.camera_names},
        prompt="pick",
    )


def _noise(policy: Any) -> np.ndarray:
    shape = (1, policy.chunk_size, policy.max_action_dim)
    return np.random.default_rng(1).standard_normal(shape, dtype=np.float32)


# -- the pure choice ----------------------------------------------------------------------------


def test_no_backend_unless_named() -> None:
    assert choose_backend(None, ["fakert"]) == (None, [])
    assert choose_backend(["cuda", "cpu"], ["fakert"]) == (None, [])


def test_a_named_backend_is_chosen_case_insensitively() -> None:
    assert choose_backend(["FakeRT"], ["fakert"]) == ("fakert", [])


def test_a_backend_must_be_named_alone() -> None:
    with pytest.raises(ConfigError) as exc:
        choose_backend(["fakert", "cpu"], ["fakert"])
    assert exc.value.slug == "provider-conflict"


def test_an_unavailable_backend_is_an_error_not_a_fallback() -> None:
    with pytest.raises(ConfigError) as exc:
        choose_backend(["fakert"], ["fakert"], unavailable={"fakert": "no such CPU"})
    assert exc.value.slug == "provider-unavailable" and "no such CPU" in str(exc.value)


def test_allowed_cpu_fallback_says_so() -> None:
    chosen, warnings = choose_backend(
        ["fakert"], ["fakert"], unavailable={"fakert": "no such CPU"}, allow_cpu_fallback=True
    )
    assert chosen is None and len(warnings) == 1 and "no such CPU" in warnings[0]


# -- load_policy --------------------------------------------------------------------------------


def test_load_policy_runs_the_named_backend(artifact: Path) -> None:
    fake = FakeBackend()
    policy = load_policy(
        artifact, providers=["fakert"], runtime_backends={"fakert": fake.spec}, threads=1
    )
    assert [role for role, _ in fake.opened] == ["vlm_prefix", "expert_denoise"]
    assert fake.opened[0][1] == 1  # the thread budget reaches the backend
    assert set(policy.info["providers"]) == {"vlm_prefix", "expert_denoise"}
    assert all(p == ["fakert (test)"] for p in policy.info["providers"].values())
    reference = load_policy(artifact, providers=["cpu"])
    obs = _obs(reference)
    expected = reference.infer([obs], noise=_noise(reference)).actions
    got = policy.infer([obs], noise=_noise(policy)).actions
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_load_policy_without_the_name_never_opens_the_backend(artifact: Path) -> None:
    fake = FakeBackend()
    policy = load_policy(artifact, runtime_backends={"fakert": fake.spec})
    assert fake.opened == []
    assert policy.info["providers"]["vlm_prefix"] == ["CPUExecutionProvider"]


def test_load_policy_refuses_an_unavailable_backend(artifact: Path) -> None:
    fake = FakeBackend(why="needs a CPU with bf16")
    with pytest.raises(ConfigError) as exc:
        load_policy(artifact, providers=["fakert"], runtime_backends={"fakert": fake.spec})
    assert exc.value.slug == "provider-unavailable"
    assert fake.opened == []


def test_load_policy_fallback_only_when_allowed_and_reported(artifact: Path) -> None:
    fake = FakeBackend(why="needs a CPU with bf16")
    policy = load_policy(
        artifact,
        providers=["fakert"],
        runtime_backends={"fakert": fake.spec},
        allow_cpu_fallback=True,
    )
    assert fake.opened == []
    assert policy.info["providers"]["vlm_prefix"] == ["CPUExecutionProvider"]
    assert any("needs a CPU with bf16" in w for w in policy.info["warnings"])


def test_plain_onnxruntime_names_do_not_read_the_plugins(
    artifact: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import reflex_core.plugin.manager

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("plugins read for an onnxruntime provider")

    monkeypatch.setattr(reflex_core.plugin.manager, "make_plugin_manager", boom)
    load_policy(artifact, providers=["cpu"])
    load_policy(artifact, providers=["CPUExecutionProvider"])


def test_an_unknown_name_is_still_provider_unknown(artifact: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_policy(artifact, providers=["nosuchthing"], runtime_backends={})
    assert exc.value.slug == "provider-unknown"


class _BackendPlugin:
    def __init__(self, spec: registry.RuntimeBackend) -> None:
        self.spec = spec

    @hookimpl
    def reflex_register_runtime_backends(self, register: Any) -> None:
        register(self.spec)


def test_hook_reflex_register_runtime_backends(artifact: Path, make_pm: Any) -> None:
    fake = FakeBackend()
    pm = make_pm(toyrt=_BackendPlugin(fake.spec))
    assert pm.registry.runtime_backends["fakert"] is fake.spec
    assert pm.registry.owner("runtime_backends", "fakert") == "toyrt"
    policy = load_policy(
        artifact, providers=["fakert"], runtime_backends=pm.registry.runtime_backends
    )
    assert policy.info["providers"]["expert_denoise"] == ["fakert (test)"]


def test_hook_reflex_register_runtime_backends_duplicate_names(make_pm: Any) -> None:
    from reflex_core.errors import PluginError

    with pytest.raises(PluginError) as exc:
        make_pm(one=_BackendPlugin(FakeBackend().spec), two=_BackendPlugin(FakeBackend().spec))
    assert exc.value.slug == "plugin-duplicate-name"


def test_doctor_says_which_backend_can_run() -> None:
    from reflex_core.commands.doctor import PASS, WARN, backend_checks

    def broken() -> str | None:
        raise RuntimeError("boom")

    specs = {
        "okrt": FakeBackend("okrt").spec,
        "nort": FakeBackend("nort", why="needs AMX").spec,
        "badrt": registry.RuntimeBackend(name="badrt", probe=broken, open_session=lambda *a: None),
    }
    checks = {c.name: c for c in backend_checks(specs)}
    assert checks["runtime backend okrt"].status == PASS
    assert checks["runtime backend nort"].status == WARN
    assert "needs AMX" in checks["runtime backend nort"].message
    assert checks["runtime backend badrt"].status == WARN
    assert "boom" in checks["runtime backend badrt"].message
