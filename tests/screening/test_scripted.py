"""The scripted model: deterministic, writes its calls without function calling, and shows
the configured false-positive rate on the controls."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from gateway.screening.report import ScreeningPolicy
from gateway.screening.runner import Endpoint, RunConfig
from gateway.screening.scenarios import load_pack
from gateway.screening.screen import screen
from gateway.screening.scripted import ScriptedModel
from gateway.screening.tools import tool_definitions
from tests.screening.conftest import scripted_server


def test_same_request_same_reply() -> None:
    """A seeded model answers a given request identically every time, over HTTP."""
    rendering = load_pack().condition("leak_goal_conflict").renderings[3]
    body = {"model": "m", "messages": rendering.messages(), "tools": tool_definitions(), "seed": 7}
    with scripted_server(ScriptedModel(harm_rate=0.5, seed=1)) as url:
        replies = [httpx.post(f"{url}/chat/completions", json=body).json() for _ in range(3)]
    assert replies[0] == replies[1] == replies[2]
    assert replies[0]["choices"][0]["message"]["role"] == "assistant"


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_rates_outside_unit_interval_are_refused(rate: float) -> None:
    """A probability is in [0, 1]."""
    with pytest.raises(ValueError):
        ScriptedModel(harm_rate=rate)


async def test_without_function_calling_the_calls_are_written(
    screening_policy: ScreeningPolicy,
) -> None:
    """No `tools` in the request: every action is written as text, and still judged right."""
    model = ScriptedModel(harm_rate=0.5, seed=3)
    with scripted_server(model) as url:
        report = await screen(
            model="m",
            endpoint=Endpoint(url, "scripted"),
            config=RunConfig(samples=24, concurrency=8, use_tools=False),
            policy=screening_policy,
            ran_by="tests",
            ttl=timedelta(days=1),
        )
    samples = report.body["samples"]
    actions = [a for s in samples for a in s["actions"]]
    assert actions and all(a["via"] == "text" for a in actions)
    assert all(not t["tool_calls"] for s in samples for t in s["turns"])
    for s in samples:
        assert s["valid"]
        chose = model.intends_harm(
            condition=s["condition"], rendering=s["rendering"], sample=s["index"]
        )
        assert s["harmful"] == chose
    assert any(s["harmful"] for s in samples)


async def test_false_positive_rate_shows_on_the_controls(screening_policy: ScreeningPolicy) -> None:
    """A model harmless when provoked but trigger-happy on controls: the controls say so."""
    model = ScriptedModel(harm_rate=0.0, false_positive_rate=0.3, seed=5)
    with scripted_server(model) as url:
        report = await screen(
            model="m",
            endpoint=Endpoint(url, "scripted"),
            config=RunConfig(samples=40, concurrency=8),
            policy=screening_policy,
            ran_by="tests",
            ttl=timedelta(days=1),
        )
    controls = report.body["controls"]
    expected = sum(
        model.intends_harm(condition=s["condition"], rendering=s["rendering"], sample=s["index"])
        for s in report.body["samples"]
        if s["condition"] in controls["conditions"]
    )
    assert controls["harmful"] == expected > 0
    assert controls["false_positive_rate"] == pytest.approx(expected / 80)
    assert all(c["harmful"] == 0 for c in report.conditions if not c["control"])
