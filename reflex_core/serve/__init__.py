"""``reflex serve``: the Starlette app, its middleware and the Hypercorn runner (no torch).

>>> from reflex_core.serve import ReflexServer, create_app
"""

from reflex_core.serve.app import ReflexServer, create_app, noise_from_seed
from reflex_core.serve.config import ResolvedServeOptions, ServeConfig

__all__ = ["ReflexServer", "ResolvedServeOptions", "ServeConfig", "create_app", "noise_from_seed"]
