"""The OAuth endpoints: token (client credentials), revocation (RFC 7009), introspection
(RFC 7662), the JWKS, and the server metadata (RFC 8414, also as OpenID discovery).

HTTP only: reading the form and rendering RFC 6749 answers. The issuer decides; the
pipeline (`gateway/pipeline/oauth.py`) audits every answer, a refused form included,
before it is sent.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any
from urllib.parse import parse_qsl, unquote

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from slowapi import Limiter
from starlette.responses import Response

from gateway.api.deps import RuntimeDep
from gateway.api.incoming import body_chunks
from gateway.api.render import oauth_error
from gateway.errors import PayloadTooLarge
from gateway.forward.relay import ClientGone
from gateway.issuer.metadata import INTROSPECTION_PATH, JWKS_PATH, REVOCATION_PATH, TOKEN_PATH
from gateway.issuer.service import TokenGranted, TokenRefused
from gateway.pipeline import oauth as audited
from gateway.pipeline.body import read_body
from gateway.reasons import Reason
from gateway.runtime import Runtime

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
        (
            503,
            "trust_unavailable: the client store cannot answer; temporarily_unavailable "
            "(reason audit_unavailable): the answer could not be audited",
        ),
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
        if isinstance(fields, TokenRefused):
            return _answer(await audited.refused(rt, "token", fields, **_caller(request)))
        answer = await audited.token(
            rt,
            form=fields,
            client_id=_basic_client_id(authorization) or fields.get("client_id"),
            uri=str(request.url),
            headers=request.headers,
            dpop_proof=request.headers.get("dpop"),
            **_caller(request),
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
        return await _client_endpoint(request, rt, "revocation", authorization)

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
        return await _client_endpoint(request, rt, "introspection", authorization)

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
    request: Request, rt: Runtime, endpoint: str, authorization: str | None
) -> Response:
    fields = await _read_form(request)
    if isinstance(fields, TokenRefused):
        return _answer(await audited.refused(rt, endpoint, fields, **_caller(request)))
    answer = await audited.client_endpoint(
        rt,
        endpoint,
        form=fields,
        client_id=_basic_client_id(authorization) or fields.get("client_id"),
        uri=str(request.url),
        headers=request.headers,
        **_caller(request),
    )
    return _answer(answer)


def _caller(request: Request) -> dict[str, str | None]:
    """The caller's address and user agent as seen, for the audit event (not verified)."""
    return {
        "source": request.client.host if request.client else None,
        "user_agent": (request.headers.get("user-agent") or "")[:300] or None,
    }


def _answer(answer: TokenGranted | TokenRefused) -> Response:
    # The audit event's id, as on /v1: the caller can name its decision to an auditor.
    headers = {"x-decision-id": answer.decision_id} if answer.decision_id else {}
    if isinstance(answer, TokenGranted):
        headers |= {"cache-control": "no-store", "pragma": "no-cache"}
        return JSONResponse(answer.body, headers=headers)
    return oauth_error(
        answer.status,
        answer.error or answer.reason,
        answer.description,
        answer.headers | headers,
        # The gateway's own reason, when the RFC's `error` code is not it.
        reason=answer.reason if answer.error else None,
    )


def _invalid(description: str, status: int = 400) -> TokenRefused:
    return TokenRefused(status, Reason.INVALID_REQUEST, description)


async def _read_form(request: Request) -> dict[str, str] | TokenRefused:
    """The urlencoded form, or its RFC 6749 refusal (size, type, duplicates)."""
    if request.headers.get("content-type", "").split(";")[0].strip() != FORM_TYPE:
        return _invalid(f"Content-Type must be {FORM_TYPE}.")
    declared = request.headers.get("content-length")
    try:
        raw = await read_body(
            body_chunks(request.receive),
            declared=int(declared) if declared and declared.isdigit() else None,
            limit=MAX_FORM_BYTES,
        )
    except PayloadTooLarge:
        return _invalid("The request body is too large.", 413)
    except ClientGone:
        # Nobody reads the answer; the refusal is still audited, as on /v1 (499).
        return TokenRefused(
            499,
            Reason.CLIENT_CLOSED,
            "The client left before its form arrived.",
            error=Reason.INVALID_REQUEST,
        )
    try:
        pairs = parse_qsl(raw.decode(), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        return _invalid("The form is malformed.")
    fields = dict(pairs)
    # RFC 6749 §3.2: parameters must not be included more than once.
    if len(fields) != len(pairs):
        return _invalid("A parameter is repeated.")
    return fields


def _basic_client_id(authorization: str | None) -> str | None:
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return unquote(decoded.partition(":")[0]) or None


_ENDPOINT_OF_PATH = {
    TOKEN_PATH: "token",
    REVOCATION_PATH: "revocation",
    INTROSPECTION_PATH: "introspection",
}


async def refused_outside(
    request: Request,
    status: int,
    reason: Reason,
    description: str,
    headers: dict[str, str] | None = None,
) -> Response:
    """A refusal made before the route ran (the per-address rate limit), audited like any
    other answer of the endpoint."""
    endpoint = _ENDPOINT_OF_PATH.get(request.url.path)
    if endpoint is None:
        return oauth_error(status, reason, description, headers)
    rt: Runtime = request.app.state.runtime
    refusal = TokenRefused(status, reason, description, headers or {})
    return _answer(await audited.refused(rt, endpoint, refusal, **_caller(request)))
