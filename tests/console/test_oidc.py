"""Sign-in through a real OpenID provider (npm oidc-provider under Node): the code flow
with PKCE, the ID token checked, the `groups` claim mapped onto the admin policy's roles."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from playwright.sync_api import Page, expect

from tests.console.conftest import Site, console_settings, off_loop
from tests.support.gateway import GatewayFactory
from tests.support.services import free_port

PROVIDER = Path(__file__).resolve().parents[1] / "support" / "oidc" / "console_provider.mjs"
CLIENT = ("tacgw-console", "console-client-secret-0123456789")
ACCOUNTS = {"olivia": {"groups": ["staff", "tacgw-admins"]}, "oscar": {"groups": ["staff"]}}


@pytest.fixture
def idp(tmp_path: Path, site: Site, gateway_factory: GatewayFactory) -> Iterator[Site]:
    """A gateway whose console signs in at a real IdP, and that IdP, on loopback."""
    node, modules = shutil.which("node"), os.environ.get("TACGW_TEST_OIDC_NODE_MODULES", "")
    if node is None or not Path(modules, "oidc-provider").is_dir():
        pytest.fail("node and TACGW_TEST_OIDC_NODE_MODULES are set up by scripts/test")
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    oidc = {"issuer": issuer, "client_id": CLIENT[0], "client_secret": CLIENT[1],
            "scopes": "openid email groups", "roles_claim": "groups"}  # fmt: skip
    gw = off_loop(lambda: gateway_factory.start(**console_settings(site.dns, oidc=oidc)))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = {**json.loads(RSAAlgorithm.to_jwk(key)), "kid": "idp-1", "alg": "RS256", "use": "sig"}
    jwk.pop("key_ops", None)  # PyJWT writes ["sign"], which the IdP would publish as is
    config = tmp_path / "idp.json"
    config.write_text(
        json.dumps(
            {
                "issuer": issuer,
                "port": port,
                "keys": [jwk],
                "client_id": CLIENT[0],
                "client_secret": CLIENT[1],
                "accounts": ACCOUNTS,
                "redirect_uri": f"{gw.base_url}/console/oidc/callback",
            }
        )
    )
    log = (tmp_path / "idp.log").open("wb")
    proc = subprocess.Popen([node, str(PROVIDER), str(config)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{issuer}/.well-known/openid-configuration").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (
                tmp_path / "idp.log"
            ).read_text()
            time.sleep(0.1)
        yield Site(gw=gw, dns=site.dns, browser=site.browser)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def _sign_in_at_idp(page: Page, login: str) -> None:
    page.click("#oidc-signin")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "any")
    page.click("button[type=submit]")
    page.click("button[type=submit]")  # the consent page: "Continue"


def test_admin_signs_in_through_the_idp(idp: Site) -> None:
    page = idp.browser.new_page()
    page.goto(f"{idp.url}/orgs")
    _sign_in_at_idp(page, "olivia")
    page.wait_for_url(f"{idp.url}/orgs")  # where she was going
    expect(page.locator("#who")).to_contain_text("oidc:olivia")
    expect(page.locator("#who")).to_contain_text("admin")
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "tacgw_console"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    # The pending sign-in is used up: replaying the IdP's answer opens nothing.
    assert not [c for c in page.context.cookies() if c["name"] == "tacgw_console_oidc"]
    page.context.close()


def test_a_user_without_a_console_group_is_refused(idp: Site) -> None:
    page = idp.browser.new_page()
    page.goto(f"{idp.url}/signin")
    _sign_in_at_idp(page, "oscar")
    expect(page.locator("#reason")).to_have_text("no_console_role")
    assert not [c for c in page.context.cookies() if c["name"] == "tacgw_console"]
    page.context.close()


def test_a_callback_without_its_sign_in_is_refused(idp: Site) -> None:
    reply = httpx.get(f"{idp.url}/oidc/callback", params={"code": "x", "state": "y"})
    assert reply.status_code == 403 and "oidc_failed" in reply.text
