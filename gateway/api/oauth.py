"""The OAuth endpoints: token (client credentials), revocation (RFC 7009), introspection
(RFC 7662), the JWKS, and the server metadata (RFC 8414, also as OpenID discovery).

HTTP only: reading the form and rendering RFC 6749 answers. The issuer decides.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import parse_qsl, unquote

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from slowapi import Limiter
from starlette.responses import Response

from gateway.api.deps import RuntimeDep
from gateway.api.render import oauth_error
from gateway.errors import PayloadTooLarge
from gateway.issuer.metadata import INTROSPECTION_PATH, JWKS_PATH, REVOCATION_PATH, TOKEN_PATH
from gateway.issuer.service import TokenGranted, TokenRefused
from gateway.pipeline.body import read_body
from gateway.reasons import Reason

FORM_TYPE = "application/x-www-form-urlencoded"
# A client-credentials request is a few hundred bytes; anything far larger is refused
# before it is read into memory.
MAX_FORM_BYTES = 8192


class TokenResponse(BaseModel):
    access_token: str
    token_type: str
    expires_in: int
    scope: str


class OAuthErrorBody(BaseModel):
    """RFC 6749 §5.2."""

    error: str
    error_description: str


class Jwks(BaseModel):
    keys: list[dict[str, Any]]


_TOKEN_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            FORM_TYPE: {
                "schema": {
                    "type": "object",
                    "required": ["grant_type"],
                    # RFC 6749 §3.2: unrecognised parameters are ignored, not refused;
                    # each is one value (a repeated parameter is refused).
                    "additionalProperties": {"type": "string"},
                    "properties": {
                        "grant_type": {"type": "string", "enum": ["client_credentials"]},
                        # Empty is as if absent: every scope the client may have.
                        "scope": {"type": "string", "enum": ["", "models"]},
                        "client_id": {"type": "string"},
                        "client_secret": {"type": "string"},
                        "client_assertion": {"type": "string"},
                        "client_assertion_type": {"type": "string"},
                    },
                }
            }
        },
    }
}
_TOKEN_ONLY_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            FORM_TYPE: {
                "schema": {
                    "type": "object",
                    "required": ["token"],
                    # As on the token endpoint: other parameters are ignored, each is one
                    # value (a repeated parameter is refused).
                    "additionalProperties": {"type": "string"},
                    "properties": {
                        "token": {"type": "string"},
                        "token_type_hint": {"type": "string"},
                        "client_id": {"type": "string"},
                        "client_secret": {"type": "string"},
                        "client_assertion": {"type": "string"},
                        "client_assertion_type": {"type": "string"},
                    },
                }
            }
        },
    }
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": OAuthErrorBody, "description": what}
    for status, what in (
        (400, "invalid_request, unsupported_grant_type, invalid_scope, unauthorized_client"),
        (401, "invalid_client"),
        (413, "invalid_request: the form is too large"),
        (429, "slow_down: too many token requests from this address"),
        (503, "trust_unavailable: the client store cannot answer"),
    )
}


def make_router(limiter: Limiter, token_rate: str) -> APIRouter:
    router = APIRouter(tags=["oauth"])

    # slowapi keyed on the caller's address: the token endpoint is where secrets are guessed.
    @router.post(
        TOKEN_PATH,
        response_model=TokenResponse,
        responses=_ERRORS,
        openapi_extra=_TOKEN_FORM,
        summary="OAuth 2.0 token endpoint (client credentials, RFC 6749 §4.4)",
    )
    @limiter.limit(token_rate)
    async def token(
        request: Request,
        rt: RuntimeDep,
        authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    ) -> Response:
        fields = await _read_form(request)
        if isinstance(fields, Response):
            return fields
        client_id = _basic_client_id(authorization) or fields.get("client_id")
        answer = await rt.issuer.token(
            form=fields,
            client_id=client_id,
            uri=str(request.url),
            headers=request.headers,
            dpop_proof=request.headers.get("dpop"),
        )
        return _answer(answer)

    @router.post(
        REVOCATION_PATH,
        responses=_ERRORS,
        openapi_extra=_TOKEN_ONLY_FORM,
        summary="OAuth 2.0 token revocation (RFC 7009); the client must authenticate",
    )
    @limiter.limit(token_rate)
    async def revoke(
        request: Request,
        rt: RuntimeDep,
        authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    ) -> Response:
        return await _client_endpoint(request, rt.issuer.revoke, authorization)

    @router.post(
        INTROSPECTION_PATH,
        responses=_ERRORS,
        openapi_extra=_TOKEN_ONLY_FORM,
        summary="OAuth 2.0 token introspection (RFC 7662); the client must authenticate",
    )
    @limiter.limit(token_rate)
    async def introspect(
        request: Request,
        rt: RuntimeDep,
        authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    ) -> Response:
        return await _client_endpoint(request, rt.issuer.introspect, authorization)

    @router.get(JWKS_PATH, response_model=Jwks, summary="The issuer's public keys")
    async def jwks_document(rt: RuntimeDep) -> JSONResponse:
        # Short cache: a rotation's new key must reach verifiers elsewhere quickly.
        return JSONResponse(rt.issuer.jwks(), headers={"cache-control": "public, max-age=60"})

    @router.get(
        "/.well-known/oauth-authorization-server",
        summary="Authorization server metadata (RFC 8414)",
    )
    async def server_metadata(rt: RuntimeDep) -> JSONResponse:
        return JSONResponse(rt.issuer.metadata(), headers={"cache-control": "public, max-age=300"})

    @router.get(
        "/.well-known/openid-configuration",
        summary="The same metadata at the OpenID discovery path",
    )
    async def openid_configuration(rt: RuntimeDep) -> JSONResponse:
        return JSONResponse(rt.issuer.metadata(), headers={"cache-control": "public, max-age=300"})

    return router


async def _client_endpoint(
    request: Request,
    endpoint: Callable[..., Awaitable[TokenGranted | TokenRefused]],
    authorization: str | None,
) -> Response:
    fields = await _read_form(request)
    if isinstance(fields, Response):
        return fields
    client_id = _basic_client_id(authorization) or fields.get("client_id")
    answer = await endpoint(
        form=fields, client_id=client_id, uri=str(request.url), headers=request.headers
    )
    return _answer(answer)


def _answer(answer: TokenGranted | TokenRefused) -> Response:
    if isinstance(answer, TokenGranted):
        return JSONResponse(
            answer.body, headers={"cache-control": "no-store", "pragma": "no-cache"}
        )
    return oauth_error(answer.status, answer.reason, answer.description, answer.headers)


async def _read_form(request: Request) -> dict[str, str] | Response:
    """The urlencoded form, or an RFC 6749 error response (size, type, duplicates)."""
    if request.headers.get("content-type", "").split(";")[0].strip() != FORM_TYPE:
        return oauth_error(400, Reason.INVALID_REQUEST, f"Content-Type must be {FORM_TYPE}.")
    declared = request.headers.get("content-length")
    try:
        raw = await read_body(
            request.stream(),
            declared=int(declared) if declared and declared.isdigit() else None,
            limit=MAX_FORM_BYTES,
        )
    except PayloadTooLarge:
        return oauth_error(413, Reason.INVALID_REQUEST, "The request body is too large.")
    try:
        pairs = parse_qsl(raw.decode(), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        return oauth_error(400, Reason.INVALID_REQUEST, "The form is malformed.")
    fields = dict(pairs)
    # RFC 6749 §3.2: parameters must not be included more than once.
    if len(fields) != len(pairs):
        return oauth_error(400, Reason.INVALID_REQUEST, "A parameter is repeated.")
    return fields


def _basic_client_id(authorization: str | None) -> str | None:
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return unquote(decoded.partition(":")[0]) or None
