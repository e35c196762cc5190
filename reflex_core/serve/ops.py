"""The operations routes of a server: ``/health``, ``/metrics``, ``/config``, and the JSON shape
of Starlette's own HTTP errors. :class:`OpsEndpoints` is the part of
:class:`~reflex_core.serve.app.ReflexServer` that answers them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from reflex_core import __version__
from reflex_core.errors import ReflexError
from reflex_core.serve.errors import JSONBytesResponse, dumps, error_response, http_status_error
from reflex_core.serve.middleware import SLUG_SCOPE_KEY, request_id_of

log = logging.getLogger("reflex.serve")

# a server's states, as /health reports them (ReflexServer moves through them)
LOADING, WARMING, READY, FAILED, STOPPING = "loading", "warming", "ready", "failed", "stopping"
DEGRADED = "degraded"  # reported by /health: ready, but a wedge says it is degraded
DEFAULT_SLOT = "default"
_SECRET_WORDS = ("key", "token", "secret", "password")


class OpsEndpoints:
    """``/health``, ``/metrics``, ``/config`` (a part of ``ReflexServer``, which provides the
    state, policies, wedges, options and metrics they report)."""

    state: str
    policies: Mapping[str, Any]
    embodiment: Any
    wedge_names: Any
    ctx: Any
    load: Any
    metrics: Any
    config: Any
    options: Any
    failure: BaseException | None
    started_at: float

    def health(self) -> tuple[int, dict[str, Any]]:
        """``/health``: the state (200 only when ready), model, embodiment, wedges."""
        wedge_health: dict[str, dict[str, Any]] = {}
        degraded = False
        for name, probe in sorted(self.ctx.health.items()):
            try:
                report = dict(probe())
            except Exception as exc:  # a broken probe is itself a degradation
                log.exception("health probe %r failed", name)
                report = {"degraded": True, "error": f"{type(exc).__name__}: {exc}"}
            degraded = degraded or bool(report.get("degraded"))
            wedge_health[name] = report
        status = self.state
        if status == READY and degraded:
            status = DEGRADED
        default = self.policies.get(DEFAULT_SLOT)
        info = dict(getattr(default, "info", {}) or {}) if default is not None else None
        body: dict[str, Any] = {
            "status": status,
            "ready": status == READY,
            "version": __version__,
            "uptime_s": round(time.monotonic() - self.started_at, 3),
            "model": info,
            "policies": {s: dict(getattr(p, "info", {}) or {}) for s, p in self.policies.items()},
            "providers": (info or {}).get("providers"),
            "embodiment": getattr(self.embodiment, "name", None),
            "raw_actions": self.embodiment is None,
            "wedges": list(self.wedge_names),
            "wedge_health": wedge_health,
            "inference": {
                "outstanding": self.load.outstanding,
                "service_ms": {k: round(v * 1e3, 3) for k, v in self.load.service_s.items()},
                "service_cpu_ms": {k: round(v * 1e3, 3) for k, v in self.load.cpu_s.items()},
                "shed_overloaded": self.load.shed,
                "dropped_stale": self.load.stale,
            },
        }
        if self.embodiment is None:
            body["warnings"] = [
                "no embodiment: /act returns raw model actions, not robot units "
                "(serve with --embodiment NAME or --custom-embodiment-config PATH)"
            ]
        if self.failure is not None:
            failure = self.failure
            body["error"] = (
                failure.to_dict()
                if isinstance(failure, ReflexError)
                else {"type": "error", "error": "internal-error", "message": type(failure).__name__}
            )
        return (200 if status == READY else 503), body

    def config_snapshot(self) -> dict[str, Any]:
        """``/config``: the non-secret serving configuration (never the API key)."""
        return {
            "serve": self.config.public_dict(),
            "event_loop": running_event_loop(),
            "embodiment": getattr(self.embodiment, "name", None),
            "policies": sorted(self.policies),
            "wedges": {
                "enabled": list(self.wedge_names),
                "options": {n: _mask_secrets(v) for n, v in sorted(self.options.wedges.items())},
            },
            "transports": {n: _mask_secrets(v) for n, v in sorted(self.options.transports.items())},
        }

    async def _health_endpoint(self, request: Request) -> Response:
        status, body = self.health()
        headers = (
            {"Retry-After": "1"} if status == 503 and self.state in (LOADING, WARMING) else None
        )
        return JSONBytesResponse(dumps(body), status_code=status, headers=headers)

    async def _metrics_endpoint(self, request: Request) -> Response:
        payload, content_type = self.metrics.render()
        return Response(payload, headers={"Content-Type": content_type})

    async def _config_endpoint(self, request: Request) -> Response:
        return JSONBytesResponse(dumps(self.config_snapshot()))

    async def _http_exception(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        error = http_status_error(exc.status_code, exc.detail)
        request.scope[SLUG_SCOPE_KEY] = error.slug
        return error_response(error, request_id_of(request.scope), dict(exc.headers or {}))


def _mask_secrets(values: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: ("***" if v is not None and any(w in k.lower() for w in _SECRET_WORDS) else v)
        for k, v in values.items()
    }


def running_event_loop() -> str | None:
    """``uvloop`` or ``asyncio``: the loop this call runs on (None outside one)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
