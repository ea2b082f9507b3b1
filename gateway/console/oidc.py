"""Sign-in with an OpenID Connect provider: authorization code flow with PKCE (S256).

    /console/oidc/start     state, nonce and PKCE verifier kept server-side (a row of
                            `console_session` of kind "oidc"), then off to the IdP
    /console/oidc/callback  the code exchanged with authlib's client, the ID token checked
                            (signature by the IdP's JWKS, iss, aud, exp, nonce), its role
                            claim mapped onto the admin policy's roles, a session opened

The pending sign-in's cookie is SameSite=Lax: the IdP's redirect back is a cross-site
navigation, which a Strict cookie would not follow. The session cookie stays Strict; the
callback therefore answers with a small page that continues to the console (a redirect
still counted as cross-site would not carry the new Strict cookie).
"""

from __future__ import annotations

import hmac
import logging
import secrets
from datetime import timedelta
from typing import Any

import httpx
from fastapi import APIRouter, Request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from starlette.responses import RedirectResponse, Response

from gateway.admin.actor import Actor
from gateway.console import signins
from gateway.console.auth import safe_next, set_cookie
from gateway.console.guard import RuntimeDep
from gateway.console.render import page
from gateway.console.sessions import (
    COOKIE,
    OIDC_COOKIE,
    OIDC_TTL,
    open_login,
    open_session,
    take_login,
)
from gateway.errors import Forbidden, Unavailable
from gateway.reasons import Reason
from gateway.settings import OidcSettings, Settings

log = logging.getLogger(__name__)

_TIMEOUT_S = 10.0
_TIMEOUT = httpx.Timeout(_TIMEOUT_S)
LEEWAY_S = 60


def roles_from(claims: dict[str, Any], oidc: OidcSettings) -> tuple[str, ...]:
    """The admin policy's roles this user holds, by the configured claim's values."""
    raw = claims.get(oidc.roles_claim, [])
    values = {raw} if isinstance(raw, str) else {str(v) for v in raw or []}
    if values & set(oidc.admin_values):
        return ("admin",)
    if values & set(oidc.auditor_values):
        return ("auditor",)
    return ()


async def _metadata(oidc: OidcSettings) -> dict[str, Any]:
    url = oidc.issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        async with httpx.AsyncClient(timeout=_TIMEOUT) as client:
            reply = await client.get(url)
            reply.raise_for_status()
            meta: dict[str, Any] = reply.json()
    except (httpx.HTTPError, ValueError) as exc:
        log.warning("console OIDC discovery failed: %s", type(exc).__name__)
        raise Unavailable(Reason.OIDC_FAILED, "The identity provider cannot be reached.") from exc
    if meta.get("issuer") != oidc.issuer:
        raise Unavailable(Reason.OIDC_FAILED, "The identity provider names another issuer.")
    return meta


async def _keys(jwks_uri: str) -> KeySet:
    try:
        async with httpx.AsyncClient(timeout=_TIMEOUT) as client:
            reply = await client.get(jwks_uri)
            reply.raise_for_status()
            return KeySet.import_key_set(reply.json())
    except (httpx.HTTPError, ValueError, JoseError) as exc:
        raise Unavailable(Reason.OIDC_FAILED, "The identity provider's keys are unusable.") from exc


def _client(oidc: OidcSettings, redirect_uri: str) -> Any:
    # Imported on first use: the module warns about its httpx compatibility on import,
    # which a gateway without an IdP configured has no reason to print.
    from authlib.integrations.httpx_client import AsyncOAuth2Client

    secret = oidc.client_secret.get_secret_value()
    return AsyncOAuth2Client(
        client_id=oidc.client_id,
        client_secret=secret or None,
        token_endpoint_auth_method="client_secret_basic" if secret else "none",
        scope=oidc.scopes,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        timeout=_TIMEOUT_S,  # a number: authlib hands it to each request as is
    )


def _refused(message: str) -> Forbidden:
    return Forbidden(Reason.OIDC_FAILED, message)


def make_router(settings: Settings) -> APIRouter:
    router = APIRouter()
    oidc = settings.console.oidc
    if oidc is None:
        return router  # no IdP configured: the routes do not exist

    def callback_url(request: Request) -> str:
        # The issuer setting is the gateway's public base URL (tokens' `iss`), as the IdP
        # must know it among the client's redirect URIs.
        return f"{settings.issuer}/console/oidc/callback"

    @router.get("/oidc/start")
    async def start(request: Request, rt: RuntimeDep) -> Response:
        meta = await _metadata(oidc)
        verifier = secrets.token_urlsafe(48)
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        async with _client(oidc, callback_url(request)) as client:
            url, _ = client.create_authorization_url(
                meta["authorization_endpoint"], state=state, nonce=nonce, code_verifier=verifier
            )
        token = await open_login(
            rt.admin.engine,
            data={
                "state": state,
                "nonce": nonce,
                "verifier": verifier,
                "next": safe_next(request.query_params.get("next")),
            },
        )
        response = RedirectResponse(url, status_code=303)
        response.set_cookie(
            OIDC_COOKIE,
            token,
            max_age=int(OIDC_TTL.total_seconds()),
            path="/console/oidc",
            httponly=True,
            samesite="lax",
            secure=not settings.dev_mode,
        )
        return response

    @router.get("/oidc/callback")
    async def callback(request: Request, rt: RuntimeDep) -> Response:
        q = request.query_params
        pending = await take_login(rt.admin.engine, token=request.cookies.get(OIDC_COOKIE))
        if pending is None:
            raise _refused("No sign-in is under way in this browser (or it expired); start again.")
        if not hmac.compare_digest(q.get("state", ""), pending["state"]):
            raise _refused("The identity provider's answer does not match this sign-in.")
        if "error" in q or not q.get("code"):
            raise _refused(f"The identity provider refused: {q.get('error', 'no code')[:100]}.")
        meta = await _metadata(oidc)
        try:
            async with _client(oidc, callback_url(request)) as client:
                tokens = await client.fetch_token(
                    meta["token_endpoint"], code=q["code"], code_verifier=pending["verifier"]
                )
        except Exception as exc:  # authlib raises OAuthError, httpx its own: all mean no
            log.warning("console OIDC code exchange failed: %s", type(exc).__name__)
            raise _refused("The sign-in code could not be exchanged; start again.") from exc
        claims = await _id_token_claims(oidc, meta, tokens.get("id_token"), nonce=pending["nonce"])
        roles = roles_from(claims, oidc)
        if not roles:
            await signins.refused(rt.admin.engine, method="oidc", reason=Reason.NO_CONSOLE_ROLE)
            raise Forbidden(
                Reason.NO_CONSOLE_ROLE,
                f"Signed in at the identity provider, but '{oidc.roles_claim}' names no "
                "console role (admin or auditor).",
            )
        subject = f"oidc:{claims['sub']}"
        session = await open_session(
            rt.admin.engine,
            subject=subject[:300],
            roles=roles,
            ttl=timedelta(seconds=settings.console.session_ttl_s),
        )
        log.info("console sign-in: %s as %s (OIDC)", subject, roles[0])
        actor = Actor(subject=subject[:300], roles=roles)
        await signins.signed_in(rt.admin.engine, actor=actor, method="oidc")
        response = page(request, "continue.html", session=None, next=pending["next"])
        set_cookie(
            response, COOKIE, session, settings=settings, max_age=settings.console.session_ttl_s
        )
        response.delete_cookie(OIDC_COOKIE, path="/console/oidc")
        return response

    return router


async def _id_token_claims(
    oidc: OidcSettings, meta: dict[str, Any], id_token: Any, *, nonce: str
) -> dict[str, Any]:
    if not isinstance(id_token, str):
        raise _refused("The identity provider sent no ID token.")
    keys = await _keys(meta["jwks_uri"])
    algorithms = meta.get("id_token_signing_alg_values_supported") or ["RS256"]
    try:
        token = jwt.decode(id_token, keys, algorithms=[a for a in algorithms if a != "none"])
        jwt.JWTClaimsRegistry(
            leeway=LEEWAY_S,
            iss={"essential": True, "value": oidc.issuer},
            aud={"essential": True, "value": oidc.client_id},
            sub={"essential": True},
            exp={"essential": True},
            nonce={"essential": True, "value": nonce},
        ).validate(token.claims)
    except (JoseError, ValueError) as exc:
        log.warning("console OIDC ID token refused: %s: %s", type(exc).__name__, str(exc)[:200])
        raise _refused("The identity provider's ID token is not valid for this console.") from exc
    return dict(token.claims)
