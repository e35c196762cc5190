"""Validate an embodiment config: the JSON Schema, then the cross-field rules; every finding.

>>> from reflex_core.embodiments import EmbodimentConfig
>>> from reflex_core.embodiments.validate import validate_embodiment_config, format_errors
>>> ok, errors = validate_embodiment_config(EmbodimentConfig.load_preset("franka"))
>>> ok
True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from reflex_core.embodiments.issues import EmbodimentIssue
from reflex_core.embodiments.rules import rule_issues
from reflex_core.embodiments.schema import schema_issues

__all__ = ["EmbodimentIssue", "format_errors", "validate_embodiment_config"]


def validate_embodiment_config(
    cfg_or_dict: Any,
) -> tuple[bool, list[EmbodimentIssue]]:
    """Run both layers on a config dict (or an :class:`EmbodimentConfig`, via its ``raw``).

    :return: ``(ok, issues)``: ``ok`` is False when any issue has severity ``"error"``;
        ``issues`` holds every schema violation, then every cross-field finding, warnings
        included.
    """
    document = cfg_or_dict.raw if hasattr(cfg_or_dict, "raw") else cfg_or_dict
    if isinstance(document, Mapping) and not isinstance(document, dict):
        document = dict(document)
    issues = schema_issues(document) + rule_issues(document)
    return not any(i.severity == "error" for i in issues), issues


def format_errors(errors: Iterable[EmbodimentIssue]) -> str:
    """One line per issue: ``error [slug] field: message``."""
    return "\n".join(f"  {issue}" for issue in errors)
