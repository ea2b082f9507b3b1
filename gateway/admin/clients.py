"""Service clients of an organization: create, list, rotate the secret, revoke.

A client's roles are what its tokens carry. `admin` and `auditor` are the gateway
operator's to give (CLI, or an admin); an org admin may give only `org_admin`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin import fields
from gateway.admin.actor import Actor
from gateway.admin.auditlog import record_admin_event, snapshot
from gateway.admin.schemas import ClientPublic, IssuedClient
from gateway.admin.store import CLIENT, org_row, write
from gateway.db.models import utcnow
from gateway.errors import BadRequest, Conflict, NotFound
from gateway.issuer.secrets import hash_secret, new_client_id, new_client_secret
from gateway.reasons import Reason

CLIENT_ROLES = fields.CLIENT_ROLES


def check_roles(roles: list[str] | tuple[str, ...]) -> str:
    unknown = [r for r in roles if r not in CLIENT_ROLES]
    if unknown:
        raise BadRequest(
            Reason.FIELD_INVALID,
            f"Unknown role {unknown[0][:20]!r}; one of: {', '.join(CLIENT_ROLES)}.",
        )
    return " ".join(sorted(set(roles)))


def _no_secret(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "secret_hash"}


async def create_client(
    engine: AsyncEngine,
    *,
    actor: Actor,
    org_id: str,
    name: str,
    roles: list[str] | tuple[str, ...] = (),
) -> IssuedClient:
    label = fields.text(name, field="name", max_len=fields.MAX_NAME)
    role_text = check_roles(roles)
    secret = new_client_secret()
    row: dict[str, Any] = {
        "id": new_client_id(),
        "org_id": org_id,
        "name": label,
        "secret_hash": hash_secret(secret),
        "roles": role_text,
        "created_at": utcnow(),
        "revoked_at": None,
    }
    async with write(engine) as conn:
        await org_row(conn, org_id)
        await conn.execute(insert(CLIENT), row)
        await record_admin_event(
            conn,
            actor=actor,
            action="client.create",
            target={"org_id": org_id, "client_id": row["id"], "roles": role_text},
            before=None,
            after=snapshot(_no_secret(row)),
            org_id=org_id,
        )
    return IssuedClient(client_id=row["id"], client_secret=secret, org_id=org_id, roles=role_text)


async def get_client(engine: AsyncEngine, *, client_id: str) -> ClientPublic:
    async with engine.connect() as conn:
        row = (
            (await conn.execute(select(CLIENT).where(CLIENT.c.id == client_id))).mappings().first()
        )
    if row is None:
        raise NotFound(Reason.CLIENT_NOT_FOUND, f"No client {client_id[:64]!r}.")
    return ClientPublic.model_validate(_no_secret(dict(row)))


async def list_clients(engine: AsyncEngine, *, org_id: str | None = None) -> list[ClientPublic]:
    query = select(CLIENT).order_by(CLIENT.c.created_at, CLIENT.c.id)
    if org_id is not None:
        query = query.where(CLIENT.c.org_id == org_id)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [ClientPublic.model_validate(_no_secret(dict(r))) for r in rows]


async def revoke_client(engine: AsyncEngine, *, actor: Actor, client_id: str) -> ClientPublic:
    """Its tokens are refused on their next request (`client_revoked`), and no new ones."""
    return await _change(engine, actor=actor, client_id=client_id, action="client.revoke")


async def rotate_client(engine: AsyncEngine, *, actor: Actor, client_id: str) -> IssuedClient:
    """A new secret; the old one stops working at once. Tokens already issued run out."""
    secret = new_client_secret()
    client = await _change(
        engine, actor=actor, client_id=client_id, action="client.rotate", secret=secret
    )
    return IssuedClient(
        client_id=client.id, client_secret=secret, org_id=client.org_id, roles=client.roles
    )


async def _change(
    engine: AsyncEngine, *, actor: Actor, client_id: str, action: str, secret: str | None = None
) -> ClientPublic:
    async with write(engine) as conn:
        where = CLIENT.c.id == client_id
        before = (await conn.execute(select(CLIENT).where(where))).mappings().first()
        if before is None:
            raise NotFound(Reason.CLIENT_NOT_FOUND, f"No client {client_id[:64]!r}.")
        values: dict[str, Any] = (
            {"secret_hash": hash_secret(secret)} if secret else {"revoked_at": utcnow()}
        )
        done = await conn.execute(
            update(CLIENT).where(where, CLIENT.c.revoked_at.is_(None)).values(**values)
        )
        if done.rowcount != 1:
            raise Conflict(Reason.ALREADY_REVOKED, f"Client {client_id} is revoked.")
        after = (await conn.execute(select(CLIENT).where(where))).mappings().one()
        await record_admin_event(
            conn,
            actor=actor,
            action=action,
            target={"org_id": after["org_id"], "client_id": client_id},
            before=snapshot(_no_secret(dict(before))),
            after=snapshot(_no_secret(dict(after))),
            org_id=after["org_id"],
        )
    return ClientPublic.model_validate(_no_secret(dict(after)))
