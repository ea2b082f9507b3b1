"""Smoke: a real call through every stage, with the official SDK."""

import openai
import pytest

from tests.support.gateway import GatewayFactory


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_allowed_and_denied_calls_are_audited(
    gateway_factory: GatewayFactory, database: str
) -> None:
    gw = gateway_factory.start(database=database)
    client = gw.openai("public")
    raw = client.chat.completions.with_raw_response.create(
        model="general", messages=[{"role": "user", "content": "hello"}]
    )
    reply = raw.parse()
    assert reply.choices[0].message.content.startswith("Demo model general says:")
    allowed = gw.audit_row(raw.headers["x-decision-id"])
    assert (allowed["decision"], allowed["status"], allowed["tier"]) == ("allow", 200, "public")

    with pytest.raises(openai.PermissionDeniedError) as denied:
        client.chat.completions.create(model="cyber", messages=[{"role": "user", "content": "x"}])
    assert denied.value.code == "tier_too_low"
    row = gw.audit_row(denied.value.response.headers["x-decision-id"])
    assert (row["decision"], row["status"], row["model"]) == ("deny", 403, "cyber")
