"""The console as a sub-application mounted at /console by `gateway.app.create_app`.

A sub-application so that its errors are pages, not API JSON: a refusal is rendered
with its status and reason code, no session is a redirect to the sign-in page, and
too many sign-in attempts are a 429 page with Retry-After.
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from slowapi import Limiter
from slowapi.errors import RateLimitExceeded
from starlette.exceptions import HTTPException
from starlette.responses import RedirectResponse, Response

from gateway.api.admin_deps import audit_refused_action
from gateway.console import audit, auth, models, oidc, orgs, overview
from gateway.console.guard import SignInRequired, get_runtime
from gateway.console.headers import SecurityHeaders
from gateway.console.render import is_htmx, page
from gateway.errors import GatewayError
from gateway.reasons import Reason
from gateway.settings import Settings

log = logging.getLogger(__name__)


def create_console(settings: Settings, limiter: Limiter, gateway: FastAPI) -> FastAPI:
    console = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    console.state.gateway = gateway  # where the runtime is, once the gateway has started
    console.state.limiter = limiter
    console.include_router(auth.make_router(settings, limiter))
    console.include_router(oidc.make_router(settings))
    console.include_router(overview.router)
    console.include_router(orgs.router)
    console.include_router(models.router)
    console.include_router(audit.router)
    static = StaticFiles(directory=Path(__file__).parent / "static")
    console.mount("/static", static, name="static")
    console.add_middleware(SecurityHeaders)
    _install_error_pages(console)
    return console


def _install_error_pages(console: FastAPI) -> None:
    @console.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        target = "/console/signin"
        if request.method == "GET":
            target += "?next=" + quote(
                request.url.path + ("?" + request.url.query if request.url.query else "")
            )
        if is_htmx(request):  # a fragment request: tell htmx to load the whole page
            return Response(status_code=401, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    @console.exception_handler(GatewayError)
    async def _refused(request: Request, exc: GatewayError) -> Response:
        await audit_refused_action(get_runtime(request), request, exc)
        return _error(request, exc.status, exc.reason, exc.message, exc.headers)

    @console.exception_handler(RateLimitExceeded)
    async def _too_many(request: Request, exc: RateLimitExceeded) -> Response:
        item = exc.limit.limit if exc.limit is not None else None
        retry = str(item.get_expiry() if item else 60)
        return _error(
            request,
            429,
            Reason.RATE_LIMITED,
            f"Too many sign-in attempts from this address; try again in {retry} seconds.",
            {"Retry-After": retry},
        )

    @console.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 404:
            return _error(request, 404, Reason.NOT_FOUND, "There is no such console page.")
        if exc.status_code == 405:
            return _error(request, 405, Reason.METHOD_NOT_ALLOWED, "Not allowed here.")
        return _error(request, exc.status_code, Reason.INVALID_REQUEST, str(exc.detail)[:200])

    @console.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        field = ".".join(str(p) for p in first.get("loc", ()))[:100]
        return _error(
            request, 400, Reason.INVALID_REQUEST, f"Invalid {field}: {first.get('msg', '')}"[:300]
        )

    @console.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("console: unhandled error on %s", request.url.path)
        return _error(request, 500, Reason.INTERNAL_ERROR, "The console failed unexpectedly.")


def _error(
    request: Request,
    status: int,
    reason: str,
    message: str,
    headers: dict[str, str] | None = None,
) -> Response:
    template = "error_fragment.html" if is_htmx(request) else "error.html"
    return page(
        request,
        template,
        session=None,
        status=status,
        headers=headers,
        status_code=status,
        reason=reason,
        message=message,
    )
