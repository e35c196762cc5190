"""Where the shipped embodiment presets and their JSON Schema live.

The presets sit at the top of the repository (``embodiments/``, DESIGN §2) and the wheel carries
them as ``reflex_core/_embodiments`` (pyproject ``force-include``). This module finds them in
both layouts and reads them; it imports nothing heavy so the built-in plugin that registers the
presets keeps ``reflex --help`` fast.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from reflex_core.errors import ConfigError

SCHEMA_FILE = "schema.json"


def presets_dir() -> Path:
    """The directory holding the preset ``<name>.json`` files and ``schema.json``."""
    packaged = resources.files("reflex_core") / "_embodiments"
    if packaged.is_dir():
        return Path(str(packaged))
    # An editable install (or a source checkout on sys.path) imports reflex_core straight from
    # the repository, where the force-included copy does not exist: the presets are still at
    # the top of the repository, two levels above this file.
    repo_dir = Path(__file__).resolve().parents[2] / "embodiments"
    if (repo_dir / SCHEMA_FILE).is_file():
        return repo_dir
    raise ConfigError(
        f"reflex-core is installed without its embodiment presets: neither {packaged} nor "
        f"{repo_dir} holds {SCHEMA_FILE}; reinstall reflex-core",
        slug="embodiment-presets-missing",
    )


def preset_names() -> list[str]:
    """Names of the shipped presets (``franka``, ``so100``, ``ur5``), sorted."""
    return sorted(p.stem for p in presets_dir().glob("*.json") if p.name != SCHEMA_FILE)


def preset_path(name: str) -> Path:
    """The JSON file of a shipped preset; ``embodiment-unknown`` if there is none."""
    names = preset_names()
    if name not in names:
        raise ConfigError(
            f"unknown embodiment preset {name!r}; built-in presets: {', '.join(names)}",
            slug="embodiment-unknown",
            field="embodiment",
            details={"known": names},
        )
    return presets_dir() / f"{name}.json"


def read_json_file(path: str | Path, *, what: str = "embodiment config") -> Any:
    """Parse a JSON file; a missing file or bad JSON is a ConfigError, never a traceback."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{what} {str(path)!r} does not exist",
            slug="embodiment-file-not-found",
            field="embodiment",
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot read {what} {str(path)!r}: {exc}",
            slug="embodiment-file-unreadable",
            field="embodiment",
        ) from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{what} {str(path)!r} is not valid JSON: {exc.msg} at line {exc.lineno} "
            f"column {exc.colno}",
            slug="embodiment-invalid",
            field="embodiment",
            details={
                "issues": [
                    {
                        "slug": "invalid-json",
                        "severity": "error",
                        "field": "(root)",
                        "message": f"{exc.msg} at line {exc.lineno} column {exc.colno}",
                    }
                ]
            },
        ) from exc


def read_preset(name: str) -> dict[str, Any]:
    """The raw (unvalidated) JSON dict of a shipped preset."""
    return read_json_file(preset_path(name), what=f"embodiment preset {name!r}")


def read_schema() -> dict[str, Any]:
    """The embodiment JSON Schema (draft-07) as a dict."""
    return read_json_file(presets_dir() / SCHEMA_FILE, what="embodiment schema")
