"""The A2C2 wedge's options and config (``reflex serve --a2c2-head head.npz`` or ``[a2c2]``)."""

from __future__ import annotations

import attrs

from reflex_core.plugin import duration, positive_float, setting

NORM_SCOPES = ("action", "chunk")


@attrs.frozen
class A2C2Config:
    """Each field is a ``reflex serve`` flag and a key of the ``[a2c2]`` table.

    :ivar a2c2_head: the head file (``.npz`` NumPy MLP or ``.onnx``); setting it enables the wedge.
    :ivar a2c2_latency_threshold_ms: correct only chunks whose observation is older than this.
    :ivar a2c2_max_norm: largest residual (L2, action units) applied; None: the head's own
        ``suggested_max_norm``.
    :ivar a2c2_norm_scope: ``action``: a step whose residual exceeds the bound keeps its base
        action, the others are corrected; ``chunk``: one step over the bound keeps the whole
        chunk uncorrected.
    """

    a2c2_head: str | None = setting(
        "A2C2 correction head (.npz from `reflex a2c2 train`, or .onnx); enables the correction",
        metavar="PATH",
    )
    a2c2_latency_threshold_ms: float = duration(
        "correct only chunks whose observation is older than this when the policy returns "
        "(default {default}: always)",
        default=0.0,
        allow_zero=True,
    )
    a2c2_max_norm: float | None = setting(
        "largest residual (L2 per action, action units) applied; beyond it the base action is "
        "kept (default: the head's suggested bound)",
        type=positive_float,
        metavar="X",
    )
    a2c2_norm_scope: str = setting(
        "what an over-bound residual keeps uncorrected: that action, or the whole chunk",
        choices=NORM_SCOPES,
        default="action",
    )


def is_enabled(config: A2C2Config) -> bool:
    """On with a head; a bound without a head also switches it on so the factory refuses it."""
    return config.a2c2_head is not None or config.a2c2_max_norm is not None
