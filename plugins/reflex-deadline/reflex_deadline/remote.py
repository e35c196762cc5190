"""The remote fallback: POST the same observation to another ``reflex serve`` /act.

A real HTTP call (httpx) with its own timeout. Any failure (connection refused, timeout, a
non-200 answer, a malformed or wrongly shaped chunk) is reported as a reason string, never
raised: the caller then holds position.

The client is built when the wedge is built, at start-up: building an httpx client loads the
CA bundle into a TLS context (tens of milliseconds), which must not happen on the event loop
while requests are in flight, at the first fallback. A client's connection pool belongs to the
loop that first used it, so a client used from another loop later (tests run several) is
rebuilt there, from the TLS context made at start-up (a fraction of a millisecond).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import attrs
import numpy as np

from reflex_core.errors import ReflexError
from reflex_core.plugin import ActRequest
from reflex_core.wire.parse import observation_to_dict, parse_action_chunk

log = logging.getLogger(__name__)


def act_url(url: str) -> str:
    """``http://host:8000`` -> ``http://host:8000/act``; a URL with a path is used as given."""
    parts = urlsplit(url)
    if parts.path in ("", "/"):
        parts = parts._replace(path="/act")
    return urlunsplit(parts)


@attrs.frozen
class RemoteOutcome:
    actions: np.ndarray | None
    error: str | None = None
    metadata: dict[str, Any] = attrs.field(factory=dict)


def _tls_context() -> ssl.SSLContext:
    """What httpx builds by default (certifi's CA bundle when installed), built once."""
    try:
        import certifi
    except ImportError:  # pragma: no cover - httpx depends on certifi
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=certifi.where())


class RemoteFallback:
    """One fallback server. Its httpx client is built here, at start-up (see the module
    docstring); one client per event loop, since a client's pool is loop-bound."""

    def __init__(self, url: str, *, token: str | None = None, action_dim: int | None = None):
        self.url = act_url(url)
        self.token = token
        self.action_dim = action_dim
        self._tls = _tls_context()
        self._client: Any = self._new_client()
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop the client is bound to

    def _new_client(self) -> Any:
        import httpx

        return httpx.AsyncClient(follow_redirects=False, verify=self._tls)

    def _client_for_loop(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop  # the start-up client's first loop: it binds to it now
        elif self._loop is not loop or self._client.is_closed:
            self._client = self._new_client()
            self._loop = loop
        return self._client

    async def fetch(self, request: ActRequest, timeout_s: float) -> RemoteOutcome:
        """Ask the fallback server for a chunk within ``timeout_s`` seconds."""
        if timeout_s <= 0:
            return RemoteOutcome(None, "no time left for the remote call")
        import httpx

        payload = observation_to_dict(request.observation, image_format="PNG")
        # The remote server must answer within our budget too.
        payload["max_gpu_seconds"] = timeout_s
        headers = {"X-Request-ID": f"{request.request_id}-fallback"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            response = await self._client_for_loop().post(
                self.url, json=payload, headers=headers, timeout=timeout_s
            )
        except httpx.TimeoutException:
            return RemoteOutcome(None, f"remote timed out after {timeout_s * 1e3:.0f} ms")
        except httpx.HTTPError as exc:
            return RemoteOutcome(None, f"remote unreachable: {type(exc).__name__}: {exc}")
        try:
            body = response.json()
        except ValueError:
            return RemoteOutcome(None, f"remote answered {response.status_code} without JSON")
        if response.status_code != 200:
            slug = body.get("error") if isinstance(body, dict) else None
            return RemoteOutcome(
                None, f"remote answered {response.status_code} {slug or ''}".strip()
            )
        try:
            chunk = parse_action_chunk(body)
        except ReflexError as exc:
            return RemoteOutcome(None, f"remote chunk unusable: {exc.slug}")
        actions = chunk.actions
        if self.action_dim is not None and actions.shape[1] != self.action_dim:
            return RemoteOutcome(
                None, f"remote chunk has {actions.shape[1]} action dims, need {self.action_dim}"
            )
        return RemoteOutcome(actions, None, chunk.metadata)

    async def aclose(self) -> None:
        if self._client is not None and not self._client.is_closed:
            try:
                await self._client.aclose()
            except RuntimeError:  # its loop is gone (tests); nothing left to close
                pass
