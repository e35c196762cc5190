"""The embodiment presets shipped with reflex-core, registered as a default plugin.

Every ``<name>.json`` next to ``schema.json`` in the presets directory becomes
``--embodiment <name>``; adding a preset file is all it takes. The core validates a preset when
it is loaded, exactly as it validates one a third-party plugin registers.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from reflex_core.embodiments.presets import preset_names, read_preset
from reflex_core.plugin.hookspecs import hookimpl
from reflex_core.plugin.registry import EmbodimentSource


@hookimpl
def reflex_register_embodiments(register: Callable[[EmbodimentSource], None]) -> None:
    for name in preset_names():
        register(
            EmbodimentSource(
                name=name,
                load=functools.partial(read_preset, name),
                description=f"built-in preset {name}.json",
            )
        )
