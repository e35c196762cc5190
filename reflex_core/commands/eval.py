"""``reflex eval``: closed-loop evaluation of a served policy in simulation (see
:mod:`reflex_core.eval`).

    reflex eval --server URL | --artifact DIR [serve flags] | --expert  --env NAME/TASK
                --episodes N [--workers W] [--seed S] [--video DIR] [--out results.jsonl]
                [--sweep deadline-ms=50,100,200] [--ray-address ADDR] [--server-per-worker]
    reflex eval report results.jsonl [--png PATH]
    reflex eval serve-expert --env NAME/TASK [serve flags]

Heavy imports (the simulators, Ray, matplotlib) happen inside ``run``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from reflex_core.plugin.options import Option, add_option_group

HELP = "run a served policy in simulation (success rate, latency, guard, fallbacks, video)"

# serve options eval sets itself on a server it starts
_OWN_SERVE_FLAGS = {"--host", "--port", "--embodiment", "--custom-embodiment-config"}


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {number}")
    return number


def _serve_options(
    registry: Any,
) -> list[tuple[str, str | None, tuple[Option, ...], str]]:
    """(title, description, options, owner) of the core's serve options and every installed
    wedge's."""
    from reflex_core.serve.config import SERVE_OPTIONS

    groups: list[tuple[str, str | None, tuple[Option, ...], str]] = [
        (
            "serve options (a server eval starts: --artifact / --expert)",
            None,
            tuple(o for o in SERVE_OPTIONS if o.flag not in _OWN_SERVE_FLAGS),
            "reflex.commands",
        )
    ]
    for name, spec in sorted(registry.wedges.items()):
        groups.append((name, spec.description, spec.options, registry.owner("wedges", name)))
    return groups


def _add_serve_groups(parser: argparse.ArgumentParser, registry: Any) -> None:
    for title, description, options, owner in _serve_options(registry):
        add_option_group(parser, title, description, options, owner=owner)


def serve_flags(args: argparse.Namespace, registry: Any) -> list[str]:
    """The serve options given on the command line, back as ``reflex serve`` flags."""
    flags: list[str] = []
    for _title, _description, options, _owner in _serve_options(registry):
        for opt in options:
            value = getattr(args, opt.dest, None)
            if value is None:
                continue
            if opt.is_flag:
                flags.append(opt.flag)
            elif opt.multiple:
                for item in value:
                    flags += [opt.flag, _text(item)]
            else:
                flags += [opt.flag, _text(value)]
    return flags


def _text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def configure(parser: argparse.ArgumentParser, registry: Any) -> None:
    from reflex_core.robot.control.merge import MERGE_FUNCTIONS

    sub = parser.add_subparsers(dest="eval_command", metavar="SUBCOMMAND")
    report = sub.add_parser(
        "report", help="print the summary of a results file and write a PNG of it"
    )
    report.add_argument("results", type=Path, metavar="results.jsonl")
    report.add_argument(
        "--png", type=Path, metavar="PATH", help="where the plot goes (default: next to results)"
    )
    expert = sub.add_parser(
        "serve-expert",
        help="serve an env's scripted expert behind the wire protocol (the harness check)",
    )
    expert.add_argument("--env", required=True, metavar="NAME/TASK")
    from reflex_core.serve.config import SERVE_OPTIONS

    add_option_group(
        expert, "serve options", None,
        tuple(o for o in SERVE_OPTIONS if o.flag not in {"--embodiment", "--custom-embodiment-config"}),
        owner="reflex.commands",
    )  # fmt: skip
    for name, spec in sorted(registry.wedges.items()):
        add_option_group(
            expert, name, spec.description, spec.options, owner=registry.owner("wedges", name)
        )

    source = parser.add_argument_group("the policy (one of)")
    which = source.add_mutually_exclusive_group()
    which.add_argument("--server", metavar="URL", help="a running reflex serve (http://host:port)")
    which.add_argument(
        "--artifact", type=Path, metavar="DIR",
        help="serve this export on 127.0.0.1 for the evaluation (with the env's embodiment and "
        "the serve flags below)",
    )  # fmt: skip
    which.add_argument(
        "--expert", action="store_true",
        help="serve the env's scripted expert (checks the harness: it must score near 100%%)",
    )  # fmt: skip
    run = parser.add_argument_group("the evaluation")
    run.add_argument("--env", metavar="NAME/TASK", help="e.g. metaworld/reach-v3 (see below)")
    run.add_argument("--episodes", type=_positive_int, default=10, help="per sweep point (10)")
    run.add_argument("--seed", type=int, default=0, help="episode i uses seed S+i (0)")
    run.add_argument(
        "--max-steps", type=_positive_int, metavar="TICKS", help="episode length (the env's)"
    )
    run.add_argument(
        "--image-size", type=int, default=64, metavar="PX",
        help="camera renders sent to the policy, PX x PX (64); only the cameras it declares",
    )  # fmt: skip
    run.add_argument("--merge", choices=sorted(MERGE_FUNCTIONS), default="weighted_average")
    run.add_argument(
        "--execution-horizon", type=_positive_int, metavar="TICKS",
        help="ticks between requests (the embodiment's)",
    )  # fmt: skip
    run.add_argument(
        "--no-stop-on-success", dest="stop_on_success", action="store_false",
        help="run every episode to --max-steps",
    )  # fmt: skip
    run.add_argument("--transport", choices=["auto", "ws", "http"], default="auto")
    run.add_argument("--out", type=Path, metavar="results.jsonl", help="episode records + summary")
    run.add_argument("--video", type=Path, metavar="DIR", help="one video per episode")
    run.add_argument("--video-format", choices=["mp4", "gif"], help="default: mp4 if available")
    run.add_argument("--no-progress", dest="progress", action="store_false")
    scale = parser.add_argument_group("scale-out (Ray: pip install 'reflex-core[eval]')")
    scale.add_argument(
        "--workers", type=_positive_int, metavar="W",
        help="run episodes in W Ray actors (default: in this process)",
    )  # fmt: skip
    scale.add_argument("--ray-address", metavar="ADDR", help="join this Ray cluster")
    scale.add_argument(
        "--server-per-worker", action="store_true",
        help="each actor starts its own server (--artifact/--expert) instead of sharing one",
    )  # fmt: skip
    scale.add_argument(
        "--sweep", action="append", default=[], metavar="KEY=V1,V2",
        help="grid over serve flags (deadline-ms=50,100,200) or merge / execution-horizon; "
        "points run as Ray tasks, one comparison table",
    )  # fmt: skip
    _add_serve_groups(parser, registry)
    envs = ", ".join(sorted(registry.envs)) or "none installed"
    parser.epilog = f"registered envs: {envs}"


def run(args: argparse.Namespace, pm: Any) -> int:
    for noisy in ("httpx", "OpenGL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.eval_command == "report":
        return run_report(args.results, args.png, sys.stdout)
    if args.eval_command == "serve-expert":
        return run_serve_expert(args, pm)
    return run_eval_command(args, pm)


def run_report(results: Path, png: Path | None, out: Any) -> int:
    from reflex_core.errors import ConfigError
    from reflex_core.eval.report import table, write_png
    from reflex_core.eval.stats import summarize_by_point
    from reflex_core.plugin.kit.jsonl import read_jsonl

    if not results.is_file():
        raise ConfigError(f"no results file {results}", slug="eval-results-missing")
    records = [r for r in read_jsonl(results).records if r.get("type") == "episode"]
    if not records:
        raise ConfigError(f"{results} holds no episode records", slug="eval-results-empty")
    summaries = summarize_by_point(records)
    out.write(table(summaries) + "\n")
    path = write_png(summaries, records, png or results.with_suffix(".png"))
    out.write(f"plot: {path}\n")
    return 0


def run_serve_expert(args: argparse.Namespace, pm: Any) -> int:
    from reflex_core.eval.expert import expert_policy
    from reflex_core.serve import hypercorn_runner
    from reflex_core.serve.app import ReflexServer
    from reflex_core.serve.config import resolve_serve_options
    from reflex_core.serve.middleware import install_request_id_logging

    registry = pm.registry
    policy, embodiment = expert_policy(registry, args.env)
    options = resolve_serve_options(vars(args), None, registry)
    install_request_id_logging()
    server = ReflexServer(
        lambda: {"default": policy},
        embodiment=embodiment,
        registry=registry,
        options=options,
        hook=pm.hook,
    )
    return hypercorn_runner.run(server)


class _Progress:
    def __init__(self, total: int, enabled: bool) -> None:
        self.bar = None
        self.done = 0
        self.successes = 0
        if enabled:
            try:
                from tqdm import tqdm

                self.bar = tqdm(
                    total=total, unit="ep", file=sys.stderr, dynamic_ncols=True,
                    mininterval=0.5 if sys.stderr.isatty() else 5.0,
                )  # fmt: skip
            except ImportError:
                self.bar = None

    def update(self, record: dict[str, Any]) -> None:
        self.done += 1
        self.successes += bool(record.get("success"))
        if self.bar is not None:
            self.bar.set_postfix(success=f"{self.successes}/{self.done}", refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_eval_command(args: argparse.Namespace, pm: Any) -> int:
    from reflex_core.errors import ConfigError
    from reflex_core.eval.env import resolve_env
    from reflex_core.eval.episode import EpisodeConfig
    from reflex_core.eval.report import table
    from reflex_core.eval.runner import EvalPlan, parse_sweep, run_eval
    from reflex_core.eval.server import ServerPlan
    from reflex_core.eval.stats import summarize_by_point
    from reflex_core.eval.video import default_format
    from reflex_core.plugin.kit.jsonl import JsonlWriter

    registry = pm.registry
    if not args.env:
        raise ConfigError("reflex eval needs --env NAME/TASK", slug="env-missing", field="env")
    if not (args.server or args.artifact or args.expert):
        raise ConfigError(
            "reflex eval needs a policy: --server URL, --artifact DIR or --expert",
            slug="eval-no-policy",
        )
    spec, task = resolve_env(registry, args.env)
    env_text = f"{spec.name}/{task}"
    if args.expert and spec.expert is None:  # say so before starting a server that would
        raise ConfigError(
            f"env {spec.name!r} ships no scripted expert: --artifact DIR or --server URL",
            slug="env-no-expert",
            field="env",
        )
    if args.artifact is not None and not (args.artifact / "reflex_config.json").is_file():
        raise ConfigError(
            f"{args.artifact} is not an exported artifact (no reflex_config.json)",
            slug="artifact-missing",
        )
    flags = serve_flags(args, registry)
    server = ServerPlan(
        url=args.server,
        artifact=args.artifact,
        expert_env=env_text if args.expert else None,
        embodiment=spec.embodiment,
        flags=tuple(flags),
    )
    episode = EpisodeConfig(
        env=env_text,
        max_steps=args.max_steps,
        image_size=args.image_size,
        merge=args.merge,
        execution_horizon=args.execution_horizon,
        stop_on_success=args.stop_on_success,
        transport=args.transport,
        api_key=getattr(args, "api_key", None),
        video_dir=args.video,
        video_format=args.video_format or default_format(),
    )
    plan = EvalPlan(
        episode=episode,
        server=server,
        episodes=args.episodes,
        seed=args.seed,
        workers=args.workers,
        ray_address=args.ray_address,
        server_per_worker=args.server_per_worker,
        sweep=parse_sweep(args.sweep),
    )
    writer = None
    if args.out is not None:
        if args.out.exists():
            args.out.unlink()  # a fresh evaluation, not appended to an old one
        writer = JsonlWriter(args.out, durable=False)
    records: list[dict[str, Any]] = []
    progress = _Progress(plan.total, args.progress)

    def on_record(record: dict[str, Any]) -> None:
        records.append(record)
        if writer is not None:
            writer.write(record)
        progress.update(record)

    try:
        run_eval(plan, on_record, registry)
    finally:
        progress.close()
        summaries = summarize_by_point(records)
        if writer is not None:
            writer.write_many(summaries)
            writer.close()
    sys.stdout.write(table(summaries) + "\n")
    if args.out is not None:
        sys.stdout.write(f"records: {args.out}\n")
    for record in records:
        if record.get("error"):
            sys.stderr.write(f"episode {record['episode']} failed: {record['error']}\n")
            break
    sys.stdout.write(json.dumps({"summaries": summaries}, default=str) + "\n")
    errors = sum(1 for r in records if r.get("error"))
    return 1 if not records or errors == len(records) else 0
