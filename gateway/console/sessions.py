"""Server-side console sessions: a random token in the cookie, its SHA-256 in the table.

A session carries who signed in (subject, roles), its CSRF token and an absolute expiry;
signing out deletes the row, so a stolen cookie dies with it. An OIDC sign-in under way
is a row of kind "oidc" holding its state, nonce and PKCE verifier for ten minutes.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin.actor import Actor
from gateway.db.models import ConsoleSession, utcnow

SESSION = ConsoleSession.__table__  # type: ignore[attr-defined]
COOKIE = "tacgw_console"
OIDC_COOKIE = "tacgw_console_oidc"
OIDC_TTL = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class Session:
    subject: str
    roles: tuple[str, ...]
    csrf: str
    expires_at: datetime

    @property
    def actor(self) -> Actor:
        """Who acts, as the admin operations and their audit events name it."""
        return Actor(subject=self.subject, roles=self.roles)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def _insert(engine: AsyncEngine, row: dict[str, object]) -> None:
    async with engine.begin() as conn:
        # Rows past their expiry are useless: swept on every new sign-in.
        await conn.execute(delete(SESSION).where(SESSION.c.expires_at < utcnow()))
        await conn.execute(SESSION.insert(), row)


async def open_session(
    engine: AsyncEngine, *, subject: str, roles: tuple[str, ...], ttl: timedelta
) -> str:
    """A new session; returns the cookie's token (shown to the browser only)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    await _insert(
        engine,
        {
            "token_hash": _digest(token),
            "kind": "session",
            "subject": subject,
            "roles": " ".join(roles),
            "csrf": secrets.token_urlsafe(32),
            "data": "",
            "created_at": now,
            "expires_at": now + ttl,
        },
    )
    return token


async def load_session(engine: AsyncEngine, *, token: str | None) -> Session | None:
    if not token or len(token) > 100:
        return None
    query = select(SESSION).where(
        SESSION.c.token_hash == _digest(token),
        SESSION.c.kind == "session",
        SESSION.c.expires_at > utcnow(),
    )
    async with engine.connect() as conn:
        row = (await conn.execute(query)).mappings().first()
    if row is None:
        return None
    return Session(
        subject=row["subject"],
        roles=tuple(row["roles"].split()),
        csrf=row["csrf"],
        expires_at=row["expires_at"],
    )


async def close_session(engine: AsyncEngine, *, token: str | None) -> None:
    if token:
        async with engine.begin() as conn:
            await conn.execute(delete(SESSION).where(SESSION.c.token_hash == _digest(token)))


async def open_login(engine: AsyncEngine, *, data: dict[str, str]) -> str:
    """An OIDC sign-in under way (state, nonce, verifier); returns its cookie token."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    await _insert(
        engine,
        {
            "token_hash": _digest(token),
            "kind": "oidc",
            "subject": "",
            "roles": "",
            "csrf": "",
            "data": orjson.dumps(data).decode(),
            "created_at": now,
            "expires_at": now + OIDC_TTL,
        },
    )
    return token


async def take_login(engine: AsyncEngine, *, token: str | None) -> dict[str, str] | None:
    """The sign-in under way, removed as it is read: a callback can be used once only."""
    if not token or len(token) > 100:
        return None
    where = (SESSION.c.token_hash == _digest(token), SESSION.c.kind == "oidc")
    async with engine.begin() as conn:
        row = (
            (await conn.execute(select(SESSION).where(*where, SESSION.c.expires_at > utcnow())))
            .mappings()
            .first()
        )
        await conn.execute(delete(SESSION).where(*where))
    return None if row is None else dict(orjson.loads(row["data"]))
