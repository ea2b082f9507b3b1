"""Active health checks: a periodic GET of each target's health path (off by default).

Every `active_interval_s` seconds, every target the balancer knows is asked
`GET <target url><active_path>` (default `/models`, which vLLM and OpenAI-compatible
servers answer) with its own headers and credential. A 2xx brings an ejected target
back at once; anything else (an error status, a redirect, no answer within
`active_timeout_s`) counts as a failure, exactly like a failed request. Redirects are
not followed. The checks of one round run concurrently, and never overlap a round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import httpx

from gateway.errors import GatewayError
from gateway.routing.balance import Balancer, TargetState
from gateway.settings import HealthSettings

log = logging.getLogger(__name__)

_SKIP = frozenset({"content-type"})  # a GET has no body


class Prober:
    def __init__(
        self,
        client: httpx.AsyncClient,
        balancer: Balancer,
        settings: HealthSettings,
        *,
        refresh: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self._client = client
        self._refresh = refresh
        self._balancer = balancer
        self._interval = settings.active_interval_s
        self._path = settings.active_path
        self._timeout = settings.active_timeout_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._interval > 0 and self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="upstream-health-checks"
            )

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def check_all(self) -> None:
        """One round: every known target, concurrently."""
        if self._refresh is not None:
            with contextlib.suppress(GatewayError):  # logged by the catalog; check what we know
                await self._refresh()
        states = list(self._balancer.states())
        await asyncio.gather(*(self._check(s) for s in states))

    async def _run(self) -> None:
        while True:
            try:
                await self.check_all()
            except Exception:
                # A bug in one round must not stop the checks for the life of the process.
                log.exception("upstream health-check round failed")
            await asyncio.sleep(self._interval)

    async def _check(self, state: TargetState) -> None:
        target = state.target
        url = target.url.rstrip("/") + self._path
        headers = {k: v for k, v in target.headers.items() if k not in _SKIP}
        headers["accept"] = "application/json"
        try:
            async with self._client.stream(
                "GET", url, headers=headers, timeout=self._timeout, follow_redirects=False
            ) as response:
                healthy = 200 <= response.status_code < 300
                why = f"active check answered {response.status_code}"
        except httpx.HTTPError as exc:
            healthy, why = False, f"active check failed: {type(exc).__name__}"
        if healthy:
            self._balancer.succeeded(state)
        else:
            self._balancer.failed(state, why)
