"""Sign-in with a local account, and sign-out.

The sign-in form is rate-limited per client address by the gateway's slowapi limiter,
as the token endpoint is; a wrong password and an unknown account get the same page,
the same status and the same argon2 work (gateway/console/accounts.py).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from slowapi import Limiter
from starlette.responses import RedirectResponse, Response

from gateway.admin.actor import Actor
from gateway.console import accounts, csrf, signins
from gateway.console.guard import RuntimeDep
from gateway.console.render import page
from gateway.console.sessions import COOKIE, close_session, load_session, open_session
from gateway.reasons import Reason
from gateway.settings import Settings

log = logging.getLogger(__name__)

WRONG = "Wrong account name or password."
HOME = "/console/"


def safe_next(raw: str | None) -> str:
    """Where to go after signing in: a console path on this site, nothing else."""
    if not raw:
        return HOME
    parts = urlsplit(raw)
    if parts.scheme or parts.netloc or not parts.path.startswith("/console/") or "\\" in raw:
        return HOME
    return raw


def set_cookie(
    response: Response, name: str, value: str, *, settings: Settings, max_age: int
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/console",
        httponly=True,
        samesite="strict",
        secure=not settings.dev_mode,  # a laptop on http://127.0.0.1 in dev mode only
    )


def signed_in_response(settings: Settings, token: str, next_path: str) -> RedirectResponse:
    response = RedirectResponse(safe_next(next_path), status_code=303)
    set_cookie(response, COOKIE, token, settings=settings, max_age=settings.console.session_ttl_s)
    response.delete_cookie(csrf.SIGNIN_COOKIE, path="/console")
    return response


def make_router(settings: Settings, limiter: Limiter) -> APIRouter:
    router = APIRouter()
    console = settings.console

    def signin_page(
        request: Request, *, token: str, error: str = "", status: int = 200, name: str = ""
    ) -> Response:
        response = page(
            request,
            "signin.html",
            session=None,
            status=status,
            signin_csrf=token,
            error=error,
            name=name,
            next=safe_next(request.query_params.get("next")),
            local=console.local_accounts,
            oidc=console.oidc is not None,
        )
        set_cookie(response, csrf.SIGNIN_COOKIE, token, settings=settings, max_age=3600)
        return response

    @router.get("/signin")
    async def signin_form(request: Request, rt: RuntimeDep) -> Response:
        if await load_session(rt.admin.engine, token=request.cookies.get(COOKIE)):
            return RedirectResponse(HOME, status_code=303)
        return signin_page(request, token=csrf.new_token())

    @router.post("/signin")
    @limiter.limit(console.sign_in_rate_limit)
    async def signin(request: Request, rt: RuntimeDep) -> Response:
        fields = await csrf.read_form(request)
        csrf.require_token(fields, request.cookies.get(csrf.SIGNIN_COOKIE))
        name = fields.get("name", "")
        role = None
        if console.local_accounts:
            role = await accounts.authenticate(
                rt.admin.engine, name=name, password=fields.get("password", "")
            )
        if role is None:
            # The name is not logged: it may be a password typed in the wrong field.
            log.info("console sign-in refused")
            await signins.refused(rt.admin.engine, method="password", reason=Reason.SIGN_IN_FAILED)
            return signin_page(
                request, token=csrf.new_token(), error=WRONG, status=401, name=name[:100]
            )
        token = await open_session(
            rt.admin.engine,
            subject=f"console:{name}",
            roles=(role,),
            ttl=timedelta(seconds=console.session_ttl_s),
        )
        log.info("console sign-in: console:%s as %s", name, role)
        actor = Actor(subject=f"console:{name}", roles=(role,))
        await signins.signed_in(rt.admin.engine, actor=actor, method="password")
        return signed_in_response(settings, token, fields.get("next", HOME))

    @router.post("/signout")
    async def signout(request: Request, rt: RuntimeDep) -> Response:
        token = request.cookies.get(COOKIE)
        session = await load_session(rt.admin.engine, token=token)
        if session is not None:
            csrf.require_token(await csrf.read_form(request), session.csrf)
            await close_session(rt.admin.engine, token=token)
            await signins.signed_out(rt.admin.engine, actor=session.actor)
        response = RedirectResponse("/console/signin", status_code=303)
        response.delete_cookie(COOKIE, path="/console")
        return response

    return router
