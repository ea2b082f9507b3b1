"""Signing keys in the database: first-start setup, rotation, listing, unsealing.

Writes go through an `AsyncEngine` (start-up and the CLI); the token endpoint reads the
current private key through the request path's data access. Every replica learns of a
rotation from the table itself (gateway/identity/keyring.py): nothing to restart.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, insert, inspect, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.db.access import RequestDb
from gateway.db.engine import make_engine
from gateway.db.models import SigningKey as SigningKeyRow
from gateway.identity.tokens import LEEWAY_S
from gateway.issuer.keys import ALGORITHM, SigningKey, from_pem, load_file, new_key
from gateway.issuer.sealing import DEV_KEK, Sealer
from gateway.settings import Settings

log = logging.getLogger(__name__)

_TABLE = SigningKeyRow.__table__  # type: ignore[attr-defined]
_k = _TABLE.c
_BY_KID = select(_k.private_key).where(_k.kid == bindparam("kid"))


@dataclass(frozen=True)
class Rotation:
    new_kid: str
    rotated: tuple[str, ...]  # the keys that stopped signing
    retire_at: datetime  # when they stop verifying


def overlap(*, token_ttl_s: int, key_reload_s: float) -> timedelta:
    """How long a rotated key keeps verifying: its last token's lifetime, plus the time a
    replica may take to notice the rotation (it signs with the old key until then), plus
    the clock leeway the verifier allows."""
    return timedelta(seconds=token_ttl_s + key_reload_s + LEEWAY_S)


def _values(key: SigningKey, sealer: Sealer, now: datetime) -> dict[str, Any]:
    return {
        "kid": key.kid,
        "alg": ALGORITHM,
        "public_jwk": json.dumps(key.public_jwk),
        "private_key": sealer.seal(key.pem(), kid=key.kid),
        "created_at": now,
        "rotated_at": None,
        "retire_at": None,
    }


async def ensure_signing_key(engine: AsyncEngine, *, sealer: Sealer, legacy_file: Path) -> str:
    """The kid of a key that signs; on first start, import the install's key file (so its
    tokens keep verifying) or make a new key."""
    async with engine.begin() as conn:
        current = await _current(conn)
        if current is not None:
            return current
        # Start-up only, once: reading a small file here blocks nothing that is serving.
        legacy = load_file(legacy_file) if legacy_file.is_file() else None  # noqa: ASYNC240
        if legacy is not None:
            key = legacy
            log.info("imported the signing key file %s into the database", legacy_file)
        else:
            key = new_key()
    # Two replicas starting together may both add a key: both verify, the newer signs. The
    # same imported file twice is one row: the second insert loses, harmlessly.
    with contextlib.suppress(IntegrityError):
        async with engine.begin() as conn:
            await conn.execute(insert(_TABLE), [_values(key, sealer, datetime.now(UTC))])
    return key.kid


async def _current(conn: AsyncConnection) -> str | None:
    query = select(_k.kid).where(_k.rotated_at.is_(None)).order_by(_k.created_at.desc()).limit(1)
    return (await conn.execute(query)).scalar_one_or_none()


async def rotate(
    engine: AsyncEngine,
    *,
    sealer: Sealer,
    keep_verifying: timedelta,
    retire_now: bool = False,
    now: datetime | None = None,
) -> Rotation:
    """Make a new key current; the old ones verify for `keep_verifying`, or not at all
    with `retire_now` (a leaked key: its tokens must stop working at once)."""
    now = now or datetime.now(UTC)
    key = new_key()
    retire_at = now if retire_now else now + keep_verifying
    async with engine.begin() as conn:
        old = (await conn.execute(select(_k.kid).where(_k.rotated_at.is_(None)))).scalars()
        rotated = tuple(old)
        await conn.execute(insert(_TABLE), [_values(key, sealer, now)])
        if rotated:
            await conn.execute(
                update(_TABLE)
                .where(_k.kid.in_(rotated))
                .values(rotated_at=now, retire_at=retire_at)
            )
        if retire_now:
            # Keys rotated earlier and still in their overlap go too: all but the new one.
            await conn.execute(
                update(_TABLE).where(_k.kid != key.kid, _k.retire_at > now).values(retire_at=now)
            )
    return Rotation(new_kid=key.kid, rotated=rotated, retire_at=retire_at)


async def list_keys(engine: AsyncEngine) -> list[SigningKeyRow]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(_TABLE).order_by(_k.created_at.desc()))
        return [SigningKeyRow(**row._mapping) for row in rows]


async def load_private(db: RequestDb, *, kid: str, sealer: Sealer) -> SigningKey:
    rows = await db.read(_BY_KID, {"kid": kid})
    if not rows:
        raise LookupError(f"no signing key {kid}")
    return from_pem(sealer.open(rows[0][0], kid=kid), source=f"signing key {kid}")


async def unseal_all(engine: AsyncEngine, *, sealer: Sealer) -> None:
    """Raise if any stored key does not open: a wrong KEK must fail at start, not later."""
    for row in await list_keys(engine):
        sealer.open(row.private_key, kid=row.kid)


def sealer_for(settings: Settings) -> Sealer:
    """The sealer of the configured KEK; outside dev mode there must be one."""
    kek = settings.key_encryption_key.get_secret_value()
    if not kek:
        if not settings.dev_mode:
            raise ValueError(
                "key_encryption_key (TACGW_KEY_ENCRYPTION_KEY) is required outside dev mode: "
                "it seals the signing keys in the database"
            )
        kek = DEV_KEK
    return Sealer(kek)


async def prepare_signing_keys(settings: Settings, sealer: Sealer) -> None:
    """At start: a current key exists, and every stored key opens with this KEK."""
    engine = make_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    try:
        if not await _migrated(engine):
            raise RuntimeError(
                "the database has no signing key table: run `tac-gateway migrate` first"
            )
        await ensure_signing_key(engine, sealer=sealer, legacy_file=settings.signing_key_file)
        await unseal_all(engine, sealer=sealer)
    finally:
        await engine.dispose()


async def _migrated(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        return await conn.run_sync(lambda sync: inspect(sync).has_table(_TABLE.name))
