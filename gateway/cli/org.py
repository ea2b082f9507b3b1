"""`org`: organizations through their lifecycle, from the command line.

`create` and `grant` bootstrap an operator's own organizations; `apply`, `challenge`,
`check`, `approve`, `reject`, `suspend`, `reinstate` and `revoke` are the same
operations as the `/orgs` and `/admin` APIs, audited the same way (`--by` names the actor).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

import typer
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin import challenges, detail, grants, ops, orgs
from gateway.admin.schemas import OrganizationCreate, OrganizationPublic
from gateway.cli.context import By, actor, known_tier, org_named, parse_when, tiers, with_engine
from gateway.cli.output import JsonFlag, emit, emit_rows, fail, iso_utc
from gateway.settings import Settings
from gateway.trust.lifecycle import OrgStatus
from gateway.trust.proof import ProofChecker
from gateway.trust.sectors import check_country, check_sector

app = typer.Typer(help="Organizations: verification, review and tiers.", no_args_is_help=True)

Reason_ = Annotated[str, typer.Option("--reason", help="Why (shown to auditors).")]
Version = Annotated[
    int | None, typer.Option("--version", help="Refuse if the organization changed since.")
]


class BootstrapStatus(StrEnum):
    applied = "applied"
    verified = "verified"
    suspended = "suspended"


def _public(org: OrganizationPublic) -> dict[str, Any]:
    return {
        "org_id": org.id,
        "name": org.name,
        "status": org.status,
        "domain": org.domain,
        "sector": org.sector,
        "country": org.country,
        "version": org.version,
        "status_reason": org.status_reason,
    }


@app.command()
def create(
    name: str,
    status: Annotated[
        BootstrapStatus, typer.Option(help="Only verified organizations may call models.")
    ] = BootstrapStatus.verified,
    sector: Annotated[
        str | None, typer.Option(help="Critical-infrastructure sector (needed for critical).")
    ] = None,
    country: Annotated[str | None, typer.Option(help="ISO 3166-1 alpha-2 code.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create an organization directly (bootstrap; applicants use `org apply` or /orgs)."""
    checked_sector = check_sector(sector) if sector else None
    checked_country = check_country(country) if country else None

    async def work(engine: AsyncEngine) -> None:
        try:
            org = await ops.create_org(
                engine,
                name=name,
                status=status.value,
                sector=checked_sector,
                country=checked_country,
            )
        except IntegrityError:
            # Names are unique: the CLI and the audit log refer to organizations by name.
            fail(f"an organization named {name!r} already exists")
        emit({"org_id": org.id, "name": org.name, "status": org.status}, as_json=as_json)

    with_engine(work)


@app.command()
def apply(
    name: str,
    domain: Annotated[str, typer.Option(help="The domain the organization controls.")],
    sector: Annotated[str, typer.Option(help="One of the 16 critical-infrastructure sectors.")],
    country: Annotated[str, typer.Option(help="ISO 3166-1 alpha-2 code, e.g. US.")],
    evidence: Annotated[str, typer.Option(help="What supports the application.")] = "",
    by: By = "cli-admin",
    as_json: JsonFlag = False,
) -> None:
    """Apply for verification on an organization's behalf (`--by` becomes its org admin)."""
    application = OrganizationCreate(
        name=name, domain=domain, sector=sector, country=country, evidence=evidence
    )

    async def work(engine: AsyncEngine) -> None:
        org = await orgs.apply(engine, actor=actor(by), application=application)
        emit(_public(org), as_json=as_json)

    with_engine(work)


@app.command()
def challenge(
    name: str,
    method: Annotated[str, typer.Option(help="dns (TXT record) or https (well-known file).")] = (
        "dns"
    ),
    by: By = "cli-admin",
    as_json: JsonFlag = False,
) -> None:
    """Start a domain-proof challenge: prints the token and where to publish it."""
    ttl = Settings().verification.challenge_ttl_s

    async def work(engine: AsyncEngine) -> None:
        org = await org_named(engine, name)
        made = await challenges.start_challenge(
            engine, actor=actor(by), org_id=org.id, method=method, ttl=timedelta(seconds=ttl)
        )
        emit(
            {
                "challenge_id": made.id,
                "token": made.token,
                "expires_at": iso_utc(made.expires_at),
                "publish": made.instructions,
            },
            as_json=as_json,
        )

    with_engine(work)


@app.command()
def check(
    name: str,
    challenge_id: int,
    by: By = "cli-admin",
    as_json: JsonFlag = False,
) -> None:
    """Check a challenge now against the configured resolvers (or the HTTPS file)."""
    checker = ProofChecker(Settings().verification)

    async def work(engine: AsyncEngine) -> None:
        org = await org_named(engine, name)
        done = await challenges.check_challenge(
            engine, actor=actor(by), checker=checker, org_id=org.id, challenge_id=challenge_id
        )
        emit({"result": done.result, "evidence": done.evidence}, as_json=as_json)

    with_engine(work)


@app.command()
def approve(
    name: str,
    tier: Annotated[str, typer.Option(help="verified, or critical (critical infrastructure).")],
    days: Annotated[int | None, typer.Option(help="Grant length in days (default 365).")] = None,
    expires: Annotated[
        str | None, typer.Option(help="Instead of --days: expiry, ISO 8601 (UTC if no offset).")
    ] = None,
    reason: Reason_ = "",
    version: Version = None,
    by: By = "cli-admin",
    as_json: JsonFlag = False,
) -> None:
    """Approve a verifying organization (after a passed domain proof) with a tier."""
    known_tier(tier)
    until = parse_when(expires)

    async def work(engine: AsyncEngine) -> None:
        org = await org_named(engine, name)
        approved, grant = await orgs.approve(
            engine,
            actor=actor(by),
            tiers=tiers(),
            org_id=org.id,
            tier=tier,
            days=days,
            expires_at=until,
            reason=reason,
            expected_version=version,
        )
        emit(
            {
                **_public(approved),
                "grant_id": grant.id,
                "tier": grant.tier,
                "expires_at": iso_utc(grant.expires_at) if grant.expires_at else None,
            },
            as_json=as_json,
        )

    with_engine(work)


def _move(name: str, verb: str, **kw: Any) -> None:
    as_json = kw.pop("as_json")

    async def work(engine: AsyncEngine) -> None:
        org = await org_named(engine, name)
        moved = await getattr(orgs, verb)(engine, org_id=org.id, **kw)
        emit(_public(moved), as_json=as_json)

    with_engine(work)


@app.command()
def reject(
    name: str,
    reason: Reason_,
    version: Version = None,
    by: By = "cli-admin",
    as_json: JsonFlag = False,
) -> None:
    """Reject an application (final)."""
    _move(name, "reject", actor=actor(by), reason=reason, expected_version=version, as_json=as_json)


@app.command()
def suspend(
    name: str,
    reason: Reason_,
    version: Version = None,
    by: By = "cli-admin",
    as_json: JsonFlag = False,
) -> None:
    """Suspend a verified organization: its members are refused with org_suspended."""
    _move(
        name, "suspend", actor=actor(by), reason=reason, expected_version=version, as_json=as_json
    )


@app.command()
def reinstate(
    name: str,
    reason: Reason_ = "",
    version: Version = None,
    by: By = "cli-admin",
    as_json: JsonFlag = False,
) -> None:
    """Reinstate a suspended organization."""
    _move(
        name, "reinstate", actor=actor(by), reason=reason, expected_version=version, as_json=as_json
    )


@app.command()
def revoke(
    name: str,
    reason: Reason_,
    version: Version = None,
    by: By = "cli-admin",
    as_json: JsonFlag = False,
) -> None:
    """Revoke an organization for good, and every grant it holds."""
    _move(name, "revoke", actor=actor(by), reason=reason, expected_version=version, as_json=as_json)


@app.command()
def grant(
    name: str,
    tier: str,
    subject: Annotated[
        str | None, typer.Option(help="Grant to this subject only (never critical).")
    ] = None,
    expires: Annotated[
        str | None, typer.Option(help="Expiry, ISO 8601 (UTC if no offset); default 365 days.")
    ] = None,
    days: Annotated[int | None, typer.Option(help="Instead of --expires: length in days.")] = None,
    reason: Reason_ = "",
    evidence: Annotated[str, typer.Option(help="What was checked.")] = "",
    by: By = "cli-admin",
    as_json: JsonFlag = False,
) -> None:
    """Grant a verified organization (or one subject in it) a tier."""
    known_tier(tier)
    until = parse_when(expires)
    why = reason or evidence

    async def work(engine: AsyncEngine) -> None:
        org = await org_named(engine, name)
        if not why:
            fail("say why with --reason (or --evidence)")
        made = await grants.grant(
            engine,
            actor=actor(by),
            tiers=tiers(),
            org_id=org.id,
            tier=tier,
            reason=why,
            subject=subject,
            evidence=evidence,
            days=days,
            expires_at=until,
        )
        emit(
            {
                "grant_id": made.id,
                "org": name,
                "tier": tier,
                "subject": made.subject,
                "expires_at": iso_utc(made.expires_at) if made.expires_at else None,
            },
            as_json=as_json,
        )

    with_engine(work)


@app.command("list")
def list_(
    status: Annotated[
        OrgStatus | None, typer.Option(help="Only organizations in this state.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """List organizations with their status, domain and current tiers."""

    async def work(engine: AsyncEngine) -> None:
        found = await orgs.list_orgs(engine, status=status.value if status else None)
        live = await ops.active_tiers(engine, at=datetime.now(UTC))
        rows = [{**_public(o), "tiers": live.get(o.id, [])} for o in found]
        columns = ["name", "status", "tiers", "domain", "sector", "org_id"]
        emit_rows(rows, columns=columns, as_json=as_json)

    with_engine(work)


@app.command()
def show(name: str, as_json: JsonFlag = False) -> None:
    """One organization: application, proof attempts, grants, members, clients."""

    async def work(engine: AsyncEngine) -> None:
        org = await org_named(engine, name)
        full = await detail.show_org(engine, org_id=org.id)
        if as_json:
            print(full.model_dump_json())
            return
        emit(
            {**_public(full.organization), "evidence": full.organization.evidence},
            as_json=False,
            title=full.organization.name,
        )
        emit_rows(
            [
                {
                    "challenge": c.id,
                    "method": c.method,
                    "result": c.result or "-",
                    "checked_at": iso_utc(c.checked_at) if c.checked_at else None,
                }
                for c in full.challenges
            ],
            columns=["challenge", "method", "result", "checked_at"],
            as_json=False,
        )
        emit_rows(
            [
                {
                    "grant": g.id,
                    "tier": g.tier,
                    "subject": g.subject,
                    "live": g.live,
                    "expires_at": iso_utc(g.expires_at) if g.expires_at else None,
                }
                for g in full.grants
            ],
            columns=["grant", "tier", "subject", "live", "expires_at"],
            as_json=False,
        )
        emit_rows(
            [{"member": m.subject, "role": m.role} for m in full.members],
            columns=["member", "role"],
            as_json=False,
        )

    with_engine(work)


issuer_app = typer.Typer(
    help="Federated issuers an organization owns: their tokens map to it, and only theirs.",
    no_args_is_help=True,
)
app.add_typer(issuer_app, name="issuer")


@issuer_app.command("bind")
def issuer_bind(
    name: str,
    issuer: str,
    claim: Annotated[
        str | None,
        typer.Option(help="Only tokens whose organization claim has this value."),
    ] = None,
    subject: Annotated[str | None, typer.Option(help="Only tokens of this subject.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Bind the organization to an issuer listed in settings.federated_issuers."""

    async def work(engine: AsyncEngine) -> None:
        org = await org_named(engine, name)
        bound = await ops.bind_issuer(
            engine, org_id=org.id, issuer=issuer, org_claim=claim, subject=subject
        )
        emit(
            {
                "binding_id": bound.id,
                "org": name,
                "issuer": bound.issuer,
                "claim": claim,
                "subject": subject,
            },
            as_json=as_json,
        )

    with_engine(work)


@issuer_app.command("unbind")
def issuer_unbind(binding_id: int) -> None:
    """Remove a binding: the tokens it mapped are refused on their next request."""

    async def work(engine: AsyncEngine) -> None:
        try:
            await ops.unbind_issuer(engine, binding_id=binding_id)
        except LookupError:
            fail(f"no issuer binding {binding_id}")

    with_engine(work)


@issuer_app.command("list")
def issuer_list(
    name: Annotated[str | None, typer.Argument(help="Only this organization's.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List issuer bindings."""

    async def work(engine: AsyncEngine) -> None:
        owner = await org_named(engine, name) if name is not None else None
        orgs = {o.id: o.name for o in await ops.list_orgs(engine)}
        rows = [
            {
                "binding_id": b.id,
                "org": orgs.get(b.org_id, b.org_id),
                "issuer": b.issuer,
                "claim": b.org_claim,
                "subject": b.subject,
            }
            for b in await ops.list_issuer_bindings(engine, org_id=owner.id if owner else None)
        ]
        emit_rows(
            rows, columns=["binding_id", "org", "issuer", "claim", "subject"], as_json=as_json
        )

    with_engine(work)
