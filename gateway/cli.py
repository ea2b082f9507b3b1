"""`tac-gateway`: run, migrate, and bootstrap organizations, clients and models."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin import ops
from gateway.app import create_app
from gateway.db.engine import make_engine
from gateway.db.migrate import upgrade
from gateway.policy.bundle import load_bundle
from gateway.serve import run_server
from gateway.settings import Settings


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        args.func(args)
    except ValidationError as exc:
        # An operator's mistake, not a crash: every bad field, one per line, no traceback.
        lines = [f"  {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        sys.exit("invalid settings:\n" + "\n".join(lines))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tac-gateway", description=__doc__)
    sub = p.add_subparsers(required=True)

    s = sub.add_parser("serve", help="run the gateway")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8080)
    s.set_defaults(func=_serve)

    s = sub.add_parser("migrate", help="create or upgrade the database schema")
    s.set_defaults(func=lambda a: upgrade(Settings().database_url))

    s = sub.add_parser("demo", help="run the quickstart: demo model server + gateway on SQLite")
    s.add_argument("--port", type=int, default=8080)
    s.add_argument("--upstream-port", type=int, default=8081)
    s.set_defaults(func=_demo)

    org = sub.add_parser("org", help="organizations").add_subparsers(required=True)
    s = org.add_parser("create")
    s.add_argument("name")
    s.add_argument("--status", default="verified", choices=["applied", "verified", "suspended"])
    s.set_defaults(func=lambda a: _db(lambda e: _org_create(e, a)))
    s = org.add_parser("grant", help="grant an organization a tier")
    s.add_argument("name")
    s.add_argument("tier")
    s.add_argument("--by", default="cli-admin")
    s.add_argument("--evidence", default="")
    s.set_defaults(func=lambda a: _db(lambda e: _org_grant(e, a)))

    clients = sub.add_parser("client", help="OAuth clients").add_subparsers(required=True)
    c = clients.add_parser("create", help="create a client and print its credentials once")
    c.add_argument("org")
    c.add_argument("--name", default="cli client")
    c.set_defaults(func=lambda a: _db(lambda e: _client_create(e, a)))

    models = sub.add_parser("model", help="model catalog").add_subparsers(required=True)
    m = models.add_parser("add")
    m.add_argument("name")
    m.add_argument("--upstream", required=True, help="base URL, e.g. http://vllm:8000/v1")
    m.add_argument("--upstream-model", help="name at the upstream (default: same)")
    m.add_argument("--tier", required=True, help="lowest tier that may use it")
    m.set_defaults(func=lambda a: _db(lambda e: _model_add(e, a)))

    audit = sub.add_parser("audit", help="audit log").add_subparsers(required=True)
    t = audit.add_parser("tail", help="most recent decisions")
    t.add_argument("-n", type=int, default=20)
    t.set_defaults(func=lambda a: _db(lambda e: _audit_tail(e, a)))
    return p


def _serve(args: argparse.Namespace) -> None:
    settings = Settings()
    upgrade(settings.database_url)
    run_server(create_app(settings), host=args.host, port=args.port)


def _db(work: Callable[[AsyncEngine], Awaitable[None]]) -> None:
    async def go() -> None:
        engine = make_engine(Settings().database_url)
        try:
            await work(engine)
        finally:
            await engine.dispose()

    asyncio.run(go())


async def _org_create(engine: AsyncEngine, a: argparse.Namespace) -> None:
    org = await ops.create_org(engine, name=a.name, status=a.status)
    print(json.dumps({"org_id": org.id, "name": org.name, "status": org.status}))


def _known_tier(tier: str) -> str:
    """The tier, if the policy knows it; a typo would otherwise grant nothing, silently."""
    tiers = load_bundle(Settings().policy_dir).tiers
    if tier not in tiers:
        sys.exit(f"unknown tier {tier!r}; the policy's tiers are: {', '.join(tiers)}")
    return tier


async def _org_grant(engine: AsyncEngine, a: argparse.Namespace) -> None:
    _known_tier(a.tier)
    org = await _org(engine, a.name)
    grant = await ops.grant_tier(
        engine, org_id=org.id, tier=a.tier, granted_by=a.by, evidence=a.evidence
    )
    print(json.dumps({"grant_id": grant.id, "org": a.name, "tier": a.tier}))


async def _client_create(engine: AsyncEngine, a: argparse.Namespace) -> None:
    org = await _org(engine, a.org)
    creds = await ops.create_client(engine, org_id=org.id, name=a.name)
    print(json.dumps({"client_id": creds.client_id, "client_secret": creds.client_secret}))


async def _model_add(engine: AsyncEngine, a: argparse.Namespace) -> None:
    _known_tier(a.tier)
    entry = await ops.add_model(
        engine,
        name=a.name,
        upstream_url=a.upstream,
        upstream_model=a.upstream_model or a.name,
        tier_floor=a.tier,
    )
    print(json.dumps({"model": entry.name, "tier_floor": entry.tier_floor}))


async def _audit_tail(engine: AsyncEngine, a: argparse.Namespace) -> None:
    for ev in reversed(await ops.recent_audit(engine, limit=a.n)):
        print(
            f"{ev.ts:%H:%M:%S} {ev.id[:12]} {ev.decision:5} {ev.status} "
            f"tier={ev.tier or '-'} model={ev.model or '-'} sub={ev.subject or '-'} "
            f"reasons={ev.reasons}"
        )


async def _org(engine: AsyncEngine, name: str) -> Any:
    org = await ops.find_org(engine, name=name)
    if org is None:
        sys.exit(f"no organization named {name!r}")
    return org


def _demo(args: argparse.Namespace) -> None:
    from gateway.demo.run import run_demo

    run_demo(port=args.port, upstream_port=args.upstream_port)


if __name__ == "__main__":
    main()
