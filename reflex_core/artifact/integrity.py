"""What makes an artifact tamper-evident: a digest over everything the runtime reads, and an
optional ed25519 signature of that digest.

``reflex_config.json`` holds every file's sha256 (graphs, external data, tokenizer, parity
report) and every setting that changes an action (normalization statistics, the preprocessing
contract, dims). Its ``integrity`` block records a sha256 of the canonical JSON of the rest of
the manifest (``digest``) and of each top-level field and each entry of an object field
(``fields``), so a change is refused naming the field that changed. The digest therefore covers
everything transitively; signing it (``reflex export --sign-key``) proves who exported it, and
``reflex serve --trusted-keys DIR`` refuses an artifact no trusted key signed.

Keys are ed25519 in PEM (``reflex keygen`` writes a pair; ``openssl genpkey -algorithm ed25519``
works too). No torch here: serving imports this module.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from reflex_core.errors import ArtifactError, ConfigError

INTEGRITY_KEY = "integrity"
SIGNATURE_FILE = "signature.json"
ALGORITHM = "sha256-canonical-json"
SIGNATURE_ALGORITHM = "ed25519"


def canonical(value: Any) -> bytes:
    """The one byte string a JSON value hashes to (sorted keys, no spaces, UTF-8)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _sha(value: Any) -> str:
    return hashlib.sha256(canonical(value)).hexdigest()


def _body(config: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k != INTEGRITY_KEY}


def field_digests(config: Mapping[str, Any]) -> dict[str, str]:
    """sha256 of each top-level field, and of each entry of an object-valued field
    (``normalization.action``, ``preprocessing.image``), keyed by its dotted path."""
    out: dict[str, str] = {}
    for key, value in _body(config).items():
        out[key] = _sha(value)
        if isinstance(value, Mapping):
            for sub, sub_value in value.items():
                out[f"{key}.{sub}"] = _sha(sub_value)
    return out


def manifest_digest(config: Mapping[str, Any]) -> str:
    """sha256 of the canonical manifest without its integrity block: what a signature signs."""
    return _sha(_body(config))


def seal(config: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest with its ``integrity`` block (computed last, over everything else)."""
    body = _body(config)
    return {
        **body,
        INTEGRITY_KEY: {
            "algorithm": ALGORITHM,
            "digest": manifest_digest(body),
            "fields": field_digests(body),
        },
    }


def changed_fields(config: Mapping[str, Any]) -> list[str]:
    """Dotted paths whose digest no longer matches (most specific first), ``[]`` if intact."""
    block = config.get(INTEGRITY_KEY)
    recorded: Mapping[str, str] = block.get("fields", {}) if isinstance(block, Mapping) else {}
    actual = field_digests(config)
    changed = sorted(p for p in set(recorded) | set(actual) if recorded.get(p) != actual.get(p))
    specific = [p for p in changed if "." in p]
    parents = {p.split(".", 1)[0] for p in specific}
    return specific + [p for p in changed if "." not in p and p not in parents]


def verify_manifest(config: Mapping[str, Any], file_name: str) -> str:
    """Check the integrity block; returns the digest.

    :raises ArtifactError: ``artifact-config-tampered`` naming the file and the fields that
        changed (or a missing / malformed block).
    """
    block = config.get(INTEGRITY_KEY)
    if not isinstance(block, Mapping) or block.get("algorithm") != ALGORITHM:
        raise ArtifactError(
            f"{file_name} has no valid integrity block: it cannot be checked for changes; "
            "re-export the model",
            slug="artifact-config-tampered",
            details={"file": file_name, "fields": [INTEGRITY_KEY]},
        )
    changed = changed_fields(config)
    digest = manifest_digest(config)
    if changed or block.get("digest") != digest:
        fields = changed or ["<manifest>"]
        raise ArtifactError(
            f"{file_name} changed after export: field(s) {', '.join(fields)} no longer match "
            "the digest recorded at export; re-export the model (a manifest edited by hand "
            "changes what the robot does without a parity gate)",
            slug="artifact-config-tampered",
            details={"file": file_name, "fields": fields},
        )
    return digest


# ---------------------------------------------------------------------------------------------
# Signatures
# ---------------------------------------------------------------------------------------------


@attrs.frozen
class Signer:
    """Who signed an artifact: the key's id (first 16 hex of sha256 of the raw public key) and,
    when a trusted key matched, that key file's name."""

    key_id: str
    public_key: str
    trusted_as: str | None = None


def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as exc:  # a base dependency; a broken install should say so
        raise ConfigError(
            "artifact signatures need the 'cryptography' package (pip install cryptography)",
            slug="signing-unavailable",
        ) from exc
    return ed25519


def _raw_public(public_key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(
        encoding=serialization.Encoding.Raw, format=serialization.PublicFormat.Raw
    )


def key_id(raw_public: bytes) -> str:
    return hashlib.sha256(raw_public).hexdigest()[:16]


def private_key_id(private_key: Any) -> str:
    """The key id of a private key's public half (what ``reflex doctor`` shows as signer)."""
    return key_id(_raw_public(private_key.public_key()))


def _bad_sign_key(message: str) -> ConfigError:
    return ConfigError(message, slug="sign-key-invalid", field="sign_key")


def _bad_trusted_keys(message: str) -> ConfigError:
    return ConfigError(message, slug="trusted-keys-invalid", field="trusted_keys")


def load_private_key(path: str | Path) -> Any:
    """An ed25519 private key from a PEM file.

    :raises ConfigError: ``sign-key-invalid``.
    """
    ed25519 = _crypto()
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise _bad_sign_key(f"cannot read the signing key {str(path)!r}: {exc}") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise _bad_sign_key(f"{str(path)!r} is not an ed25519 private key")
    return key


def load_public_keys(directory: str | Path) -> dict[str, tuple[str, bytes]]:
    """Every ed25519 public key (PEM) in ``directory``: key id -> (file name, raw bytes).

    :raises ConfigError: ``trusted-keys-invalid`` for a missing directory, an unreadable or
        non-ed25519 key, or a directory without keys.
    """
    ed25519 = _crypto()
    from cryptography.hazmat.primitives import serialization

    root = Path(directory)
    if not root.is_dir():
        raise _bad_trusted_keys(f"--trusted-keys {str(root)!r} is not a directory")
    keys: dict[str, tuple[str, bytes]] = {}
    for path in sorted(root.iterdir()):
        if not path.is_file() or path.suffix not in (".pem", ".pub"):
            continue
        try:
            key = serialization.load_pem_public_key(path.read_bytes())
        except ValueError as exc:
            raise _bad_trusted_keys(
                f"trusted key {path.name!r} is not a PEM public key: {exc}"
            ) from None
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise _bad_trusted_keys(f"trusted key {path.name!r} is not ed25519")
        raw = _raw_public(key)
        keys[key_id(raw)] = (path.name, raw)
    if not keys:
        raise _bad_trusted_keys(f"--trusted-keys {str(root)!r} holds no *.pem / *.pub public key")
    return keys


def sign_digest(digest: str, private_key: Any) -> dict[str, Any]:
    """The ``signature.json`` document for ``digest``."""
    raw = _raw_public(private_key.public_key())
    return {
        "algorithm": SIGNATURE_ALGORITHM,
        "digest": digest,
        "key_id": key_id(raw),
        "public_key": base64.b64encode(raw).decode("ascii"),
        "signature": base64.b64encode(private_key.sign(digest.encode("ascii"))).decode("ascii"),
    }


def write_signature(directory: Path, digest: str, private_key: Any) -> Path:
    path = Path(directory) / SIGNATURE_FILE
    path.write_text(json.dumps(sign_digest(digest, private_key), indent=2) + "\n")
    return path


def read_signer(directory: Path, digest: str) -> Signer | None:
    """The signer of ``directory`` if its signature verifies against ``digest``; None if unsigned.

    :raises ArtifactError: ``artifact-signature-invalid`` (unreadable, wrong digest, bad
        signature).
    """
    path = Path(directory) / SIGNATURE_FILE
    if not path.is_file():
        return None
    ed25519 = _crypto()
    from cryptography.exceptions import InvalidSignature

    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        raw = base64.b64decode(doc["public_key"], validate=True)
        signature = base64.b64decode(doc["signature"], validate=True)
        public = ed25519.Ed25519PublicKey.from_public_bytes(raw)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(
            f"{SIGNATURE_FILE} is unreadable: {exc}", slug="artifact-signature-invalid"
        ) from None
    if doc.get("algorithm") != SIGNATURE_ALGORITHM or doc.get("digest") != digest:
        raise ArtifactError(
            f"{SIGNATURE_FILE} signs another manifest than this artifact's (the artifact "
            "changed after it was signed)",
            slug="artifact-signature-invalid",
        )
    try:
        public.verify(signature, digest.encode("ascii"))
    except InvalidSignature:
        raise ArtifactError(
            f"{SIGNATURE_FILE}: the signature does not verify", slug="artifact-signature-invalid"
        ) from None
    return Signer(key_id=key_id(raw), public_key=doc["public_key"])


def require_trusted(
    directory: Path, digest: str, trusted: Mapping[str, tuple[str, bytes]]
) -> Signer:
    """The artifact must be signed by one of ``trusted`` (:func:`load_public_keys`).

    :raises ArtifactError: ``artifact-unsigned``, ``artifact-signature-invalid``,
        ``artifact-signer-untrusted``.
    """
    signer = read_signer(directory, digest)
    if signer is None:
        raise ArtifactError(
            f"artifact {str(directory)!r} is not signed and --trusted-keys is set; export it "
            "with --sign-key or `reflex sign` it",
            slug="artifact-unsigned",
        )
    entry = trusted.get(signer.key_id)
    if entry is None:
        raise ArtifactError(
            f"artifact {str(directory)!r} is signed by key {signer.key_id}, which is not among "
            f"the trusted keys ({', '.join(name for name, _ in trusted.values())})",
            slug="artifact-signer-untrusted",
            details={"key_id": signer.key_id},
        )
    return attrs.evolve(signer, trusted_as=entry[0])


def generate_keypair(prefix: str | Path) -> tuple[Path, Path]:
    """Write ``PREFIX.key`` (private, mode 0600) and ``PREFIX.pem`` (public) and return them."""
    ed25519 = _crypto()
    from cryptography.hazmat.primitives import serialization

    key = ed25519.Ed25519PrivateKey.generate()
    private = Path(f"{prefix}.key")
    public = Path(f"{prefix}.pem")
    for path in (private, public):
        if path.exists():
            raise ConfigError(f"{str(path)!r} exists; not overwriting a key", slug="output-exists")
    private.write_bytes(
        key.private_bytes(
            encoding=serialization.Encoding.PEM,
            format=serialization.PrivateFormat.PKCS8,
            encryption_algorithm=serialization.NoEncryption(),
        )
    )
    private.chmod(0o600)
    public.write_bytes(
        key.public_key().public_bytes(
            encoding=serialization.Encoding.PEM,
            format=serialization.PublicFormat.SubjectPublicKeyInfo,
        )
    )
    return private, public
