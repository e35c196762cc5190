"""Everything a plugin author imports: the one public surface for writing a Reflex plugin.

>>> from reflex_core.plugin import hookimpl, setting, Stage, WedgeSpec

* registering: :data:`hookimpl` and the frozen attrs classes a ``reflex_register_*`` hook hands
  to ``register`` (:class:`WedgeSpec`, :class:`Transport`, :class:`ModelLoader`, ...),
  :func:`registers` for a hook that registers a fixed list of them, and :func:`lazy` for a
  callable in them whose module imports something heavy;
* declaring a setting once: :func:`setting` (and the value checks it takes as ``type``),
  :func:`duration` and :func:`count` for the common time and count settings;
* the wedge contract: :class:`Stage`, :class:`ActRequest`, :class:`ActResult`,
  :class:`WedgeContext`, the handler and factory types, and the Protocols of what a wedge or a
  transport is handed (:class:`PolicyLike`, :class:`EmbodimentLike`, :class:`TransportHost`);
* the errors to raise (each with a stable slug).

Beside it: :mod:`reflex_core.plugin.kit` (helpers a plugin needs: action chunks, JSONL logs,
latency windows, Prometheus collectors, observation age, a WebSocket close) and
:mod:`reflex_core.plugin.testing` (test doubles; its pytest plugin, :mod:`reflex_core.plugin.pytest_plugin`, is loaded by pytest
wherever reflex-core is installed). The modules behind this face (``hookspecs``, ``registry``,
``options``, ``wedges``, ``contracts``, ``manager``) are the machinery; import them by their
full path only for what is not here.
"""

from __future__ import annotations

from reflex_core.errors import (
    CheckpointError,
    ConfigError,
    PluginError,
    ReflexError,
    Unavailable,
    ValidationError,
)
from reflex_core.plugin.contracts import (
    BatchWedgeFactory,
    BridgeWedgeFactory,
    EmbodimentLike,
    PolicyLike,
    PolicyOutputLike,
    RequestLimits,
    RequestWedgeFactory,
    TransportHost,
    TransportSession,
)
from reflex_core.plugin.hookspecs import hookimpl
from reflex_core.plugin.options import (
    comma_list,
    count,
    duration,
    http_url,
    in_range,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    setting,
)
from reflex_core.plugin.registry import (
    BuiltinCheckpoint,
    Command,
    EmbodimentSource,
    EnvSpec,
    Exporter,
    ModelLoader,
    Transport,
    WedgeSpec,
    lazy,
    registers,
)
from reflex_core.plugin.wedges import (
    ActRequest,
    ActResult,
    BatchHandler,
    Handler,
    Stage,
    WedgeContext,
    answering_slot,
    unbatched,
)

__all__ = [
    "ActRequest",
    "ActResult",
    "BatchHandler",
    "BatchWedgeFactory",
    "BridgeWedgeFactory",
    "BuiltinCheckpoint",
    "CheckpointError",
    "Command",
    "ConfigError",
    "EmbodimentLike",
    "EmbodimentSource",
    "EnvSpec",
    "Exporter",
    "Handler",
    "ModelLoader",
    "PluginError",
    "PolicyLike",
    "PolicyOutputLike",
    "ReflexError",
    "RequestLimits",
    "RequestWedgeFactory",
    "Stage",
    "Transport",
    "TransportHost",
    "TransportSession",
    "Unavailable",
    "ValidationError",
    "WedgeContext",
    "WedgeSpec",
    "answering_slot",
    "comma_list",
    "count",
    "duration",
    "hookimpl",
    "http_url",
    "in_range",
    "lazy",
    "non_negative_float",
    "non_negative_int",
    "positive_float",
    "positive_int",
    "registers",
    "setting",
    "unbatched",
]
