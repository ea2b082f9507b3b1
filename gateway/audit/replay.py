"""Decision replay: archive every policy bundle by hash, and evaluate old decisions again.

Each decision event carries the exact policy input text and the SHA-256 of the bundle
that decided. `explain` loads that bundle from the archive, evaluates the input with
the embedded engine, and compares allow/deny, reasons and obligations with what was
recorded, so an auditor can see why a request was decided as it was, after the policy
files have changed. The event is read from the log, so its input is as tamper-evident
as the decision itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, insert, select

from gateway.audit import ledger
from gateway.db.models import PolicyArchive
from gateway.policy.bundle import PolicyBundle, bundle_of
from gateway.policy.decision import Decision, Obligations
from gateway.policy.embedded import EmbeddedEngine

ARCHIVE = PolicyArchive.__table__  # type: ignore[attr-defined]


class ReplayError(LookupError):
    """The decision, its input or its bundle is not there to replay."""


def archive_bundle(conn: Connection, bundle: PolicyBundle, *, now: datetime) -> bool:
    """Keep `bundle` by its hash (idempotent); True when it was new."""
    known = conn.execute(select(ARCHIVE.c.sha256).where(ARCHIVE.c.sha256 == bundle.sha256))
    if known.first() is not None:
        return False
    conn.execute(
        insert(ARCHIVE),
        {
            "sha256": bundle.sha256,
            "version": bundle.version,
            "modules": orjson.dumps(bundle.modules).decode(),
            "data_text": bundle.data_text,
            "created_at": now,
        },
    )
    return True


def archived_bundle(conn: Connection, sha256: str) -> PolicyBundle:
    row = conn.execute(select(ARCHIVE).where(ARCHIVE.c.sha256 == sha256)).first()
    if row is None:
        raise ReplayError(f"policy bundle {sha256} is not in the archive")
    bundle = bundle_of(orjson.loads(row.modules), row.data_text)
    if bundle.sha256 != sha256:
        # The archive row was altered: do not replay a policy other than the one that decided.
        raise ReplayError(f"archived bundle {sha256} does not hash to its key")
    return bundle


def archived_version(conn: Connection, version: str) -> PolicyBundle:
    """The archived bundle of a policy version (its SHA-256 prefix)."""
    row = conn.execute(select(ARCHIVE.c.sha256).where(ARCHIVE.c.version == version)).first()
    if row is None:
        raise ReplayError(f"policy version {version} is not in the archive")
    return archived_bundle(conn, row.sha256)


@dataclass(frozen=True)
class Explanation:
    decision_id: str
    event: dict[str, Any]
    policy_input: dict[str, Any]
    recorded: Decision
    replayed: Decision

    @property
    def reproduced(self) -> bool:
        r, p = self.recorded, self.replayed
        return (r.allow, r.reasons, r.obligations) == (p.allow, p.reasons, p.obligations)


async def explain(bundle: PolicyBundle, event: dict[str, Any]) -> Explanation:
    """Evaluate the event's policy input again with `bundle` (the one that decided)."""
    policy = event.get("policy")
    if not isinstance(policy, dict) or not isinstance(policy.get("input"), str):
        reasons = ", ".join(event.get("reasons", []))
        raise ReplayError(
            f"decision {event.get('decision_id')} has no policy input to replay "
            f"(decided before or without a single policy evaluation: {reasons})"
        )
    if bundle.version != policy.get("version"):
        raise ReplayError("that is not the bundle that decided")
    doc = orjson.loads(policy["input"])
    replayed = await EmbeddedEngine(bundle, memo_size=0).decide(doc)
    obligations = policy.get("obligations") or {}
    recorded = Decision(
        allow=policy.get("allow") is True,
        reasons=tuple(policy.get("reasons") or ()),
        obligations=Obligations(
            max_tokens=int(obligations.get("max_tokens", 0)),
            keep_prompt=obligations.get("keep_prompt") is True,
        ),
        policy_version=str(policy.get("version")),
    )
    return Explanation(str(event.get("decision_id")), event, doc, recorded, replayed)


def load_decision(conn: Connection, decision_id: str) -> tuple[PolicyBundle, dict[str, Any]]:
    """The decision's event from the log and the bundle that decided it, for `explain`."""
    event = decision_event(conn, decision_id)
    policy = event.get("policy")
    if not isinstance(policy, dict):
        reasons = ", ".join(event.get("reasons", []))
        raise ReplayError(
            f"decision {decision_id} has no policy input to replay "
            f"(decided before or without a single policy evaluation: {reasons})"
        )
    if policy.get("bundle_sha256"):
        return archived_bundle(conn, str(policy["bundle_sha256"])), event
    return archived_version(conn, str(policy.get("version"))), event


def decision_event(conn: Connection, decision_id: str) -> dict[str, Any]:
    leaf = ledger.leaf_of(conn, decision_id=decision_id, kind="decision")
    if leaf is None:
        raise ReplayError(f"no decision {decision_id} in the log")
    return dict(orjson.loads(leaf.event))
