"""Admin actions (trust's `record_admin_event` / `record_refusal`) are leaves of the log.

They are written in the admin change's own transaction, not by the audit writer: each
must still land in the log, in commit order, between the writer's batches, and the log
must verify afterwards — on SQLite and PostgreSQL.
"""

from __future__ import annotations

import orjson
from sqlalchemy.exc import IntegrityError

from gateway.admin import clients, orgs
from gateway.admin.actor import Actor
from gateway.admin.auditlog import record_refusal
from gateway.audit import ledger
from gateway.audit.checkpoint import NoteSigner
from gateway.audit.verify import verify_log
from tests.admin.flow import APPLICANT, application
from tests.audit.conftest import T0, LogDb, leaf_input

ADMIN = Actor(subject="alice-admin", roles=("admin",))


async def test_admin_actions_are_leaves_and_the_log_verifies(
    log_db: LogDb, policy: ledger.CheckpointPolicy, signer: NoteSigner
) -> None:
    # The audit writer appended first, and keeps its tip between batches.
    first = await log_db.run(ledger.append, [leaf_input(i) for i in range(3)], now=T0)
    org = await orgs.apply(log_db.engine, actor=APPLICANT, application=application())
    issued = await clients.create_client(
        log_db.engine, actor=ADMIN, org_id=org.id, name="auditors", roles=["auditor"]
    )
    await record_refusal(
        log_db.engine,
        actor=APPLICANT,
        action="org.approve",
        target={"org_id": org.id},
        reasons=("admin_role_required",),
    )

    rows = await log_db.sql("SELECT id, endpoint, decision, detail FROM auditevent ORDER BY ts, id")
    assert [r.endpoint for r in rows] == [
        "admin.org.apply",
        "admin.client.create",
        "admin.org.approve",
    ]
    leaves = await log_db.run(lambda c: list(ledger.iter_leaves(c, start=0, end=6)))
    assert [leaf.index for leaf in leaves] == list(range(6))  # dense, after the writer's three
    for row, leaf in zip(rows, leaves[3:], strict=True):
        assert leaf.decision_id == row.id and leaf.kind == "decision"
        event = orjson.loads(leaf.event)
        assert event["action"] == "admin_action" and event["endpoint"] == row.endpoint
        assert event["decision"] == row.decision and event["detail"] == row.detail
    created = orjson.loads(orjson.loads(leaves[4].event)["detail"])
    assert (
        created["after"]["id"] == issued.client_id and created["actor"]["subject"] == "alice-admin"
    )
    refused = orjson.loads(leaves[5].event)
    assert refused["status"] == 403 and refused["reasons"] == ["admin_role_required"]

    # The writer's next batch, from the tip it kept: the log moved under it. On
    # PostgreSQL it sees that under the lock; on SQLite its insert fails and the writer
    # retries with the edge read again (gateway/audit/writer.py) — as here.
    try:
        after = await log_db.run(
            ledger.append, [leaf_input(10)], now=T0, policy=policy, known=first.tip
        )
    except IntegrityError:
        assert log_db.kind == "sqlite"
        after = await log_db.run(ledger.append, [leaf_input(10)], now=T0, policy=policy)
    assert after.first_index == 6 and after.size == 7
    await log_db.run(ledger.checkpoint_if_due, now=T0, policy=policy, force=True)
    report = await log_db.run(verify_log, verifier=signer.verifier)
    assert report.ok, report.problem
    assert report.size == 7
