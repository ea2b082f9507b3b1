"""PostgreSQL (trust, catalog and the audit log) stopped and started under load."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.load import Load, metric, readiness
from tests.support.gateway import GatewayFactory
from tests.support.services import StoppablePostgres

# What a request may be refused with while the database is away, by the stage that meets
# it first: trust (unless its standing is cached), the catalog, or the audit write.
STORE_DOWN = {"trust_unavailable", "catalog_unavailable", "audit_unavailable"}


@pytest.fixture
def postgres() -> Iterator[StoppablePostgres]:
    server = StoppablePostgres()
    try:
        server.start()
        yield server
    finally:
        server.remove()


def test_postgres_stopped_and_started_under_load(
    tmp_path: Path, upstream_url: str, postgres: StoppablePostgres
) -> None:
    """While PostgreSQL is down every reply is a 200 or a 503 with a store reason (never a
    500, never an answer without its audit row); /readyz not ready; audit failures are
    counted; the same gateway serves and audits again once PostgreSQL is back."""
    factory = GatewayFactory(tmp_path, upstream_url, postgres.url)
    try:
        gw = factory.start(database="postgres")
        with Load(gw, gw.token("public")) as load:
            load.wait_for(lambda r: r.status == 200, "served before the fault")

            postgres.stop()
            load.wait_for(lambda r: r.status == 503, "refused while PostgreSQL is down")
            status, checks = readiness(gw)
            assert status == 503 and checks["database"] is False
            load.after(load.count(), 5)

            postgres.start()
            load.wait_for(lambda r: r.status == 200, "served again after the restart")
            load.after(load.count(), 5)
        assert not load.failures
        assert readiness(gw)[0] == 200

        codes = {r.code for r in load.replies if r.status != 200}
        assert {r.status for r in load.replies} == {200, 503}
        assert codes and codes <= STORE_DOWN, codes
        assert metric(gw.base_url, "tacgw_audit_failures_total") >= 1
        rows = {row["id"]: row for row in gw.audit_rows()}
        served = [r for r in load.replies if r.status == 200]
        for reply in served:  # every answer a caller got is in the audit log
            assert rows[str(reply.decision_id)]["status"] == 200
        # A refusal whose audit write failed is in the metric above, not in the log: the
        # gateway never claims a row it could not write.
        for reply in (r for r in load.replies if r.status == 503):
            assert reply.decision_id not in rows or rows[reply.decision_id]["decision"] == "deny"
        # Writing again after recovery: the last answer's row is there.
        assert gw.audit_row(str(served[-1].decision_id))["decision"] == "allow"
    finally:
        factory.close()
