"""``reflex export SOURCE`` -> a family's :class:`~reflex_core.models.family.LoadedPolicy`.

SOURCE is a built-in name (any loader's ``builtin_checkpoints``), a local checkpoint directory
or a Hub repo id. The directory's ``config.json`` is offered to every registered
:class:`~reflex_core.plugin.registry.ModelLoader`; exactly one must claim it. Nothing here knows a
family: the pi0/pi0.5 loaders are registered by a built-in plugin like any third party's.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from reflex_core.errors import CheckpointError
from reflex_core.models.family import LoadedPolicy, LoadOptions
from reflex_core.models.lerobot import CONFIG_FILE, read_json

# What snapshot_download fetches from a Hub repo (no optimizer state, no training extras).
HUB_PATTERNS = [
    "*.json",
    "*.safetensors",
    "tokenizer/*",
    "*.model",
]
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _not_found(message: str, **details: Any) -> CheckpointError:
    return CheckpointError(message, slug="checkpoint-not-found", status=404, details=details)


def builtin_checkpoints(registry: Any) -> dict[str, tuple[str, Any]]:
    """Every built-in name -> (family, :class:`~reflex_core.plugin.registry.BuiltinCheckpoint`)."""
    table: dict[str, tuple[str, Any]] = {}
    for loader in registry.model_loaders.values():
        for name, builtin in loader.builtin_checkpoints.items():
            table[name] = (loader.name, builtin)
    return table


def builtin_cache_root() -> Path:
    """``$REFLEX_CACHE_DIR/checkpoints`` or ``$XDG_CACHE_HOME/reflex/checkpoints`` (~/.cache)."""
    root = os.environ.get("REFLEX_CACHE_DIR")
    if root:
        return Path(root) / "checkpoints"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "reflex" / "checkpoints"


def _cache_key(builtin: Any) -> str:
    """The registered key, else a digest of the writer's own source file (a changed writer
    writes a new directory)."""
    if builtin.cache_key:
        return str(builtin.cache_key)
    try:
        source = inspect.getsourcefile(builtin.write)
        data = Path(source).read_bytes() if source else b""
    except (TypeError, OSError):
        data = b""
    if not data:
        return ""
    return hashlib.sha256(data).hexdigest()[:16]


def ensure_builtin(name: str, builtin: Any, cache_root: str | Path | None = None) -> Path:
    """The cached directory of built-in ``name``, written once (atomically) if absent."""
    root = Path(cache_root) if cache_root is not None else builtin_cache_root()
    root.mkdir(parents=True, exist_ok=True)
    key = _cache_key(builtin)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    if not key:  # nothing identifies the contents: a fresh directory every time
        builtin.write(staging)
        staging.chmod(0o755)
        return staging
    target = root / f"{name}-{key}"
    try:
        if (target / CONFIG_FILE).is_file():
            return target
        builtin.write(staging)
        staging.chmod(0o755)  # mkdtemp makes it private; the cache is shared like ~/.cache/hf
        try:
            staging.rename(target)
        except OSError:
            # Another process won the race (or a partial dir sits there): use/replace it.
            if not (target / CONFIG_FILE).is_file():
                shutil.rmtree(target, ignore_errors=True)
                staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def resolve_checkpoint_dir(source: str | Path, registry: Any) -> Path:
    """A local directory, a built-in name (written to the cache once) or a Hub repo id."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    text = str(source)
    builtins = builtin_checkpoints(registry)
    if text in builtins:
        return ensure_builtin(text, builtins[text][1])
    if path.exists():
        raise _not_found(f"{source} is a file; a checkpoint is a directory with {CONFIG_FILE}")
    if _REPO_ID.match(text) and not text.startswith((".", "/", "~")):
        return _hub_snapshot(text)
    raise _not_found(
        f"checkpoint {text!r} is neither a directory, a Hub repo id (owner/name) nor a "
        f"built-in ({', '.join(sorted(builtins)) or 'none installed'})"
    )


def _hub_snapshot(repo_id: str) -> Path:
    """snapshot_download with the normal Hub cache; HF_HUB_OFFLINE=1 means cache only."""
    from huggingface_hub import snapshot_download

    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
    cache_dir = os.environ.get("HF_HUB_CACHE") or None
    try:
        snapshot = snapshot_download(
            repo_id,
            allow_patterns=HUB_PATTERNS,
            local_files_only=offline,
            cache_dir=cache_dir,
        )
    except Exception as exc:  # hub errors: offline cache miss, 404, gated repo, network
        hint = " (HF_HUB_OFFLINE is set: only the local cache is used)" if offline else ""
        raise _not_found(
            f"cannot get Hub checkpoint {repo_id!r}{hint}: {type(exc).__name__}: {exc}"
        ) from exc
    return Path(snapshot)


def choose_loader(config: Mapping[str, Any], registry: Any, where: str = "") -> Any:
    """The one loader whose ``matches`` claims ``config``.

    :raises CheckpointError: ``model-family-unknown`` (none; lists the installed families),
        ``model-family-ambiguous`` (several; names them and their plugins).
    """
    loaders = registry.model_loaders
    claims = []
    for name in sorted(loaders):
        try:
            if loaders[name].matches(config):
                claims.append(name)
        except Exception:  # a loader's matches must not take the others down
            continue
    kind = config.get("type") if isinstance(config, Mapping) else None
    at = f" ({where})" if where else ""
    if not claims:
        installed = ", ".join(sorted(loaders)) or "none"
        raise CheckpointError(
            f"no installed model family recognizes this checkpoint{at}: config.json type "
            f"{kind!r}; installed families: {installed}. Install the family's plugin (e.g. "
            "`pip install reflex-smolvla`) or check the directory",
            slug="model-family-unknown",
            status=400,
            field="type",
            details={"type": kind, "installed": sorted(loaders)},
        )
    if len(claims) > 1:
        owners = [f"{n} (plugin {registry.owner('model_loaders', n)})" for n in claims]
        raise CheckpointError(
            f"several model families claim this checkpoint{at}: {', '.join(owners)}; disable "
            "one with REFLEX_DISABLE_PLUGINS",
            slug="model-family-ambiguous",
            status=400,
            details={"candidates": claims},
        )
    return loaders[claims[0]]


def load_checkpoint(source: str | Path, registry: Any, options: LoadOptions) -> LoadedPolicy:
    """Resolve ``source``, pick its family's loader, load it, apply ``--preprocess`` overrides.

    :raises CheckpointError: ``checkpoint-not-found``, ``checkpoint-config-invalid``,
        ``model-family-unknown``, ``model-family-ambiguous`` and whatever the loader raises.
    """
    from reflex_core.runtime.io_spec import override

    directory = resolve_checkpoint_dir(source, registry)
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        raise _not_found(f"{directory} has no {CONFIG_FILE}")
    config = read_json(config_path)
    if not isinstance(config, Mapping):
        raise CheckpointError(
            f"{config_path} must hold a JSON object", slug="checkpoint-config-invalid", status=400
        )
    loader = choose_loader(config, registry, str(directory))
    unknown = sorted(set(options.model_options) - set(loader.model_options))
    if unknown:
        known = ", ".join(sorted(loader.model_options)) or "none"
        raise CheckpointError(
            f"model family {loader.name!r} has no model option {', '.join(unknown)}; it reads: "
            f"{known}",
            slug="model-option-unknown",
            status=400,
            field="model_option",
            details={"unknown": unknown, "known": sorted(loader.model_options)},
        )
    policy = loader.load(directory, options)
    if not isinstance(policy, LoadedPolicy):
        raise CheckpointError(
            f"model family {loader.name!r} returned {type(policy).__name__}, not a LoadedPolicy",
            slug="checkpoint-unsupported",
            status=500,
        )
    if policy.family != loader.name:
        policy = attrs.evolve(policy, family=loader.name)
    if options.model_options:
        chosen = {k: options.model_options[k] for k in sorted(options.model_options)}
        policy = attrs.evolve(policy, provenance={**policy.provenance, "model_options": chosen})
    if options.preprocess:
        io = override(policy.io, options.preprocess)
        provenance = {
            **policy.provenance,
            "overrides": {k: options.preprocess[k] for k in sorted(options.preprocess)},
        }
        policy = attrs.evolve(policy, io=io, provenance=provenance)
    return policy


def load_policy_checkpoint(
    source: str | Path,
    *,
    tokenizer_file: str | Path | None = None,
    registry: Any = None,
    embodiment: Any = None,
    preprocess: Mapping[str, Any] | None = None,
    model_options: Mapping[str, Any] | None = None,
) -> LoadedPolicy:
    """Library entry point: :func:`load_checkpoint` with the installed plugins' registry.

    :param registry: a :class:`~reflex_core.plugin.registry.Registry`; None loads the installed
        plugins (``make_plugin_manager()``).
    """
    if registry is None:
        from reflex_core.plugin.manager import make_plugin_manager

        registry = make_plugin_manager().registry
    options = LoadOptions(
        source=str(source),
        tokenizer_file=None if tokenizer_file is None else Path(tokenizer_file),
        embodiment=embodiment,
        preprocess=dict(preprocess or {}),
        model_options=dict(model_options or {}),
    )
    return load_checkpoint(source, registry, options)
