"""Where the guard keeps its audit log by default, and the one-writer lock on it.

The state directory is ``$REFLEX_STATE_DIR``, else ``$XDG_STATE_HOME/reflex``, else
``~/.local/state/reflex`` (the XDG base-directory rule for state that should survive restarts).
The audit log defaults to ``<state dir>/guard/audit.jsonl``; rotated files sit next to it
(``audit.jsonl.000001``...), and ``reflex guard audit`` without a path reads them all.

A log file has one writer: the guard holds an exclusive ``flock`` on ``<log>.lock`` while it
serves, so a second server pointed at the same log is refused at start-up
(``guard-audit-busy``) instead of interleaving and rotating the same file.
"""

from __future__ import annotations

import os
from pathlib import Path

from reflex_core.errors import ConfigError


def state_dir() -> Path:
    """The directory for state that outlives a server process."""
    explicit = os.environ.get("REFLEX_STATE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "state"
    return base / "reflex"


def default_audit_log() -> Path:
    """``<state dir>/guard/audit.jsonl``."""
    return state_dir() / "guard" / "audit.jsonl"


def lock_audit_log(path: Path) -> int | None:
    """Take the one-writer lock of the audit log at ``path``; keep the returned descriptor
    open for as long as the log is written (``os.close`` releases the lock; so does the
    process's exit). None where ``fcntl`` does not exist (Windows): there the rule is
    documented, not enforced.

    :raises ConfigError: ``guard-audit-busy`` when another process holds it,
        ``guard-audit-unwritable`` when the lock file cannot be created.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return None
    lock_path = path.with_name(path.name + ".lock")
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the guard audit log's lock {lock_path}: {exc}",
            slug="guard-audit-unwritable",
        ) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        raise ConfigError(
            f"another process writes the guard audit log {path} (it holds {lock_path}); give "
            "this server its own --guard-audit-log PATH (or REFLEX_STATE_DIR)",
            slug="guard-audit-busy",
        ) from exc
    return fd
