"""The export artifact: a directory that ``reflex export`` writes and ``reflex serve`` loads.

Layout (DESIGN §6, docs/export.md)::

    DIR/reflex_config.json     the manifest (schema_version 2), every file with its sha256
    DIR/vlm_prefix.onnx        decomposed mode  (monolithic: DIR/policy.onnx)
    DIR/expert_denoise.onnx
    DIR/*.onnx.data            ONNX external data, for graphs over 64 MB
    DIR/tokenizer.json
    DIR/parity_report.json     what the parity gate measured

:meth:`Artifact.load` refuses a directory whose files do not match their recorded hashes or whose
parity gate did not pass, so a server never runs a graph nobody verified. No torch here: serving
imports this module.

Schema versions. 2 records the whole preprocessing contract as data (``preprocessing``: image,
prompt, flow schedule; see :mod:`reflex_core.runtime.io_spec`) so the runtime needs no family
code. A schema_version 1 manifest (pi0 / pi0.5 only, ``image`` / ``prompt.format`` / ``cameras``)
is migrated on load to exactly the contract its runtime applied; its files and hashes are
unchanged, so it still serves. Any other version is refused with ``artifact-schema``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import attrs
import fastjsonschema
import numpy as np

from reflex_core.artifact.integrity import (
    Signer,
    load_public_keys,
    read_signer,
    require_trusted,
    verify_manifest,
)
from reflex_core.errors import ArtifactError
from reflex_core.runtime.io_spec import FlowIO, ImageIO, IOSpec, PromptIO, TokenizerIO

SCHEMA_VERSION = 2
#: Older manifests this reflex migrates on load.
MIGRATABLE_VERSIONS = (1,)
CONFIG_FILE = "reflex_config.json"
PARITY_FILE = "parity_report.json"
TOKENIZER_FILE = "tokenizer.json"

#: The graphs each built-in mode must contain (a third-party mode may declare others).
MODE_GRAPHS: dict[str, tuple[str, ...]] = {
    "decomposed": ("vlm_prefix", "expert_denoise"),
    "monolithic": ("policy",),
}

#: Normalization modes a manifest may record (lerobot's NormalizationMode values we support).
NORMALIZATION_MODES = ["QUANTILES", "QUANTILE10", "MIN_MAX", "MEAN_STD", "IDENTITY"]
_HEX64 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_FILE_REF = {
    "type": "object",
    "required": ["file", "sha256"],
    "properties": {"file": {"type": "string", "minLength": 1}, "sha256": _HEX64},
}
_TENSOR = {
    "type": "object",
    "required": ["name", "shape", "dtype"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "shape": {"type": "array", "items": {"type": ["integer", "string"]}},
        "dtype": {"type": "string"},
    },
}
_GRAPH = {
    "type": "object",
    "required": ["file", "sha256", "inputs", "outputs", "external_data"],
    "properties": {
        "file": {"type": "string", "minLength": 1},
        "sha256": _HEX64,
        "inputs": {"type": "array", "items": _TENSOR, "minItems": 1},
        "outputs": {"type": "array", "items": _TENSOR, "minItems": 1},
        "external_data": {"oneOf": [{"type": "null"}, _FILE_REF]},
    },
}
_STATS = {
    "oneOf": [
        {"type": "null"},
        {
            "type": "object",
            "required": ["mode"],
            "properties": {"mode": {"enum": NORMALIZATION_MODES}},
            "additionalProperties": {"type": "array", "items": {"type": "number"}},
        },
    ]
}
_POS_INT = {"type": "integer", "minimum": 1}

#: JSON Schema of reflex_config.json, schema_version 2. Additive fields do not bump the version.
#: The ``preprocessing`` block is checked in detail by :meth:`IOSpec.from_json`.
CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [
        "schema_version",
        "reflex_version",
        "model",
        "mode",
        "precision",
        "opset",
        "graphs",
        "num_steps",
        "chunk_size",
        "action_dim",
        "state_dim",
        "max_action_dim",
        "max_state_dim",
        "feature_dim",
        "preprocessing",
        "tokenizer",
        "normalization",
        "embodiment",
        "exporter",
        "parity",
    ],
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "reflex_version": {"type": "string"},
        "model": {
            "type": "object",
            "required": ["family", "source", "name"],
            "properties": {
                "family": {"type": "string"},
                "source": {"type": "string"},
                "name": {"type": "string"},
            },
        },
        "mode": {"type": "string", "minLength": 1},
        "precision": {"enum": ["fp32", "fp16"]},
        "opset": _POS_INT,
        "graphs": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": _GRAPH,
        },
        "num_steps": _POS_INT,
        "chunk_size": _POS_INT,
        "action_dim": _POS_INT,
        "state_dim": {"type": "integer", "minimum": 0},
        "max_action_dim": _POS_INT,
        "max_state_dim": {"type": "integer", "minimum": 0},
        "feature_dim": _POS_INT,
        "preprocessing": {
            "type": "object",
            "required": ["image", "prompt", "flow"],
            "properties": {
                "image": {"type": "object"},
                "prompt": {"type": "object"},
                "flow": {"type": "object"},
            },
        },
        "tokenizer": {
            "type": "object",
            "required": ["file", "sha256", "max_length", "pad_id", "padding_side"],
            "properties": {
                "file": {"type": "string", "minLength": 1},
                "sha256": _HEX64,
                "max_length": _POS_INT,
                "pad_id": {"type": "integer", "minimum": 0},
                "padding_side": {"enum": ["right"]},
                "add_special_tokens": {"type": "boolean"},
            },
        },
        "normalization": {
            "type": "object",
            "required": ["state", "action"],
            "properties": {"state": _STATS, "action": _STATS},
        },
        "embodiment": {
            "oneOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": {"type": "string"}},
                },
            ]
        },
        "exporter": {"type": "object", "additionalProperties": {"type": ["string", "null"]}},
        "parity": {
            "type": "object",
            "required": ["report", "sha256", "passed"],
            "properties": {
                "report": {"type": "string", "minLength": 1},
                "sha256": _HEX64,
                "passed": {"type": "boolean"},
            },
        },
    },
}

_validate_config = fastjsonschema.compile(CONFIG_SCHEMA)


def sha256_file(path: str | os.PathLike[str], chunk_bytes: int = 1 << 22) -> str:
    """Hex sha256 of a file, streamed (graphs and their external data can be gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


@attrs.frozen
class TensorSpec:
    """A graph input or output: its name, shape (ints, or strings for dynamic axes) and dtype
    (numpy spelling: ``float32``, ``int64``, ``bool``)."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TensorSpec:
        return cls(str(d["name"]), tuple(d["shape"]), str(d["dtype"]))


@attrs.frozen
class GraphSpec:
    """One ONNX graph of the artifact, as the manifest records it."""

    name: str
    file: str
    sha256: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    external_data_file: str | None = None
    external_data_sha256: str | None = None

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    def to_dict(self) -> dict[str, Any]:
        external = (
            None
            if self.external_data_file is None
            else {"file": self.external_data_file, "sha256": self.external_data_sha256}
        )
        return {
            "file": self.file,
            "sha256": self.sha256,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "external_data": external,
        }

    @classmethod
    def from_dict(cls, name: str, d: Mapping[str, Any]) -> GraphSpec:
        external = d.get("external_data")
        return cls(
            name=name,
            file=d["file"],
            sha256=d["sha256"],
            inputs=tuple(TensorSpec.from_dict(t) for t in d["inputs"]),
            outputs=tuple(TensorSpec.from_dict(t) for t in d["outputs"]),
            external_data_file=None if external is None else external["file"],
            external_data_sha256=None if external is None else external["sha256"],
        )


#: The prompt templates a schema_version 1 manifest's ``prompt.format`` stood for.
_V1_PROMPTS: dict[str, dict[str, Any]] = {
    "pi05": {
        "template": "Task: {task}, State: {state};\nAction: ",
        "clean_task": True,
        "task_suffix": "",
        "state_pad_to": None,
    },
    "pi0": {"template": "{task}", "clean_task": False, "task_suffix": "\n", "state_pad_to": None},
}


def migrate_v1(config: dict[str, Any]) -> dict[str, Any]:
    """A schema_version 1 manifest as schema_version 2, with the contract its runtime applied:
    centred black padding, [-1, 1], a missing camera at -1, the pi0 / pi0.5 prompt formats,
    the Euler schedule from t=1 to t=0.

    :raises ArtifactError: ``artifact-schema`` when a field the migration needs is missing.
    """
    try:
        image = config["image"]
        prompt = config["prompt"]
        template = dict(_V1_PROMPTS[prompt["format"]])
        preprocessing = {
            "image": {
                "cameras": list(config["cameras"]),
                "height": image["height"],
                "width": image["width"],
                "resize": image.get("resize", "resize_with_pad"),
                "pad_value": 0.0,
                "pad_position": "center",
                "range": list(image.get("range", [-1, 1])),
                "missing_fill": -1.0,
            },
            "prompt": {
                **template,
                "state_bins": int(prompt["state_bins"]) if prompt["format"] == "pi05" else None,
            },
            "flow": {"t_start": 1.0, "t_end": 0.0},
        }
    except (KeyError, TypeError) as exc:
        raise ArtifactError(
            f"{CONFIG_FILE} has schema_version 1 but lacks {exc}; re-export the model",
            slug="artifact-schema",
        ) from None
    migrated = {k: v for k, v in config.items() if k not in ("image", "prompt", "cameras")}
    migrated["schema_version"] = SCHEMA_VERSION
    migrated["preprocessing"] = preprocessing
    migrated["migrated_from"] = 1
    model = dict(migrated.get("model") or {})
    if "num_layers" in config:
        model.setdefault("details", {"num_layers": config["num_layers"]})
    model.setdefault("provenance", {"pipeline": "reflex<0.2 (schema 1)"})
    migrated["model"] = model
    return migrated


def _stats_from_json(entry: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    out: dict[str, Any] = {"mode": entry["mode"]}
    for key, value in entry.items():
        if key != "mode":
            out[key] = np.asarray(value, dtype=np.float32)
    return out


def normalization_to_json(
    normalization: Mapping[str, Mapping[str, Any] | None],
) -> dict[str, Any]:
    """``{"state": {"mode", "q01": array...} | None, "action": ...}`` -> JSON-able lists."""
    out: dict[str, Any] = {}
    for key in ("state", "action"):
        entry = normalization.get(key)
        if entry is None:
            out[key] = None
            continue
        out[key] = {
            k: (v if k == "mode" else np.asarray(v, dtype=np.float64).reshape(-1).tolist())
            for k, v in entry.items()
        }
    return out


def _safe_relative(directory: Path, name: str, what: str) -> Path:
    """A manifest file name must stay inside the artifact directory."""
    rel = PurePosixPath(name)
    if rel.is_absolute() or ".." in rel.parts or str(rel) in ("", "."):
        raise ArtifactError(
            f"{what} file name {name!r} in {CONFIG_FILE} must be a plain relative path "
            "inside the artifact directory",
            slug="artifact-schema",
        )
    return directory / rel


@attrs.frozen(eq=False)
class Artifact:
    """A loaded, verified export artifact.

    Top-level manifest fields are attributes; ``config`` keeps the (migrated) manifest for
    anything newer than this class. ``io`` is the preprocessing contract; ``normalization``
    holds numpy arrays (float32), in the same shape as
    :attr:`reflex_core.models.family.LoadedPolicy.normalization`.
    """

    directory: Path
    config: dict[str, Any]
    graphs: dict[str, GraphSpec]
    io: IOSpec
    tokenizer: TokenizerIO
    normalization: dict[str, dict[str, Any] | None]

    # --- loading ---------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        directory: str | os.PathLike[str],
        *,
        verify: bool = True,
        trusted_keys: str | os.PathLike[str] | None = None,
    ) -> Artifact:
        """Read ``DIR/reflex_config.json`` and check the artifact.

        :param verify: check the manifest's integrity digest, every file's sha256 and that the
            parity gate passed (always on for serving; the export pipeline turns it off to run
            the gate itself).
        :param trusted_keys: a directory of ed25519 public keys (``reflex serve --trusted-keys``):
            the artifact must be signed by one of them.
        :raises ArtifactError: slug ``artifact-missing`` (no directory, manifest or listed
            file), ``artifact-schema`` (unreadable or invalid manifest), ``artifact-hash-mismatch``
            (a file changed after export), ``artifact-config-tampered`` (a manifest field changed
            after export), ``artifact-parity-failed`` (the gate did not pass),
            ``artifact-unsigned`` / ``artifact-signature-invalid`` / ``artifact-signer-untrusted``
            (with ``trusted_keys``).
        """
        directory = Path(directory)
        config_path = directory / CONFIG_FILE
        if not directory.is_dir():
            raise ArtifactError(
                f"artifact directory {str(directory)!r} does not exist", slug="artifact-missing"
            )
        if not config_path.is_file():
            raise ArtifactError(
                f"{str(directory)!r} is not a reflex artifact: {CONFIG_FILE} is missing "
                "(create one with `reflex export`)",
                slug="artifact-missing",
            )
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ArtifactError(
                f"cannot read {config_path}: {exc}", slug="artifact-schema"
            ) from exc
        artifact = cls.from_config(directory, config)
        for path, _ in artifact.files():  # presence is checked even without verify
            if not path.is_file():
                raise ArtifactError(
                    f"artifact file {str(path)!r} listed in {CONFIG_FILE} is missing",
                    slug="artifact-missing",
                )
        if verify:
            artifact.verify_integrity()
            artifact.verify_hashes()
            artifact.verify_parity()
            if trusted_keys is not None:
                artifact.require_signature(trusted_keys)
        return artifact

    @classmethod
    def from_config(cls, directory: Path, config: Any) -> Artifact:
        """Validate a manifest dict (schema + cross-field rules) without touching files.

        A schema_version 1 manifest is migrated first (:func:`migrate_v1`)."""
        if isinstance(config, dict) and config.get("schema_version") in MIGRATABLE_VERSIONS:
            config = migrate_v1(config)
        if isinstance(config, dict) and config.get("schema_version") not in (None, SCHEMA_VERSION):
            raise ArtifactError(
                f"{CONFIG_FILE} has schema_version {config.get('schema_version')!r}; this "
                f"reflex reads schema_version {SCHEMA_VERSION} (and migrates "
                f"{', '.join(map(str, MIGRATABLE_VERSIONS))}): re-export the model with this "
                "reflex (`reflex export`)",
                slug="artifact-schema",
            )
        try:
            _validate_config(config)
        except fastjsonschema.JsonSchemaException as exc:
            raise ArtifactError(
                f"{CONFIG_FILE} is invalid: {exc.message}", slug="artifact-schema"
            ) from exc
        graphs = {name: GraphSpec.from_dict(name, g) for name, g in config["graphs"].items()}
        required = MODE_GRAPHS.get(config["mode"])
        if required is not None and set(graphs) != set(required):
            raise ArtifactError(
                f"{CONFIG_FILE}: mode {config['mode']!r} needs graphs {list(required)}, "
                f"found {sorted(graphs)}",
                slug="artifact-schema",
            )
        if config["action_dim"] > config["max_action_dim"]:
            raise ArtifactError(
                f"{CONFIG_FILE}: action_dim {config['action_dim']} exceeds max_action_dim "
                f"{config['max_action_dim']}",
                slug="artifact-schema",
            )
        if config["state_dim"] > config["max_state_dim"]:
            raise ArtifactError(
                f"{CONFIG_FILE}: state_dim {config['state_dim']} exceeds max_state_dim "
                f"{config['max_state_dim']}",
                slug="artifact-schema",
            )
        tok = config["tokenizer"]
        artifact = cls(
            directory=directory,
            config=config,
            graphs=graphs,
            io=IOSpec.from_json(config["preprocessing"]),
            tokenizer=TokenizerIO(
                file=tok["file"],
                sha256=tok["sha256"],
                max_length=int(tok["max_length"]),
                pad_id=int(tok["pad_id"]),
                padding_side=tok["padding_side"],
                add_special_tokens=bool(tok.get("add_special_tokens", True)),
            ),
            normalization={
                key: _stats_from_json(config["normalization"][key]) for key in ("state", "action")
            },
        )
        list(artifact.files())  # rejects file names that escape the directory
        return artifact

    # --- verification ----------------------------------------------------------------------

    def files(self) -> Iterator[tuple[Path, str]]:
        """Every file the manifest lists, with its recorded sha256."""
        for name, graph in self.graphs.items():
            yield _safe_relative(self.directory, graph.file, f"graph {name!r}"), graph.sha256
            if graph.external_data_file is not None:
                yield (
                    _safe_relative(
                        self.directory, graph.external_data_file, f"graph {name!r} external data"
                    ),
                    str(graph.external_data_sha256),
                )
        yield (
            _safe_relative(self.directory, self.tokenizer.file, "tokenizer"),
            self.tokenizer.sha256,
        )
        parity = self.config["parity"]
        yield _safe_relative(self.directory, parity["report"], "parity report"), parity["sha256"]

    def verify_integrity(self) -> str | None:
        """The manifest must be what was exported: its integrity digest, field by field.

        Returns the digest, or None for a migrated schema_version 1 manifest (which carries
        none: re-export to get one; ``reflex doctor`` says so).

        :raises ArtifactError: ``artifact-config-tampered`` naming the changed fields.
        """
        if self.config.get("migrated_from"):
            return None
        return verify_manifest(self.config, CONFIG_FILE)

    def require_signature(self, trusted_keys: str | os.PathLike[str]) -> Signer:
        """Who signed this artifact, if one of the keys in ``trusted_keys`` did.

        :raises ConfigError: ``trusted-keys-invalid``.
        :raises ArtifactError: ``artifact-unsigned``, ``artifact-signature-invalid``,
            ``artifact-signer-untrusted``.
        """
        digest = self.verify_integrity()
        if digest is None:
            raise ArtifactError(
                f"artifact {str(self.directory)!r} has schema_version 1, which cannot be signed; "
                "re-export it with --sign-key",
                slug="artifact-unsigned",
            )
        return require_trusted(self.directory, digest, load_public_keys(trusted_keys))

    def signer(self) -> Signer | None:
        """The verified signer, or None when the artifact is unsigned.

        :raises ArtifactError: ``artifact-signature-invalid``.
        """
        digest = self.verify_integrity()
        return None if digest is None else read_signer(self.directory, digest)

    def verify_hashes(self) -> None:
        """Recompute every listed file's sha256.

        :raises ArtifactError: slug ``artifact-hash-mismatch`` naming the first file that changed.
        """
        for path, expected in self.files():
            actual = sha256_file(path)
            if actual != expected:
                raise ArtifactError(
                    f"artifact file {path.name!r} does not match its sha256 in {CONFIG_FILE} "
                    f"(expected {expected[:12]}..., found {actual[:12]}...): the file changed "
                    "after export; re-export the model",
                    slug="artifact-hash-mismatch",
                    details={"file": path.name, "expected": expected, "actual": actual},
                )

    def verify_parity(self) -> None:
        """Both the manifest and the parity report itself must say the gate passed.

        :raises ArtifactError: slug ``artifact-parity-failed``.
        """
        report = self.parity_report()
        if not (self.config["parity"]["passed"] is True and report.get("passed") is True):
            worst = report.get("worst") or {}
            raise ArtifactError(
                f"artifact {str(self.directory)!r} failed its parity gate"
                + (
                    f" (worst: graph {worst.get('graph')!r}, case {worst.get('case')!r})"
                    if worst
                    else ""
                )
                + f"; see {self.config['parity']['report']}. It must not be served.",
                slug="artifact-parity-failed",
            )

    # --- accessors -------------------------------------------------------------------------

    def parity_report(self) -> dict[str, Any]:
        path = _safe_relative(self.directory, self.config["parity"]["report"], "parity report")
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ArtifactError(f"cannot read {path}: {exc}", slug="artifact-schema") from exc

    def graph_path(self, name: str) -> Path:
        """Path of graph ``name`` (``vlm_prefix``, ``expert_denoise`` or ``policy``)."""
        try:
            graph = self.graphs[name]
        except KeyError:
            raise ArtifactError(
                f"artifact has no graph {name!r} (mode {self.mode!r} has {sorted(self.graphs)})",
                slug="artifact-schema",
            ) from None
        return self.directory / graph.file

    @property
    def tokenizer_path(self) -> Path:
        return self.directory / self.tokenizer.file

    @property
    def config_sha256(self) -> str:
        """sha256 of the manifest file: identifies this exact export (the model version)."""
        return sha256_file(self.directory / CONFIG_FILE)

    @property
    def schema_version(self) -> int:
        return int(self.config["schema_version"])

    @property
    def reflex_version(self) -> str:
        return str(self.config["reflex_version"])

    @property
    def model(self) -> dict[str, Any]:
        return dict(self.config["model"])

    @property
    def family(self) -> str:
        return str(self.config["model"]["family"])

    @property
    def mode(self) -> str:
        return str(self.config["mode"])

    @property
    def precision(self) -> str:
        return str(self.config["precision"])

    @property
    def opset(self) -> int:
        return int(self.config["opset"])

    @property
    def num_steps(self) -> int:
        return int(self.config["num_steps"])

    @property
    def chunk_size(self) -> int:
        return int(self.config["chunk_size"])

    @property
    def action_dim(self) -> int:
        return int(self.config["action_dim"])

    @property
    def state_dim(self) -> int:
        return int(self.config["state_dim"])

    @property
    def max_action_dim(self) -> int:
        return int(self.config["max_action_dim"])

    @property
    def max_state_dim(self) -> int:
        return int(self.config["max_state_dim"])

    @property
    def feature_dim(self) -> int:
        return int(self.config["feature_dim"])

    @property
    def cameras(self) -> list[str]:
        return list(self.io.image.cameras)

    @property
    def image(self) -> ImageIO:
        return self.io.image

    @property
    def prompt(self) -> PromptIO:
        return self.io.prompt

    @property
    def flow(self) -> FlowIO:
        return self.io.flow

    @property
    def embodiment(self) -> dict[str, Any] | None:
        return self.config["embodiment"]

    @property
    def exporter(self) -> dict[str, Any]:
        return dict(self.config["exporter"])

    @property
    def parity(self) -> dict[str, Any]:
        return dict(self.config["parity"])
