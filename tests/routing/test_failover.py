"""Failover and health through the real gateway, against real upstream servers that die,
come back, answer 5xx or say nothing."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import openai
import pytest

from tests.routing.support import (
    MESSAGES,
    HangUp,
    Upstreams,
    metric,
    set_targets,
    slow_app,
    status_app,
    wait_until,
)
from tests.support.gateway import GatewayFactory, RunningGateway
from tests.support.services import free_port

LONG_BACKOFF = {"failures_to_down": 1, "backoff_s": 600, "backoff_max_s": 600}


def call(gw: RunningGateway, **kw: Any) -> tuple[Any, dict[str, Any]]:
    """A chat completion for `general`; (the reply, its audit row)."""
    raw = gw.openai().chat.completions.with_raw_response.create(
        model="general", messages=MESSAGES, **kw
    )
    return raw.parse(), gw.audit_row(raw.headers["x-decision-id"])


def refused(gw: RunningGateway, **kw: Any) -> tuple[openai.APIStatusError, dict[str, Any]]:
    with pytest.raises(openai.APIStatusError) as caught:
        gw.openai().chat.completions.create(model="general", messages=MESSAGES, **kw)
    row = gw.audit_row(caught.value.response.headers["x-decision-id"])
    return caught.value, {**row, "reasons": json.loads(row["reasons"])}


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
async def test_killing_a_replica_mid_run_loses_no_request(
    gateway_factory: GatewayFactory, upstreams: Upstreams, database: str
) -> None:
    """60 requests (a third streamed), 6 at a time; one replica is stopped after 20: every
    request still succeeds, and those that met the dead replica were retried on the other.

    Six, not eight: the tier allows 8 in flight per organization, and a lease is released
    just after the caller has read its last byte, so a client keeping exactly 8 open can
    meet a 429 that has nothing to do with failover."""
    a, b = upstreams.start("a"), upstreams.start("b")
    gw = await asyncio.to_thread(
        gateway_factory.start, database=database, upstream_settings={"health": LONG_BACKOFF}
    )
    await asyncio.to_thread(
        set_targets, gw, "general", {"url": a, "name": "a"}, {"url": b, "name": "b"}
    )
    client = await asyncio.to_thread(gw.async_openai)
    gate, done, killed = asyncio.Semaphore(6), [0], asyncio.Event()
    demo = {"demo": {"chunks": 3, "delay_ms": 10}}

    async def one(i: int) -> tuple[str, str]:
        async with gate:
            if i % 3 == 0:
                stream = await client.chat.completions.create(
                    model="general", messages=MESSAGES, stream=True, extra_body=demo
                )
                headers = stream.response.headers
                text = "".join([c.choices[0].delta.content or "" async for c in stream])
            else:
                raw = await client.chat.completions.with_raw_response.create(
                    model="general", messages=MESSAGES, extra_body=demo
                )
                headers = raw.headers
                text = raw.parse().choices[0].message.content or ""
            done[0] += 1
            if done[0] == 20:
                killed.set()
            return headers["x-decision-id"], text

    async def kill() -> None:
        await killed.wait()
        await asyncio.to_thread(upstreams.kill, "a")

    results, _ = await asyncio.gather(asyncio.gather(*(one(i) for i in range(60))), kill())
    assert all(text.startswith("Demo model general says") for _, text in results)
    rows = [await asyncio.to_thread(gw.audit_row, decision_id) for decision_id, _ in results]
    assert {(r["decision"], r["status"]) for r in rows} == {("allow", 200)}
    retried = [r for r in rows if r["upstream_tries"] == 2]
    assert retried, "no request met the stopped replica"
    assert {r["upstream_target"] for r in retried} == {"b"}
    assert upstreams.requests("a") + upstreams.requests("b") == 60


def test_dead_replica_is_skipped_within_the_backoff(
    gateway_factory: GatewayFactory, upstreams: Upstreams
) -> None:
    """The first request meets the dead replica and fails over; the next ones skip it."""
    a, b = upstreams.start("a"), upstreams.start("b")
    upstreams.kill("a")
    gw = gateway_factory.start(upstream_settings={"health": LONG_BACKOFF})
    set_targets(gw, "general", {"url": a, "name": "a"}, {"url": b, "name": "b"})

    _, first = call(gw)
    assert (first["upstream_target"], first["upstream_tries"]) == ("b", 2)
    for _ in range(10):
        _, row = call(gw)
        assert (row["upstream_target"], row["upstream_tries"]) == ("b", 1)
    assert metric(gw, "tacgw_upstream_healthy", model="general", target="a") == 0.0
    assert metric(gw, "tacgw_upstream_errors_total", target="a", kind="connect") == 1.0
    assert metric(gw, "tacgw_upstream_requests_total", target="b") == 11.0
    # One unhealthy replica does not make the gateway unready.
    assert httpx.get(f"{gw.base_url}/readyz").status_code == 200


def test_dead_replica_returns_after_the_backoff(
    gateway_factory: GatewayFactory, upstreams: Upstreams
) -> None:
    """Passive health only: once the back-off has passed, the replica gets a request again,
    and a success puts it back in rotation."""
    a, b = upstreams.start("a"), upstreams.start("b")
    upstreams.kill("a")
    quick = {"failures_to_down": 1, "backoff_s": 0.2, "backoff_max_s": 0.2}
    gw = gateway_factory.start(upstream_settings={"health": quick})
    set_targets(gw, "general", {"url": a, "name": "a"}, {"url": b, "name": "b"})
    _, first = call(gw)
    assert (first["upstream_target"], first["upstream_tries"]) == ("b", 2)
    upstreams.restart("a")

    def a_serves() -> bool:
        call(gw)
        return upstreams.requests("a") > 0

    wait_until(a_serves, "the restarted replica gets a request")
    assert metric(gw, "tacgw_upstream_healthy", model="general", target="a") == 1.0


def test_active_checks_take_a_replica_out_and_bring_it_back(
    gateway_factory: GatewayFactory, upstreams: Upstreams
) -> None:
    """With active checks on, a dead replica is found without any request, and a
    recovered one comes back while its (long) passive back-off is still running."""
    a, b = upstreams.start("a"), upstreams.start("b")
    gw = gateway_factory.start(
        upstream_settings={"health": {**LONG_BACKOFF, "active_interval_s": 0.1}}
    )
    set_targets(gw, "general", {"url": a, "name": "a"}, {"url": b, "name": "b"})
    healthy = lambda: metric(gw, "tacgw_upstream_healthy", model="general", target="a")  # noqa: E731
    wait_until(lambda: healthy() == 1.0, "the new target is checked and healthy")
    upstreams.kill("a")
    wait_until(lambda: healthy() == 0.0, "the active check ejects the dead replica")
    for _ in range(4):
        _, row = call(gw)
        assert (row["upstream_target"], row["upstream_tries"]) == ("b", 1)
    assert upstreams.requests("a") == 0
    upstreams.restart("a")
    wait_until(lambda: healthy() == 1.0, "the active check brings the replica back")
    for _ in range(4):
        call(gw)
    assert upstreams.requests("a") >= 1


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_503_fails_over_to_the_other_replica(
    gateway_factory: GatewayFactory, upstreams: Upstreams, database: str
) -> None:
    a = upstreams.start("a", status_app(503))
    b = upstreams.start("b")
    gw = gateway_factory.start(database=database)
    set_targets(gw, "general", {"url": a, "name": "a"}, {"url": b, "name": "b"})
    reply, row = call(gw)
    assert reply.choices[0].message.content
    assert (row["status"], row["upstream_target"], row["upstream_tries"]) == (200, "b", 2)
    assert (upstreams.requests("a"), upstreams.requests("b")) == (1, 1)


def test_500_is_not_failed_over(gateway_factory: GatewayFactory, upstreams: Upstreams) -> None:
    """Only 502/503/504 say "not processed here"; a 500 may have run the model."""
    a = upstreams.start("a", status_app(500))
    b = upstreams.start("b")
    gw = gateway_factory.start()
    set_targets(gw, "general", {"url": a, "name": "a"}, {"url": b, "name": "b"})
    error, row = refused(gw)
    assert (error.status_code, error.code) == (502, "upstream_error")
    assert (row["reasons"], row["upstream_target"], row["upstream_tries"]) == (
        ["upstream_error"],
        "a",
        1,
    )
    assert upstreams.requests("b") == 0


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_hang_up_before_the_answer_is_never_sent_to_the_same_target_again(
    gateway_factory: GatewayFactory, upstreams: Upstreams, transport: str
) -> None:
    """A replica that takes the whole request and closes the connection without answering
    may have run the model: 502 upstream_error when it is the only one (asked once, unlike
    a refused connection), and the other replica answers when there is one."""
    with HangUp() as hangup:
        gw = gateway_factory.start(
            upstream_settings={"transport": transport, "health": {"failures_to_down": 100}}
        )
        set_targets(gw, "general", {"url": hangup.url, "name": "a"})
        for stream in (False, True):
            error, row = refused(gw, stream=stream)
            assert (error.status_code, error.code) == (502, "upstream_error")
            assert (row["reasons"], row["upstream_target"], row["upstream_tries"]) == (
                ["upstream_error"],
                "a",
                1,
            )
        assert hangup.requests == 2
        assert metric(gw, "tacgw_upstream_errors_total", target="a", kind="transport") == 2.0

        b = upstreams.start("b")
        set_targets(gw, "general", {"url": hangup.url, "name": "a"}, {"url": b, "name": "b"})
        rows = [call(gw, stream=stream)[1] for stream in (False, True, False, True)]
        assert all(row["upstream_target"] == "b" for row in rows)
        # Each request met the hanging-up replica at most once: as its first try.
        assert hangup.requests - 2 == sum(row["upstream_tries"] == 2 for row in rows) >= 1


def test_timeout_to_first_byte_fails_over_never_to_the_same_target(
    gateway_factory: GatewayFactory, upstreams: Upstreams
) -> None:
    """A replica silent past read_timeout_s is asked once, and the other one answers."""
    a = upstreams.start("a", slow_app(5.0))
    b = upstreams.start("b")
    gw = gateway_factory.start(
        upstream_settings={"read_timeout_s": 0.5, "retries_before_first_byte": 3}
    )
    set_targets(gw, "general", {"url": a, "name": "a"}, {"url": b, "name": "b"})
    _, row = call(gw)
    assert (row["upstream_target"], row["upstream_tries"]) == ("b", 2)
    assert upstreams.requests("a") == 1


def test_the_budget_bounds_the_tries(gateway_factory: GatewayFactory, upstreams: Upstreams) -> None:
    """Three failing replicas, one retry allowed: two tries, the third replica untouched."""
    urls = [upstreams.start(n, status_app(503)) for n in ("a", "b", "c")]
    gw = gateway_factory.start(upstream_settings={"retries_before_first_byte": 1})
    set_targets(gw, "general", *({"url": u, "name": n} for u, n in zip(urls, "abc", strict=True)))
    error, row = refused(gw)
    assert (error.status_code, error.code, row["upstream_tries"]) == (502, "upstream_error", 2)
    assert sorted(upstreams.requests(n) for n in "abc") == [0, 1, 1]


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_stream_broken_after_first_chunk_ends_cleanly_and_is_not_replayed(
    gateway_factory: GatewayFactory, upstreams: Upstreams, transport: str
) -> None:
    """The upstream dies after one chunk: the caller gets that chunk, then an SSE error
    event and the end of the body; the fallback replica is never asked.

    The chunk comes 200 ms before the drop: with aiohttp, bytes that arrive together with
    a dropped connection are lost (tests/e2e/test_upstream_failures.py keeps that xfail).
    """
    a, b = upstreams.start("a"), upstreams.start("b")
    gw = gateway_factory.start(upstream_settings={"transport": transport})
    set_targets(gw, "general", {"url": a, "name": "a"}, {"url": b, "name": "b", "weight": 0})
    body = {
        "model": "general",
        "messages": MESSAGES,
        "stream": True,
        "demo": {"chunks": 5, "drop_after": 1, "delay_ms": 200},
    }
    with httpx.stream(
        "POST",
        f"{gw.base_url}/v1/chat/completions",
        headers={"authorization": f"Bearer {gw.token()}"},
        json=body,
    ) as response:
        assert response.status_code == 200
        data = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
        decision_id = response.headers["x-decision-id"]
    assert len(data) == 2
    assert json.loads(data[0])["choices"][0]["delta"]["role"] == "assistant"
    assert json.loads(data[1])["error"]["code"] == "upstream_error"
    assert (upstreams.requests("a"), upstreams.requests("b")) == (1, 0)
    row = gw.audit_row(decision_id)
    assert (row["status"], row["upstream_target"], row["upstream_tries"]) == (200, "a", 1)
    assert metric(gw, "tacgw_upstream_errors_total", target="a", kind="stream_broken") == 1.0
    assert metric(gw, "tacgw_upstream_in_flight", target="a") == 0.0


def test_model_with_no_healthy_target_is_503_model_unavailable(
    gateway_factory: GatewayFactory, upstreams: Upstreams
) -> None:
    """Its only replica down: 502 for the request that found out, then 503 without a try;
    other models and readiness are unaffected."""
    gw = gateway_factory.start(upstream_settings={"health": LONG_BACKOFF})
    dead = f"http://127.0.0.1:{free_port()}/v1"
    set_targets(gw, "general", {"url": dead, "name": "dead"})
    error, row = refused(gw)
    assert (error.status_code, error.code, row["upstream_tries"]) == (
        502,
        "upstream_unavailable",
        1,
    )
    error, row = refused(gw)
    assert (error.status_code, error.code) == (503, "model_unavailable")
    assert (row["decision"], row["reasons"], row["upstream_tries"]) == (
        "allow",
        ["model_unavailable"],
        None,
    )
    assert gw.openai("critical").chat.completions.create(model="cyber", messages=MESSAGES)
    assert httpx.get(f"{gw.base_url}/readyz").status_code == 200


def test_model_without_targets_is_503(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory.start()
    set_targets(gw, "general")
    error, _ = refused(gw)
    assert (error.status_code, error.code) == (503, "model_unavailable")
    # Still refused for a tier below the floor first: availability is not revealed to it.
    with pytest.raises(openai.PermissionDeniedError):
        gw.openai("public").chat.completions.create(model="cyber", messages=MESSAGES)


def test_per_target_metrics(gateway_factory: GatewayFactory, upstreams: Upstreams) -> None:
    a = upstreams.start("a")
    gw = gateway_factory.start()
    set_targets(gw, "general", {"url": a, "name": "a"})
    for stream in (False, True):
        gw.openai().chat.completions.create(model="general", messages=MESSAGES, stream=stream)
    assert metric(gw, "tacgw_upstream_requests_total", model="general", target="a") == 2.0
    assert metric(gw, "tacgw_upstream_latency_seconds_count", target="a") == 2.0
    assert metric(gw, "tacgw_upstream_in_flight", target="a") == 0.0
    assert metric(gw, "tacgw_upstream_healthy", target="a") == 1.0
    assert metric(gw, "tacgw_upstream_errors_total", target="a") is None
