"""``reflex serve`` on the command line: its flags, every installed wedge's option group, the
TOML config file (CLI over env over file over defaults) and its errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import pytest

from reflex_core.cli import build_parser, main
from reflex_core.errors import ConfigError, PluginError
from reflex_core.plugin.hookspecs import hookimpl
from reflex_core.plugin.manager import make_plugin_manager
from reflex_core.plugin.options import Option
from reflex_core.plugin.registry import WedgeSpec
from reflex_core.plugin.wedges import Stage
from reflex_core.serve.config import (
    DEFAULT_MAX_BODY_BYTES,
    ServeConfig,
    load_config_file,
    resolve_serve_options,
)
from reflex_core.serve.hypercorn_runner import bind_address, hypercorn_config

REFLEX = str(Path(sys.executable).with_name("reflex"))


@attrs.frozen
class ShieldConfig:
    shield: str | None = None
    shield_level: int = 3
    shield_strict: bool = False


class ShieldPlugin:
    """A wedge plugin with three kinds of options."""

    def __init__(self, flag: str = "--shield") -> None:
        self.flag = flag

    @hookimpl
    def reflex_register_wedges(self, register: Any) -> None:
        register(
            WedgeSpec(
                name="shield",
                stage=Stage.GUARD,
                config_cls=ShieldConfig,
                options=(
                    Option(self.flag, "enable the shield with this mode", choices=("soft", "hard")),
                    Option("--shield-level", "how strong", type=int, default=3),
                    Option(
                        "--shield-strict", "refuse instead of clamping", is_flag=True, default=False
                    ),
                ),
                factory=lambda config, nxt, ctx: nxt,
                is_enabled=lambda c: c.shield is not None,
                description="a test shield that guards the arm",
            )
        )


def serve_parser(pm: Any) -> Any:
    parser = build_parser(pm)
    subparsers = next(a for a in parser._actions if a.dest == "command")
    return parser, subparsers.choices["serve"]


def parse(pm: Any, *argv: str) -> Any:
    parser, _ = serve_parser(pm)
    return parser.parse_args(["serve", *argv])


def resolve(pm: Any, *argv: str, env: dict[str, str] | None = None) -> Any:
    args = parse(pm, *argv)
    sections = load_config_file(args.config) if args.config else None
    return resolve_serve_options(
        vars(args), sections, pm.registry, artifact_dir=args.artifact_dir, env=env or {}
    )


# ------------------------------------------------------------------------------- --help


def test_help_lists_core_options_and_each_installed_wedge_group() -> None:
    with_plugin = make_plugin_manager(
        load_entrypoints=False, extra_plugins={"shield": ShieldPlugin()}
    )
    without = make_plugin_manager(load_entrypoints=False)
    _, serve = serve_parser(with_plugin)
    text = serve.format_help()
    for flag in (
        "--embodiment",
        "--custom-embodiment-config",
        "--host",
        "--port",
        "--api-key",
        "--cors-origin",
        "--max-body-bytes",
        "--providers",
        "--allow-cpu-fallback",
        "--adaptive-steps",
        "--prefix-cache",
        "--workers-threads",
        "--idempotency-window-s",
        "--otel-endpoint",
        "--config",
        "--ws-queue-size",
        "--ws-when-full",
    ):
        assert flag in text
    assert "shield:\n  a test shield that guards the arm" in text
    assert "--shield {soft,hard}" in text and "--shield-strict" in text
    _, bare = serve_parser(without)
    assert "--shield" not in bare.format_help() and "shield:" not in bare.format_help()


def test_help_of_the_installed_cli_shows_installed_wedges_only_when_loaded() -> None:
    installed = make_plugin_manager().registry.wedges
    loaded = subprocess.run([REFLEX, "serve", "--help"], capture_output=True, text=True)
    env = {**os.environ, "REFLEX_DISABLE_PLUGINS": "*"}
    disabled = subprocess.run([REFLEX, "serve", "--help"], capture_output=True, text=True, env=env)
    assert loaded.returncode == 0 and disabled.returncode == 0, loaded.stderr + disabled.stderr
    for name, spec in installed.items():
        assert f"\n{name}:\n" in loaded.stdout
        for option in spec.options:
            assert option.flag in loaded.stdout
            assert option.flag not in disabled.stdout
        assert f"\n{name}:\n" not in disabled.stdout


def test_a_plugin_option_that_clashes_with_a_core_flag_names_the_plugin() -> None:
    pm = make_plugin_manager(
        load_entrypoints=False, extra_plugins={"clash": ShieldPlugin("--port")}
    )
    with pytest.raises(PluginError) as info:
        build_parser(pm)
    assert info.value.slug == "plugin-option-conflict" and "'clash'" in info.value.message


def test_bad_flag_values_are_rejected_by_argparse(capsys: pytest.CaptureFixture[str]) -> None:
    pm = make_plugin_manager(load_entrypoints=False)
    for argv in (
        ["--port", "70000"],
        ["--max-body-bytes", "0"],
        ["--workers-threads", "0"],
        ["--idempotency-window-s", "-1"],
        ["--otel-endpoint", "localhost:4318"],
        ["--otel-endpoint", "http://"],  # no host
        ["--graceful-timeout-s", "inf"],
        ["--adaptive-steps", "nan"],
        ["--providers", " , "],
        ["--cors-origin", "example.com"],
        ["--ws-when-full", "drop"],
    ):
        with pytest.raises(SystemExit) as exit_info:
            parse(pm, "dir", *argv)
        assert exit_info.value.code == 2
    assert "invalid" in capsys.readouterr().err


# ----------------------------------------------------------------------- resolution


def test_defaults_bind_localhost_and_everything_optional_is_off() -> None:
    resolved = resolve(make_plugin_manager(load_entrypoints=False), "art")
    serve = resolved.serve
    assert serve.host == "127.0.0.1" and serve.port == 8000
    assert serve.api_key is None and serve.cors_origin == () and serve.otel_endpoint is None
    assert serve.max_body_bytes == DEFAULT_MAX_BODY_BYTES
    assert serve.idempotency_window_s == 30.0 and serve.workers_threads == 2
    assert serve.artifact_dir == Path("art")
    assert resolved.transports["ws"] == {
        "ws_queue_size": 4,
        "ws_when_full": "wait",
        "ws_idle_timeout_s": 60.0,
    }
    # the server holds: every timeout and cap is on by default
    assert serve.body_timeout_s == 10.0 and serve.idle_timeout_s == 30.0
    assert serve.max_concurrent_requests == 256 and serve.max_ws_sessions == 64
    assert serve.ws_ping_interval_s == 5.0


def test_config_file_sections_and_cli_precedence(tmp_path: Path) -> None:
    config = tmp_path / "serve.toml"
    config.write_text(
        '[serve]\nport = 9001\nhost = "0.0.0.0"\ncors-origin = ["http://a.local", "http://b.local"]\n'
        'workers_threads = 3\nallow-cpu-fallback = true\nproviders = "cpu"\n\n'
        '[shield]\nshield = "soft"\nshield-level = 5\n\n[ws]\nws-queue-size = 16\n'
    )
    pm = make_plugin_manager(load_entrypoints=False, extra_plugins={"shield": ShieldPlugin()})
    resolved = resolve(pm, "art", "--config", str(config), "--port", "9002", "--shield-strict")
    serve = resolved.serve
    assert serve.port == 9002  # the command line wins
    assert serve.host == "0.0.0.0" and serve.workers_threads == 3 and serve.allow_cpu_fallback
    assert serve.cors_origin == ("http://a.local", "http://b.local")
    assert serve.providers == ("cpu",)
    assert resolved.wedges["shield"] == {"shield": "soft", "shield_level": 5, "shield_strict": True}
    assert resolved.transports["ws"]["ws_queue_size"] == 16


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("[nosuchwedge]\nx = 1\n", "unknown-config-section"),
        ("[serve]\nprot = 1\n", "unknown-config-key"),
        ("[serve]\nport = 99999\n", "invalid-config-value"),
        ("[serve]\nidempotency-window-s = inf\n", "invalid-config-value"),
        ('[serve]\notel-endpoint = "https:///v1/traces"\n', "invalid-config-value"),
        ("[serve]\nproviders = []\n", "invalid-config-value"),
        ('[serve]\nport = "eighty"\n', "invalid-config-value"),
        ('[serve]\nallow-cpu-fallback = "false"\n', "invalid-config-value"),
        ('[shield]\nshield = "medium"\n', "invalid-config-value"),
        ("port = 1\n", "config-file-invalid"),
        ("[serve\n", "config-file-invalid"),
        ('[serve]\napi-key = ""\n', "invalid-config-value"),
        (
            '[serve]\nembodiment = "franka"\ncustom-embodiment-config = "x.json"\n',
            "embodiment-conflict",
        ),
    ],
)
def test_config_file_errors(tmp_path: Path, text: str, slug: str) -> None:
    config = tmp_path / "serve.toml"
    config.write_text(text)
    pm = make_plugin_manager(load_entrypoints=False, extra_plugins={"shield": ShieldPlugin()})
    with pytest.raises(ConfigError) as info:
        resolve(pm, "art", "--config", str(config))
    assert info.value.slug == slug


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config_file(tmp_path / "nope.toml")
    assert info.value.slug == "config-file-missing"


def test_api_key_from_cli_env_or_file(tmp_path: Path) -> None:
    pm = make_plugin_manager(load_entrypoints=False)
    config = tmp_path / "serve.toml"
    config.write_text('[serve]\napi-key = "from-file"\n')
    from_file = resolve(pm, "art", "--config", str(config))
    from_env = resolve(pm, "art", "--config", str(config), env={"REFLEX_API_KEY": "from-env"})
    from_cli = resolve(
        pm, "art", "--config", str(config), "--api-key", "from-cli", env={"REFLEX_API_KEY": "e"}
    )
    assert from_file.serve.api_key == "from-file"
    assert from_env.serve.api_key == "from-env"
    assert from_cli.serve.api_key == "from-cli"
    assert "from-cli" not in repr(from_cli.serve)
    public = from_cli.serve.public_dict()
    assert "api_key" not in public and public["auth_enabled"] is True
    assert "from-cli" not in json.dumps(public)


def test_hypercorn_settings_follow_the_options() -> None:
    hc = hypercorn_config(
        ServeConfig(host="::1", port=8123, graceful_timeout_s=7.5, max_body_bytes=1000)
    )
    assert hc.bind == ["[::1]:8123"]
    assert hc.graceful_timeout == 7.5
    assert hc.websocket_max_message_size >= 1000
    assert bind_address("127.0.0.1", 0) == "127.0.0.1:0"


# ------------------------------------------------------------------------ reflex serve


@pytest.mark.parametrize(
    ("files", "args", "said"),
    [
        pytest.param(
            {}, ["--port", "0"], ["artifact-missing", "reflex export"], id="not-an-artifact"
        ),
        pytest.param(
            {"reflex_config.json": "{}"},
            ["--port", "0", "--embodiment", "nosuchbot"],
            ["embodiment-unknown", "franka"],
            id="unknown-embodiment",
        ),
        pytest.param(
            {"reflex_config.json": "{}", "serve.toml": "[serve]\nbogus = 1\n"},
            ["--config", "serve.toml"],
            ["unknown-config-key"],
            id="config-file-error",
        ),
    ],
)
def test_serve_reports_a_bad_setup_before_binding(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    files: dict[str, str],
    args: list[str],
    said: list[str],
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    monkeypatch.chdir(tmp_path)  # where --config finds serve.toml
    assert main(["serve", str(tmp_path), *args]) == 1
    err = capsys.readouterr().err
    for words in said:
        assert words in err


# ------------------------------------------------------------------------------- docs


def test_each_slug_has_one_row_across_serve_and_wire_docs() -> None:
    import re

    root = Path(__file__).resolve().parents[1]
    rows: list[str] = []
    for page in ("serve.md", "wire.md"):
        text = (root / "docs" / page).read_text()
        rows += re.findall(r"^\| `([a-z0-9-]+)` \| \d{3} \|", text, flags=re.M)
    assert len(rows) > 30
    assert sorted(s for s in set(rows) if rows.count(s) > 1) == []


def test_every_server_slug_and_metric_is_documented() -> None:
    import re

    from prometheus_client import CollectorRegistry

    from reflex_core.serve import errors
    from reflex_core.serve.metrics import ServeMetrics

    root = Path(__file__).resolve().parents[1]
    docs = (root / "docs" / "serve.md").read_text()
    sources = [
        *(root / "reflex_core" / "serve").glob("*.py"),
        root / "reflex_core/commands/serve.py",
    ]
    slugs: set[str] = set()
    for path in sources:
        slugs |= set(re.findall(r'slug\s*=\s*"([a-z0-9-]+)"', path.read_text()))
    slugs |= {
        value
        for name, value in vars(errors).items()
        if name.isupper() and isinstance(value, str) and re.fullmatch(r"[a-z-]+", value)
    }
    slugs |= {errors.InternalError.slug, errors.UnsupportedMediaType.slug}
    assert len(slugs) > 15
    missing = sorted(s for s in slugs if f"`{s}`" not in docs)
    assert not missing, f"slugs missing from docs/serve.md: {missing}"

    metrics = ServeMetrics(CollectorRegistry())
    names = {family.name for family in metrics.registry.collect()}
    assert len(names) >= 9
    undocumented = sorted(n for n in names if f"`{n}`" not in docs and f"`{n}_total`" not in docs)
    assert not undocumented, f"metrics missing from docs/serve.md: {undocumented}"
    for option in ("--ws-queue-size", "--ws-when-full"):
        assert f"`{option}" in docs
    from reflex_core.serve.config import SERVE_OPTIONS

    assert all(f"`{opt.flag}" in docs for opt in SERVE_OPTIONS)


def test_serve_reports_a_taken_port_before_starting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    (tmp_path / "reflex_config.json").write_text("{}")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["serve", str(tmp_path), "--port", str(port)])
    assert code == 1
    assert "address-unavailable" in capsys.readouterr().err
