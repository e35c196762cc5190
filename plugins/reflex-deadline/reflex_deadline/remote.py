"""The remote fallback: POST the same observation to another ``reflex serve`` /act.

A real HTTP call (httpx) with its own timeout. Any failure (connection refused, timeout, a
non-200 answer, a malformed or wrongly shaped chunk) is reported as a reason string, never
raised: the caller then holds position.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import attrs
import numpy as np

from reflex_core.errors import ReflexError
from reflex_core.wedges import ActRequest
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


class RemoteFallback:
    """One fallback server; one httpx client per event loop (a client's pool is loop-bound)."""

    def __init__(self, url: str, *, token: str | None = None, action_dim: int | None = None):
        self.url = act_url(url)
        self.token = token
        self.action_dim = action_dim
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _client_for_loop(self) -> Any:
        import httpx

        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop or self._client.is_closed:
            self._client = httpx.AsyncClient(follow_redirects=False)
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
