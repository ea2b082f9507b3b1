"""The gateway's own public keys, read from the `signingkey` table into an immutable snapshot.

Every replica reloads the table periodically and, on a token naming a `kid` it does not
know, at most once per `min_refresh_s` (a rotation made on another replica shows up on
the first token it signed; a flood of made-up kids costs at most one query per interval).
A rotated key stays until its `retire_at`, then leaves both the verifier and the JWKS.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jwt
from jwt.algorithms import ECAlgorithm
from sqlalchemy import bindparam, or_, select

from gateway.db.access import RequestDb
from gateway.db.models import SigningKey

log = logging.getLogger(__name__)

_k = SigningKey.__table__.c  # type: ignore[attr-defined]
_LIVE = select(_k.kid, _k.public_jwk, _k.created_at, _k.rotated_at, _k.retire_at).where(
    or_(_k.retire_at.is_(None), _k.retire_at > bindparam("now", type_=_k.retire_at.type))
)


@dataclass(frozen=True, slots=True)
class PublicKey:
    kid: str
    jwk: dict[str, Any]
    key: Any  # a cryptography public key object, as PyJWT takes it
    retire_at: float | None  # epoch seconds; None while the key may still sign


@dataclass(frozen=True, slots=True)
class _Snapshot:
    keys: dict[str, PublicKey] = field(default_factory=dict)
    current_kid: str | None = None


class OwnKeys:
    """Verification keys of the gateway's own issuer (a key source of the verifier)."""

    def __init__(self, db: RequestDb, *, reload_s: float, min_refresh_s: float) -> None:
        self._db = db
        self._reload_s = reload_s
        self._min_refresh_s = min_refresh_s
        self._snapshot = _Snapshot()
        self._last_attempt = -float("inf")
        self._task: asyncio.Task[None] | None = None

    @property
    def current_kid(self) -> str | None:
        """The key new tokens are signed with, as of the last reload."""
        return self._snapshot.current_kid

    def key(self, kid: str, now: float) -> Any | None:
        entry = self._snapshot.keys.get(kid)
        if entry is None or (entry.retire_at is not None and now >= entry.retire_at):
            return None
        return entry.key

    def still_valid(self, kid: str, now: float) -> bool:
        """For a cached verification: is the key that signed it still trusted?"""
        entry = self._snapshot.keys.get(kid)
        return entry is not None and (entry.retire_at is None or now < entry.retire_at)

    def jwks(self, now: float | None = None) -> dict[str, list[dict[str, Any]]]:
        now = time.time() if now is None else now
        live = [k.jwk for k in self._snapshot.keys.values() if self.still_valid(k.kid, now)]
        return {"keys": live}

    async def refresh_unknown(self, kid: str) -> None:
        """Reload for a kid not in the snapshot, at most once per `min_refresh_s`."""
        now = time.monotonic()
        if now - self._last_attempt < self._min_refresh_s:
            return
        self._last_attempt = now  # before awaiting: concurrent misses share one reload
        with contextlib.suppress(Exception):
            await self.load()

    async def load(self) -> None:
        """Read the live keys; the previous snapshot stays if the database fails."""
        self._last_attempt = time.monotonic()
        try:
            rows = await self._db.read(_LIVE, {"now": datetime.now(UTC)})
        except Exception as exc:
            log.error("signing key reload failed: %s", type(exc).__name__)
            raise
        keys: dict[str, PublicKey] = {}
        current: tuple[datetime, str] | None = None
        for row in rows:
            kid, public_jwk, created_at, rotated_at, retire_at = tuple(row)
            jwk = json.loads(public_jwk)
            keys[kid] = PublicKey(
                kid=kid,
                jwk=jwk,
                key=ECAlgorithm.from_jwk(jwk),
                retire_at=retire_at.timestamp() if retire_at is not None else None,
            )
            # The newest key that was never rotated signs (two replicas may have made one
            # each on a first start; both verify).
            if rotated_at is None and (current is None or created_at > current[0]):
                current = (created_at, kid)
        self._snapshot = _Snapshot(keys=keys, current_kid=current[1] if current else None)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._reload_forever())

    async def _reload_forever(self) -> None:
        while True:
            await asyncio.sleep(self._reload_s)
            with contextlib.suppress(Exception):  # logged in load; retried next period
                await self.load()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class StaticKeys:
    """A fixed set of public keys (a key source for benchmarks and embedded verifiers)."""

    def __init__(self, jwks: list[dict[str, Any]]) -> None:
        self._keys = {jwk["kid"]: jwt.PyJWK(jwk).key for jwk in jwks}

    def key(self, kid: str, now: float) -> Any | None:
        return self._keys.get(kid)

    def still_valid(self, kid: str, now: float) -> bool:
        return kid in self._keys

    async def refresh_unknown(self, kid: str) -> None:
        return None
