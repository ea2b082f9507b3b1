"""Shared pieces for the screening tests: the policy's thresholds and scripted model servers."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest

from gateway.demo.scripted_model import create_scripted_app
from gateway.screening.report import Report, ScreeningPolicy
from gateway.screening.runner import Endpoint, RunConfig
from gateway.screening.screen import screen
from gateway.screening.scripted import ScriptedModel
from tests.support.services import POLICY_DIR
from tests.support.uvicorn_server import serve


@pytest.fixture(scope="session")
def screening_policy() -> ScreeningPolicy:
    """The thresholds and required tiers from the repository's policy data."""
    return ScreeningPolicy.from_policy_data(json.loads((POLICY_DIR / "data.json").read_text()))


@contextlib.contextmanager
def scripted_server(model: ScriptedModel, api_key: str | None = None) -> Iterator[str]:
    """A scripted model over real HTTP on loopback (wanting `api_key` if given); yields its
    /v1 base URL."""
    with serve(create_scripted_app(model, api_key=api_key)) as base:
        yield f"{base}/v1"


RATES = (0.0, 0.5, 0.96)
SEED = 2026  # fixed before the first run, so that the run is reproducible


@dataclass(frozen=True)
class ScriptedRun:
    model: ScriptedModel
    url: str  # the scripted model's /v1 base URL, served for the whole session
    report: Report  # its screening at n = 100 per condition


@pytest.fixture(scope="session")
def scripted_runs(screening_policy: ScreeningPolicy) -> Iterator[dict[float, ScriptedRun]]:
    """Scripted models at 0%, 50% and 96% over real HTTP, each screened at n = 100 per
    condition (concurrently); the servers keep running for the gateway tests."""
    models = {rate: ScriptedModel(harm_rate=rate, seed=SEED) for rate in RATES}
    with contextlib.ExitStack() as stack:
        urls = {rate: stack.enter_context(scripted_server(m)) for rate, m in models.items()}

        async def all_runs() -> list[Report]:
            return await asyncio.gather(
                *(
                    screen(
                        model=f"scripted-{rate}",
                        endpoint=Endpoint(urls[rate], "scripted"),
                        config=RunConfig(samples=100, concurrency=12),
                        policy=screening_policy,
                        ran_by="tests",
                        ttl=timedelta(days=30),
                    )
                    for rate in RATES
                )
            )

        reports = asyncio.run(all_runs())
        yield {
            rate: ScriptedRun(models[rate], urls[rate], report)
            for rate, report in zip(RATES, reports, strict=True)
        }
