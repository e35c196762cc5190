"""One problem found in an embodiment config."""

from __future__ import annotations

from typing import Literal

import attrs

Severity = Literal["error", "warning"]


@attrs.frozen
class EmbodimentIssue:
    """A finding of the schema layer or of a cross-field rule.

    :ivar slug: stable identifier (``schema-violation``, ``gripper-idx-out-of-range``...); tools
        and docs key on it, never on the message.
    :ivar severity: ``"error"`` makes the config unusable; ``"warning"`` is reported and loaded.
    :ivar field: dotted path of the offending field (``cameras[1].fps``), ``(root)`` for the
        document itself.
    :ivar message: what is wrong, in words.
    """

    slug: str
    severity: Severity
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity} [{self.slug}] {self.field}: {self.message}"
