"""Serve a policy double (:class:`~reflex_core.plugin.testing.FakeRuntimePolicy`, sized for
franka: 8 state values, 8 actions, chunks of 10) under the real Hypercorn runner with installed
wedges switched on through their config-file sections.

    python serve_wedges.py --port 8123 --embodiment franka --plugins actionguard,deadline \
        --sections '{"actionguard": {"guard": "clamp"}, "deadline": {"deadline-ms": 100}}'

Used by the subprocess tests of reflex-actionguard (audit crash test) and reflex-deadline (real
Hypercorn, remote fallback: the double reports itself as family ``pi05``, version
``double01``). ``--nan-every N`` makes every Nth inference return NaN actions.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

import attrs
import numpy as np

from reflex_core.plugin.testing import FakeBatchPolicy, FakePolicyOutput, FakeRuntimePolicy
from reflex_core.wire.types import Observation


@attrs.define(eq=False)
class NanEvery(FakeRuntimePolicy):
    """Every ``every``-th inference (0: never) puts NaN in the second action of the chunk."""

    every: int = 0

    def infer(
        self, observations: Sequence[Observation], noise: np.ndarray | None = None
    ) -> FakePolicyOutput:
        output = super().infer(observations, noise)
        if self.every and len(self.calls) % self.every == 0:
            output.actions[:, 1, 0] = np.nan
        return output


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

    pm = make_plugin_manager(env={"REFLEX_LOAD_PLUGINS": args.plugins})
    if pm.load_failures:
        raise SystemExit(f"plugins failed to load: {pm.load_failures}")
    sections = json.loads(args.sections)
    sections.setdefault("serve", {})["port"] = args.port
    options = resolve_serve_options({}, sections, pm.registry)
    embodiment = EmbodimentConfig.load_preset(args.embodiment) if args.embodiment else None
    policy = NanEvery(
        model_version="double01",
        family="pi05",
        math=FakeBatchPolicy(state_dim=8, action_dim=8, chunk_size=10, max_action_dim=32),
        fixed_s=args.infer_delay_s,
        every=args.nan_every,
    )
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
