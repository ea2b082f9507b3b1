"""The transport guard: one plain ASGI layer around every route.

It owns what a request may weigh before any route sees it and what every response
carries, in one pass and without per-request allocation beyond a closure:

- header count and total size (431), the body's size (413) and the time allowed to send
  it (408), whatever the route — `/v1` also checks the size while it reads;
- the security headers: `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`,
  `Cache-Control: no-store`, a `Content-Security-Policy` of `default-src 'none'` for
  everything but the interactive docs, and `Strict-Transport-Security` outside dev mode —
  each unless the route set its own (the JWKS is cacheable, the console has its CSP).

Refusals are rendered in the OpenAI error format (RFC 6749's on the token endpoint) by
`gateway.api.render`, like every other error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api.render import oauth_error, openai_error
from gateway.errors import BadRequest, GatewayError, PayloadTooLarge
from gateway.reasons import Reason

# RFC 6749-style errors on the OAuth endpoints (RFC 7009 and 7662 answer like RFC 6749).
_OAUTH_PATHS = frozenset({"/oauth/token", "/oauth/revoke", "/oauth/introspect"})
# Pages that load their own scripts and styles: they set their own policy.
_OWN_CSP = ("/docs",)
_NO_BODY = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})
_NO_STORE = (b"cache-control", b"no-store")


class RequestHeadersTooLarge(BadRequest):
    status = 431


class _FromReceive(HTTPException):
    """Raised from `receive`. Also an HTTPException: FastAPI passes those through from a
    body read as they are (anything else becomes its own 400); `/v1`'s pipeline catches
    it as the GatewayError it is and audits the refusal."""

    def _as_http(self, status: int, message: str) -> None:
        HTTPException.__init__(self, status, message)
        self.headers = {}  # GatewayError's: none of these refusals carries a header


class BodyTooLarge(PayloadTooLarge, _FromReceive):  # type: ignore[misc]
    def __init__(self, limit: int) -> None:
        message = f"The request body exceeds {limit} bytes."
        PayloadTooLarge.__init__(self, Reason.BODY_TOO_LARGE, message)
        self._as_http(413, message)


class RequestTimeout(BadRequest, _FromReceive):  # type: ignore[misc]
    status = 408

    def __init__(self, seconds: float) -> None:
        message = f"The request body was not received within {seconds:g} s."
        BadRequest.__init__(self, Reason.REQUEST_TIMEOUT, message)
        self._as_http(408, message)


class Hardening:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        max_headers: int,
        max_header_bytes: int,
        body_timeout_s: float,
        hsts: bool,
    ) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.max_headers = max_headers
        self.max_header_bytes = max_header_bytes
        self.body_timeout = body_timeout_s
        common = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
        ]
        if hsts:
            common.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))
        csp = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
        # Built once: a request only picks one of the two lists.
        self._with_csp = (*common, csp)
        self._without_csp = tuple(common)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        extra = self._without_csp if path.startswith(_OWN_CSP) else self._with_csp
        started = False
        timer: asyncio.TimerHandle | None = None

        async def send_hardened(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if timer is not None:
                    timer.cancel()  # answering: the body is no longer waited for
                # Starlette and our renderers give lower-case names.
                out = message.setdefault("headers", [])
                # A header the route chose wins (the console's own CSP, the JWKS's caching).
                own = {name for name, _ in out}
                out.extend(h for h in (*extra, _NO_STORE) if h[0] not in own)
            await send(message)

        # /v1 checks a declared length itself, so that the refusal has its audit row.
        refusal = self._check_headers(scope["headers"], declared_too=not path.startswith("/v1/"))
        if refusal is not None:
            await _refuse(scope, send_hardened, refusal)
            return
        guarded = receive
        if scope["method"] not in _NO_BODY:
            guarded, timer = self._bounded(receive)
        try:
            await self.app(scope, guarded, send_hardened)
        except _FromReceive as exc:
            # Raised where no handler turned it into an answer: refuse here if nothing
            # was sent yet; otherwise the server closes the connection.
            if started:
                raise
            await _refuse(scope, send_hardened, exc)  # type: ignore[arg-type]

    def _check_headers(
        self, headers: list[tuple[bytes, bytes]], *, declared_too: bool
    ) -> GatewayError | None:
        if len(headers) > self.max_headers:
            return RequestHeadersTooLarge(
                Reason.HEADERS_TOO_LARGE, f"More than {self.max_headers} request headers."
            )
        size = 0
        declared = None
        for name, value in headers:
            size += len(name) + len(value)
            if name == b"content-length":
                declared = value
        if size > self.max_header_bytes:
            return RequestHeadersTooLarge(
                Reason.HEADERS_TOO_LARGE,
                f"The request headers exceed {self.max_header_bytes} bytes.",
            )
        too_long = declared is not None and declared.isdigit() and int(declared) > self.max_body
        if declared_too and too_long:
            return _too_large(self.max_body)
        return None

    def _bounded(self, receive: Receive) -> tuple[Receive, asyncio.TimerHandle]:
        """`receive` that counts body bytes, and one timer for the whole body: it cancels
        the request's task if it is still waiting for body bytes at the deadline. One timer
        per request, cancelled at the body's end (an `asyncio.timeout` per read cost 30 µs)."""
        seen = 0
        waiting = expired = False
        limit = self.max_body
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()

        def expire() -> None:
            nonlocal expired
            if waiting and task is not None:
                expired = True
                task.cancel()

        timer = loop.call_at(loop.time() + self.body_timeout, expire)

        async def bounded() -> Message:
            nonlocal seen, waiting
            waiting = True
            try:
                message = await receive()
            except asyncio.CancelledError:
                if expired:
                    raise RequestTimeout(self.body_timeout) from None
                raise
            finally:
                waiting = False
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    timer.cancel()
                    raise BodyTooLarge(limit)
                if not message.get("more_body", False):
                    timer.cancel()
            else:
                timer.cancel()
            return message

        return bounded, timer


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(Reason.BODY_TOO_LARGE, f"The request body exceeds {limit} bytes.")


async def _refuse(scope: Scope, send: Callable[[Message], object], error: GatewayError) -> None:
    if scope["path"] in _OAUTH_PATHS:
        response = oauth_error(error.status, Reason.INVALID_REQUEST, error.message)
    else:
        response = openai_error(error)
    response.headers["connection"] = "close"  # the rest of what was sent is not read

    async def forward(message: Message) -> None:
        await send(message)  # type: ignore[misc]

    await response({"type": "http"}, _no_receive, forward)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}
