"""Decisions from a real OPA server (the Kubernetes sidecar), via `opa-python-client`."""

from __future__ import annotations

import asyncio
import re
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpx
from opa_client.opa_async import AsyncOpaClient

from gateway.policy.bundle import PolicyBundle, bundle_version
from gateway.policy.decision import PACKAGE, RULE
from gateway.policy.engine import EngineUnavailable, PolicyEngine

_PACKAGE_LINE = re.compile(r"^package\s+([\w.]+)", re.MULTILINE)


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
        self._url = url.rstrip("/")

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

    async def refresh_version(self) -> None:
        """Set `policy_version` from the modules and data the OPA server has loaded now.

        Computed like the embedded engine's (`bundle_version`), so the gateway and its
        sidecar name the same files with the same version; `_test.rego` files are left
        out, as `load_bundle` does. Unreachable OPA keeps the last known version.
        """
        # OPA's own REST API: the client library's listing omits the modules' text.
        async with httpx.AsyncClient(base_url=self._url, timeout=self._timeout_s * 5) as http:
            listing = (await http.get("/v1/policies")).raise_for_status().json()
            data = (await http.get("/v1/data")).raise_for_status().json().get("result", {})
        modules: dict[str, str] = {}
        for policy in listing.get("result", []):
            name, text = PurePosixPath(str(policy.get("id", ""))).name, str(policy.get("raw", ""))
            # GET /v1/data also returns every package's rule values; keep base documents.
            if match := _PACKAGE_LINE.search(text):
                _drop(data, match.group(1).split("."))
            if name.endswith(".rego") and not name.endswith("_test.rego"):
                modules[name] = text
        self.policy_version = bundle_version(modules, data)
        self.bundle = PolicyBundle(modules=modules, data=data, version=self.policy_version)

    async def start(self) -> None:
        # The client opens its pooled session on context entry; we hold it for the app's life.
        await self._client.__aenter__()

    async def close(self) -> None:
        await self._client.close_connection()


def _drop(data: Any, path: list[str]) -> None:
    for key in path[:-1]:
        if not isinstance(data, dict) or key not in data:
            return
        data = data[key]
    if isinstance(data, dict):
        data.pop(path[-1], None)
