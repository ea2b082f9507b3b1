"""Upstream safety: redirects are never followed, answers are bounded in size, and only
allowed hosts are called."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from tests.routing.support import (
    MESSAGES,
    Upstreams,
    metric,
    redirect_app,
    set_targets,
    wait_until,
)
from tests.support.gateway import GatewayFactory, RunningGateway


def refused(gw: RunningGateway, **kw: Any) -> tuple[openai.APIStatusError, dict[str, Any]]:
    with pytest.raises(openai.APIStatusError) as caught:
        gw.openai().chat.completions.create(model="general", messages=MESSAGES, **kw)
    row = gw.audit_row(caught.value.response.headers["x-decision-id"])
    return caught.value, {**row, "reasons": json.loads(row["reasons"])}


def sse_data(gw: RunningGateway, demo: dict[str, Any]) -> list[str]:
    body = {"model": "general", "messages": MESSAGES, "stream": True, "demo": demo}
    with httpx.stream(
        "POST",
        f"{gw.base_url}/v1/chat/completions",
        headers={"authorization": f"Bearer {gw.token()}"},
        json=body,
    ) as response:
        return [line[6:] for line in response.iter_lines() if line.startswith("data: ")]


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirect_is_not_followed(
    gateway_factory: GatewayFactory, upstreams: Upstreams, transport: str, status: int
) -> None:
    """A 3xx becomes 502 upstream_redirect; where it points never gets the request (nor
    the credential), and the redirecting target is not failed over from."""
    elsewhere = upstreams.start("elsewhere")
    hop = upstreams.start("hop", redirect_app(elsewhere, status))
    gw = gateway_factory.start(
        upstream_api_key="sk-must-not-travel", upstream_settings={"transport": transport}
    )
    set_targets(gw, "general", {"url": hop, "name": "hop"})
    for stream in (False, True):
        error, row = refused(gw, stream=stream)
        assert (error.status_code, error.code) == (502, "upstream_redirect")
        assert (row["reasons"], row["upstream_target"], row["upstream_tries"]) == (
            ["upstream_redirect"],
            "hop",
            1,
        )
    assert upstreams.requests("hop") == 2
    assert upstreams.requests("elsewhere") == 0
    assert metric(gw, "tacgw_upstream_errors_total", target="hop", kind="redirect") == 2.0


def test_active_check_does_not_follow_a_redirect(
    gateway_factory: GatewayFactory, upstreams: Upstreams
) -> None:
    """A redirecting health path is a failed check, and the redirect target is not asked."""
    elsewhere = upstreams.start("elsewhere")
    hop = upstreams.start("hop", redirect_app(elsewhere))
    health = {"active_interval_s": 0.1, "failures_to_down": 1, "backoff_s": 600}
    gw = gateway_factory.start(upstream_settings={"health": health})
    set_targets(gw, "general", {"url": hop, "name": "hop"})
    with pytest.raises(openai.APIStatusError):
        gw.openai().chat.completions.create(model="general", messages=MESSAGES)
    # The answer above ejects nothing (a redirect is not a health failure); the check does.
    wait_until(
        lambda: metric(gw, "tacgw_upstream_healthy", target="hop") == 0.0,
        "the redirecting health check takes the target out",
    )
    assert upstreams.requests("elsewhere") == 0


def test_oversized_answer_is_cut_off(gateway_factory: GatewayFactory) -> None:
    """Above max_response_bytes: a whole body is 502 upstream_too_large, a stream ends with
    that error event; smaller answers pass."""
    gw = gateway_factory.start(upstream_settings={"max_response_bytes": 4096})
    assert gw.openai().chat.completions.create(model="general", messages=MESSAGES)
    error, row = refused(gw, extra_body={"demo": {"chunks": 2000}})
    assert (error.status_code, error.code, row["reasons"]) == (
        502,
        "upstream_too_large",
        ["upstream_too_large"],
    )
    data = sse_data(gw, {"chunks": 2000})
    assert json.loads(data[-1])["error"]["code"] == "upstream_too_large"
    assert "[DONE]" not in data
    assert sum(len(d) for d in data[:-1]) <= 4096


def test_host_outside_the_allow_list_is_never_called(
    gateway_factory: GatewayFactory, upstreams: Upstreams, caplog: pytest.LogCaptureFixture
) -> None:
    """A target already in the catalog whose host is not allowed is skipped at load."""
    a = upstreams.start("a")
    local = a.replace("127.0.0.1", "localhost")  # same server, a host that is not allowed
    gw = gateway_factory.start(upstream_settings={"allowed_hosts": ["127.0.0.1"]})
    set_targets(gw, "general", {"url": a, "name": "allowed"}, {"url": local, "name": "other"})
    for _ in range(4):
        gw.openai().chat.completions.create(model="general", messages=MESSAGES)
    assert upstreams.requests("a") == 4
    assert "general/other is not usable" in caplog.text
    assert metric(gw, "tacgw_upstream_requests_total", target="other") is None
