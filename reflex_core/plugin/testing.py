"""Test doubles and harnesses for wedge authors (no torch, no ONNX needed).

A wedge is tested by composing it with :func:`reflex_core.plugin.wedges.compose` around a
``BatchHandler`` that behaves like the real policy where it matters to wedges: it runs ONE
vectorised computation for the whole batch, each row's actions depend on that row's
observation and noise (so a mixed-up or dropped row shows), it reports pooled features, and it
can take time (a fixed part plus a part per row, like a batched ORT call) or fail on demand.

* :func:`make_request`, :class:`FakeBatchPolicy`, :class:`FakePolicySet` (several policies
  keyed by ``request.policy``), :class:`FakePolicyInfo`: unit tests around ``compose``;
* :func:`installed_plugin`: a plugin's first test (its entry point is installed and loads);
* :func:`plugin_wedge`: the :class:`~reflex_core.plugin.registry.WedgeSpec` a plugin registers;
  :func:`enable` switches it on with setting values, :func:`wedge_context` is the context a
  server would hand it, and :func:`build_chain` composes the chain around a double (the
  ``wedge_chain`` fixture of :mod:`reflex_core.plugin.pytest_plugin` also runs the wedges'
  ``ctx.on_shutdown`` callbacks when the test ends);
* :class:`FakeRuntimePolicy` (the runtime ``Policy`` interface; :func:`double_info` builds
  the ``info`` of such a double), :func:`wedge_server`,
  :func:`serve_lifespan` and :func:`asgi_client`: the wedge inside the real ``ReflexServer``
  app, driven with ``httpx.ASGITransport``;
* ``python -m reflex_core.plugin.testing`` / :func:`fake_server_process`: that server under the
  real Hypercorn runner with the installed plugins' wedges and options;
* :func:`server_process`: any ``reflex serve ...`` command on 127.0.0.1, ready-checked
  (:func:`wait_until_ready`), stopped with SIGTERM;
* :func:`exported_artifact`: a real ``reflex export`` once per process, and
  :func:`runtime_server`: the wedge around the real runtime on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from reflex_core.plugin import ActRequest, ActResult, Handler, WedgeContext
from reflex_core.plugin.registry import WedgeSpec, structure_config
from reflex_core.plugin.wedges import EnabledWedge, compose
from reflex_core.wire.types import Observation

if TYPE_CHECKING:
    import httpx

    from reflex_core.plugin.manager import ReflexPluginManager
    from reflex_core.serve import ReflexServer

_request_ids = itertools.count()


def make_request(
    state: Sequence[float] | np.ndarray,
    *,
    policy: str = "default",
    noise: np.ndarray | None = None,
    episode_id: str | None = None,
    capture_time_ns: int | None = None,
    deadline_ns: int | None = None,
    received_ns: int | None = None,
    request_id: str | None = None,
    prompt: str | None = "pick up the cube",
    seq: int | None = None,
) -> ActRequest:
    """An :class:`ActRequest` with sensible defaults (received now, a fresh request id)."""
    rid = request_id or f"test-{next(_request_ids)}"
    obs = Observation(
        state=np.asarray(state, dtype=np.float32),
        prompt=prompt,
        seq=seq,
        capture_time_ns=capture_time_ns,
        request_id=rid,
        episode_id=episode_id,
    )
    return ActRequest(
        observation=obs,
        request_id=rid,
        received_ns=time.monotonic_ns() if received_ns is None else received_ns,
        policy=policy,
        deadline_ns=deadline_ns,
        noise=noise,
    )


class PolicyFailure(RuntimeError):
    """What :class:`FakeBatchPolicy` raises when told to fail."""


@attrs.define(eq=False)
class FakeBatchPolicy:
    """A deterministic batched policy: ``actions[b] = tanh(state_b @ W) + pos * (state_b @ V)
    + noise_scale * noise_b[:, :D]`` for the whole batch in one NumPy expression.

    :ivar chunk_size: T. :ivar action_dim: D. :ivar max_action_dim: width of the noise.
    :ivar fixed_s: simulated time per call. :ivar per_row_s: added time per row.
    :ivar fail_next: the next N calls raise :class:`PolicyFailure`.
    :ivar calls: the batch size of every call, in order.
    :ivar policies_seen: ``request.policy`` of every row, per call.
    """

    state_dim: int = 4
    action_dim: int = 3
    chunk_size: int = 5
    max_action_dim: int = 6
    feature_dim: int = 8
    noise_scale: float = 0.25
    fixed_s: float = 0.0
    per_row_s: float = 0.0
    offset: float = 0.0
    seed: int = 0
    fail_next: int = 0
    calls: list[int] = attrs.field(factory=list)
    policies_seen: list[list[str]] = attrs.field(factory=list)
    _w: np.ndarray = attrs.field(init=False)
    _v: np.ndarray = attrs.field(init=False)
    _f: np.ndarray = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        self._w = rng.standard_normal((self.state_dim, self.action_dim)).astype(np.float32)
        self._v = 0.1 * rng.standard_normal((self.state_dim, self.action_dim)).astype(np.float32)
        self._f = rng.standard_normal((self.state_dim, self.feature_dim)).astype(np.float32)

    def compute(self, states: np.ndarray, noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, S) states and (B, T, max_action_dim) noise -> (B, T, D) actions, (B, F) features."""
        pos = np.arange(self.chunk_size, dtype=np.float32)[None, :, None]
        base = np.tanh(states @ self._w)[:, None, :] + self.offset
        actions = base + pos * (states @ self._v)[:, None, :]
        actions = actions + self.noise_scale * noise[:, :, : self.action_dim]
        features = np.tanh(states @ self._f)
        return actions.astype(np.float32), features.astype(np.float32)

    def noise_for(self, request: ActRequest) -> np.ndarray:
        if request.noise is not None:
            return np.asarray(request.noise, dtype=np.float32)
        return np.random.default_rng().standard_normal(
            (self.chunk_size, self.max_action_dim), dtype=np.float32
        )

    async def __call__(self, requests: Sequence[ActRequest]) -> list[ActResult]:
        self.calls.append(len(requests))
        self.policies_seen.append([r.policy for r in requests])
        delay = self.fixed_s + self.per_row_s * len(requests)
        if delay:
            await asyncio.sleep(delay)
        if self.fail_next > 0:
            self.fail_next -= 1
            raise PolicyFailure(f"policy failed on a batch of {len(requests)}")
        states = np.stack([np.asarray(r.observation.state, np.float32) for r in requests])
        noise = np.stack([self.noise_for(r) for r in requests])
        actions, features = self.compute(states, noise)
        return [
            ActResult(
                actions=actions[i],
                features=features[i],
                metadata={"policy": r.policy, "batch_rows": len(requests)},
            )
            for i, r in enumerate(requests)
        ]


@attrs.define(eq=False)
class FakePolicySet:
    """Several fake policies behind one ``BatchHandler``, keyed by ``request.policy`` like the
    server's terminal handler: a batch is split by policy and each part runs as one call."""

    policies: dict[str, FakeBatchPolicy]

    async def __call__(self, requests: Sequence[ActRequest]) -> list[ActResult]:
        results: list[ActResult | None] = [None] * len(requests)
        groups: dict[str, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(r.policy, []).append(i)
        for key, indices in groups.items():
            if key not in self.policies:
                raise KeyError(f"no fake policy {key!r}")
            part = await self.policies[key]([requests[i] for i in indices])
            for i, result in zip(indices, part, strict=True):
                results[i] = result
        return [r for r in results if r is not None]


@attrs.define
class FakePolicyInfo:
    """What a router or a health check reads off a loaded policy, without a runtime."""

    slot: str
    info: dict[str, Any]
    chunk_size: int = 5
    max_action_dim: int = 6
    action_dim: int = 3


@attrs.frozen
class FakePolicyOutput:
    """What :meth:`FakeRuntimePolicy.infer` returns (the runtime's ``PolicyOutput`` fields)."""

    actions: np.ndarray
    features: np.ndarray | None
    timings: dict[str, Any]


def double_info(policy: Any, *, family: str, mode: str, model_version: str) -> dict[str, Any]:
    """The runtime ``Policy.info`` of a policy double (its dims and ``camera_names``): on the
    CPU provider, without an embodiment (raw actions)."""
    return {
        "family": family,
        "mode": mode,
        "model_version": model_version,
        "chunk_size": policy.chunk_size,
        "action_dim": policy.action_dim,
        "state_dim": policy.state_dim,
        "cameras": list(policy.camera_names),
        "providers": ["CPUExecutionProvider"],
        "embodiment": None,
        "raw_actions": True,
    }


def batch_noise(noise: Any, batch: int, shape: tuple[int, int]) -> np.ndarray:
    """The (B, T, A) noise a double runs with, from what the server passes ``infer``: None, an
    array, or one row or None per observation (rows without noise are drawn fresh)."""
    if noise is None or isinstance(noise, np.ndarray):
        if noise is None:
            return np.random.default_rng().standard_normal((batch, *shape), dtype=np.float32)
        return np.asarray(noise, np.float32)
    rng = np.random.default_rng()
    return np.stack(
        [
            rng.standard_normal(shape, dtype=np.float32)
            if row is None
            else np.asarray(row, np.float32)
            for row in noise
        ]
    )


@attrs.define(eq=False)
class FakeRuntimePolicy:
    """The runtime's ``Policy`` interface (slot, info, dims, validate, infer, warmup) over
    :class:`FakeBatchPolicy`'s math, for serving a wedge in the real app without ONNX.

    ``infer`` is synchronous and sleeps ``fixed_s + per_row_s * B`` like a batched ORT call, so
    batching pays off the way it does on a real model; while ``infer_error`` is set, ``infer``
    raises it (after the sleep), like a runtime that crashes.
    """

    slot: str = "default"
    model_version: str = "fake0001"
    math: FakeBatchPolicy = attrs.field(factory=FakeBatchPolicy)
    fixed_s: float = 0.0
    per_row_s: float = 0.0
    camera_names: tuple[str, ...] = ()
    calls: list[int] = attrs.field(factory=list)
    infer_error: BaseException | None = None
    #: what ``info`` reports as the model family (a remote fallback names it, for one)
    family: str = "fake"

    @property
    def state_dim(self) -> int:
        return self.math.state_dim

    @property
    def action_dim(self) -> int:
        return self.math.action_dim

    @property
    def chunk_size(self) -> int:
        return self.math.chunk_size

    @property
    def max_action_dim(self) -> int:
        return self.math.max_action_dim

    @property
    def feature_dim(self) -> int:
        return self.math.feature_dim

    @property
    def info(self) -> dict[str, Any]:
        return double_info(self, family=self.family, mode="fake", model_version=self.model_version)

    def validate(self, observation: Observation) -> None:
        from reflex_core.errors import ValidationError

        if observation.state.shape != (self.state_dim,):
            raise ValidationError(
                f"state has {observation.state.size} values, the policy takes {self.state_dim}",
                slug="state-length-mismatch",
                field="state",
            )

    def infer(
        self, observations: Sequence[Observation], noise: np.ndarray | None = None
    ) -> FakePolicyOutput:
        started = time.perf_counter()
        batch = len(observations)
        self.calls.append(batch)
        delay = self.fixed_s + self.per_row_s * batch
        if delay:
            time.sleep(delay)
        if self.infer_error is not None:
            raise self.infer_error
        noise = batch_noise(noise, batch, (self.chunk_size, self.max_action_dim))
        states = np.stack([np.asarray(o.state, np.float32) for o in observations])
        actions, features = self.math.compute(states, noise)
        ms = (time.perf_counter() - started) * 1e3
        return FakePolicyOutput(actions, features, {"total_ms": ms, "steps": 1})

    def warmup(self) -> None:
        self.infer([Observation(state=np.zeros(self.state_dim, np.float32))])
        self.calls.clear()


def installed_plugin(
    name: str, distribution: str, module: str | None = None
) -> ReflexPluginManager:
    """The first test of a plugin (is it installed?): checks that one ``reflex.plugins`` entry
    point is named ``name``, belongs to ``distribution`` and (when given) names ``module``,
    then returns the host's plugin manager with only that entry point loaded, as ``reflex``
    loads it (no load failure, attributed to ``distribution``).

    :raises AssertionError: saying which of these does not hold.
    """
    from importlib import metadata

    from reflex_core.plugin.manager import ENTRY_POINT_GROUP, make_plugin_manager

    found = [e for e in metadata.entry_points(group=ENTRY_POINT_GROUP) if e.name == name]
    if len(found) != 1:
        raise AssertionError(f"expected one {ENTRY_POINT_GROUP} entry point {name!r}: {found}")
    (entry_point,) = found
    owner = entry_point.dist.name if entry_point.dist is not None else None
    if owner != distribution:
        raise AssertionError(f"entry point {name!r} comes from {owner!r}, not {distribution!r}")
    if module is not None and entry_point.value != module:
        raise AssertionError(f"entry point {name!r} names {entry_point.value!r}, not {module!r}")
    pm = make_plugin_manager(env={"REFLEX_LOAD_PLUGINS": name})
    if pm.load_failures:
        raise AssertionError(f"plugin {name!r} failed to load: {pm.load_failures}")
    info = {i.name: i for i in pm.plugin_infos()}.get(name)
    if info is None or info.distribution != distribution:
        raise AssertionError(f"the host did not load {name!r} from {distribution!r}: {info}")
    return pm


def plugin_wedge(plugin: Any) -> WedgeSpec:
    """The one wedge ``plugin`` (a module or any object with the hook) registers through its
    ``reflex_register_wedges``."""
    specs: list[WedgeSpec] = []
    plugin.reflex_register_wedges(register=specs.append)
    if len(specs) != 1:
        raise ValueError(f"expected one wedge from {plugin!r}, got {[s.name for s in specs]}")
    return specs[0]


def enable(wedge: Any, values: Mapping[str, Any] | None = None) -> EnabledWedge:
    """``wedge`` (a :class:`WedgeSpec`, or a plugin that registers one) switched on with
    ``values`` (field name -> value, as a config-file table gives them), checked by its config
    class exactly as ``reflex serve`` checks them."""
    spec = wedge if isinstance(wedge, WedgeSpec) else plugin_wedge(wedge)
    return EnabledWedge(spec=spec, config=structure_config(spec, values or {}))


def wedge_context(
    *,
    policies: Mapping[str, Any] | None = None,
    embodiment: Any = None,
    metrics: Any = None,
    policy_loader: Callable[[Any, str], Any] | None = None,
    **fields: Any,
) -> WedgeContext:
    """The :class:`WedgeContext` a server would hand the wedges: ``policies`` (slot -> e.g. a
    :class:`FakePolicyInfo`), the robot or None, and a Prometheus registry of its own unless
    ``metrics`` is given (never the process-global one); ``fields`` set the rest
    (``executor=``).

    :param policy_loader: ``(source, slot) -> policy``, as :func:`wedge_server` takes it: the
        context's ``load_policy`` then adds what it returns to ``policies``, as the server's
        does (the router's second slot).
    """
    if metrics is None:
        from prometheus_client import CollectorRegistry

        metrics = CollectorRegistry()
    slots = dict(policies or {})
    if policy_loader is not None:

        def load_policy(slot: str, source: Path | str) -> Any:
            slots[slot] = policy_loader(source, slot)
            return slots[slot]

        fields["load_policy"] = load_policy
    return WedgeContext(policies=slots, embodiment=embodiment, metrics=metrics, **fields)


@attrs.frozen
class Chain:
    """A composed chain: the outermost ``handler``, the ``ctx`` its wedges were built with
    (their ``routes``, ``health``, ``on_shutdown``), and the wedge ``names``, outermost first."""

    handler: Handler
    ctx: WedgeContext
    names: list[str]


def build_chain(
    policy: Any, *wedges: EnabledWedge, ctx: WedgeContext | None = None, **context: Any
) -> Chain:
    """Compose ``wedges`` (from :func:`enable`) around ``policy`` (a ``BatchHandler`` such as
    :class:`FakeBatchPolicy`) in the declared stage order, as the server does. ``ctx`` defaults
    to :func:`wedge_context` of ``context``."""
    if ctx is None:
        ctx = wedge_context(**context)
    elif context:
        raise TypeError("pass either ctx or the fields to build one, not both")
    handler, names = compose(list(wedges), policy, ctx)
    return Chain(handler=handler, ctx=ctx, names=names)


async def shut_down(ctx: WedgeContext) -> None:
    """Run ``ctx.on_shutdown`` callbacks as a stopping server does: last registered first,
    awaiting what returns an awaitable."""
    import inspect

    for callback in reversed(ctx.on_shutdown):
        outcome = callback()
        if inspect.isawaitable(outcome):
            await outcome


def wedge_server(
    plugins: Mapping[str, Any],
    policies: Any,
    *,
    cli: Mapping[str, Any] | None = None,
    sections: Mapping[str, Mapping[str, Any]] | None = None,
    embodiment: Any = None,
    policy_loader: Callable[[Any, str], Any] | None = None,
) -> ReflexServer:
    """A :class:`~reflex_core.serve.ReflexServer` with the built-ins plus exactly ``plugins``
    (name -> plugin; installed ones are not loaded), its options resolved the way
    ``reflex serve`` resolves them.

    :param policies: slot -> policy (e.g. :class:`FakeRuntimePolicy`), or a callable returning
        that (loaded at startup, like real artifacts).
    :param cli: option values as parsed from the command line, by ``dest``
        (``{"max_batch": 8}``); they win over ``sections``.
    :param sections: config-file tables (``{"actionguard": {"guard": "clamp"}}``).
    :param embodiment: an ``EmbodimentConfig``, or None (raw actions).
    :param policy_loader: ``(source, slot) -> policy`` for ``ctx.load_policy`` (the router).
    """
    from reflex_core.plugin.manager import make_plugin_manager
    from reflex_core.serve import ReflexServer
    from reflex_core.serve.config import resolve_serve_options

    pm = make_plugin_manager(load_entrypoints=False, extra_plugins=dict(plugins))
    return ReflexServer(
        policies,
        embodiment=embodiment,
        registry=pm.registry,
        options=resolve_serve_options(cli or {}, sections, pm.registry),
        policy_loader=policy_loader,
        hook=pm.hook,
    )


def asgi_client(app: Any, **kwargs: Any) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` that calls ``app`` in process (``http://reflex``); ``kwargs``
    go to the client (``headers=``, ``timeout=``). Run the app's lifespan around it with
    :func:`serve_lifespan`."""
    import httpx

    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://reflex", **kwargs
    )


@contextlib.asynccontextmanager
async def serve_lifespan(
    app: Any, *, timeout_s: float = 30.0, wait_ready: bool = True
) -> AsyncIterator[Any]:
    """Run an ASGI app's lifespan around the block (``httpx.ASGITransport`` sends only HTTP
    scopes) and yield its ``ReflexServer``, once ready unless ``wait_ready`` is False (to see
    a start-up fail)."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
    task = asyncio.create_task(app(scope, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    message = await asyncio.wait_for(outbox.get(), timeout_s)
    if message["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"lifespan startup failed: {message}")
    server = app.state.reflex_server
    try:
        if wait_ready:
            await asyncio.wait_for(server.wait_ready(), timeout_s)
        yield server
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        message = await asyncio.wait_for(outbox.get(), timeout_s)
        await asyncio.wait_for(task, timeout_s)
        if message["type"] != "lifespan.shutdown.complete":
            raise RuntimeError(f"lifespan shutdown failed: {message}")


_EXPORTED: dict[tuple[str, str | None, str | None], Path] = {}


def export_available() -> bool:
    """Whether ``reflex export`` can run here (the export pipeline and torch are installed)."""
    import importlib.util

    return (
        importlib.util.find_spec("reflex_core.export.pipeline") is not None
        and importlib.util.find_spec("torch") is not None
    )


def exported_artifact(
    model: str = "tiny-pi05", *, embodiment: str | None = "franka", mode: str | None = None
) -> Path:
    """A real artifact made with ``reflex export MODEL`` (the command a user runs), exported
    once per process and reused: wedge tests that need the real runtime share one export.

    Raises RuntimeError when the export fails; check :func:`export_available` first.
    """
    import os
    import subprocess
    import sys
    import tempfile

    key = (model, embodiment, mode)
    if key in _EXPORTED and (_EXPORTED[key] / "reflex_config.json").is_file():
        return _EXPORTED[key]
    out = Path(tempfile.mkdtemp(prefix=f"reflex-{model}-")) / "export"
    cmd = [sys.executable, "-m", "reflex_core.cli", "export", model, "-o", str(out)]
    if embodiment is not None:
        cmd += ["--embodiment", embodiment]
    if mode is not None:
        cmd += ["--mode", mode]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    _EXPORTED[key] = out
    return out


def runtime_server(
    plugins: Mapping[str, Any],
    artifact_dir: Path,
    *,
    embodiment: str | None = None,
    cli: Mapping[str, Any] | None = None,
) -> ReflexServer:
    """:func:`wedge_server` around the real ONNX runtime: ``artifact_dir`` (e.g. from
    :func:`exported_artifact`) is loaded at start-up as the ``default`` slot, and a slot the
    router asks for (``ctx.load_policy``) is loaded the same way.

    :param embodiment: a preset name (``franka``) applied to the policies and the server.
    """
    from reflex_core.embodiments import load_embodiment
    from reflex_core.runtime import load_policy

    robot = load_embodiment(name=embodiment)
    return wedge_server(
        plugins,
        lambda: {"default": load_policy(artifact_dir, embodiment=robot)},
        cli=cli,
        embodiment=robot,
        policy_loader=lambda source, slot: load_policy(source, slot=slot, embodiment=robot),
    )


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_ready(
    base: str, proc: Any, *, log_path: Path | None = None, timeout_s: float = 60.0
) -> None:
    """Poll ``base + "/health"`` until it answers 200. Raises RuntimeError, with the server's
    log when ``log_path`` is given, once the server process ``proc`` (a ``subprocess.Popen``)
    has exited or ``timeout_s`` has passed."""
    import httpx

    def log() -> str:
        return log_path.read_text() if log_path is not None else "(no log)"

    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log()}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(base + "/health", timeout=2).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"server not ready: {log()}")
        time.sleep(0.1)


@contextlib.contextmanager
def server_process(
    argv: Sequence[str], *, log_path: Path, load_plugins: str | None = None,
    env: Mapping[str, str] | None = None, timeout_s: float = 120.0,
) -> Iterator[str]:  # fmt: skip
    """Run ``argv + ["--port", N]`` (``reflex serve ...`` or :func:`main`) on 127.0.0.1 in a
    subprocess; yield its base URL once ``/health`` is 200, then SIGTERM it and require a clean
    exit (0). ``load_plugins`` sets ``REFLEX_LOAD_PLUGINS``; ``env`` adds environment
    variables."""
    import os
    import subprocess

    port = _free_port()
    environment = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    # state (the guard's default audit log) next to the log, never the user's state directory
    environment.setdefault("REFLEX_STATE_DIR", str(log_path.parent / f"reflex-state-{port}"))
    if load_plugins is not None:
        environment["REFLEX_LOAD_PLUGINS"] = load_plugins
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [*argv, "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=environment
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until_ready(base, proc, log_path=log_path, timeout_s=timeout_s)
            yield base
        finally:
            proc.terminate()
            try:
                code = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
        if code != 0:
            raise RuntimeError(f"server exited {code}: {log_path.read_text()}")


@contextlib.contextmanager
def fake_server_process(
    *args: str, log_path: Path, load_plugins: str | None = None, timeout_s: float = 60.0
) -> Iterator[str]:
    """:func:`server_process` around :func:`main`: a fake policy, the installed wedges with
    ``args``, real Hypercorn."""
    import sys

    argv = [sys.executable, "-m", "reflex_core.plugin.testing", *args]
    with server_process(
        argv, log_path=log_path, load_plugins=load_plugins, timeout_s=timeout_s
    ) as base:
        yield base


class RawWebSocket:
    """A WebSocket client over a plain socket that answers nothing but pings by itself: it does
    not answer the server's close frame, so a test sees whether a transport keeps the closing
    handshake (RFC 6455 7.1.1: the server waits for the client's close frame before closing
    TCP)."""

    def __init__(self, url: str) -> None:
        import socket
        from urllib.parse import urlsplit

        from wsproto import ConnectionType, WSConnection
        from wsproto.events import AcceptConnection, Request

        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        self._sock = socket.create_connection((host, port), timeout=10)
        self._ws = WSConnection(ConnectionType.CLIENT)
        self._events: list[Any] = []
        self._send(Request(host=f"{host}:{port}", target=parts.path or "/"))
        accepted = self._next_event(10.0)
        if not isinstance(accepted, AcceptConnection):
            raise RuntimeError(f"the handshake was not accepted: {accepted!r}")

    def _send(self, event: Any) -> None:
        self._sock.sendall(self._ws.send(event))

    def _next_event(self, timeout_s: float) -> Any:
        """The next wsproto event, or None when the server closed the TCP connection."""
        self._sock.settimeout(timeout_s)
        while not self._events:
            data = self._sock.recv(65536)
            if not data:
                return None
            self._ws.receive_data(data)
            self._events.extend(self._ws.events())
        return self._events.pop(0)

    def send(self, data: bytes | str) -> None:
        from wsproto.events import BytesMessage, TextMessage

        self._send(TextMessage(data=data) if isinstance(data, str) else BytesMessage(data=data))

    def receive(self, timeout_s: float = 10.0) -> Any:
        """The next whole message (``bytes`` or ``str``), the server's ``CloseConnection``
        event, or None when the server closed TCP without one."""
        from wsproto import ConnectionState
        from wsproto.events import Message, Ping

        parts: list[Any] = []
        while True:
            event = self._next_event(timeout_s)
            if isinstance(event, Ping):
                if self._ws.state == ConnectionState.OPEN:  # not once the close is read
                    self._send(event.response())
                continue
            if not isinstance(event, Message):
                return event
            parts.append(event.data)
            if event.message_finished:
                return type(parts[0])().join(parts)

    def tcp_closed_within(self, timeout_s: float) -> bool:
        """Whether the server closes the TCP connection within ``timeout_s`` (frames it sends
        meanwhile are discarded)."""
        self._sock.settimeout(timeout_s)
        try:
            while self._sock.recv(65536):
                pass
        except TimeoutError:
            return False
        except ConnectionError:
            return True
        return True

    def answer_close(self, close: Any) -> None:
        """Send the client's half of the closing handshake for the server's ``close`` event."""
        self._send(close.response())

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> RawWebSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m reflex_core.plugin.testing --port N [--fixed-s S] [--per-row-s S]
    [any reflex serve / wedge option]``: serve a :class:`FakeRuntimePolicy` under the real
    Hypercorn runner with the installed plugins' wedges, for testing a wedge end to end without
    exporting a model. ``--load-slot NAME`` lets ``ctx.load_policy`` (the router) load fakes."""
    import argparse
    import logging
    import sys

    from reflex_core.plugin.manager import make_plugin_manager
    from reflex_core.plugin.options import add_options
    from reflex_core.serve import ReflexServer
    from reflex_core.serve.config import SERVE_OPTIONS, resolve_serve_options
    from reflex_core.serve.hypercorn_runner import run

    pm = make_plugin_manager()
    registry = pm.registry
    parser = argparse.ArgumentParser(prog="python -m reflex_core.plugin.testing")
    parser.add_argument("--fixed-s", type=float, default=0.0, help="fake call time")
    parser.add_argument("--per-row-s", type=float, default=0.0, help="fake time per row")
    add_options(parser, SERVE_OPTIONS)
    for spec in registry.wedges.values():
        add_options(parser, spec.options)
    for transport in registry.transports.values():
        add_options(parser, transport.options)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    options = resolve_serve_options(vars(args), None, registry)

    def fake(slot: str, seed: int) -> FakeRuntimePolicy:
        return FakeRuntimePolicy(
            slot=slot,
            model_version=f"fake-{slot}",
            math=FakeBatchPolicy(seed=seed),
            fixed_s=args.fixed_s,
            per_row_s=args.per_row_s,
        )

    def load_slot(source: Any, slot: str) -> FakeRuntimePolicy:
        return fake(slot, seed=sum(map(ord, str(source))) % 1000)

    config = options.serve
    robot = None
    if config.embodiment or config.custom_embodiment_config:
        from reflex_core.embodiments import load_embodiment

        robot = load_embodiment(
            name=config.embodiment, path=config.custom_embodiment_config, registry=registry
        )
    server = ReflexServer(
        {"default": fake("default", 0)},
        embodiment=robot,
        registry=registry,
        options=options,
        policy_loader=load_slot,
        hook=pm.hook,
    )
    return run(server)


if __name__ == "__main__":
    raise SystemExit(main())
