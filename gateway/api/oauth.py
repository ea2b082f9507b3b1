"""The token endpoint (client credentials) and the JWKS that verifies what it issues."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import unquote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from slowapi import Limiter

from gateway.api.deps import RuntimeDep
from gateway.identity.keys import jwks
from gateway.identity.oauth import FormRequest, OAuthClient
from gateway.trust.standing import load_standing


def make_router(limiter: Limiter, token_rate: str) -> APIRouter:
    router = APIRouter(tags=["oauth"])

    # slowapi keyed on the caller's address: the token endpoint is where secrets are guessed.
    @router.post("/oauth/token")
    @limiter.limit(token_rate)
    async def token(request: Request, rt: RuntimeDep) -> JSONResponse:
        form = await request.form(max_files=0, max_fields=20)
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        client_id = _basic_client_id(request.headers.get("authorization")) or fields.get(
            "client_id"
        )
        client = None
        if client_id:
            standing = await load_standing(
                rt.request_db, client_id=client_id, subject=client_id, tiers=rt.tiers
            )
            if standing is not None and standing.client_active:
                client = OAuthClient(standing)
        oauth_request = FormRequest(
            method=request.method, uri=str(request.url), headers=request.headers, form=fields
        )
        status, body, headers = rt.token_server.issue(oauth_request, client)
        return JSONResponse(body, status_code=status, headers=dict(headers))

    @router.get("/.well-known/jwks.json")
    async def jwks_document(rt: RuntimeDep) -> JSONResponse:
        return JSONResponse(
            jwks([rt.signing_key]), headers={"cache-control": "public, max-age=300"}
        )

    return router


def _basic_client_id(authorization: str | None) -> str | None:
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return unquote(decoded.partition(":")[0]) or None
