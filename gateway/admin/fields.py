"""Checks on the free-text fields of admin operations: present, bounded, printable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.errors import BadRequest
from gateway.reasons import Reason

# The roles a client's tokens may carry, and an organization member's roles (here, with
# the other field checks, so that the OpenAPI models can list them without an import cycle).
CLIENT_ROLES = ("admin", "auditor", "org_admin")
MEMBER_ROLES = ("defender", "org_admin")
MAX_NAME = 200
MAX_SUBJECT = 200
MAX_REASON = 1000
MAX_EVIDENCE = 10_000
MAX_GRANT_DAYS = 3 * 365  # a grant is reviewed at least this often
DEFAULT_GRANT_DAYS = 365


def text(value: str, *, field: str, max_len: int, required: bool = True) -> str:
    cleaned = value.strip()
    if required and not cleaned:
        raise BadRequest(Reason.FIELD_INVALID, f"'{field}' must not be empty.")
    if len(cleaned) > max_len:
        raise BadRequest(
            Reason.FIELD_INVALID,
            f"'{field}' is {len(cleaned)} characters long; at most {max_len} are allowed.",
        )
    # Control characters would forge lines in logs and CLI tables.
    if any(ord(c) < 32 and c not in "\n\t" for c in cleaned):
        raise BadRequest(Reason.FIELD_INVALID, f"'{field}' contains control characters.")
    return cleaned


def expiry(*, days: int | None, expires_at: datetime | None, now: datetime) -> datetime:
    """When a grant lapses: an explicit instant, or `days` from now (default 365)."""
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise BadRequest(Reason.FIELD_INVALID, "'expires_at' must carry a UTC offset.")
        if expires_at <= now:
            raise BadRequest(Reason.FIELD_INVALID, "'expires_at' must be in the future.")
        if expires_at - now > timedelta(days=MAX_GRANT_DAYS):
            raise BadRequest(
                Reason.FIELD_INVALID, f"A grant may run for at most {MAX_GRANT_DAYS} days."
            )
        return expires_at.astimezone(UTC)
    days = DEFAULT_GRANT_DAYS if days is None else days
    if not 1 <= days <= MAX_GRANT_DAYS:
        raise BadRequest(
            Reason.FIELD_INVALID, f"'days' must be between 1 and {MAX_GRANT_DAYS}, not {days}."
        )
    return now + timedelta(days=days)
