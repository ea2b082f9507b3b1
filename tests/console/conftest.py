"""A real gateway with the console, local accounts made by the real CLI, and Debian's
Chromium driven by Playwright (never a browser Playwright downloads)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from gateway.settings import VerificationSettings
from gateway.trust.proof import ProofChecker
from tests.admin import flow
from tests.support.gateway import GatewayFactory, RunningGateway
from tests.support.proof_servers import LoopbackDns, run_dns

T = TypeVar("T")
CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "img"
ADMIN = ("alice", "correct horse battery staple")
AUDITOR = ("ava", "auditors read everything")


def off_loop(fn: Callable[[], T]) -> T:
    """Run `fn` on a worker thread: Playwright's sync API keeps an event loop running on
    this one, and the gateway helpers start loops of their own (`asyncio.run`)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn).result()


# Per module, not per session: while Playwright's sync API is started it keeps an event
# loop running on the main thread, and tests elsewhere call `asyncio.run` there.
@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: scripts/test installs Debian's chromium package")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def create_account(gw: RunningGateway, name: str, password: str, role: str) -> None:
    """`tac-gateway admin create`, as an operator runs it, against the gateway's database."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "admin",
            "create",
            name,
            "--role",
            role,
            "--password-stdin",
            "--json",
        ],
        input=password + "\n",
        env={**os.environ, "TACGW_DATABASE_URL": gw.database_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


@dataclass
class Site:
    """The gateway under test, its loopback DNS for domain proof, and a browser."""

    gw: RunningGateway
    dns: LoopbackDns
    browser: Browser

    @property
    def url(self) -> str:
        return self.gw.base_url + "/console"

    def sign_in(self, account: tuple[str, str]) -> Page:
        """A fresh browser context (its own cookies), signed in as `account`."""
        context = self.browser.new_context(viewport={"width": 1280, "height": 860})
        page = context.new_page()
        page.goto(f"{self.url}/signin")
        page.fill("input[name=name]", account[0])
        page.fill("input[name=password]", account[1])
        page.click("#signin-form button[type=submit]")
        page.wait_for_url(f"{self.url}/")
        return page

    def run(self, coro_fn: Callable[[Any], Any]) -> Any:
        """`RunningGateway.run` (a coroutine on the gateway's database), off this loop."""
        return off_loop(lambda: self.gw.run(coro_fn))

    def audit_rows(self, **where: Any) -> list[dict[str, Any]]:
        return off_loop(lambda: self.gw.audit_rows(**where))

    def proved_org(self, name: str, domain: str) -> str:
        """An organization that applied and passed DNS proof: `verifying`, ready for review."""
        checker = ProofChecker(self.gw.settings.verification)
        org = self.run(
            lambda engine: flow.proved(engine, self.dns, checker, name=name, domain=domain)
        )
        return str(org.id)


def screenshot(page: Page, name: str) -> None:
    """docs/img/console-<name>.png: the pages the admin and auditor guides show."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"console-{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory,
    upstream_url: str,
    postgres_url: str,
    chromium: Browser,
) -> Iterator[Site]:
    with run_dns() as dns:
        factory = GatewayFactory(tmp_path_factory.mktemp("console"), upstream_url, postgres_url)
        try:
            gw = off_loop(lambda: factory.start(**console_settings(dns)))
            create_account(gw, *ADMIN, "admin")
            create_account(gw, *AUDITOR, "auditor")
            yield Site(gw=gw, dns=dns, browser=chromium)
        finally:
            factory.close()


def console_settings(dns: LoopbackDns, **console: Any) -> dict[str, Any]:
    return {
        "verification": VerificationSettings(resolvers=[dns.address], dns_timeout_s=2),
        # Many sign-ins from 127.0.0.1 in one module; the limit has a test of its own.
        "console": {"sign_in_rate_limit": "1000/minute", **console},
    }
