"""One ``reflex connect`` session: observe -> server -> act, at ``rate_hz``, until done or a
failure, which runs the safe-stop command exactly once.

Each control step:

1. take the newest observation line from the observe command (waiting at most
   ``command_timeout_s``); it must be a JSON object in the wire format (``task`` and
   ``instruction`` are aliases of ``prompt``), else ``malformed_observation``;
2. send it to the server and wait for its chunk (``request_timeout_s``);
3. pipe the chunk JSON into the act command, which must exit 0 within ``command_timeout_s``.

Failure -> safe-stop reason: a dropped or unreachable server, or no chunk in time ->
``transport_error``; an error frame from the server -> ``server_error``; act exits non-zero ->
``act_failed``; an observe or act command overrunning its timeout -> ``command_timeout``; a bad
observation line -> ``malformed_observation``; the observe command exiting non-zero ->
``observe_failed``; SIGINT/SIGTERM -> ``signal``. Then the process exits non-zero: 1, or
128 + the signal number, or 3 when the safe-stop command itself failed.

The observe command ending cleanly (exit 0 at end of output) or ``--max-steps`` ends the session
normally: exit 0, no safe stop.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from reflex_core.errors import ReflexError
from reflex_core.robot.connect.config import DEFAULT_RATE_HZ, ConnectConfig
from reflex_core.robot.connect.subprocesses import LineReader, run_command
from reflex_core.wire.parse import SHORTHAND_CAMERA, parse_observation

log = logging.getLogger("reflex.connect")

EXIT_OK = 0
EXIT_SAFE_STOPPED = 1
EXIT_SAFE_STOP_FAILED = 3
REASONS = (
    "transport_error",
    "server_error",
    "act_failed",
    "command_timeout",
    "malformed_observation",
    "observe_failed",
    "signal",
)
_PASS_THROUGH = ("seq", "capture_time_ns", "request_id", "max_gpu_seconds", "episode_id")


class StepFailure(Exception):
    """Something that ends the session through the safe-stop path."""

    def __init__(self, reason: str, message: str) -> None:
        assert reason in REASONS, reason
        super().__init__(message)
        self.reason = reason
        self.message = message


class Interrupted(BaseException):
    """Raised in the main thread by the SIGINT/SIGTERM handler."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class SafeStopper:
    """Runs the safe-stop command at most once per session, whatever calls it."""

    def __init__(self, argv: tuple[str, ...] | None, timeout_s: float, session_id: str) -> None:
        self.argv = argv
        self.timeout_s = timeout_s
        self.session_id = session_id
        self._lock = threading.Lock()
        self.triggered: dict[str, str] | None = None
        self.succeeded: bool | None = None

    def trigger(self, reason: str, message: str) -> bool:
        """Send the safe-stop frame; returns whether the command succeeded (True without one
        configured: the frame is logged)."""
        with self._lock:
            if self.triggered is not None:
                return bool(self.succeeded)
            frame = {"reason": reason, "message": message, "session_id": self.session_id}
            self.triggered = frame
            log.error("safe stop: %s: %s", reason, message)
            if self.argv is None:
                log.warning("no --safe-stop-command configured; frame: %s", json.dumps(frame))
                self.succeeded = True
                return True
            try:
                result = run_command(self.argv, json.dumps(frame).encode(), self.timeout_s)
            except OSError as exc:
                log.error("the safe-stop command could not start: %s", exc)
                self.succeeded = False
                return False
            if result.timed_out:
                log.error("the safe-stop command overran %.1f s and was killed", self.timeout_s)
                self.succeeded = False
            elif result.returncode != 0:
                log.error(
                    "the safe-stop command exited %s: %s", result.returncode, result.stderr_tail()
                )
                self.succeeded = False
            else:
                self.succeeded = True
            return self.succeeded


def observation_fields(line: bytes, embodiment: Any = None) -> dict[str, Any]:
    """One observe-command line -> ``send_observation`` keyword arguments.

    :raises StepFailure: ``malformed_observation`` for anything that is not a valid wire
        observation (checked in full here, images decoded, so a bad line never reaches the
        server).
    """
    try:
        payload = json.loads(line)
    except ValueError as exc:
        raise StepFailure("malformed_observation", f"not JSON: {exc}: {line[:200]!r}") from exc
    try:
        observation = parse_observation(payload)
    except ReflexError as exc:
        raise StepFailure("malformed_observation", f"{exc.slug}: {exc.message}") from exc
    if embodiment is not None and observation.state.shape[0] != embodiment.state_dim:
        raise StepFailure(
            "malformed_observation",
            f"state has {observation.state.shape[0]} values; embodiment {embodiment.name!r} "
            f"expects {embodiment.state_dim}",
        )
    images = dict(payload.get("images") or {})
    if payload.get("image") is not None:
        images[SHORTHAND_CAMERA] = payload["image"]
    fields: dict[str, Any] = {
        "state": observation.state,
        "images": images or None,
        "prompt": observation.prompt,
    }
    for key in _PASS_THROUGH:
        if payload.get(key) is not None:
            fields[key] = payload[key]
    return fields


def _chunk_json(chunk: Mapping[str, Any]) -> bytes:
    body = {
        "type": "action_chunk",
        "seq": chunk["seq"],
        "actions": chunk["actions"].tolist(),
        "metadata": chunk["metadata"],
    }
    return json.dumps(body, separators=(",", ":")).encode() + b"\n"


class ConnectSession:
    """Drives the commands against the server; :meth:`run` returns the exit code."""

    def __init__(
        self,
        config: ConnectConfig,
        *,
        stream_factory: Callable[..., Any] | None = None,
    ) -> None:
        from reflex_core.robot.sdk import ActionStream, Backoff
        from reflex_core.robot.sdk.sansio import resolve_embodiment

        self.config = config
        self.embodiment = resolve_embodiment(config.embodiment)
        rate = config.rate_hz
        if rate is None:
            rate = self.embodiment.control.frequency_hz if self.embodiment else DEFAULT_RATE_HZ
        self.rate_hz = float(rate)
        factory = stream_factory or ActionStream
        self.stream = factory(
            config.server,
            api_key=config.api_key,
            prompt=config.prompt,
            embodiment=self.embodiment,
            episode_id=config.episode_id,
            transport=config.transport,
            connect_timeout_s=config.connect_timeout_s,
            reconnect=Backoff(initial_s=0.05, max_s=1.0, budget_s=config.reconnect_budget_s),
        )
        self.session_id = self.stream.session_id
        self.stopper = SafeStopper(
            config.safe_stop_command, config.safe_stop_timeout_s, self.session_id
        )
        self.steps = 0
        self.skipped_lines = 0
        self._observer: LineReader | None = None
        self._signalled = False

    # ---------------------------------------------------------------------------- signals

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._signalled or self.stopper.triggered is not None:
            return  # already stopping: the safe stop must not be interrupted
        self._signalled = True
        raise Interrupted(signum)

    # ------------------------------------------------------------------------------- run

    def run(self) -> int:
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            return self._run_guarded()
        except Interrupted as interrupt:
            # The signal landed while a failure was being handled: the safe stop still runs
            # once (the handler raises only for the first signal).
            ok = self.stopper.trigger("signal", f"received {interrupt}")
            return 128 + interrupt.signum if ok else EXIT_SAFE_STOP_FAILED
        finally:
            self._cleanup()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _run_guarded(self) -> int:
        try:
            self._session()
        except StepFailure as failure:
            ok = self.stopper.trigger(failure.reason, failure.message)
            return EXIT_SAFE_STOPPED if ok else EXIT_SAFE_STOP_FAILED
        except Interrupted as interrupt:
            ok = self.stopper.trigger("signal", f"received {interrupt}")
            return 128 + interrupt.signum if ok else EXIT_SAFE_STOP_FAILED
        log.info("session %s ended after %d steps", self.session_id, self.steps)
        return EXIT_OK

    def _cleanup(self) -> None:
        if self._observer is not None:
            self._observer.close()
        try:
            self.stream.close()
        except Exception:  # closing a broken connection may fail; nothing is left to do
            log.debug("closing the stream failed", exc_info=True)

    def _session(self) -> None:
        config = self.config
        if config.observe_mode == "stream":
            try:
                self._observer = LineReader(config.observe_command)
            except OSError as exc:
                raise StepFailure(
                    "observe_failed", f"cannot start the observe command: {exc}"
                ) from exc
        self._call_server(self.stream.connect)
        period = 1.0 / self.rate_hz
        start = time.monotonic()
        while config.max_steps is None or self.steps < config.max_steps:
            line = self._observe()
            if line is None:
                return  # the observe command finished cleanly
            fields = observation_fields(line, self.embodiment)
            chunk = self._call_server(self.stream.act, timeout=config.request_timeout_s, **fields)
            self._act(chunk)
            self.steps += 1
            next_step = start + self.steps * period
            delay = next_step - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif -delay > period:
                start = time.monotonic() - self.steps * period  # overran: no burst catch-up

    def _call_server(self, fn: Callable[..., Any], **kwargs: Any) -> Any:
        from reflex_core.robot.sdk.errors import RequestTimeout, TransportError

        try:
            return fn(**kwargs)
        except RequestTimeout as exc:
            raise StepFailure(
                "transport_error", f"no action chunk within {self.config.request_timeout_s} s"
            ) from exc
        except TransportError as exc:
            raise StepFailure("transport_error", exc.message) from exc
        except ReflexError as exc:
            raise StepFailure("server_error", f"{exc.slug} ({exc.status}): {exc.message}") from exc

    def _observe(self) -> bytes | None:
        timeout = self.config.command_timeout_s
        if self._observer is None:  # --observe-mode once
            result = run_command(self.config.observe_command, b"", timeout)
            if result.timed_out:
                raise StepFailure(
                    "command_timeout", f"the observe command overran {timeout} s and was killed"
                )
            if result.returncode != 0:
                raise StepFailure(
                    "observe_failed",
                    f"the observe command exited {result.returncode}: {result.stderr_tail()}",
                )
            lines = [ln for ln in result.stdout.splitlines() if ln.strip()]
            if not lines:
                raise StepFailure("malformed_observation", "the observe command printed nothing")
            return lines[0]
        try:
            line, skipped = self._observer.next_line(timeout)
        except TimeoutError:
            raise StepFailure(
                "command_timeout", f"the observe command printed no observation within {timeout} s"
            ) from None
        for old in skipped:  # not used, but a bad line is still a broken observer
            try:
                json.loads(old)
            except ValueError:
                observation_fields(old)
        self.skipped_lines += len(skipped)
        if line is None:
            code = self._observer.returncode()
            if code == 0:
                log.info("the observe command finished")
                return None
            raise StepFailure("observe_failed", f"the observe command ended with exit code {code}")
        return line

    def _act(self, chunk: Mapping[str, Any]) -> None:
        timeout = self.config.command_timeout_s
        try:
            result = run_command(self.config.act_command, _chunk_json(chunk), timeout)
        except OSError as exc:
            raise StepFailure("act_failed", f"cannot start the act command: {exc}") from exc
        if result.timed_out:
            raise StepFailure(
                "command_timeout", f"the act command overran {timeout} s and was killed"
            )
        if result.returncode != 0:
            tail = result.stderr_tail()
            raise StepFailure(
                "act_failed",
                f"the act command exited {result.returncode}" + (f": {tail}" if tail else ""),
            )


def main_session(config: ConnectConfig) -> int:
    """Run one session; logs go to stderr."""
    session = ConnectSession(config)
    if config.safe_stop_command is None:
        log.warning("no --safe-stop-command: on failure reflex connect only logs and exits")
    log.info(
        "session %s: %s at %.3g Hz (observe: %s)",
        session.session_id,
        config.server,
        session.rate_hz,
        config.observe_mode,
    )
    code = session.run()
    print(
        json.dumps(
            {
                "session_id": session.session_id,
                "steps": session.steps,
                "skipped_observation_lines": session.skipped_lines,
                "safe_stop": session.stopper.triggered,
                "exit_code": code,
            }
        ),
        file=sys.stderr,
    )
    return code


__all__ = [
    "REASONS",
    "ConnectSession",
    "SafeStopper",
    "StepFailure",
    "main_session",
    "observation_fields",
]
