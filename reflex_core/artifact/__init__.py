"""The export artifact, the hand-off from ``reflex export`` to ``reflex serve``.

* :mod:`~reflex_core.artifact.manifest`: the directory and its ``reflex_config.json``
  (:class:`Artifact`, load, verify, migrate);
* :mod:`~reflex_core.artifact.integrity`: the digest over everything the runtime reads, and
  its optional ed25519 signature.

The names below are the manifest's, importable from here as they always were.
"""

from reflex_core.artifact.manifest import (
    CONFIG_FILE,
    MODE_GRAPHS,
    PARITY_FILE,
    SCHEMA_VERSION,
    TOKENIZER_FILE,
    Artifact,
    GraphSpec,
    TensorSpec,
    migrate_v1,
    normalization_to_json,
    sha256_file,
)

__all__ = [
    "CONFIG_FILE",
    "MODE_GRAPHS",
    "PARITY_FILE",
    "SCHEMA_VERSION",
    "TOKENIZER_FILE",
    "Artifact",
    "GraphSpec",
    "TensorSpec",
    "migrate_v1",
    "normalization_to_json",
    "sha256_file",
]
