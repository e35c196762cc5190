"""Execution provider choice and verification, without a GPU: the available list and the
session are injected."""

from __future__ import annotations

from typing import Any

import onnxruntime as ort
import pytest

from reflex_core.errors import ConfigError
from reflex_core.runtime.providers import (
    CPU,
    CUDA,
    TENSORRT,
    check_session_providers,
    choose_providers,
    provider_options,
    resolve_name,
)
from reflex_core.runtime.sessions import (
    declared_feeds,
    default_thread_count,
    device_of,
    make_session_options,
    open_session,
)

GPU_BUILD = [TENSORRT, CUDA, CPU]
CPU_BUILD = ["AzureExecutionProvider", CPU]
KNOWN = ort.get_all_providers()


def test_auto_prefers_tensorrt_then_cuda_then_cpu() -> None:
    plan = choose_providers(GPU_BUILD)
    assert plan.providers == (TENSORRT, CUDA, CPU)
    assert plan.auto and plan.any_of == (TENSORRT, CUDA)
    assert choose_providers([CUDA, CPU]).providers == (CUDA, CPU)
    cpu = choose_providers(CPU_BUILD)
    assert cpu.providers == (CPU,) and cpu.any_of == ()  # Azure is never a compute choice


def test_explicit_request_with_aliases_keeps_order_and_appends_cpu() -> None:
    plan = choose_providers(GPU_BUILD, ["cuda", "trt"], known=KNOWN)
    assert plan.providers == (CUDA, TENSORRT, CPU)
    assert plan.required == (CUDA, TENSORRT)
    assert choose_providers(GPU_BUILD, ["CPU"], known=KNOWN).providers == (CPU,)
    assert resolve_name(" TensorRT ") == TENSORRT


def test_unknown_provider_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as exc:
        choose_providers(GPU_BUILD, ["CUDAProvider"], known=KNOWN)
    assert exc.value.slug == "provider-unknown"


def test_requesting_a_provider_the_build_lacks_fails_unless_fallback_allowed() -> None:
    with pytest.raises(ConfigError) as exc:
        choose_providers(CPU_BUILD, ["cuda"], known=KNOWN)
    assert exc.value.slug == "provider-unavailable"
    assert exc.value.details["missing"] == [CUDA]
    plan = choose_providers(CPU_BUILD, ["cuda"], allow_cpu_fallback=True, known=KNOWN)
    assert plan.providers == (CPU,) and plan.dropped == (CUDA,)
    warnings = check_session_providers(plan, [CPU])
    assert len(warnings) == 1 and CUDA in warnings[0]


def test_post_check_catches_a_gpu_provider_that_silently_did_not_load() -> None:
    # the GPU wheel on a machine without CUDA: CUDA is "available" but the session runs on CPU
    explicit = choose_providers(GPU_BUILD, ["cuda"], known=KNOWN)
    with pytest.raises(ConfigError) as exc:
        check_session_providers(explicit, [CPU])
    assert exc.value.slug == "provider-unavailable"
    assert exc.value.details == {"failed": [CUDA], "actual": [CPU]}
    assert check_session_providers(explicit, [CUDA, CPU]) == []
    auto = choose_providers(GPU_BUILD)
    with pytest.raises(ConfigError):
        check_session_providers(auto, [CPU])
    assert check_session_providers(auto, [CUDA, CPU]) == []  # TensorRT missing, CUDA loaded: fine
    lenient = choose_providers(GPU_BUILD, allow_cpu_fallback=True)
    assert "did not load" in check_session_providers(lenient, [CPU])[0]
    assert check_session_providers(choose_providers(CPU_BUILD), [CPU]) == []


def test_tensorrt_gets_an_engine_cache(tmp_path) -> None:
    opts = provider_options((TENSORRT, CUDA, CPU), tmp_path)
    assert opts[0] == {"trt_engine_cache_enable": "True", "trt_engine_cache_path": str(tmp_path)}
    assert opts[1:] == [{}, {}]


class FakeSession:
    def __init__(
        self,
        path: str,
        sess_options: Any,
        providers: list[str],
        provider_options: Any,
        loaded: list[str],
    ) -> None:
        self.path = path
        self.options = sess_options
        self.asked = providers
        self.loaded = loaded

    def get_providers(self) -> list[str]:
        return self.loaded


def test_open_session_verifies_what_the_session_really_runs_on(tmp_path) -> None:
    created: list[FakeSession] = []

    def factory(path, sess_options, providers, provider_options):
        created.append(FakeSession(path, sess_options, providers, provider_options, [CPU]))
        return created[-1]

    plan = choose_providers(GPU_BUILD, ["cuda"], known=KNOWN)
    with pytest.raises(ConfigError) as exc:
        open_session(tmp_path / "g.onnx", plan, role="vlm_prefix", factory=factory)
    assert exc.value.slug == "provider-unavailable"
    assert created[0].asked == [CUDA, CPU]
    session, warnings = open_session(
        tmp_path / "g.onnx", choose_providers(CPU_BUILD), role="expert_denoise", factory=factory
    )
    assert session is created[1] and warnings == []


def test_session_options_per_role(monkeypatch) -> None:
    prefix = make_session_options("vlm_prefix", threads=3)
    assert prefix.intra_op_num_threads == 3
    assert prefix.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    expert = make_session_options("expert_denoise", threads=2)
    assert expert.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    forced = make_session_options("vlm_prefix", threads=2, allow_spinning=True)
    assert forced.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert make_session_options("policy").intra_op_num_threads == 1


def test_default_thread_count() -> None:
    assert default_thread_count({"OMP_NUM_THREADS": "3"}) == 3
    assert default_thread_count({"OMP_NUM_THREADS": "x"}) >= 1
    assert default_thread_count({}) >= 1


def test_device_and_feeds_helpers() -> None:
    assert device_of([CUDA, CPU]) == "cuda" and device_of([CPU]) == "cpu"
    assert declared_feeds(["a"], {"a": 1, "b": 2}) == {"a": 1}
    with pytest.raises(Exception) as exc:
        declared_feeds(["c"], {"a": 1})
    assert getattr(exc.value, "slug", None) == "artifact-graph-io"


def test_load_policy_refuses_a_silent_cpu_fallback(runtime_graphs, tmp_path, monkeypatch) -> None:
    from reflex_core.runtime import load_policy

    art = runtime_graphs.write_artifact(tmp_path / "art")
    # pretend this is the GPU wheel on a machine without CUDA: CUDA is listed, sessions get CPU
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, CPU])

    def cpu_only(path, sess_options, providers, provider_options):
        return ort.InferenceSession(path, sess_options, providers=[CPU])

    with pytest.raises(ConfigError) as exc:
        load_policy(art, providers=["cuda"], session_factory=cpu_only)
    assert exc.value.slug == "provider-unavailable"
    with pytest.raises(ConfigError):
        load_policy(art, session_factory=cpu_only)  # automatic choice: same rule
    policy = load_policy(art, providers=["cuda"], allow_cpu_fallback=True, session_factory=cpu_only)
    assert policy.info["providers"] == {"vlm_prefix": [CPU], "expert_denoise": [CPU]}
    assert any("did not load" in w for w in policy.info["warnings"])
