"""The reflex-core wheel built from a clean checkout ships the embodiment presets and works in a
fresh virtualenv with its declared (serving) dependencies only: no torch, no export extra."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import attrs
import pytest

REPO = Path(__file__).resolve().parents[1]
PRESET_FILES = ["franka.json", "so100.json", "ur5.json", "schema.json"]


def _run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=240, **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _checkout_copy(dest: Path) -> None:
    """Copy what a clean clone would contain: tracked files plus new files not ignored (so the
    test also covers work that is not committed yet), never build output or the venv."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout to know which files a clean clone holds")
    listed = _run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO
    ).stdout
    for rel in filter(None, listed.split("\0")):
        src = REPO / rel
        if src.is_file():  # deleted-but-tracked files are listed too
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)


@attrs.frozen
class FreshInstall:
    wheel: Path
    venv: Path
    env: dict[str, str]
    cwd: Path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return _run([str(self.venv / "bin" / args[0]), *args[1:]], cwd=self.cwd, env=self.env)


@pytest.fixture(scope="module")
def fresh_install(tmp_path_factory: pytest.TempPathFactory) -> FreshInstall:
    """The wheel built from a copy of the checkout, installed with its base dependencies into a
    new venv (versions pinned to the test environment's so pip answers from its cache)."""
    tmp_path = tmp_path_factory.mktemp("wheel")
    source = tmp_path / "src"
    _checkout_copy(source)
    dist = tmp_path / "dist"
    # --no-isolation: hatchling comes from the test extra instead of a download per run.
    _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "-o", str(dist), str(source)])
    (wheel,) = dist.glob("reflex_core-*.whl")

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    requirements = metadata.requires("reflex-core") or []
    base = [r.split(";")[0].split(">")[0].split("=")[0].strip() for r in requirements if "extra ==" not in r]
    pins = [f"{dep}=={metadata.version(dep)}" for dep in base]
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q"]
    _run([*pip, "--disable-pip-version-check", "-c", str(REPO / "constraints.txt"), *pins, str(wheel)])

    # Nothing from this checkout or the test venv may leak in.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "REFLEX_"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return FreshInstall(wheel=wheel, venv=venv, env=env, cwd=tmp_path)


@pytest.mark.slow
def test_wheel_ships_the_presets(fresh_install: FreshInstall) -> None:
    names = set(zipfile.ZipFile(fresh_install.wheel).namelist())
    for name in PRESET_FILES:
        assert f"reflex_core/_embodiments/{name}" in names, sorted(names)
    assert "reflex_core/embodiments/config.py" in names
    assert "reflex_core/_embodiments/.keep" not in names

    # The installed package finds them inside itself, not in a repository checkout.
    located = fresh_install.run(
        "python",
        "-c",
        "from reflex_core.embodiments import EmbodimentConfig, presets_dir\n"
        "print(presets_dir())\n"
        "print(EmbodimentConfig.load_preset('franka').joint_names[0])",
    ).stdout.split()
    assert Path(located[0]).name == "_embodiments"
    assert Path(located[0]).resolve().is_relative_to(fresh_install.venv.resolve()), located
    assert located[1] == "panda_joint1"


@pytest.mark.slow
def test_base_install_has_no_torch(fresh_install: FreshInstall) -> None:
    probe = fresh_install.run("python", "-c", "import importlib.util as u; print(u.find_spec('torch'))")
    assert probe.stdout.strip() == "None"


@pytest.mark.slow
def test_cli_shows_presets_from_the_wheel(fresh_install: FreshInstall) -> None:
    shown = fresh_install.run("reflex", "embodiments", "show", "franka")
    assert "panda_joint1" in shown.stdout and "panda_finger_joint1" in shown.stdout
    listed = fresh_install.run("reflex", "embodiments", "list")
    assert [line.split()[0] for line in listed.stdout.splitlines()] == ["franka", "so100", "ur5"]
