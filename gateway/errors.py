"""The gateway's error hierarchy; each error knows its HTTP status and stable reason code.

    GatewayError
    ├── BadRequest          400  invalid_request_error
    │   └── PayloadTooLarge 413
    ├── Unauthorized        401  authentication_error (with WWW-Authenticate)
    ├── Forbidden           403  permission_error
    ├── NotFound            404  not_found_error
    ├── MethodNotAllowed    405  invalid_request_error (with Allow)
    ├── Conflict            409  conflict_error (state moved on: stale version, bad transition)
    ├── RateLimited         429  rate_limit_error (with Retry-After)
    ├── Unavailable         503  api_error (a store at a stage boundary is down: fail closed)
    └── UpstreamError       502  api_error
        └── UpstreamTimeout 504

A reason is a `Reason` member, never a free string. Rendering happens in `gateway.api`,
one renderer per wire format (OpenAI JSON, SSE error event, RFC 6749 token errors).
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.reasons import Reason


class GatewayError(Exception):
    status: int = 500
    error_type: str = "api_error"

    def __init__(
        self,
        reason: Reason,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        reasons: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.reason = Reason(reason)
        self.message = message
        self.headers = dict(headers or {})
        # All reasons behind the decision (a policy may give several); `reason` is the first.
        self.reasons = reasons or (self.reason,)


class BadRequest(GatewayError):
    status = 400
    error_type = "invalid_request_error"


class PayloadTooLarge(BadRequest):
    status = 413


class Unauthorized(GatewayError):
    status = 401
    error_type = "authentication_error"

    def __init__(self, reason: Reason, message: str) -> None:
        # RFC 6750 §3: tell the client which scheme and why, without echoing the token.
        challenge = (
            f'Bearer realm="tac-gateway", error="invalid_token", error_description="{reason}"'
        )
        if reason == Reason.TOKEN_MISSING:
            challenge = 'Bearer realm="tac-gateway"'
        super().__init__(reason, message, headers={"WWW-Authenticate": challenge})


class Forbidden(GatewayError):
    status = 403
    error_type = "permission_error"


class NotFound(GatewayError):
    status = 404
    error_type = "not_found_error"


class MethodNotAllowed(GatewayError):
    status = 405
    error_type = "invalid_request_error"


class Conflict(GatewayError):
    status = 409
    error_type = "conflict_error"


class RateLimited(GatewayError):
    status = 429
    error_type = "rate_limit_error"


class Unavailable(GatewayError):
    status = 503


class UpstreamError(GatewayError):
    status = 502


class UpstreamTimeout(UpstreamError):
    status = 504
