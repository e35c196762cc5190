"""``reflex connect``: drive a robot from shell commands (observe / act / safe-stop) against a
Reflex server, with a safe stop that runs exactly once on any failure. See
:mod:`reflex_core.robot.connect.session` for the step and the failure reasons, docs/robot.md for a
walk-through."""

from reflex_core.robot.connect.config import OPTIONS, ConnectConfig, resolve_connect_config
from reflex_core.robot.connect.session import (
    REASONS,
    ConnectSession,
    SafeStopper,
    StepFailure,
    main_session,
    observation_fields,
)

__all__ = [
    "OPTIONS",
    "REASONS",
    "ConnectConfig",
    "ConnectSession",
    "SafeStopper",
    "StepFailure",
    "main_session",
    "observation_fields",
    "resolve_connect_config",
]
