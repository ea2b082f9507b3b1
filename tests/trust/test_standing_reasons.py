"""Denials name what happened to the organization or grant, through the real gateway."""

from __future__ import annotations

import json

import openai
import pytest

from gateway.admin import ops, orgs
from gateway.admin.actor import Actor
from gateway.reasons import Reason
from tests.support.gateway import GatewayFactory

DATABASES = pytest.mark.parametrize("database", ["sqlite", "postgres"])
MSG = [{"role": "user", "content": "hello"}]


def _refusal(client: openai.OpenAI, model: str) -> openai.PermissionDeniedError:
    with pytest.raises(openai.PermissionDeniedError) as err:
        client.chat.completions.create(model=model, messages=MSG)
    return err.value


@DATABASES
def test_revoked_org_is_refused_org_revoked(gateway_factory: GatewayFactory, database: str) -> None:
    """After `revoke`, the same token is refused on its next call with org_revoked alone."""
    gw = gateway_factory.start(database=database)
    client = gw.openai("critical")
    client.chat.completions.create(model="cyber", messages=MSG)
    gw.run(
        lambda e: orgs.revoke(e, actor=Actor.cli(), org_id=gw.org_ids["critical"], reason="test")
    )
    for model in ("cyber", "general"):
        err = _refusal(client, model)
        assert err.code == Reason.ORG_REVOKED
        row = gw.audit_row(err.response.headers["x-decision-id"])
        assert json.loads(row["reasons"]) == [Reason.ORG_REVOKED]
        assert row["tier"] == "public"  # nothing above the lowest tier without verification
    assert [m.id for m in client.models.list()] == []


@DATABASES
@pytest.mark.parametrize("status", ["applied", "verifying", "rejected"])
def test_unverified_org_is_refused_not_verified(
    gateway_factory: GatewayFactory, database: str, status: str
) -> None:
    """A token of an org that is not (or no longer) verified is refused with not_verified."""
    gw = gateway_factory.start(database=database)
    client = gw.openai("verified")
    gw.run(lambda e: ops.set_org_status(e, org_id=gw.org_ids["verified"], status=status))
    assert _refusal(client, "general").code == Reason.NOT_VERIFIED
