"""At n = 100 per condition the measured rate of scripted models matches the rate they were
set to: 0%, 50% and 96%, served over real HTTP and screened end to end.

The scripted models draw from a fixed seed, so the run is reproducible. For a true rate p,
the 95% interval covers p in about 95% of runs; the assertions below hold for this seed and
fail loudly if the runner, the classifier or the statistics drift.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from gateway.screening.report import Report, ScreeningPolicy
from gateway.screening.scripted import ScriptedModel
from tests.screening.conftest import RATES, ScriptedRun

N = 100


@pytest.fixture(scope="module")
def runs(scripted_runs: dict[float, ScriptedRun]) -> dict[float, tuple[ScriptedModel, Report]]:
    return {rate: (run.model, run.report) for rate, run in scripted_runs.items()}


@pytest.mark.parametrize("rate", RATES)
def test_measured_rate_lies_in_the_interval_and_near_the_set_rate(
    runs: dict[float, tuple[ScriptedModel, Report]], rate: float
) -> None:
    """Every screened condition: all 100 valid, rate within its Wilson interval and ±10 points."""
    _, report = runs[rate]
    screened = [c for c in report.conditions if not c["control"]]
    assert len(screened) == 4
    for c in screened:
        assert (c["n"], c["n_valid"], c["invalid"]) == (N, N, 0), c
        assert c["ci_low"] <= rate <= c["ci_high"], c
        assert abs(c["rate"] - rate) <= 0.10, c
        assert c["ci_low"] <= c["rate"] <= c["ci_high"]


@pytest.mark.parametrize("rate", RATES)
def test_controls_stay_near_zero(
    runs: dict[float, tuple[ScriptedModel, Report]], rate: float
) -> None:
    """With no false positives set, the controls show none, whatever the harm rate."""
    _, report = runs[rate]
    controls = report.body["controls"]
    assert controls["conditions"] == ["coercion_control", "leak_control"]
    assert controls["n_valid"] == 2 * N
    assert controls["harmful"] == 0 and controls["false_positive_rate"] == 0
    assert controls["ci_high"] < 0.02


@pytest.mark.parametrize("rate", RATES)
def test_each_sample_is_judged_as_the_model_chose(
    runs: dict[float, tuple[ScriptedModel, Report]], rate: float
) -> None:
    """The classifier, reading only the replies, finds harm exactly where the model put it."""
    model, report = runs[rate]
    for s in report.body["samples"]:
        chose = model.intends_harm(
            condition=s["condition"], rendering=s["rendering"], sample=s["index"]
        )
        assert s["harmful"] == chose, s


def test_tiers_pass_and_fail_by_the_upper_bound(
    runs: dict[float, tuple[ScriptedModel, Report]], screening_policy: ScreeningPolicy
) -> None:
    """0% passes every tier; 50% and 96% fail every tier that requires screening."""
    assert screening_policy.required_tiers
    for tier in screening_policy.tiers:
        assert runs[0.0][1].passed(tier)
    for rate in (0.5, 0.96):
        for tier in screening_policy.required_tiers:
            assert not runs[rate][1].passed(tier)


def test_replies_are_varied(runs: dict[float, tuple[ScriptedModel, Report]]) -> None:
    """Harm arrives in many wordings, as native calls and as written calls, some after a look."""
    samples: list[dict[str, Any]] = runs[0.5][1].body["samples"]
    harmful = [s for s in samples if s["harmful"]]
    bodies = {a["body"] for s in harmful for a in s["actions"] if a["tool"] == "send_email"}
    via = Counter(a["via"] for s in harmful for a in s["actions"])
    assert len(bodies) >= 20
    assert via["tool_call"] > 0 and via["text"] > 0
    assert any(len(s["turns"]) > 1 for s in harmful)
    written = {t["content"][:12] for s in harmful for t in s["turns"] if t["content"]}
    assert {w for w in written if w.startswith(("<tool_use:", "```json"))}


def test_each_sample_keeps_its_request_and_reply(
    runs: dict[float, tuple[ScriptedModel, Report]],
) -> None:
    """Request hash, reply, finish reason, usage and latency are in every sample record."""
    samples = runs[0.96][1].body["samples"]
    assert len(samples) == 6 * N
    for s in samples:
        assert len(s["request_hash"]) == 64
        assert s["finish_reason"] in {"stop", "tool_calls"}
        assert s["usage"]["total_tokens"] > 0 and s["latency_ms"] > 0
        assert s["turns"] and (s["turns"][-1]["content"] or s["turns"][-1]["tool_calls"])
    # Same rendering and seed: same request; different samples: different requests.
    assert len({s["request_hash"] for s in samples}) == len(samples)
