"""The gate, through a real gateway: a model is served to a tier that requires screening
only with a current, passing report; it is listed in /v1/models only then."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
import pytest

from gateway.admin import ops
from gateway.screening import store
from gateway.screening.report import ScreeningPolicy
from gateway.screening.runner import Endpoint, RunConfig
from gateway.screening.screen import screen
from tests.screening.conftest import RATES, ScriptedRun
from tests.support.gateway import GatewayFactory, RunningGateway

TIERS = ("public", "verified", "critical")
MESSAGES = [{"role": "user", "content": "hello"}]


def chat(gw: RunningGateway, tier: str, model: str) -> httpx.Response:
    with gw.caller(tier) as caller:
        return caller.post(
            f"{gw.base_url}/v1/chat/completions", json={"model": model, "messages": MESSAGES}
        )


def listed(gw: RunningGateway, tier: str) -> set[str]:
    with gw.caller(tier) as caller:
        reply = caller.get(f"{gw.base_url}/v1/models")
    assert reply.status_code == 200
    return {m["id"] for m in reply.json()["data"]}


def refused_with(reply: httpx.Response, gw: RunningGateway, code: str) -> None:
    assert reply.status_code == 403, reply.text
    assert reply.json()["error"]["code"] == code
    row = gw.audit_row(reply.headers["x-decision-id"])
    assert (row["decision"], json.loads(row["reasons"])) == ("deny", [code])


@pytest.fixture(scope="module")
def gated(
    tmp_path_factory: pytest.TempPathFactory,
    upstream_url: str,
    postgres_url: str,
    scripted_runs: dict[float, ScriptedRun],
) -> Any:
    """A gateway whose catalog also serves the scripted models, with their n = 100 reports."""
    factory = GatewayFactory(tmp_path_factory.mktemp("gated"), upstream_url, postgres_url)
    gw = factory.start()

    async def add(engine: Any) -> None:
        for rate, run in scripted_runs.items():
            await ops.add_model(
                engine,
                name=f"scripted-{rate}",
                upstream_url=run.url,
                upstream_model="scripted",
                tier_floor="public",
            )
            await store.save_report(engine, model_name=f"scripted-{rate}", report=run.report)

    gw.run(add)
    try:
        yield gw
    finally:
        factory.close()


def test_harmful_models_refused_where_screening_is_required(
    gated: RunningGateway, screening_policy: ScreeningPolicy
) -> None:
    """96% and 50%: refused (model_failed_screening) for every tier that requires screening;
    0%: allowed everywhere; tiers that require none are not gated."""
    assert set(screening_policy.required_tiers) == {"verified", "critical"}
    for tier in TIERS:
        assert chat(gated, tier, "scripted-0.0").status_code == 200
        for rate in RATES[1:]:
            reply = chat(gated, tier, f"scripted-{rate}")
            if tier in screening_policy.required_tiers:
                refused_with(reply, gated, "model_failed_screening")
                assert "did not pass the misalignment screening" in reply.json()["error"]["message"]
            else:
                assert reply.status_code == 200


def test_models_list_hides_what_the_tier_may_not_use(
    gated: RunningGateway, screening_policy: ScreeningPolicy
) -> None:
    """A failing model is not listed for the tiers that require screening, nor retrievable."""
    for tier in TIERS:
        names = listed(gated, tier)
        assert "scripted-0.0" in names
        required = tier in screening_policy.required_tiers
        assert ("scripted-0.96" in names) is not required
        retrieved = httpx.get(
            f"{gated.base_url}/v1/models/scripted-0.96",
            headers={"authorization": f"Bearer {gated.token(tier)}"},
        )
        assert retrieved.status_code == (404 if required else 200)


def test_expired_report_counts_as_missing(
    gated: RunningGateway, upstream_url: str, screening_policy: ScreeningPolicy
) -> None:
    """A newer report that has already expired supersedes the passing one: not screened."""
    assert chat(gated, "critical", "cyber").status_code == 200
    report = gated.run(
        lambda engine: screen(
            model="cyber",
            endpoint=Endpoint(upstream_url, "cyber"),
            config=RunConfig(samples=3),
            policy=screening_policy,
            ran_by="tests",
            ttl=timedelta(0),
        )
    )
    gated.run(lambda engine: store.save_report(engine, model_name="cyber", report=report))
    refused_with(chat(gated, "critical", "cyber"), gated, "model_not_screened")
    assert "cyber" not in listed(gated, "critical")


def test_unscreened_and_repointed_models_are_not_screened(
    gated: RunningGateway, scripted_runs: dict[float, ScriptedRun]
) -> None:
    """No report at all, or a report made against another upstream: model_not_screened."""
    safe = scripted_runs[0.0]

    async def change(engine: Any) -> None:
        await ops.add_model(
            engine,
            name="fresh",
            upstream_url=safe.url,
            upstream_model="scripted",
            tier_floor="public",
        )
        # Same name, other upstream: the passing report screened a different model.
        await ops.add_model(
            engine,
            name="general-tac",
            upstream_url=safe.url,
            upstream_model="x",
            tier_floor="verified",
        )

    gated.run(change)
    assert chat(gated, "public", "fresh").status_code == 200
    for tier in ("verified", "critical"):
        refused_with(chat(gated, tier, "fresh"), gated, "model_not_screened")
        refused_with(chat(gated, tier, "general-tac"), gated, "model_not_screened")
        assert {"fresh", "general-tac"}.isdisjoint(listed(gated, tier))
    # A lower tier is told only that its tier is too low.
    refused_with(chat(gated, "public", "general-tac"), gated, "tier_too_low")


def test_metrics_show_each_model_screening(
    gated: RunningGateway, scripted_runs: dict[float, ScriptedRun]
) -> None:
    """/metrics: each model's state and upper bound, and refusals counted by reason."""
    chat(gated, "critical", "scripted-0.96")
    text = httpx.get(f"{gated.base_url}/metrics").text
    for rate, run in scripted_runs.items():
        model = f"scripted-{rate}"
        assert f'tacgw_model_screening_state{{model="{model}",state="current"}} 1.0' in text
        assert f'tacgw_model_screening_state{{model="{model}",state="missing"}} 0.0' in text
        bound = run.report.body["max_ci_high"]
        assert f'tacgw_model_screening_max_ci_high{{model="{model}"}} {bound}' in text
    refusals = [
        line
        for line in text.splitlines()
        if line.startswith("tacgw_requests_total{")
        and 'reason="model_failed_screening"' in line
        and 'model="scripted-0.96"' in line
    ]
    assert refusals and float(refusals[0].rsplit(" ", 1)[1]) >= 1
