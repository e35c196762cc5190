"""The A2C2 wedge's options and config (``reflex serve --a2c2-head head.npz`` or ``[a2c2]``)."""

from __future__ import annotations

import attrs
from attrs.validators import in_, optional

from reflex_core.options import Option
from reflex_core.validators import non_negative, positive

NORM_SCOPES = ("action", "chunk")


@attrs.frozen
class A2C2Config:
    """Field names are the options' ``dest`` names.

    :ivar a2c2_head: the head file (``.npz`` NumPy MLP or ``.onnx``); setting it enables the wedge.
    :ivar a2c2_latency_threshold_ms: correct only chunks whose observation is older than this.
    :ivar a2c2_max_norm: largest residual (L2, action units) applied; None: the head's own
        ``suggested_max_norm``.
    :ivar a2c2_norm_scope: ``action``: a step whose residual exceeds the bound keeps its base
        action, the others are corrected; ``chunk``: one step over the bound keeps the whole
        chunk uncorrected.
    """

    a2c2_head: str | None = None
    a2c2_latency_threshold_ms: float = attrs.field(default=0.0, validator=non_negative)
    a2c2_max_norm: float | None = attrs.field(default=None, validator=optional(positive))
    a2c2_norm_scope: str = attrs.field(default="action", validator=in_(NORM_SCOPES))


def is_enabled(config: A2C2Config) -> bool:
    """On with a head; a bound without a head also switches it on so the factory refuses it."""
    return config.a2c2_head is not None or config.a2c2_max_norm is not None


OPTIONS: tuple[Option, ...] = (
    Option(
        "--a2c2-head",
        "A2C2 correction head (.npz from `reflex a2c2 train`, or .onnx); enables the correction",
        metavar="PATH",
    ),
    Option(
        "--a2c2-latency-threshold-ms",
        "correct only chunks whose observation is older than "
        "this when the policy returns (default 0: always)",
        type=float,
        default=0.0,
        metavar="MS",
    ),
    Option(
        "--a2c2-max-norm",
        "largest residual (L2 per action, action units) applied; beyond "
        "it the base action is kept (default: the head's suggested bound)",
        type=float,
        metavar="X",
    ),
    Option(
        "--a2c2-norm-scope",
        "what an over-bound residual keeps uncorrected: that action, or "
        "the whole chunk (default action)",
        choices=NORM_SCOPES,
        default="action",
    ),
)
