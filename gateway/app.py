"""`create_app(settings)`: the FastAPI app, its routers, its error handlers, its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from slowapi import Limiter
from slowapi.errors import RateLimitExceeded
from slowapi.util import get_remote_address
from starlette.exceptions import HTTPException
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway import heap
from gateway.api import admin, admin_schema, audit, health, oauth, orgs, usage, v1, v1_schema
from gateway.api.admin_deps import audit_refused_action
from gateway.api.hardening import Hardening
from gateway.api.render import oauth_error, openai_error
from gateway.console.app import create_console
from gateway.errors import BadRequest, GatewayError, MethodNotAllowed, NotFound
from gateway.policy.bundle import load_bundle
from gateway.reasons import Reason
from gateway.runtime import Runtime, start_runtime
from gateway.settings import Settings

log = logging.getLogger(__name__)

# The OAuth endpoints answer in RFC 6749 error format, even when something unexpected fails.
_OAUTH_PATHS = frozenset({"/oauth/token", "/oauth/revoke", "/oauth/introspect"})


def _as_is(app: ASGIApp) -> ASGIApp:
    return app


class GatewayApp(FastAPI):
    """FastAPI, with the `/v1` model API served by its own ASGI app straight away.

    `v1.V1App` never raises for a refusal (the pipeline renders every outcome) and routes
    every method itself, so FastAPI's middleware stack (exception telemetry, body limit,
    exception middleware, exit stack) and the matching of every other route add only cost
    on the hottest path (bench/v1_dispatch.py). It keeps the error net: an unexpected
    exception still becomes the OpenAI-format 500 of the app's `Exception` handler.
    Everything else, and `/v1` in the OpenAPI description, goes through FastAPI as before.
    `outermost` wraps both paths alike (the transport guard, `gateway/api/hardening.py`).
    """

    def __init__(
        self,
        *,
        v1: Callable[[object], ASGIApp] | None = None,
        outermost: Callable[[ASGIApp], ASGIApp] = _as_is,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._make_v1 = v1
        self._outermost = outermost
        self._v1: ASGIApp | None = None

    def build_middleware_stack(self) -> ASGIApp:
        return self._outermost(super().build_middleware_stack())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._make_v1 and scope["type"] == "http" and scope["path"].startswith("/v1/"):
            if self._v1 is None:  # built on first use: the error handlers are installed by then
                self._v1 = self._outermost(
                    ServerErrorMiddleware(
                        self._make_v1(self.state), handler=self.exception_handlers.get(Exception)
                    )
                )
            scope["app"] = self  # what `request.app` reads (the runtime, the settings)
            await self._v1(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings, *, served: bool = False) -> FastAPI:
    """`served`: the app of a server process that runs it until it exits; its heap is
    settled after startup (`gateway/heap.py`)."""
    # authlib logs issued tokens at DEBUG; a debug log level must never write credentials.
    logging.getLogger("authlib").setLevel(max(logging.INFO, logging.getLogger().level))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.runtime = runtime = await start_runtime(settings)
        _reload_on_sighup(runtime)
        if served:
            heap.settle()
        try:
            yield
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            await runtime.close()

    docs = "/docs" if settings.api_docs else None

    def guarded(inner: ASGIApp) -> ASGIApp:
        # Outermost, around Starlette's own error middleware: its 500s get the headers too;
        # on `/v1` and on every other route alike.
        return Hardening(
            inner,
            max_body_bytes=settings.max_body_bytes,
            max_headers=settings.max_headers,
            max_header_bytes=settings.max_header_bytes,
            body_timeout_s=settings.request_body_timeout_s,
            hsts=not settings.dev_mode,
        )

    app = GatewayApp(
        v1=v1.V1App,
        outermost=guarded,
        title="TAC Gateway",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=docs,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    limiter = Limiter(
        key_func=get_remote_address,
        storage_uri=settings.rate_limit_storage,
        headers_enabled=False,
    )
    app.state.limiter = limiter
    # Read by the /v1 routes on each request: whether to time the stages (Server-Timing).
    app.state.server_timing = settings.server_timing
    app.router.routes.extend(v1.routes)
    app.include_router(oauth.make_router(limiter, settings.token_endpoint_rate_limit))
    app.include_router(health.router)
    app.include_router(orgs.router)
    app.include_router(admin.router)
    app.include_router(usage.router)
    app.include_router(audit.router)
    if settings.console.enabled:
        app.mount("/console", create_console(settings, limiter, app))
    v1_schema.install(
        app,
        finish=lambda doc: admin_schema.describe_tiers(
            doc, load_bundle(settings.policy_dir).tiers[1:]
        ),
    )
    _install_error_handlers(app)
    return app


def app_from_environment() -> FastAPI:
    """The app of one worker process (`serve --workers N`): settings from the environment."""
    return create_app(Settings(), served=True)


async def prepare_shared_state(settings: Settings) -> None:
    """Start and stop a runtime once, before workers are spawned, so that what the first
    start creates (signing keys, the audit log key) is made once, not raced by workers."""
    runtime = await start_runtime(settings)
    await runtime.close()


def _reload_on_sighup(runtime: Runtime) -> None:
    """`kill -HUP <pid>` reloads the policy, as operators expect of a long-running server."""

    def on_hup() -> None:
        task = asyncio.get_running_loop().create_task(runtime.reload_policy())
        # Retrieve the outcome so a refusal is not reported as a never-retrieved exception.
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, on_hup)
    except (NotImplementedError, RuntimeError, ValueError):
        # Not the main thread (an app served inside tests): no signals to listen to.
        log.info("SIGHUP policy reload not available in this thread")


def _install_error_handlers(app: FastAPI) -> None:
    """Errors outside the pipeline (framework routing, validation, the token endpoint's limit)."""

    @app.exception_handler(RateLimitExceeded)
    async def _rate_limited(request: Request, exc: RateLimitExceeded) -> Response:
        # RFC 6749 error shape: slowapi only guards the OAuth endpoints; an audited refusal.
        item = exc.limit.limit if exc.limit is not None else None
        return await oauth.refused_outside(
            request,
            429,
            Reason.SLOW_DOWN,
            f"Too many token requests; the limit is {item or 'exceeded'}.",
            {"Retry-After": str(item.get_expiry() if item else 60)},
        )

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        error: GatewayError
        if exc.status_code == 405:
            allowed = _allowed_methods(request)
            error = MethodNotAllowed(
                Reason.METHOD_NOT_ALLOWED,
                f"{request.method} is not allowed here; use {', '.join(allowed)}.",
                headers={"Allow": ", ".join(allowed)},
            )
        elif exc.status_code == 404:
            error = NotFound(Reason.NOT_FOUND, f"There is no route {request.url.path[:200]}.")
        else:
            error = BadRequest(Reason.INVALID_REQUEST, str(exc.detail))
        return openai_error(error)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        # Name the first bad field: `body.days: Input should be a valid integer`.
        errors = exc.errors()
        where = ""
        if errors:
            first = errors[0]
            field = ".".join(str(part) for part in first.get("loc", ()))
            where = f": {field[:100]}: {str(first.get('msg', ''))[:200]}"
        return openai_error(BadRequest(Reason.INVALID_REQUEST, f"Invalid request{where}."))

    @app.exception_handler(GatewayError)
    async def _refused(request: Request, exc: GatewayError) -> Response:
        # Raised by the admin, /orgs and /audit routes (the pipeline renders its own), and
        # by the transport guard's body limits (gateway/api/hardening.py).
        if request.url.path in _OAUTH_PATHS:
            return oauth_error(exc.status, Reason.INVALID_REQUEST, exc.message)
        await audit_refused_action(request.app.state.runtime, request, exc)
        return openai_error(exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # slowapi reaches the rate-limit storage before the token route runs; if that store
        # (Redis) is down, the answer is the limiter's own 503, never a 500.
        if request.url.path in _OAUTH_PATHS and _is_storage_error(exc):
            log.error("token endpoint rate-limit storage failed: %s", type(exc).__name__)
            return await oauth.refused_outside(
                request,
                503,
                Reason.LIMITS_UNAVAILABLE,
                "The rate limiter is unavailable; retry later.",
            )
        log.exception("unhandled error on %s", request.url.path)
        if request.url.path in _OAUTH_PATHS:
            return oauth_error(500, Reason.INTERNAL_ERROR, "The gateway failed unexpectedly.")
        return openai_error(GatewayError(Reason.INTERNAL_ERROR, "The gateway failed unexpectedly."))


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves on this path (Starlette's 405 names only the first
    matching route's, so `GET /admin/grants` hid `POST /admin/grants`)."""
    methods: set[str] = set()
    routes = list(request.app.routes)
    while routes:
        route = routes.pop()
        # Included routers are wrapped; their own routes carry the paths and methods.
        inner = getattr(getattr(route, "original_router", None), "routes", None)
        if inner is not None:
            routes.extend(inner)
        elif getattr(route, "methods", None) and route.matches(request.scope)[0] != Match.NONE:
            methods |= set(route.methods)
    return sorted(methods - {"HEAD"}) or ["GET"]


def _is_storage_error(exc: Exception) -> bool:
    module = type(exc).__module__
    return module.startswith(("redis", "coredis", "limits")) or isinstance(exc, OSError)
