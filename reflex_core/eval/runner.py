"""Many episodes: in this process, in Ray actors (``--workers``), or a sweep of serve flags as Ray
tasks (``--sweep``); records stream to the caller as they finish.

* in process (no ``--workers``): one :class:`~reflex_core.eval.episode.EpisodeRunner`, one
  server;
* ``--workers W``: W Ray actors, each with its own simulator, against one shared server (or one
  each, ``--server-per-worker``); episodes are handed out one at a time as actors free up;
* ``--sweep KEY=V1,V2 ...``: the grid of points runs as Ray tasks (at most ``--workers`` at
  once); each task starts its own server with the point's serve flags and runs its episodes.
  ``merge`` and ``execution-horizon`` are client-side keys (the chunk loop's); every other key is
  a ``reflex serve`` flag (``deadline-ms`` -> ``--deadline-ms``).

Ray starts locally bound to 127.0.0.1 unless ``--ray-address`` names a cluster to join.
Every episode's seed is ``seed + index``: the same seeds for every sweep point, so points are
compared on the same task placements.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from reflex_core.errors import ConfigError
from reflex_core.eval.episode import EpisodeConfig, EpisodeRunner
from reflex_core.eval.server import ServerPlan, policy_cameras, served

log = logging.getLogger("reflex.eval")

LOCAL_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
CLIENT_KEYS = {"merge": "merge", "execution-horizon": "execution_horizon"}

Record = dict[str, Any]


def parse_sweep(items: Sequence[str]) -> list[dict[str, str]]:
    """``["deadline-ms=50,100", "merge=average,latest_only"]`` -> the grid's points, in order."""
    axes: list[tuple[str, list[str]]] = []
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip().lstrip("-")
        options = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not key or not options:
            raise ConfigError(
                f"--sweep takes KEY=V1,V2,... (e.g. deadline-ms=50,100,200), got {item!r}",
                slug="invalid-sweep",
                field="sweep",
            )
        if any(key == k for k, _ in axes):
            raise ConfigError(f"--sweep names {key!r} twice", slug="invalid-sweep", field="sweep")
        axes.append((key, options))
    if not axes:
        return [{}]
    return [dict(zip([k for k, _ in axes], combo, strict=True))
            for combo in itertools.product(*[v for _, v in axes])]  # fmt: skip


def point_episode_config(config: EpisodeConfig, point: Mapping[str, str]) -> EpisodeConfig:
    changes: dict[str, Any] = {}
    for key, value in point.items():
        if key == "merge":
            changes["merge"] = value
        elif key == "execution-horizon":
            changes["execution_horizon"] = int(value)
    return attrs.evolve(config, **changes)


def point_serve_flags(point: Mapping[str, str]) -> list[str]:
    flags: list[str] = []
    for key, value in point.items():
        if key in CLIENT_KEYS:
            continue
        if value.lower() in ("true", "on") and key != "guard":
            flags.append(f"--{key}")
        elif value.lower() in ("false", "off", "none"):
            continue  # the flag's default: off
        else:
            flags += [f"--{key}", value]
    return flags


@attrs.define
class EvalPlan:
    episode: EpisodeConfig
    server: ServerPlan
    episodes: int
    seed: int = 0
    workers: int | None = None
    ray_address: str | None = None
    server_per_worker: bool = False
    sweep: list[dict[str, str]] = attrs.field(factory=lambda: [{}])

    def check(self) -> None:
        if self.episodes < 1:
            raise ConfigError("--episodes must be >= 1", slug="invalid-episodes")
        server_keys = [k for p in self.sweep for k in p if k not in CLIENT_KEYS]
        if server_keys and not self.server.spawns:
            raise ConfigError(
                f"--sweep over serve flags ({', '.join(sorted(set(server_keys)))}) needs a server "
                "eval starts itself: --artifact DIR or --expert, not --server URL",
                slug="invalid-sweep",
                field="sweep",
            )
        if self.server_per_worker and not self.server.spawns:
            raise ConfigError(
                "--server-per-worker needs --artifact DIR or --expert", slug="invalid-eval-options"
            )

    @property
    def total(self) -> int:
        return self.episodes * len(self.sweep)

    @property
    def uses_ray(self) -> bool:
        return self.workers is not None or self.ray_address is not None or len(self.sweep) > 1


def run_eval(plan: EvalPlan, on_record: Callable[[Record], None], registry: Any = None) -> None:
    """Run the plan; ``on_record(record)`` for every episode as it finishes (any order)."""
    plan.check()
    if not plan.uses_ray:
        _run_local(plan, plan.sweep[0], on_record, registry)
    elif len(plan.sweep) > 1:
        _run_sweep(plan, on_record)
    else:
        _run_actors(plan, on_record)


def _run_local(
    plan: EvalPlan, point: Mapping[str, str], on_record: Callable[[Record], None], registry: Any
) -> None:
    runner = EpisodeRunner(point_episode_config(plan.episode, point), registry)
    try:
        with served(plan.server, point_serve_flags(point)) as (url, health):
            cameras = policy_cameras(health)
            for index in range(plan.episodes):
                on_record(
                    runner.run(
                        url,
                        index=index,
                        seed=plan.seed + index,
                        cameras=cameras,
                        point=point,
                        worker="local",
                    )  # fmt: skip
                )
    finally:
        runner.close()


# ------------------------------------------------------------------------------------ Ray


def ray_env_vars() -> dict[str, str]:
    return {
        "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        "HF_HUB_OFFLINE": "1",
    }


def init_ray(address: str | None, num_cpus: int) -> Any:
    """Join ``address``, or start a local Ray bound to 127.0.0.1 (no dashboard)."""
    if not address:
        # Ray binds its servers to the node IP, and resolves 127.0.0.1 to the machine's
        # outward address unless clusters are off: a local evaluation listens on loopback only.
        os.environ[LOCAL_ONLY_ENV] = "0"
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(
            "--workers / --sweep / --ray-address run on Ray: pip install 'reflex-core[eval]'",
            slug="ray-unavailable",
        ) from exc
    if ray.is_initialized():
        return ray
    runtime_env = {"env_vars": ray_env_vars()}
    if not address:
        import ray._private.ray_constants as constants

        constants.ENABLE_RAY_CLUSTER = False  # in case ray was imported before the variable
    if address:
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
    else:
        ray.init(
            num_cpus=num_cpus,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            runtime_env=runtime_env,
            log_to_driver=False,
            configure_logging=False,
        )
    return ray


class EpisodeWorker:
    """A Ray actor: one simulator (and optionally one server of its own), many episodes."""

    def __init__(
        self, config: EpisodeConfig, name: str, server: ServerPlan | None = None,
        flags: Sequence[str] = (),
    ) -> None:  # fmt: skip
        self.name = name
        self.runner = EpisodeRunner(config)
        self._server = None
        self.url: str | None = None
        self.cameras: list[str] = []
        if server is not None:
            self._server = served(server, flags)
            self.url, health = self._server.__enter__()
            self.cameras = policy_cameras(health)

    def run(
        self, url: str | None, cameras: Sequence[str], index: int, seed: int,
        point: Mapping[str, str],
    ) -> Record:  # fmt: skip
        return self.runner.run(
            url or self.url or "", index=index, seed=seed,
            cameras=cameras if url else self.cameras, point=point, worker=self.name,
        )  # fmt: skip

    def close(self) -> bool:
        self.runner.close()
        if self._server is not None:
            self._server.__exit__(None, None, None)
            self._server = None
        return True


def _run_actors(plan: EvalPlan, on_record: Callable[[Record], None]) -> None:
    workers = max(1, plan.workers or 1)
    ray = init_ray(plan.ray_address, workers)
    point = plan.sweep[0]
    config = point_episode_config(plan.episode, point)
    flags = point_serve_flags(point)
    Actor = ray.remote(num_cpus=1)(EpisodeWorker)
    if plan.server_per_worker:
        actors = [Actor.remote(config, f"worker-{i}", plan.server, flags) for i in range(workers)]
        _dispatch(ray, actors, None, [], plan, point, on_record)
        return
    with served(plan.server, flags) as (url, health):
        actors = [Actor.remote(config, f"worker-{i}") for i in range(workers)]
        _dispatch(ray, actors, url, policy_cameras(health), plan, point, on_record)


def _dispatch(
    ray: Any, actors: list[Any], url: str | None, cameras: list[str], plan: EvalPlan,
    point: Mapping[str, str], on_record: Callable[[Record], None],
) -> None:  # fmt: skip
    pending: dict[Any, Any] = {}
    indices = iter(range(plan.episodes))
    try:
        for actor in actors:
            index = next(indices, None)
            if index is None:
                break
            pending[actor.run.remote(url, cameras, index, plan.seed + index, point)] = actor
        while pending:
            (done,), _ = ray.wait(list(pending), num_returns=1)
            actor = pending.pop(done)
            on_record(ray.get(done))
            index = next(indices, None)
            if index is not None:
                pending[actor.run.remote(url, cameras, index, plan.seed + index, point)] = actor
    finally:
        ray.get([a.close.remote() for a in actors])
        for actor in actors:
            ray.kill(actor)


def _sweep_point(plan: EvalPlan, point: Mapping[str, str], queue: Any) -> int:  # runs as a Ray task
    count = 0

    def put(record: Record) -> None:
        nonlocal count
        count += 1
        queue.put(record)

    local = attrs.evolve(plan, workers=None, ray_address=None, sweep=[dict(point)])
    _run_local(local, point, put, None)
    return count


def _run_sweep(plan: EvalPlan, on_record: Callable[[Record], None]) -> None:
    concurrency = max(1, plan.workers or min(len(plan.sweep), os.cpu_count() or 1))
    ray = init_ray(plan.ray_address, concurrency)
    from ray.util.queue import Empty, Queue

    queue = Queue()
    task = ray.remote(num_cpus=1)(_sweep_point)
    pending = [task.remote(plan, point, queue) for point in plan.sweep]

    def drain() -> None:
        while True:
            try:
                on_record(queue.get_nowait())
            except Empty:
                return

    finished: list[Any] = []
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=len(pending), timeout=0.2)
            finished += ready
            drain()
        ray.get(finished)  # surfaces a task's failure
        drain()
    finally:
        ray.kill(queue.actor)
