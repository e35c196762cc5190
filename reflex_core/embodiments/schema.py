"""Layer 1 of validation: the JSON Schema (``embodiments/schema.json``), with every violation.

fastjsonschema compiles a schema into fast Python but stops at the first violation. A user
fixing a config wants them all, so when the whole-document validator fails we walk down the
schema: an object or array node is checked on its own ("shell": required keys, unknown keys,
item count) and then each property / item is checked against its own compiled sub-schema.
Every (sub-)schema is compiled once per process and cached.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import fastjsonschema

from reflex_core.embodiments.issues import EmbodimentIssue
from reflex_core.embodiments.presets import read_schema

ROOT_FIELD = "(root)"
Validator = Callable[[Any], Any]


@functools.cache
def embodiment_schema() -> dict[str, Any]:
    """The schema dict (read once from the shipped ``schema.json``)."""
    return read_schema()


@functools.cache
def _compiled(pointer: str, node_json: str) -> Validator:
    # Keyed by the node's place in the schema and its canonical JSON: the pointer keeps the cache
    # readable, the JSON makes a sub-schema and its shell distinct entries.
    node = json.loads(node_json)
    definitions = embodiment_schema().get("definitions")
    if definitions and pointer != "#":
        # Sub-schemas keep resolving "#/definitions/..." against the same definitions.
        node = {**node, "definitions": definitions}
    return fastjsonschema.compile(node, use_default=False)


def _validator(pointer: str, node: dict[str, Any]) -> Validator:
    return _compiled(pointer, json.dumps(node, sort_keys=True))


def _deref(node: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    ref = node.get("$ref")
    if not isinstance(ref, str):
        return node, None
    if not ref.startswith("#/"):
        raise ValueError(f"embodiment schema: only local $ref are supported, got {ref!r}")
    target: Any = embodiment_schema()
    for part in ref[2:].split("/"):
        target = target[part]
    return target, ref


def _join(field: str, part: str | int) -> str:
    if isinstance(part, int) or (isinstance(part, str) and part.isdigit()):
        return f"{field}[{part}]" if field != ROOT_FIELD else f"[{part}]"
    return part if field == ROOT_FIELD else f"{field}.{part}"


def _issue(field: str, exc: fastjsonschema.JsonSchemaValueException) -> EmbodimentIssue:
    # exc.path is ["data", "key", "0", ...] relative to the validated node; exc.message starts
    # with the node's generated name ("data.key[0] must be ...").
    for part in list(exc.path or [])[1:]:
        field = _join(field, part)
    message = exc.message
    name = exc.name or "data"
    if message.startswith(name + " "):
        message = message[len(name) + 1 :]
    return EmbodimentIssue("schema-violation", "error", field, message)


def _walk(node: dict[str, Any], pointer: str, value: Any, field: str) -> list[EmbodimentIssue]:
    node, ref = _deref(node)
    pointer = ref or pointer
    try:
        _validator(pointer, node)(value)
        return []
    except fastjsonschema.JsonSchemaValueException as exc:
        first = exc

    properties = node.get("properties")
    items = node.get("items")
    if isinstance(value, dict) and isinstance(properties, dict):
        # The shell keeps the property names (additionalProperties needs them) but not their
        # schemas, so it reports only what is wrong with this object itself.
        shell = {**node, "properties": {key: {} for key in properties}}
        issues = _shell_issues(pointer, shell, value, field)
        for key, sub in properties.items():
            if key in value:
                issues += _walk(sub, f"{pointer}/properties/{key}", value[key], _join(field, key))
        return issues or [_issue(field, first)]
    if isinstance(value, list) and isinstance(items, dict):
        shell = {**node, "items": {}}
        issues = _shell_issues(pointer, shell, value, field)
        for index, item in enumerate(value):
            issues += _walk(items, f"{pointer}/items", item, _join(field, index))
        return issues or [_issue(field, first)]
    return [_issue(field, first)]


def _shell_issues(
    pointer: str, shell: dict[str, Any], value: Any, field: str
) -> list[EmbodimentIssue]:
    try:
        _validator(pointer + ":shell", shell)(value)
    except fastjsonschema.JsonSchemaValueException as exc:
        if isinstance(value, dict) and exc.rule in ("required", "additionalProperties"):
            # The validator stops at the first missing or unknown key; name each of them.
            return _key_issues(shell, value, field) or [_issue(field, exc)]
        return [_issue(field, exc)]
    return []


def _key_issues(node: dict[str, Any], value: dict[str, Any], field: str) -> list[EmbodimentIssue]:
    issues = [
        EmbodimentIssue("schema-violation", "error", _join(field, key), "is required")
        for key in node.get("required", [])
        if key not in value
    ]
    if node.get("additionalProperties") is False:
        allowed = node.get("properties", {})
        issues += [
            EmbodimentIssue(
                "schema-violation",
                "error",
                _join(field, key),
                "is not a field of this section (misspelled?)",
            )
            for key in value
            if key not in allowed
        ]
    return issues


def schema_issues(document: Any) -> list[EmbodimentIssue]:
    """Every JSON Schema violation of ``document``, each as a ``schema-violation`` issue whose
    ``field`` names the offending path. Empty when the document conforms."""
    return _walk(embodiment_schema(), "#", document, ROOT_FIELD)
