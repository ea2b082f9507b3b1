"""Shared pieces for the screening tests: the policy's thresholds and scripted model servers."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import pytest

from gateway.demo.scripted_model import create_scripted_app
from gateway.screening.report import ScreeningPolicy
from gateway.screening.scripted import ScriptedModel
from tests.support.services import POLICY_DIR
from tests.support.uvicorn_server import serve


@pytest.fixture(scope="session")
def screening_policy() -> ScreeningPolicy:
    """The thresholds and required tiers from the repository's policy data."""
    return ScreeningPolicy.from_policy_data(json.loads((POLICY_DIR / "data.json").read_text()))


@contextlib.contextmanager
def scripted_server(model: ScriptedModel) -> Iterator[str]:
    """A scripted model over real HTTP on loopback; yields its /v1 base URL."""
    with serve(create_scripted_app(model)) as base:
        yield f"{base}/v1"
