"""One upstream call: choose a target, send, fail over before the first byte, map failures.

A try that fails before the upstream has answered (connect error, timeout waiting for
the answer, 502/503/504) is retried on another target of the model, within the budget
of `retries_before_first_byte` further tries. Only a connect error, where nothing reached
the model, may be retried on the same target (when it is the only one left); after a
timeout or a 5xx the model may have run, so it is never asked twice. Once an answer has
begun (2xx headers), nothing is retried: a stream that breaks ends with an error event.

Upstream safety: redirects are never followed (the wire does not, and a 3xx becomes a
502 `upstream_redirect`), and an answer larger than `max_response_bytes` is cut off.

The bytes go over the pool's `Wire` (`gateway.forward.wire`: aiohttp's session by
default), whose failures arrive as `WireError` kinds; this module turns them into the
retry decision and the reason code.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, Protocol

import orjson

from gateway.errors import BadRequest, GatewayError, Unavailable, UpstreamError, UpstreamTimeout
from gateway.forward.client import UpstreamPool
from gateway.forward.meters import Meter, Meters
from gateway.forward.probe import Prober
from gateway.forward.relay import UpstreamStream, unless_disconnected
from gateway.forward.rename import rename_json
from gateway.forward.wire import Answer, WireError
from gateway.policy.decision import Obligations
from gateway.reasons import Reason
from gateway.routing.balance import Balancer, TargetState
from gateway.routing.catalog import Route
from gateway.routing.endpoints import Endpoint
from gateway.usage.meter import UsageMeter

log = logging.getLogger(__name__)

_FAILOVER_STATUSES = frozenset({502, 503, 504})


class UpstreamRefused(Exception):
    """The upstream answered 4xx: its error body is passed to the caller as is."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


class TryRecord(Protocol):
    """Where the call notes which target it used and how many tries it took (the audit
    draft): written before each try, so a failure is recorded as well as a success."""

    upstream_target: str | None
    upstream_tries: int | None


class _Retryable(Exception):
    """A try failed before the upstream answered; `again` if the same target may be retried."""

    def __init__(self, error: GatewayError, *, again: bool) -> None:
        super().__init__(error.reason)
        self.error = error
        self.again = again


def prepare_body(
    body: dict[str, Any], *, endpoint: Endpoint, obligations: Obligations
) -> dict[str, Any]:
    """The caller's body with the policy's token cap applied; the model is set per target.
    A stream asks for its usage (the caller sees that event only if it asked too)."""
    out = dict(body)
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
    return out


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
    def __init__(
        self,
        pool: UpstreamPool,
        *,
        balancer: Balancer,
        meters: Meters,
        retries: int,
        max_response_bytes: int,
        prober: Prober | None = None,
    ) -> None:
        self._pool = pool
        self._wire = pool.wire
        self._balancer = balancer
        self._meters = meters
        self._tries = retries + 1
        self._max_bytes = max_response_bytes
        self._prober = prober
        self._urls: dict[tuple[str, str], str] = {}

    def start(self) -> None:
        if self._prober is not None:
            self._prober.start()

    async def call(
        self,
        *,
        route: Route,
        endpoint: Endpoint,
        body: dict[str, Any],
        stream: bool,
        request_id: str,
        disconnected: Callable[[], Awaitable[None]],
        record: TryRecord,
        usage: UsageMeter | None = None,
    ) -> bytes | UpstreamStream:
        """The upstream's answer with the model renamed: the whole body, or its stream."""
        tried: list[TargetState] = []
        spent: list[TargetState] = []  # may not be asked again by this request
        contents: dict[str, bytes] = {}  # serialized once per upstream model name
        failure: GatewayError | None = None
        for attempt in range(1, self._tries + 1):
            state = self._balancer.choose(route.name, avoid=tried)
            if state is None and failure is not None:
                state = self._balancer.choose(route.name, avoid=spent)
            if state is None:
                break
            target = state.target
            record.upstream_target, record.upstream_tries = target.name, attempt
            tried.append(state)
            content = contents.get(target.upstream_model)
            if content is None:
                content = contents[target.upstream_model] = orjson.dumps(
                    {**body, "model": target.upstream_model}
                )
            try:
                return await self._try(
                    state, route, endpoint, content, stream, request_id, disconnected, usage
                )
            except _Retryable as exc:
                failure = exc.error
                if not exc.again:
                    spent.append(state)
        if failure is not None:
            raise failure
        raise Unavailable(
            Reason.MODEL_UNAVAILABLE,
            f"No upstream of the model '{route.name}' is available right now; retry later.",
        )

    async def aclose(self) -> None:
        if self._prober is not None:
            await self._prober.aclose()
        await self._pool.aclose()

    def _url(self, base: str, path: str) -> str:
        key = (base, path)
        url = self._urls.get(key)
        if url is None:
            url = self._urls[key] = base.rstrip("/") + path
        return url

    async def _try(
        self,
        state: TargetState,
        route: Route,
        endpoint: Endpoint,
        content: bytes,
        stream: bool,
        request_id: str,
        disconnected: Callable[[], Awaitable[None]],
        usage: UsageMeter | None,
    ) -> bytes | UpstreamStream:
        target = state.target
        meter = self._meters.of(target)
        url = self._url(target.url, endpoint.path)
        headers = {
            **target.headers,
            "x-request-id": request_id,
            "accept": "text/event-stream" if stream else "application/json",
        }
        meter.requests.inc()
        # One watcher for the whole exchange (sending, and reading a whole body).
        return await unless_disconnected(
            disconnected,
            lambda: self._exchange(state, meter, route, url, content, headers, stream, usage),
        )

    async def _exchange(
        self,
        state: TargetState,
        meter: Meter,
        route: Route,
        url: str,
        content: bytes,
        headers: dict[str, str],
        stream: bool,
        usage: UsageMeter | None,
    ) -> bytes | UpstreamStream:
        target = state.target
        state.in_flight += 1
        handed_over = False  # True once a stream owns the in-flight count
        started = time.perf_counter()
        try:
            try:
                # Always streamed in: a whole body is then read within the size bound.
                response = await self._wire.send(url, content, headers)
            except WireError as exc:
                raise self._unanswered(state, meter, exc) from exc
            meter.latency.observe(time.perf_counter() - started)
            status = response.status
            if (status >= 300 and status < 400) or status >= 500:
                await response.aclose()
                self._refuse(state, meter, route, status)
            self._balancer.succeeded(state)  # it answered: 2xx, or a 4xx about the request
            renamed = route.name if target.upstream_model != route.name else None
            if status >= 400:
                refusal = await self._read(response, meter)
                raise UpstreamRefused(status, rename_json(refusal, route.name))
            if stream:
                answer = UpstreamStream(
                    response,
                    rename_to=renamed,
                    meter=usage,
                    limit=self._max_bytes,
                    on_release=lambda failure: self._stream_ended(state, failure),
                )
                handed_over = True
                return answer
            whole = await self._read(response, meter)
            return rename_json(whole, route.name) if renamed else whole
        finally:
            if not handed_over:
                state.in_flight -= 1

    def _refuse(self, state: TargetState, meter: Meter, route: Route, status: int) -> NoReturn:
        """Raise what a 3xx or 5xx answer means; retryable for 502/503/504 only."""
        if status < 400:
            meter.error("redirect").inc()
            log.warning(
                "upstream %s/%s answered a redirect (%s)", route.name, state.target.name, status
            )
            raise UpstreamError(
                Reason.UPSTREAM_REDIRECT,
                "The model server answered with a redirect, which the gateway does not follow.",
            )
        meter.error("status_5xx").inc()
        self._balancer.failed(state, f"status {status}")
        log.warning("upstream %s/%s answered %s", route.name, state.target.name, status)
        error = UpstreamError(Reason.UPSTREAM_ERROR, "The model server failed to answer.")
        if status in _FAILOVER_STATUSES:
            raise _Retryable(error, again=False)
        raise error

    def _unanswered(self, state: TargetState, meter: Meter, exc: WireError) -> Exception:
        """What a try that got no answer means: whether it may be retried, and where."""
        if exc.kind == "connect":
            # Nothing reached the model: safe to try again, even on this target.
            self._failed(state, meter, "connect", exc)
            return _Retryable(
                UpstreamError(Reason.UPSTREAM_UNAVAILABLE, "The model server is unreachable."),
                again=True,
            )
        if exc.kind == "pool":
            # Our own pool is full: not the target's fault, and no other would do better.
            meter.error("timeout").inc()
            return UpstreamTimeout(
                Reason.UPSTREAM_TIMEOUT, "The gateway has no free upstream connection."
            )
        if exc.kind == "timeout":
            self._failed(state, meter, "timeout", exc)
            return _Retryable(
                UpstreamTimeout(
                    Reason.UPSTREAM_TIMEOUT, "The model server did not answer in time."
                ),
                again=False,
            )
        # The request may have reached the model (closed or reset before the answer).
        self._failed(state, meter, "transport", exc)
        return _Retryable(
            UpstreamError(Reason.UPSTREAM_ERROR, "The model server connection failed."),
            again=False,
        )

    async def _read(self, response: Answer, meter: Meter) -> bytes:
        """The whole body, decoded, refused once it exceeds `max_response_bytes`."""
        limit = self._max_bytes
        try:
            declared = response.header("content-length")
            if declared and declared.isdigit() and int(declared) > limit:
                raise _too_large(meter)
            parts, size = [], 0
            read = response.read
            while chunk := await read():
                size += len(chunk)
                if size > limit:
                    raise _too_large(meter)
                parts.append(chunk)
            return b"".join(parts)
        except WireError as exc:
            if exc.kind == "timeout":
                # After the headers: the model ran, so no retry; the caller gets a 504.
                meter.error("timeout").inc()
                raise UpstreamTimeout(
                    Reason.UPSTREAM_TIMEOUT, "The model server did not answer in time."
                ) from exc
            meter.error("transport").inc()
            raise UpstreamError(
                Reason.UPSTREAM_ERROR, "The model server connection failed."
            ) from exc
        finally:
            await response.aclose()

    def _failed(self, state: TargetState, meter: Meter, kind: str, exc: WireError) -> None:
        meter.error(kind).inc()
        self._balancer.failed(state, f"{kind}: {exc.cause_name}")
        t = state.target
        log.warning("upstream %s/%s try failed: %s (%s)", t.model, t.name, kind, exc.cause_name)

    def _stream_ended(self, state: TargetState, failure: str | None) -> None:
        state.in_flight -= 1
        if failure is not None:
            self._meters.of(state.target).error(failure).inc()


def _too_large(meter: Meter) -> UpstreamError:
    meter.error("too_large").inc()
    log.warning("upstream answer exceeded upstream.max_response_bytes")
    return UpstreamError(Reason.UPSTREAM_TOO_LARGE, "The model server's answer is too large.")
