"""Serve the core's policy double (tests/serve_double.py) under the real Hypercorn runner with
installed wedges switched on through their config-file sections.

    python serve_wedges.py --port 8123 --embodiment franka --plugins actionguard,deadline \
        --sections '{"actionguard": {"guard": "clamp"}, "deadline": {"deadline-ms": 100}}'

Used by the subprocess tests of reflex-actionguard (audit crash test) and reflex-deadline (real
Hypercorn, remote fallback). ``--nan-every N`` makes every Nth inference return NaN actions.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[3]


def load_serve_double() -> Any:
    spec = importlib.util.spec_from_file_location(
        "serve_double", REPO / "tests" / "serve_double.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["serve_double"] = module
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    from reflex_core.embodiments import EmbodimentConfig
    from reflex_core.plugin.manager import make_plugin_manager
    from reflex_core.serve.app import ReflexServer
    from reflex_core.serve.config import resolve_serve_options
    from reflex_core.serve.hypercorn_runner import run

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--plugins", default="", help="entry points to load (comma-separated)")
    parser.add_argument("--sections", default="{}", help="config-file sections as JSON")
    parser.add_argument("--embodiment", default=None)
    parser.add_argument("--infer-delay-s", type=float, default=0.0)
    parser.add_argument("--nan-every", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)

    double = load_serve_double()

    class Policy(double.DoublePolicy):  # type: ignore[misc,name-defined]
        def infer(self, observations: Any, noise: Any = None) -> Any:
            output = super().infer(observations, noise)
            if args.nan_every and len(self.calls) % args.nan_every == 0:
                output.actions[:, 1, 0] = np.nan
            return output

    pm = make_plugin_manager(env={"REFLEX_LOAD_PLUGINS": args.plugins})
    if pm.load_failures:
        raise SystemExit(f"plugins failed to load: {pm.load_failures}")
    sections = json.loads(args.sections)
    sections.setdefault("serve", {})["port"] = args.port
    options = resolve_serve_options({}, sections, pm.registry)
    embodiment = EmbodimentConfig.load_preset(args.embodiment) if args.embodiment else None
    policy = Policy(infer_delay_s=args.infer_delay_s)
    server = ReflexServer(
        {"default": policy},
        embodiment=embodiment,
        registry=pm.registry,
        options=options,
        hook=pm.hook,
    )
    return run(server)


if __name__ == "__main__":
    sys.exit(main())
