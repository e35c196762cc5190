"""attrs field validators shared by config classes (a wedge's config, the core's).

Option converters (:mod:`reflex_core.options`) check values read from the command line or a
config file; these check the same things on the config class, so a config built directly in
Python (a test, an embedding application) is held to the same rules. Wrap them in
``attrs.validators.optional`` for a field that may be None; use ``attrs.validators.in_`` for a
closed set of choices::

    @attrs.frozen
    class Config:
        trip_after: int = attrs.field(default=5, validator=non_negative)
        control_hz: float | None = attrs.field(
            default=None, validator=attrs.validators.optional(positive)
        )
"""

from __future__ import annotations

import math
from typing import Any

import attrs


def positive(_instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    """The value is finite and > 0."""
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{attribute.name} must be > 0, got {value}")


def non_negative(_instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    """The value is finite and >= 0."""
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"{attribute.name} must be >= 0, got {value}")
