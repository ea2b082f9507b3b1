"""Usage through the real gateway: streamed and whole answers both debit the budget, by
what they really used; the budget's end is `budget_exhausted`; usage is visible to
admins (API, CLI) and in metrics, estimated figures marked as such."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime

import httpx
import openai
import pytest

from tests.limits.support import (
    CALL_TOKENS,
    HI,
    admin_token,
    metric,
    post_chat,
    public_limits,
    wait_until,
)
from tests.support.gateway import GatewayFactory, RunningGateway
from tests.support.services import REPO_ROOT

BUDGET = 90
RESERVE = 1 + 50  # prompt "hi" + max_tokens 50


def tokens_counted(gw: RunningGateway) -> float:
    return metric(gw.base_url, "tacgw_tokens_total", tier="public", model="general")


@pytest.fixture
def gw(gateway_factory: GatewayFactory, redis_url: str) -> RunningGateway:
    return gateway_factory.start(
        rate_limit_storage=redis_url,
        tier_limits=public_limits(daily_tokens=BUDGET),
        usage_flush_s=0.1,
    )


def test_streams_and_whole_answers_debit_what_they_used(gw: RunningGateway) -> None:
    """Each call holds its prompt guess plus max_tokens (51) while it runs, then is debited
    the 10 tokens it used; the remaining-budget header shows both, for streams as well."""
    token = gw.token("public")
    client = gw.openai("public")

    whole = post_chat(gw.base_url, token, max_tokens=50)
    assert whole.status_code == 200, whole.text
    assert whole.json()["usage"]["total_tokens"] == CALL_TOKENS
    # Reserved 51 of 100 at admission; settled to 10 before the answer was sent.
    assert whole.headers["x-ratelimit-limit-budget"] == str(BUDGET)
    assert whole.headers["x-ratelimit-remaining-budget"] == str(BUDGET - RESERVE)

    # A stream whose caller did not ask for usage: the gateway asked, read it, dropped it.
    raw = client.chat.completions.with_raw_response.create(
        model="general", messages=HI, max_tokens=50, stream=True
    )
    assert raw.headers["x-ratelimit-remaining-budget"] == str(BUDGET - CALL_TOKENS - RESERVE)
    chunks = list(raw.parse())
    assert all(c.usage is None for c in chunks) and chunks[-1].choices
    wait_until(lambda: tokens_counted(gw) == 2 * CALL_TOKENS, "the stream's usage")

    # A stream whose caller asked: it gets the usage event, and it is debited once.
    stream = client.chat.completions.create(
        model="general",
        messages=HI,
        max_tokens=50,
        stream=True,
        stream_options={"include_usage": True},
    )
    usage = [c.usage for c in stream if c.usage is not None]
    assert [u.total_tokens for u in usage] == [CALL_TOKENS]
    wait_until(lambda: tokens_counted(gw) == 3 * CALL_TOKENS, "the second stream's usage")

    # 30 used: 30 + 51 fits, and leaves 9.
    fits = post_chat(gw.base_url, token, max_tokens=50)
    assert fits.headers["x-ratelimit-remaining-budget"] == str(BUDGET - 3 * CALL_TOKENS - RESERVE)
    # 40 used: a reservation of 51 no longer fits, one of 10 does.
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="general", messages=HI, max_tokens=50)
    refused = caught.value.response
    assert caught.value.code == "budget_exhausted"
    assert refused.headers["ratelimit-remaining"] == str(BUDGET - 4 * CALL_TOKENS)
    # The daily budget frees at midnight UTC: that is what Retry-After says.
    to_midnight = 86_400 - time.time() % 86_400
    assert abs(int(refused.headers["retry-after"]) - to_midnight) <= 2
    row = gw.audit_row(refused.headers["x-decision-id"])
    assert (row["decision"], row["status"], json.loads(row["reasons"])) == (
        "deny",
        429,
        ["budget_exhausted"],
    )
    assert post_chat(gw.base_url, token).status_code == 200  # max_tokens 9: reserves 10


def test_budget_spent_by_streams_refuses_the_next_call(gw: RunningGateway) -> None:
    """Streams alone spend the budget: nine 10-token streams, then `budget_exhausted`."""
    client = gw.openai("public")
    for _ in range(BUDGET // CALL_TOKENS):
        text = "".join(
            c.choices[0].delta.content or ""
            for c in client.chat.completions.create(
                model="general", messages=HI, max_tokens=9, stream=True
            )
            if c.choices
        )
        assert text.endswith("echo")
    wait_until(lambda: tokens_counted(gw) == BUDGET, "every stream's usage")
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="general", messages=HI, max_tokens=9, stream=True)
    assert caught.value.code == "budget_exhausted"
    assert caught.value.response.headers["ratelimit-remaining"] == "0"


def test_usage_visible_to_admins_and_in_metrics(gw: RunningGateway) -> None:
    """Per organization, model and day: the admin API, the CLI and Prometheus agree; a call
    whose upstream reported nothing is counted by the gateway and marked estimated."""
    token = gw.token("public")
    assert post_chat(gw.base_url, token).status_code == 200
    estimated = post_chat(gw.base_url, token, demo={"no_usage": True})
    assert estimated.status_code == 200 and "usage" not in estimated.json()
    org = gw.org_ids["public"]
    admin = {"authorization": f"Bearer {admin_token(gw, ['admin'])}"}

    def rows() -> list[dict[str, object]]:
        reply = httpx.get(f"{gw.base_url}/admin/usage", params={"org_id": org}, headers=admin)
        assert reply.status_code == 200, reply.text
        return list(reply.json()["data"])

    wait_until(lambda: bool(rows()) and rows()[0]["requests"] == 2, "the usage flush")
    (row,) = rows()
    today = datetime.now(UTC).date().isoformat()
    assert (row["org_id"], row["model"], row["day"]) == (org, "general", today)
    assert row["estimated_requests"] == 1
    assert row["prompt_tokens"] == 1 + 1  # "hi" by the upstream, and by o200k_base
    # The estimate counts the reply with o200k_base, not the upstream's words.
    assert row["total_tokens"] == row["prompt_tokens"] + row["completion_tokens"]
    assert row["completion_tokens"] > 9
    assert metric(gw.base_url, "tacgw_tokens_total", source="estimated", kind="prompt") == 1

    auditor = {"authorization": f"Bearer {admin_token(gw, ['auditor'])}"}
    assert httpx.get(f"{gw.base_url}/admin/usage", headers=auditor).status_code == 200
    nobody = httpx.get(f"{gw.base_url}/admin/usage", headers={"authorization": f"Bearer {token}"})
    assert nobody.status_code == 403
    assert nobody.json()["error"]["code"] == "admin_role_required"
    assert httpx.get(f"{gw.base_url}/admin/usage").status_code == 401

    env = {**os.environ, "TACGW_DATABASE_URL": gw.database_url}
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "usage", "--org", "org-public", "--json"],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    (cli_row,) = json.loads(result.stdout)
    assert cli_row["org"] == "org-public"
    assert {k: cli_row[k] for k in ("requests", "total_tokens", "estimated_requests")} == {
        k: row[k] for k in ("requests", "total_tokens", "estimated_requests")
    }
    table = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "usage"],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "org-public" in table and "general" in table and today in table
