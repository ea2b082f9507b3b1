"""The runner against a misbehaving upstream over real HTTP: retries, timeouts, errors, and
replies that cannot be judged — each one invalid with its reason, none counted as harmless."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.screening.report import Report, ScreeningPolicy
from gateway.screening.runner import Endpoint, RunConfig
from gateway.screening.screen import screen
from tests.support.services import free_port
from tests.support.uvicorn_server import serve

SAMPLES = 3
RETRIES = 2


def _reply(
    content: str | None, finish: str = "stop", calls: list[Any] | None = None
) -> JSONResponse:
    message = {"role": "assistant", "content": content, "tool_calls": calls or []}
    usage = {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}
    return JSONResponse(
        {"choices": [{"index": 0, "message": message, "finish_reason": finish}], "usage": usage}
    )


@contextlib.contextmanager
def faulty_upstream() -> Iterator[tuple[str, Counter[str], dict[str, str]]]:
    """Behaves as the requested model name says; counts requests per model name."""
    hits: Counter[str] = Counter()
    seen: dict[str, str] = {}
    attempts: Counter[tuple[str, int]] = Counter()

    async def chat(request: Request) -> Response:
        body = await request.json()
        mode = body["model"]
        hits[mode] += 1
        seen["authorization"] = request.headers.get("authorization", "")
        attempts[mode, body["seed"]] += 1
        first_tries = attempts[mode, body["seed"]] <= RETRIES
        if mode == "flaky" and first_tries:
            return JSONResponse({"error": {"message": "busy"}}, 503)
        if mode == "throttled" and attempts[mode, body["seed"]] == 1:
            return JSONResponse({"error": {"message": "slow down"}}, 429, {"retry-after": "0"})
        if mode == "down":
            return JSONResponse({"error": {"message": "down"}}, 503)
        if mode == "refuses":
            return JSONResponse({"error": {"message": "bad"}}, 400)
        if mode == "garbage":
            return Response("not json", 200, media_type="text/plain")
        if mode == "slow":
            await asyncio.sleep(1.0)
        if mode == "empty":
            return _reply("")
        if mode == "length":
            return _reply("Let me think about this carefully", "length")
        if mode == "filter":
            return _reply("I", "content_filter")
        if mode == "malformed":
            call = {
                "id": "c",
                "type": "function",
                "function": {"name": "send_email", "arguments": "{to"},
            }
            return _reply(None, "tool_calls", [call])
        return _reply("Nothing in this inbox needs me to act.")

    with serve(Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])) as base:
        yield f"{base}/v1", hits, seen


async def run(url: str, mode: str, policy: ScreeningPolicy, **config: Any) -> Report:
    return await screen(
        model="m",
        endpoint=Endpoint(url, mode, api_key="k-123"),
        config=RunConfig(
            samples=SAMPLES,
            retries=RETRIES,
            backoff_s=0.01,
            timeout_s=0.3,
            conditions=("coercion_goal_replacement",),
            **config,
        ),
        policy=policy,
        ran_by="tests",
        ttl=timedelta(days=1),
    )


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[str, Counter[str], dict[str, str]]]:
    with faulty_upstream() as running:
        yield running


@pytest.mark.parametrize(("mode", "attempts"), [("flaky", RETRIES + 1), ("throttled", 2)])
async def test_transient_failures_are_retried(
    upstream: tuple[str, Counter[str], dict[str, str]],
    screening_policy: ScreeningPolicy,
    mode: str,
    attempts: int,
) -> None:
    """503 and 429 (honouring Retry-After) are retried; the sample then counts as valid."""
    url, hits, seen = upstream
    report = await run(url, mode, screening_policy)
    [condition] = report.conditions
    assert (condition["n_valid"], condition["harmful"]) == (SAMPLES, 0)
    assert [s["turns"][0]["attempts"] for s in report.body["samples"]] == [attempts] * SAMPLES
    assert hits[mode] == attempts * SAMPLES
    assert seen["authorization"] == "Bearer k-123"


@pytest.mark.parametrize(
    ("mode", "error", "calls_per_sample"),
    [
        ("down", "http_503", RETRIES + 1),
        ("slow", "timeout", RETRIES + 1),
        ("refuses", "http_400", 1),  # a 4xx other than 408/409/429 is not retried
        ("garbage", "bad_response", 1),
    ],
)
async def test_failed_calls_are_invalid(
    upstream: tuple[str, Counter[str], dict[str, str]],
    screening_policy: ScreeningPolicy,
    mode: str,
    error: str,
    calls_per_sample: int,
) -> None:
    """API errors are invalid samples, shown with their cause, and the rate is unknown."""
    url, hits, _ = upstream
    report = await run(url, mode, screening_policy)
    [condition] = report.conditions
    assert condition["invalid_reasons"] == {"api_error": SAMPLES}
    assert [s["error"] for s in report.body["samples"]] == [error] * SAMPLES
    assert hits[mode] == calls_per_sample * SAMPLES
    # Nothing valid: no rate, the bound is 1, and no tier passes (fail closed).
    assert (condition["n_valid"], condition["rate"], condition["ci_high"]) == (0, None, 1.0)
    assert not any(t["passed"] for t in report.body["tiers"])


async def test_unreachable_upstream_is_invalid(screening_policy: ScreeningPolicy) -> None:
    """Nothing listening: a transport error per sample, after the retries."""
    report = await run(f"http://127.0.0.1:{free_port()}/v1", "any", screening_policy)
    assert [s["error"] for s in report.body["samples"]] == ["transport_error"] * SAMPLES


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("empty", "empty_reply"),
        ("length", "truncated"),
        ("filter", "content_filter"),
        ("malformed", "malformed_tool_call"),
    ],
)
async def test_replies_that_cannot_be_judged_are_invalid(
    upstream: tuple[str, Counter[str], dict[str, str]],
    screening_policy: ScreeningPolicy,
    mode: str,
    reason: str,
) -> None:
    """Empty, cut short, filtered or unreadable: invalid with that reason, out of the rate."""
    url, _, _ = upstream
    report = await run(url, mode, screening_policy)
    [condition] = report.conditions
    assert condition["invalid_reasons"] == {reason: SAMPLES}
    assert condition["n_valid"] == 0 and condition["invalid"] == SAMPLES


async def test_progress_is_reported_for_every_sample(
    upstream: tuple[str, Counter[str], dict[str, str]], screening_policy: ScreeningPolicy
) -> None:
    """The progress callback sees each sample finish, up to the total."""
    url, _, _ = upstream
    seen: list[tuple[int, int]] = []
    await screen(
        model="m",
        endpoint=Endpoint(url, "ok"),
        config=RunConfig(samples=4, conditions=("leak_control", "coercion_control")),
        policy=screening_policy,
        ran_by="tests",
        ttl=timedelta(days=1),
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen == [(i, 8) for i in range(1, 9)]
