"""Completions, Responses and model retrieval through the pipeline, with the openai SDK;
and the upstream's model name never reaching a caller."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from gateway.admin import ops
from tests.support.gateway import GatewayFactory, RunningGateway

HIDDEN = "upstream-internal-name-7"  # what the upstream calls the model; callers never see it


@pytest.fixture(params=["sqlite", "postgres"])
def gw(
    request: pytest.FixtureRequest, gateway_factory: GatewayFactory, upstream_url: str
) -> RunningGateway:
    """A gateway with one extra model whose upstream name differs from its catalog name."""
    gw = gateway_factory.start(database=request.param)
    gw.run(
        lambda engine: ops.add_model(
            engine,
            name="renamed",
            upstream_url=upstream_url,
            upstream_model=HIDDEN,
            tier_floor="public",
        )
    )
    return gw


def _row(gw: RunningGateway, decision_id: str) -> dict[str, Any]:
    return gw.audit_row(decision_id)


def test_chat_json_and_stream_carry_the_catalog_name(gw: RunningGateway) -> None:
    """Regression: with `--upstream-model OTHER`, JSON and every stream chunk said OTHER."""
    client = gw.openai()
    reply = client.chat.completions.create(
        model="renamed", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.model == "renamed"
    headers = {"authorization": f"Bearer {gw.token()}"}
    body = {"model": "renamed", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    # Tiny upstream chunks: events split across reads must still be renamed whole.
    body["demo"] = {"chunks": 7}
    raw = httpx.post(f"{gw.base_url}/v1/chat/completions", json=body, headers=headers)
    assert raw.status_code == 200
    events = [line[6:] for line in raw.text.splitlines() if line.startswith("data: {")]
    assert len(events) >= 7
    assert {json.loads(e)["model"] for e in events} == {"renamed"}


def test_legacy_completions_plain_and_streamed(gw: RunningGateway) -> None:
    """`completions.create` works unchanged through the gateway, streamed too, audited."""
    client = gw.openai()
    raw = client.completions.with_raw_response.create(
        model="renamed", prompt="say hi", extra_body={"demo": {"chunks": 3}}
    )
    reply = raw.parse()
    assert reply.model == "renamed"
    # The demo model's text names the model it was asked for: proof the upstream got HIDDEN.
    assert reply.choices[0].text == f"Demo model {HIDDEN} says: alpha bravo charlie"
    row = _row(gw, raw.headers["x-decision-id"])
    assert (row["endpoint"], row["decision"], row["model"]) == ("completions", "allow", "renamed")
    stream = client.completions.create(
        model="general", prompt="say hi", stream=True, extra_body={"demo": {"chunks": 4}}
    )
    chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks if c.choices).endswith("charlie delta")
    assert {c.model for c in chunks} == {"general"}


def test_responses_plain_and_streamed(gw: RunningGateway) -> None:
    """`responses.create` works unchanged, and `response.model` is renamed in every event."""
    client = gw.openai()
    raw = client.responses.with_raw_response.create(
        model="renamed", input="hello", extra_body={"demo": {"chunks": 2}}
    )
    reply = raw.parse()
    assert reply.model == "renamed"
    assert reply.output_text.endswith("alpha bravo")
    assert _row(gw, raw.headers["x-decision-id"])["endpoint"] == "responses"
    events = list(client.responses.create(model="renamed", input="hello", stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert events[0].response.model == events[-1].response.model == "renamed"


def test_responses_output_cap_is_applied(gw: RunningGateway) -> None:
    """The policy's token cap reaches `max_output_tokens` of the Responses API."""
    client = gw.openai()
    reply = client.responses.create(
        model="general",
        input="x",
        max_output_tokens=10**6,
        extra_body={"demo": {"echo_body": True}},
    )
    sent = json.loads(reply.output_text)
    assert sent["max_output_tokens"] == 4096  # policies/data.json: public cap
    assert sent["model"] == "general"


def test_models_retrieve_filters_like_the_list(gw: RunningGateway) -> None:
    """`models.retrieve` shows a model the tier may use; a higher tier's model is a 404,
    exactly like a model that does not exist."""
    public = gw.openai("public")
    assert public.models.retrieve("general").id == "general"
    for name in ("cyber", "no-such-model"):
        with pytest.raises(openai.NotFoundError) as caught:
            public.models.retrieve(name)
        assert caught.value.code == "model_not_found"
        assert caught.value.body["message"] == f"The model '{name}' does not exist."  # type: ignore[index]
    assert gw.openai("critical").models.retrieve("cyber").id == "cyber"


def test_denial_names_both_tiers(gw: RunningGateway) -> None:
    """Regression: a public caller was told "Your verified tier does not include ..."."""
    with pytest.raises(openai.PermissionDeniedError) as caught:
        gw.openai("public").chat.completions.create(
            model="cyber", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.body["message"] == (  # type: ignore[index]
        "The model 'cyber' needs the 'critical' tier; your tier is 'public'."
    )
    row = _row(gw, caught.value.response.headers["x-decision-id"])
    # Every row whose request reached the policy names the policy version, denials too.
    assert row["decision"] == "deny" and row["policy_version"]
