"""Local console accounts: create, list, disable, and check a password (argon2id).

A wrong password and an unknown (or disabled) account cost the same argon2 work and give
the same answer (None), so sign-in reveals nothing about which names exist.
"""

from __future__ import annotations

import functools
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db.models import ConsoleAccount, utcnow

ACCOUNT = ConsoleAccount.__table__  # type: ignore[attr-defined]
# Roles a local account may hold: the admin policy's own (policies/admin.rego).
ROLES = ("admin", "auditor")
MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # argon2 takes any length; a bound keeps sign-in cheap to refuse

_hasher = PasswordHasher()  # argon2id with the library's (RFC 9106) default parameters


class AccountError(ValueError):
    """An account that cannot be created as asked (name taken, weak password, bad role)."""


@functools.cache
def _decoy() -> str:
    # Verified against when the account does not exist, so both paths cost one argon2 run.
    return _hasher.hash("decoy password, never valid")


def check_password_rules(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise AccountError(f"the password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters")


async def create_account(engine: AsyncEngine, *, name: str, password: str, role: str) -> None:
    if role not in ROLES:
        raise AccountError(f"role must be one of: {', '.join(ROLES)}")
    if not name or len(name) > 100 or not name.isprintable() or name != name.strip():
        raise AccountError("the name must be 1 to 100 printable characters")
    check_password_rules(password)
    row = {"name": name, "password_hash": _hasher.hash(password), "role": role,
           "created_at": utcnow(), "disabled_at": None}  # fmt: skip
    try:
        async with engine.begin() as conn:
            await conn.execute(ACCOUNT.insert(), row)
    except IntegrityError:
        raise AccountError(f"an account named {name!r} exists already") from None


async def set_password(engine: AsyncEngine, *, name: str, password: str) -> bool:
    check_password_rules(password)
    async with engine.begin() as conn:
        done = await conn.execute(
            update(ACCOUNT)
            .where(ACCOUNT.c.name == name)
            .values(password_hash=_hasher.hash(password))
        )
    return done.rowcount == 1


async def disable_account(engine: AsyncEngine, *, name: str, at: datetime) -> bool:
    async with engine.begin() as conn:
        done = await conn.execute(
            update(ACCOUNT).where(ACCOUNT.c.name == name).values(disabled_at=at)
        )
    return done.rowcount == 1


async def list_accounts(engine: AsyncEngine) -> list[dict[str, object]]:
    query = select(ACCOUNT.c.name, ACCOUNT.c.role, ACCOUNT.c.created_at, ACCOUNT.c.disabled_at)
    async with engine.connect() as conn:
        rows = (await conn.execute(query.order_by(ACCOUNT.c.name))).mappings().all()
    return [dict(r) for r in rows]


async def authenticate(engine: AsyncEngine, *, name: str, password: str) -> str | None:
    """The account's role if `password` is its password and it is enabled; else None."""
    row = None
    if 0 < len(name) <= 100 and len(password) <= MAX_PASSWORD:
        query = select(ACCOUNT).where(ACCOUNT.c.name == name)
        async with engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
    stored = row["password_hash"] if row is not None else _decoy()
    try:
        _hasher.verify(stored, password[:MAX_PASSWORD])
    except (VerificationError, InvalidHashError):
        return None
    if row is None or row["disabled_at"] is not None:
        return None
    return str(row["role"])
