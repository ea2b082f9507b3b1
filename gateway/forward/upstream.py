"""One upstream call: build the request, send it with bounded retries, map its failures."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson

from gateway.errors import BadRequest, UpstreamError, UpstreamTimeout
from gateway.forward.relay import UpstreamStream, unless_disconnected
from gateway.forward.rename import rename_json
from gateway.policy.decision import Obligations
from gateway.reasons import Reason
from gateway.routing.catalog import Route
from gateway.routing.endpoints import Endpoint
from gateway.usage.meter import UsageMeter

log = logging.getLogger(__name__)


class UpstreamRefused(Exception):
    """The upstream answered 4xx: its error body is passed to the caller as is."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def prepare_body(
    body: dict[str, Any], *, route: Route, endpoint: Endpoint, obligations: Obligations
) -> bytes:
    """The caller's body with the upstream's model name and the policy's token cap applied;
    a stream asks for its usage (the caller sees that event only if it asked too)."""
    out = {**body, "model": route.upstream_model}
    if adds_stream_usage(body, endpoint):
        options = body.get("stream_options")
        out["stream_options"] = {**(options if isinstance(options, dict) else {}),
                                 "include_usage": True}  # fmt: skip
    present = [f for f in endpoint.cap_fields if out.get(f) is not None]
    for name in present:
        value = out[name]
        # Refused here rather than left to the upstream: a server that coerces "99999" or
        # true into a number would otherwise slip past the cap.
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise BadRequest(Reason.INVALID_REQUEST, f"'{name}' must be a positive integer.")
    cap = obligations.max_tokens
    if cap:
        for name in present:
            out[name] = min(out[name], cap)
        if not present and endpoint.inject_cap:
            out[endpoint.inject_cap] = cap
    return orjson.dumps(out)


def adds_stream_usage(body: dict[str, Any], endpoint: Endpoint) -> bool:
    """True when the gateway asks for a stream's usage event that the caller did not."""
    if not (endpoint.stream_usage_option and body.get("stream") is True):
        return False
    options = body.get("stream_options")
    return not (isinstance(options, dict) and options.get("include_usage") is True)


def output_bound(body: dict[str, Any], *, endpoint: Endpoint, obligations: Obligations) -> int:
    """The most output tokens the upstream will be allowed (0: no bound is known)."""
    asked = [v for f in endpoint.cap_fields if isinstance(v := body.get(f), int) and v > 0]
    cap = obligations.max_tokens
    if asked:
        return min(min(asked), cap) if cap else min(asked)
    return cap if cap and endpoint.inject_cap else 0


class Upstream:
    def __init__(self, client: httpx.AsyncClient, *, api_key: str, retries: int) -> None:
        self._client = client
        self._retries = retries
        # Only these headers reach the upstream; the caller's (Authorization above all) never do.
        self._base_headers = {
            "content-type": "application/json",
            "accept-encoding": "identity",
            "user-agent": "tac-gateway",
        }
        if api_key:
            self._base_headers["authorization"] = f"Bearer {api_key}"
        # httpx.Request built directly (~12 µs) rather than via client.build_request (~57 µs,
        # URL parsing and default merging per call); so the client's timeouts go in by hand.
        self._timeout = {"timeout": client.timeout.as_dict()}
        self._urls: dict[str, httpx.URL] = {}

    async def call(
        self,
        *,
        route: Route,
        endpoint: Endpoint,
        content: bytes,
        stream: bool,
        request_id: str,
        disconnected: Callable[[], Awaitable[None]],
        meter: UsageMeter | None = None,
    ) -> bytes | UpstreamStream:
        """The upstream's answer with the model renamed: the whole body, or its stream."""
        request = httpx.Request(
            "POST",
            self._url(route.upstream_url, endpoint.path),
            content=content,
            headers={
                **self._base_headers,
                "x-request-id": request_id,
                "accept": "text/event-stream" if stream else "application/json",
            },
            extensions=self._timeout,
        )
        response = await self._send_with_retries(request, stream, disconnected)
        renamed = route.name if route.upstream_model != route.name else None
        if response.status_code >= 400:
            body = await response.aread() if stream else response.content
            await response.aclose()
            if response.status_code < 500:
                raise UpstreamRefused(response.status_code, rename_json(body, route.name))
            log.warning("upstream %s answered %s", route.name, response.status_code)
            raise UpstreamError(Reason.UPSTREAM_ERROR, "The model server failed to answer.")
        if stream:
            return UpstreamStream(response, rename_to=renamed, meter=meter)
        return rename_json(response.content, route.name) if renamed else response.content

    async def aclose(self) -> None:
        await self._client.aclose()

    def _url(self, base: str, path: str) -> httpx.URL:
        key = base + path
        url = self._urls.get(key)
        if url is None:
            url = self._urls[key] = httpx.URL(base.rstrip("/") + path)
        return url

    async def _send_with_retries(
        self,
        request: httpx.Request,
        stream: bool,
        disconnected: Callable[[], Awaitable[None]],
    ) -> httpx.Response:
        attempt = 0
        while True:
            try:
                return await unless_disconnected(
                    disconnected, lambda: self._client.send(request, stream=stream)
                )
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # Safe to retry: nothing reached the model, so nothing can run twice.
                if attempt >= self._retries:
                    raise UpstreamError(
                        Reason.UPSTREAM_UNAVAILABLE, "The model server is unreachable."
                    ) from exc
                attempt += 1
            except httpx.TimeoutException as exc:
                raise UpstreamTimeout(
                    Reason.UPSTREAM_TIMEOUT, "The model server did not answer in time."
                ) from exc
            except httpx.HTTPError as exc:
                raise UpstreamError(
                    Reason.UPSTREAM_ERROR, "The model server connection failed."
                ) from exc
