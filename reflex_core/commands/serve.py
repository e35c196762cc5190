"""``reflex serve DIR``: serve an exported policy over HTTP ``/act`` and WebSocket ``/ws``.

Every installed wedge adds its own option group (and ``[<wedge>]`` config-file table) through
the registry; the core does not know any wedge's flags. Heavy imports happen inside ``run``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from reflex_core.errors import ArtifactError
from reflex_core.plugin.options import add_option_group

HELP = "serve an exported policy: POST /act, WebSocket /ws, /health, /metrics"

log = logging.getLogger("reflex.serve")

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def configure(parser: argparse.ArgumentParser, registry: Any) -> None:
    from reflex_core.serve.config import SERVE_OPTIONS

    parser.add_argument("artifact_dir", metavar="DIR", type=Path, help="an exported artifact")
    parser.add_argument(
        "--config",
        metavar="serve.toml",
        type=Path,
        help="TOML config file: [serve] for these options, [<wedge>] per wedge (flags win)",
    )
    add_option_group(parser, "serve options", None, SERVE_OPTIONS, owner="reflex.commands")
    for name, spec in sorted(registry.wedges.items()):
        owner = registry.owner("wedges", name)
        add_option_group(parser, name, spec.description, spec.options, owner=owner)
    for name, transport in sorted(registry.transports.items()):
        if transport.options:
            owner = registry.owner("transports", name)
            title = f"{name} transport"
            add_option_group(parser, title, transport.description, transport.options, owner=owner)


def run(args: argparse.Namespace, pm: Any) -> int:
    from reflex_core.serve import hypercorn_runner
    from reflex_core.serve.app import ReflexServer
    from reflex_core.serve.config import load_config_file, resolve_serve_options
    from reflex_core.serve.middleware import install_request_id_logging

    registry = pm.registry
    sections = load_config_file(args.config) if args.config is not None else None
    options = resolve_serve_options(vars(args), sections, registry, artifact_dir=args.artifact_dir)
    config = options.serve
    artifact_dir = Path(config.artifact_dir or ".")
    if not (artifact_dir / "reflex_config.json").is_file():
        raise ArtifactError(
            f"{artifact_dir} is not an exported artifact (no reflex_config.json); "
            f"make one with `reflex export MODEL -o {artifact_dir}`",
            slug="artifact-missing",
        )

    embodiment = None
    if config.embodiment or config.custom_embodiment_config:
        from reflex_core.embodiments import load_embodiment

        embodiment = load_embodiment(
            name=config.embodiment, path=config.custom_embodiment_config, registry=registry
        )

    install_request_id_logging()
    if embodiment is None:
        log.warning(
            "no --embodiment: /act returns raw model actions, not robot units; never drive "
            "hardware like this"
        )
    if config.host not in _LOOPBACK and not config.api_key:
        log.warning(
            "binding %s without --api-key: anyone who can reach this port can command the robot",
            config.host,
        )

    def load(source: Path | str, slot: str = "default") -> Any:
        from reflex_core.runtime import load_policy

        kwargs: dict[str, Any] = {
            "slot": slot,
            "embodiment": embodiment,
            "providers": list(config.providers) if config.providers else None,
            "allow_cpu_fallback": config.allow_cpu_fallback,
            "adaptive_steps": config.adaptive_steps,
            "trusted_keys": config.trusted_keys,
        }
        if config.prefix_cache is not None:
            kwargs["prefix_cache_size"] = config.prefix_cache
        return load_policy(source, **kwargs)

    server = ReflexServer(
        lambda: {"default": load(artifact_dir)},
        embodiment=embodiment,
        registry=registry,
        options=options,
        policy_loader=load,
        hook=pm.hook,
    )
    return hypercorn_runner.run(server)
