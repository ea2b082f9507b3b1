"""Decisions from a real OPA server (the Kubernetes sidecar), via `opa-python-client`."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from opa_client.opa_async import AsyncOpaClient

from gateway.policy.decision import PACKAGE, RULE
from gateway.policy.engine import EngineUnavailable, PolicyEngine


class OpaEngine(PolicyEngine):
    name = "opa"

    def __init__(self, *, url: str, policy_version: str, timeout_s: float) -> None:
        super().__init__(policy_version)
        parts = urlsplit(url)
        self._client = AsyncOpaClient(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 8181,
            ssl=parts.scheme == "https",
            timeout=timeout_s,
            retries=0,  # a retry would only add latency to a request that then fails closed
        )
        self._timeout_s = timeout_s

    async def evaluate(self, doc: dict[str, Any], package: str = PACKAGE) -> Any:
        try:
            async with asyncio.timeout(self._timeout_s):
                reply = await self._client.query_rule(doc, package, RULE)
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise EngineUnavailable(str(exc)) from exc
        # An undefined decision comes back without "result": parse_result denies it.
        return reply.get("result")

    async def ready(self) -> bool:
        try:
            async with asyncio.timeout(self._timeout_s):
                reply = await self._client.query_rule({}, PACKAGE, RULE)
        except Exception:
            return False
        return "result" in reply

    async def start(self) -> None:
        # The client opens its pooled session on context entry; we hold it for the app's life.
        await self._client.__aenter__()

    async def close(self) -> None:
        await self._client.close_connection()
