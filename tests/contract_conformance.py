"""Static checks, run by mypy (``scripts/test.sh``; never imported by pytest): the core's own
classes satisfy the Protocols in :mod:`reflex_core.plugin.contracts` that plugins program against.

Each function is an assignment mypy must accept; a member renamed, dropped or retyped on one
side fails CI here rather than in a plugin author's type checker.
"""

from __future__ import annotations

from concurrent.futures import Executor

from reflex_core.embodiments import EmbodimentConfig
from reflex_core.plugin.contracts import (
    EmbodimentLike,
    PolicyLike,
    PolicyOutputLike,
    TransportHost,
    TransportSession,
)
from reflex_core.plugin.testing import FakePolicyOutput, FakeRuntimePolicy
from reflex_core.runtime.policy import Policy, PolicyOutput
from reflex_core.serve.app import ReflexServer
from reflex_core.serve.executor import InferenceExecutor
from reflex_core.serve.ws_transport import WebSocketSession


def server_is_a_transport_host(server: ReflexServer) -> TransportHost:
    return server


def runtime_policy_is_a_policy(policy: Policy) -> PolicyLike:
    return policy


def runtime_output_is_a_policy_output(output: PolicyOutput) -> PolicyOutputLike:
    return output


def kit_policy_is_a_policy(policy: FakeRuntimePolicy) -> PolicyLike:
    return policy


def kit_output_is_a_policy_output(output: FakePolicyOutput) -> PolicyOutputLike:
    return output


def embodiment_config_is_an_embodiment(embodiment: EmbodimentConfig) -> EmbodimentLike:
    return embodiment


def ws_session_is_a_transport_session(session: WebSocketSession) -> TransportSession:
    return session


def inference_threads_are_an_executor(executor: InferenceExecutor) -> Executor:
    return executor
