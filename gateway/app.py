"""`create_app(settings)`: the FastAPI app, its routers, its error handlers, its lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from slowapi import Limiter
from slowapi.errors import RateLimitExceeded
from slowapi.util import get_remote_address
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response

from gateway.api import health, oauth, v1
from gateway.api.errors import error_body
from gateway.runtime import start_runtime, stop_runtime
from gateway.settings import Settings

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> FastAPI:
    # authlib logs issued tokens at DEBUG; a debug log level must never write credentials.
    logging.getLogger("authlib").setLevel(max(logging.INFO, logging.getLogger().level))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.runtime = await start_runtime(settings)
        try:
            yield
        finally:
            await stop_runtime(app.state.runtime)

    app = FastAPI(title="TAC Gateway", version="0.1.0", lifespan=lifespan)
    limiter = Limiter(
        key_func=get_remote_address,
        storage_uri=settings.rate_limit_storage,
        headers_enabled=False,
    )
    app.state.limiter = limiter
    for route in v1.routes:
        app.router.routes.append(route)
    app.include_router(oauth.make_router(limiter, settings.token_endpoint_rate_limit))
    app.include_router(health.router)
    _install_error_handlers(app)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    """Errors outside the pipeline (routing, validation, the token endpoint's limit)."""

    @app.exception_handler(RateLimitExceeded)
    async def _rate_limited(request: Request, exc: RateLimitExceeded) -> Response:
        # RFC 6749 error shape: this is the OAuth token endpoint.
        return JSONResponse(
            {"error": "slow_down", "error_description": f"Rate limit exceeded: {exc.detail}"},
            status_code=429,
            headers={"Retry-After": "60"},
        )

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return Response(
            error_body(message=str(exc.detail), error_type="invalid_request_error", code=code),
            status_code=exc.status_code,
            # Keep the framework's headers: a 405 must say which methods are allowed (Allow).
            headers=exc.headers,
            media_type="application/json",
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s", request.url.path)
        return Response(
            error_body(
                message="The gateway failed unexpectedly.",
                error_type="api_error",
                code="internal_error",
            ),
            status_code=500,
            media_type="application/json",
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return Response(
            error_body(
                message="Invalid request.",
                error_type="invalid_request_error",
                code="invalid_request",
            ),
            status_code=400,
            media_type="application/json",
        )
