"""The token endpoint (client credentials) and the JWKS that verifies what it issues."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import parse_qsl, unquote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from slowapi import Limiter

from gateway.api.deps import RuntimeDep
from gateway.errors import PayloadTooLarge
from gateway.identity.keys import jwks
from gateway.identity.oauth import FormRequest, OAuthClient
from gateway.pipeline import read_body
from gateway.trust.standing import load_standing

FORM_TYPE = "application/x-www-form-urlencoded"


def make_router(limiter: Limiter, token_rate: str) -> APIRouter:
    router = APIRouter(tags=["oauth"])

    # slowapi keyed on the caller's address: the token endpoint is where secrets are guessed.
    @router.post("/oauth/token")
    @limiter.limit(token_rate)
    async def token(request: Request, rt: RuntimeDep) -> JSONResponse:
        fields = await _read_form(request)
        if isinstance(fields, JSONResponse):
            return fields
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


# A client-credentials request is a few hundred bytes; anything far larger is refused
# before it is read into memory.
MAX_FORM_BYTES = 8192


async def _read_form(request: Request) -> dict[str, str] | JSONResponse:
    """The urlencoded form, or an RFC 6749 error response (size, type, duplicates)."""
    if request.headers.get("content-type", "").split(";")[0].strip() != FORM_TYPE:
        return _oauth_error(400, "invalid_request", f"Content-Type must be {FORM_TYPE}.")
    try:
        raw = await read_body(request, MAX_FORM_BYTES)
    except PayloadTooLarge:
        return _oauth_error(413, "invalid_request", "The request body is too large.")
    try:
        pairs = parse_qsl(raw.decode(), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        return _oauth_error(400, "invalid_request", "The form is malformed.")
    fields = dict(pairs)
    # RFC 6749 §3.2: parameters must not be included more than once.
    if len(fields) != len(pairs):
        return _oauth_error(400, "invalid_request", "A parameter is repeated.")
    return fields


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={"cache-control": "no-store"},
    )


def _basic_client_id(authorization: str | None) -> str | None:
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return unquote(decoded.partition(":")[0]) or None
