"""Forms: read an urlencoded body (bounded), and check the CSRF token it must carry.

A signed-in form carries the session's token; the sign-in form, before any session,
carries the token of a short-lived cookie of its own (double submit). Either way the
cookie is SameSite=Strict, and a missing or wrong token is a 403 that changes nothing.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import parse_qsl

from fastapi import Request

from gateway.api.incoming import body_chunks
from gateway.errors import BadRequest, Forbidden, PayloadTooLarge
from gateway.forward.relay import ClientGone
from gateway.pipeline.body import read_body
from gateway.reasons import Reason

FIELD = "csrf"
SIGNIN_COOKIE = "tacgw_console_signin"
MAX_FORM_BYTES = 16_384
_FORM = "application/x-www-form-urlencoded"


def new_token() -> str:
    return secrets.token_urlsafe(32)


async def read_form(request: Request) -> dict[str, str]:
    """The form's fields (a repeated field keeps its first value)."""
    if request.headers.get("content-type", "").split(";")[0].strip() != _FORM:
        raise BadRequest(Reason.INVALID_REQUEST, f"Send the form as {_FORM}.")
    declared = request.headers.get("content-length")
    try:
        raw = await read_body(
            body_chunks(request.receive),
            declared=int(declared) if declared and declared.isdigit() else None,
            limit=MAX_FORM_BYTES,
        )
        pairs = parse_qsl(raw.decode(), keep_blank_values=True, max_num_fields=30)
    except PayloadTooLarge:
        raise
    except ClientGone:  # nobody reads this answer: only no 500 and stack trace for it
        raise BadRequest(Reason.CLIENT_CLOSED, "The form did not arrive.") from None
    except (UnicodeDecodeError, ValueError):
        raise BadRequest(Reason.INVALID_REQUEST, "The form is malformed.") from None
    fields: dict[str, str] = {}
    for key, value in pairs:
        fields.setdefault(key, value)
    return fields


def require_token(fields: dict[str, str], expected: str | None) -> None:
    """Refuse the form unless it carries `expected` (compared in constant time)."""
    given = fields.get(FIELD, "")
    if not expected or not given or not hmac.compare_digest(given, expected):
        raise Forbidden(
            Reason.CSRF_FAILED,
            "This form has no valid CSRF token (it came from elsewhere, or the page is "
            "stale): reload the page and try again.",
        )
