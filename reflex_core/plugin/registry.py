"""What plugins register, and the registry that collects it.

Registered objects are frozen attrs classes with a unique ``name``. The core validates what a
plugin hands it and rejects a duplicate name naming both owners.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import attrs
import cattrs
from cattrs.v import format_exception

from reflex_core.errors import ConfigError, PluginError
from reflex_core.plugin.hookspecs import hookimpl
from reflex_core.plugin.options import Option, options_of

if TYPE_CHECKING:
    import pluggy
    from starlette.routing import BaseRoute

    from reflex_core.plugin.contracts import TransportHost
    from reflex_core.plugin.wedges import WedgeFactory

ConfigT = TypeVar("ConfigT")


class Lazy:
    """A callable standing for ``module:attribute``, imported on its first call.

    A plugin's module is imported whenever ``reflex`` starts (``reflex --help`` included), so
    what it registers must not import torch, a simulator or onnx. ``lazy("pkg.wedge:make")`` is
    what it registers instead of the function itself; the import happens when the core first
    calls it, and the function is kept for the calls after. Anything a spec takes as a callable
    may be one; a plain function works as well.
    """

    def __init__(self, target: str) -> None:
        module, _, attribute = target.partition(":")
        if not module or not attribute:
            raise PluginError(
                f"lazy() takes 'package.module:attribute', got {target!r}",
                slug="plugin-lazy-target",
            )
        self.target = target
        self._function: Callable[..., Any] | None = None

    def resolve(self) -> Callable[..., Any]:
        """Import the target (once).

        :raises PluginError: ``plugin-lazy-target`` when its module or attribute does not exist.
            An import error from inside an existing module (a missing optional dependency) is
            raised as it is: it names what to install.
        """
        if self._function is None:
            module, _, attribute = self.target.partition(":")
            try:
                loaded = importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name is None or not (module + ".").startswith(exc.name + "."):
                    raise
                raise PluginError(
                    f"lazy({self.target!r}): no module {exc.name!r}", slug="plugin-lazy-target"
                ) from exc
            function = getattr(loaded, attribute, None)
            if not callable(function):
                raise PluginError(
                    f"lazy({self.target!r}): module {module!r} has no callable {attribute!r}",
                    slug="plugin-lazy-target",
                )
            self._function = function
        return self._function

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Lazy) and other.target == self.target

    def __hash__(self) -> int:
        return hash((Lazy, self.target))

    def __repr__(self) -> str:
        return f"lazy({self.target!r})"


def lazy(target: str) -> Lazy:
    """``lazy("reflex_deadline.wedge:make_deadline")``: a callable that imports the target on
    its first call (see :class:`Lazy`).

    :raises PluginError: ``plugin-lazy-target`` when ``target`` is not ``module:attribute``.
    """
    return Lazy(target)


def registers(*items: object) -> Callable[[Callable[[Any], None]], None]:
    """A registration hook that registers ``items``, for a plugin whose registrations are fixed::

        reflex_register_wedges = registers(WedgeSpec(name="smoothing", ...))

    is the ``@hookimpl`` function that calls ``register`` once per item, in order. As for a
    function, the module attribute's name says which hook it implements; the items are built
    when the module is imported, so anything heavy they name goes through :func:`lazy`. A
    registration that is computed (one per preset file) stays a ``@hookimpl`` function.
    """
    def registration_hook(register: Callable[[Any], None]) -> None:
        for item in items:
            register(item)

    return hookimpl(registration_hook)


def _name(instance: Any, attribute: Any, value: str) -> None:
    if not isinstance(value, str) or not value or value.strip() != value:
        raise ValueError(
            f"{type(instance).__name__}.name must be a non-empty string, got {value!r}"
        )


@attrs.frozen
class BuiltinCheckpoint:
    """A built-in checkpoint a family ships (``tiny-pi05``): ``write(dir)`` writes a real
    checkpoint directory (config, safetensors, stats, tokenizer) with seeded weights.

    :ivar cache_key: identifies what ``write`` produces; the core caches the directory under
        ``NAME-KEY`` and writes it again when the key changes. Empty: never cached (written into
        a fresh temporary directory for each export).
    """

    write: Callable[[Path], None]
    cache_key: str = ""


def _builtin_checkpoints(value: Mapping[str, Any]) -> dict[str, BuiltinCheckpoint]:
    return {
        name: entry if isinstance(entry, BuiltinCheckpoint) else BuiltinCheckpoint(write=entry)
        for name, entry in dict(value).items()
    }


@attrs.frozen
class ModelLoader:
    """A model family ``reflex export`` can load (``pi0``, ``pi05``, ``smolvla``...).

    ``reflex export SOURCE`` resolves SOURCE to a checkpoint directory, reads its
    ``config.json`` and asks every loader's ``matches``; exactly one must say yes.

    :ivar name: the family name recorded in the artifact.
    :ivar matches: ``config_dict -> bool``: does a checkpoint's ``config.json`` belong to this
        family. Must not raise and must not import torch.
    :ivar load: ``(checkpoint_dir, options) -> LoadedPolicy`` (see
        :mod:`reflex_core.models.family`; torch is imported inside the call).
    :ivar builtin_checkpoints: built-in names (``tiny-pi05``) -> :class:`BuiltinCheckpoint` (or
        a bare ``writer(dir)``, never cached).
    :ivar model_options: the ``reflex export --model-option KEY=VALUE`` keys this family reads
        (key -> one-line help); the core refuses any other key with ``model-option-unknown``
        before loading. Values reach ``load`` in ``options.model_options``.
    """

    name: str = attrs.field(validator=_name)
    matches: Callable[[Mapping[str, Any]], bool]
    load: Callable[[Path, Any], Any]
    builtin_checkpoints: Mapping[str, BuiltinCheckpoint] = attrs.field(
        factory=dict, converter=_builtin_checkpoints
    )
    description: str = ""
    model_options: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen
class Exporter:
    """An export mode (``monolithic``, ``decomposed``).

    :ivar export: ``(policy, out_dir, options) -> list of graph descriptions`` (see
        :mod:`reflex_core.export`).
    """

    name: str = attrs.field(validator=_name)
    export: Callable[..., Any]
    description: str = ""


@attrs.frozen
class WedgeSpec(Generic[ConfigT]):
    """A wedge: its place in the chain, its options and how to build it.

    Generic in its config class, so a type checker holds ``factory``, ``is_enabled`` and
    ``policies`` to the class ``config_cls`` names (``WedgeSpec[GuardConfig]``).

    :ivar stage: an :class:`reflex_core.plugin.wedges.Stage` (or an int between two stages).
    :ivar config_cls: an attrs class whose fields are declared with
        :func:`reflex_core.plugin.options.setting`; the core structures the resolved option values
        (keyed by field name) into it with cattrs.
    :ivar options: the ``reflex serve`` flags this wedge adds (also its config-file keys);
        derived from ``config_cls`` unless given.
    :ivar factory: ``(config, next, ctx) -> handler``, a
        :data:`~reflex_core.plugin.wedges.WedgeFactory`: ``next`` and the handler are a ``Handler``
        outside ``Stage.BATCHING``, a ``BatchHandler`` inside it; the batching wedge takes a
        ``BatchHandler`` and returns a ``Handler``. ``ctx`` is the
        :class:`~reflex_core.plugin.wedges.WedgeContext`.
    :ivar is_enabled: ``config -> bool``: whether the user switched the wedge on.
    :ivar policies: ``config -> {slot: artifact_dir}``: extra policy slots the wedge needs; they
        are loaded before any factory runs (the server does it on an inference thread, so
        ``/health`` keeps answering ``loading``) and the factory finds them in ``ctx.policies``.
    """

    name: str = attrs.field(validator=_name)
    stage: int
    config_cls: type[ConfigT]
    options: tuple[Option, ...] = attrs.field(
        kw_only=True,
        default=attrs.Factory(lambda self: options_of(self.config_cls), takes_self=True),
    )
    factory: WedgeFactory[ConfigT]
    is_enabled: Callable[[ConfigT], bool]
    description: str = ""
    policies: Callable[[ConfigT], Mapping[str, Path | str]] | None = None


@attrs.frozen
class Transport:
    """Routes that carry observations in and chunks out.

    :ivar routes: ``host -> starlette routes``, called once when the app is built; ``host`` is
        the server as a transport sees it (:class:`reflex_core.plugin.contracts.TransportHost`:
        readiness, limits, ``prepare`` then ``submit`` through the wedge chain, the chunk and
        error encodings, metrics).
    :ivar config_cls: an attrs class declaring the transport's settings with
        :func:`reflex_core.plugin.options.setting`, if it has any.
    :ivar options: extra ``reflex serve`` options this transport adds; derived from
        ``config_cls`` unless given.
    """

    name: str = attrs.field(validator=_name)
    routes: Callable[[TransportHost], Sequence[BaseRoute]]
    config_cls: type | None = attrs.field(default=None, kw_only=True)
    options: tuple[Option, ...] = attrs.field(
        kw_only=True,
        default=attrs.Factory(
            lambda self: options_of(self.config_cls) if self.config_cls else (), takes_self=True
        ),
    )
    description: str = ""


@attrs.frozen
class EmbodimentSource:
    """A named robot config: ``load()`` returns its JSON dict (validated by the core)."""

    name: str = attrs.field(validator=_name)
    load: Callable[[], dict[str, Any]]
    description: str = ""


@attrs.frozen
class EnvSpec:
    """A family of simulated tasks ``reflex eval --env NAME/TASK`` runs episodes in.

    :ivar make: ``(task, *, seed, image_size) -> env adapter`` (see
        :class:`reflex_core.eval.env.EnvAdapter`: ``reset``/``observe``/``act``/``success``...).
        Imports the simulator inside the call.
    :ivar embodiment: the registered embodiment the adapter's observations and actions follow
        (``--embodiment`` of the server it talks to).
    :ivar tasks: the task names it offers (``reach-v3``); ``default_task`` when none is given.
    :ivar expert: ``task -> (state -> action)``: a scripted expert for the task, used to check
        the harness (``reflex eval serve-expert``); None when the simulator ships none.
    :ivar max_steps: episode length in control ticks when ``--max-steps`` is not given.
    """

    name: str = attrs.field(validator=_name)
    make: Callable[..., Any]
    embodiment: str
    tasks: tuple[str, ...] = ()
    default_task: str | None = None
    expert: Callable[[str], Callable[[Any], Any]] | None = None
    max_steps: int = 500
    description: str = ""


@attrs.frozen
class Command:
    """A ``reflex NAME`` subcommand.

    :ivar configure: ``(argparse_parser, registry) -> None`` adds its arguments (``serve`` uses
        the registry to add every installed wedge's options).
    :ivar run: ``(args, plugin_manager) -> exit code``. Heavy imports belong inside it.
    """

    name: str = attrs.field(validator=_name)
    help: str
    configure: Callable[[Any, Registry], None]
    run: Callable[[Any, Any], int]


@attrs.frozen
class RuntimeBackend:
    """A runtime other than onnxruntime that runs an artifact's graphs (``--providers NAME``).

    Chosen only when ``--providers`` names it, alone (never automatically, never mixed with
    onnxruntime providers); a backend that cannot run here is ``provider-unavailable``, never a
    silent fallback. See docs/runtime.md ("Runtime backends").

    :ivar name: what ``--providers`` names (``openvino-bf16``); must not be an onnxruntime
        provider name or alias.
    :ivar probe: ``() -> str | None``: None when the backend can run on this machine, else why
        not (package missing, CPU lacks an instruction set...). Must not raise; imports inside.
    :ivar open_session: ``(artifact, role, *, threads) -> session``: a session for the graph
        ``role`` (``vlm_prefix``, ``expert_denoise``, ``policy``) of a verified artifact, with the
        surface the runners use: ``get_inputs()`` / ``get_outputs()`` (items with ``.name``),
        ``run(output_names, feeds) -> list[np.ndarray]`` (thread-safe, arrays the caller owns) and
        ``get_providers() -> list[str]``. Raises a ``ConfigError`` when it refuses (e.g. its
        precision gate did not pass for this artifact).
    """

    name: str = attrs.field(validator=_name)
    probe: Callable[[], str | None]
    open_session: Callable[..., Any]
    description: str = ""


KINDS: dict[str, type] = {
    "model_loaders": ModelLoader,
    "exporters": Exporter,
    "wedges": WedgeSpec,
    "transports": Transport,
    "embodiments": EmbodimentSource,
    "commands": Command,
    "envs": EnvSpec,
    "runtime_backends": RuntimeBackend,
}


@attrs.define
class Registry:
    """Everything the loaded plugins registered, by kind and name, with its owner plugin."""

    model_loaders: dict[str, ModelLoader] = attrs.field(factory=dict)
    exporters: dict[str, Exporter] = attrs.field(factory=dict)
    wedges: dict[str, WedgeSpec[Any]] = attrs.field(factory=dict)
    transports: dict[str, Transport] = attrs.field(factory=dict)
    embodiments: dict[str, EmbodimentSource] = attrs.field(factory=dict)
    commands: dict[str, Command] = attrs.field(factory=dict)
    envs: dict[str, EnvSpec] = attrs.field(factory=dict)
    runtime_backends: dict[str, RuntimeBackend] = attrs.field(factory=dict)
    owners: dict[tuple[str, str], str] = attrs.field(factory=dict)

    def check_type(self, kind: str, obj: Any, owner: str) -> None:
        expected = KINDS[kind]
        if not isinstance(obj, expected):
            raise PluginError(
                f"plugin {owner!r} registered {obj!r} with reflex_register_{kind}; "
                f"expected a {expected.__name__}",
                slug="plugin-bad-registration",
            )

    def add(self, kind: str, obj: Any, owner: str) -> None:
        self.check_type(kind, obj, owner)
        table: dict[str, Any] = getattr(self, kind)
        if obj.name in table:
            first = self.owners[(kind, obj.name)]
            raise PluginError(
                f"duplicate {kind[:-1].replace('_', ' ')} name {obj.name!r}: registered by "
                f"plugin {first!r} and by plugin {owner!r}",
                slug="plugin-duplicate-name",
            )
        table[obj.name] = obj
        self.owners[(kind, obj.name)] = owner

    def owner(self, kind: str, name: str) -> str:
        return self.owners[(kind, name)]

    def remove_owner(self, owner: str) -> None:
        """Forget everything one plugin registered (it turned out to be broken)."""
        for kind, name in [key for key, who in self.owners.items() if who == owner]:
            del getattr(self, kind)[name]
            del self.owners[(kind, name)]


def collect(
    pm: pluggy.PluginManager, *, isolate: Callable[[str, PluginError], bool] | None = None
) -> Registry:
    """Call every registration hook, one implementation at a time, so each registration is
    attributed to the plugin that made it.

    A plugin whose hook raises, or hands over something of the wrong type, is a
    :class:`PluginError` naming it (``plugin-register-failed`` / ``plugin-bad-registration``).
    ``isolate(owner, error)`` may return True to drop that plugin (with everything it
    registered) and carry on; otherwise the error is raised. A duplicate name always raises.
    """
    registry = Registry()
    dropped: set[str] = set()
    for kind in KINDS:
        hook = getattr(pm.hook, f"reflex_register_{kind}")
        # get_hookimpls() is in registration order, which the factory made sorted by name.
        for impl in hook.get_hookimpls():
            owner = impl.plugin_name
            if owner in dropped:
                continue
            staged: list[Any] = []
            kwargs = {"register": staged.append}
            try:
                impl.function(**{k: kwargs[k] for k in impl.argnames if k in kwargs})
                for obj in staged:
                    registry.check_type(kind, obj, owner)
            except Exception as exc:
                error = (
                    exc
                    if isinstance(exc, PluginError)
                    else PluginError(
                        f"plugin {owner!r} failed in reflex_register_{kind}: "
                        f"{type(exc).__name__}: {exc}",
                        slug="plugin-register-failed",
                    )
                )
                if isolate is None or not isolate(owner, error):
                    if error is exc:
                        raise
                    raise error from exc
                registry.remove_owner(owner)
                dropped.add(owner)
                continue
            for obj in staged:
                registry.add(kind, obj, owner)
    return registry


_converter = cattrs.Converter(forbid_extra_keys=True)


def _describe(exc: BaseException, type_: Any) -> str:
    # cattrs' default says only "invalid value" for a validator's ValueError; the validator's
    # own message is what tells the user which bound they crossed.
    if isinstance(exc, ValueError | TypeError) and str(exc):
        return str(exc)
    return format_exception(exc, type_)


def structure_config(spec: WedgeSpec[ConfigT], values: Mapping[str, Any]) -> ConfigT:
    """Turn resolved option values into the wedge's config object."""
    try:
        return _converter.structure(dict(values), spec.config_cls)
    except Exception as exc:  # cattrs raises ClassValidationError groups; flatten them
        detail = (
            "; ".join(cattrs.transform_error(exc, format_exception=_describe))
            if isinstance(exc, cattrs.BaseValidationError)
            else str(exc)
        )
        raise ConfigError(
            f"wedge {spec.name!r}: invalid options: {detail}", slug="invalid-config-value"
        ) from exc
