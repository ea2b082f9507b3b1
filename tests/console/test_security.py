"""What the console refuses: an auditor's changes, forms without their CSRF token, wrong
passwords (without saying whether the account exists), too many sign-ins, dead sessions."""

from __future__ import annotations

import re

import httpx
import orjson
from playwright.sync_api import Page, expect
from sqlalchemy import text
from starlette.responses import Response

from gateway.admin import ops
from gateway.console import auth
from gateway.console.headers import CSP
from gateway.settings import Settings
from tests.console.conftest import ADMIN, AUDITOR, Site, console_settings, off_loop
from tests.support.gateway import GatewayFactory

PAGES = ("/", "/orgs", "/models", "/audit")


def _csrf(page: Page) -> str:
    """The session's CSRF token, as every signed-in page carries it (the sign-out form)."""
    return str(page.locator("form.who input[name=csrf]").get_attribute("value"))


def _status(site: Site, org_id: str) -> str:
    async def read(engine: object) -> str:
        async with engine.connect() as conn:  # type: ignore[attr-defined]
            q = text("SELECT status FROM organization WHERE id = :i")
            return str((await conn.execute(q, {"i": org_id})).scalar_one())

    return str(site.run(read))


def test_auditor_sees_no_controls_and_a_forged_approve_is_refused(site: Site) -> None:
    org_id = site.proved_org("Water Works", "water-works.com")
    page = site.sign_in(AUDITOR)
    page.goto(f"{site.url}/orgs/{org_id}")
    expect(page.locator("#org-status")).to_have_text("verifying")
    assert page.locator("form.move").count() == 0  # no approve, reject, ... for auditors

    forged = page.request.post(
        f"{site.url}/orgs/{org_id}/approve",
        form={"csrf": _csrf(page), "tier": "critical", "reason": "forged"},
        max_redirects=0,
    )
    assert forged.status == 403
    assert "auditor_read_only" in forged.text()
    assert _status(site, org_id) == "verifying"
    # Refused by the admin policy and audited exactly as the API's refusal would be.
    rows = site.audit_rows(org_id=org_id, endpoint="admin.org.approve")
    assert [(r["decision"], r["subject"], r["status"]) for r in rows] == [
        ("deny", "console:ava", 403)
    ]
    assert orjson.loads(rows[0]["reasons"]) == ["auditor_read_only"]
    page.context.close()


def test_forms_without_their_csrf_token_are_refused(site: Site) -> None:
    org_id = site.proved_org("Rail Guard", "rail-guard.com")
    page = site.sign_in(ADMIN)
    page.goto(f"{site.url}/orgs/{org_id}")
    forms = page.locator("form[method=post]")
    assert forms.count() >= 3  # approve, reject, sign out
    for i in range(forms.count()):  # every form that changes something carries the token
        assert forms.nth(i).locator("input[name=csrf]").get_attribute("value")

    url = f"{site.url}/orgs/{org_id}/approve"
    for form in ({"tier": "critical"}, {"tier": "critical", "csrf": "not-the-token"}):
        refused = page.request.post(url, form=form, max_redirects=0)
        assert refused.status == 403 and "csrf_failed" in refused.text()
    assert _status(site, org_id) == "verifying"
    assert site.audit_rows(org_id=org_id, endpoint="admin.org.approve") == []

    # The sign-in form has its own token (no session yet): without it, no sign-in.
    reply = httpx.post(
        f"{site.url}/signin",
        data={"name": ADMIN[0], "password": ADMIN[1]},
        follow_redirects=False,
    )
    assert reply.status_code == 403 and "csrf_failed" in reply.text
    assert "tacgw_console=" not in reply.headers.get("set-cookie", "")
    page.context.close()


def _attempt(site: Site, name: str, password: str) -> httpx.Response:
    with httpx.Client(base_url=site.url) as client:
        form = client.get("/signin")
        token = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert token is not None
        return client.post(
            "/signin",
            data={"csrf": token.group(1), "name": name, "password": password},
            follow_redirects=False,
        )


def test_a_wrong_password_and_an_unknown_account_look_the_same(site: Site) -> None:
    refused_before = len(site.audit_rows(endpoint="admin.console.sign_in", decision="deny"))
    page = site.browser.new_page()
    page.goto(f"{site.url}/signin")
    page.fill("input[name=name]", ADMIN[0])
    page.fill("input[name=password]", "not the password")
    page.click("#signin-form button[type=submit]")
    expect(page.locator("#signin-error")).to_have_text("Wrong account name or password.")
    assert not [c for c in page.context.cookies() if c["name"] == "tacgw_console"]
    page.close()

    wrong = _attempt(site, "alice", "not the password")
    unknown = _attempt(site, "nobody", "not the password")
    assert wrong.status_code == unknown.status_code == 401

    def normalised(reply: httpx.Response) -> str:
        body = re.sub(r'name="csrf" value="[^"]+"', "", reply.text)
        return re.sub(r'name="name" autocomplete="username" required value="[^"]*"', "", body)

    assert normalised(wrong) == normalised(unknown)
    cookies = [c.split("=")[0] for c in wrong.headers.get_list("set-cookie")]
    assert cookies == [c.split("=")[0] for c in unknown.headers.get_list("set-cookie")]
    assert "tacgw_console" not in cookies
    # Each refusal is an audit event naming no account (a name may be a mistyped password).
    refused = site.audit_rows(endpoint="admin.console.sign_in", decision="deny")
    assert len(refused) == refused_before + 3
    assert {(r["subject"], r["reasons"]) for r in refused} == {
        ("console:anonymous", '["sign_in_failed"]')
    }
    assert not [r for r in refused if "alice" in r["detail"] or "nobody" in r["detail"]]


def test_sign_in_is_rate_limited(site: Site, gateway_factory: GatewayFactory) -> None:
    limited = off_loop(
        lambda: gateway_factory.start(**console_settings(site.dns, sign_in_rate_limit="3/minute"))
    )
    strict = Site(gw=limited, dns=site.dns, browser=site.browser)
    for _ in range(3):
        assert _attempt(strict, "alice", "guess").status_code == 401
    refused = _attempt(strict, "alice", "guess")
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 0
    assert "rate_limited" in refused.text


def test_sessions_are_httponly_strict_and_end(site: Site) -> None:
    def events(action: str) -> int:
        return len(site.audit_rows(endpoint=f"admin.console.{action}", subject="console:alice"))

    signed_in, signed_out = events("sign_in"), events("sign_out")
    page = site.sign_in(ADMIN)
    assert events("sign_in") == signed_in + 1  # audited like any admin action
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "tacgw_console"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/console"
    stolen = {"tacgw_console": cookie["value"]}

    page.click("form.who button[type=submit]")  # sign out
    page.wait_for_url(f"{site.url}/signin")
    assert events("sign_out") == signed_out + 1
    # The old cookie is dead on the server, not only forgotten by this browser.
    replay = httpx.get(f"{site.url}/orgs", cookies=stolen, follow_redirects=False)
    assert replay.status_code == 303 and replay.headers["location"].startswith("/console/signin")

    page = site.sign_in(ADMIN)

    async def expire(engine: object) -> None:
        async with engine.begin() as conn:  # type: ignore[attr-defined]
            await conn.execute(text("UPDATE console_session SET expires_at = '2000-01-01'"))

    site.run(expire)
    page.goto(f"{site.url}/orgs")
    page.wait_for_url(re.compile(r".*/console/signin\?next=/console/orgs$"))
    page.context.close()


def test_secure_cookies_outside_dev_mode() -> None:
    for dev_mode, secure in ((False, True), (True, False)):
        response = Response()
        auth.set_cookie(
            response, "tacgw_console", "x", settings=Settings(dev_mode=dev_mode), max_age=60
        )
        header = response.headers["set-cookie"].lower()
        assert ("secure" in header) is secure
        assert "httponly" in header and "samesite=strict" in header


def test_no_inline_script_and_the_csp_forbids_it(site: Site) -> None:
    assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP
    page = site.sign_in(AUDITOR)
    violations: list[str] = []
    page.on(
        "console", lambda m: violations.append(m.text) if "Content Security" in m.text else None
    )
    for path in PAGES:
        reply = page.goto(f"{site.url}{path}")
        assert reply is not None and reply.headers["content-security-policy"] == CSP
        # Every script comes from a file; none is written into the page.
        assert page.locator("script:not([src])").count() == 0
        assert page.locator("[style]").count() == 0
        assert page.evaluate("typeof htmx") == "object"  # the vendored htmx did load
    assert violations == []
    page.context.close()


def test_a_move_the_state_refuses_is_audited(site: Site) -> None:
    """An approval the policy permits but the organization's state refuses (no domain
    proof: 409 `proof_missing`) is an audit event naming the admin, as on the API."""

    async def unproven(engine: object) -> str:
        org = await ops.create_org(engine, name="Unproven Grid", status="verifying")  # type: ignore[arg-type]
        return str(org.id)

    org_id = str(site.run(unproven))
    page = site.sign_in(ADMIN)
    page.goto(f"{site.url}/orgs/{org_id}")
    refused = page.request.post(
        f"{site.url}/orgs/{org_id}/approve",
        form={"csrf": _csrf(page), "tier": "verified", "reason": "looks fine"},
        max_redirects=0,
    )
    assert refused.status == 409 and "proof_missing" in refused.text()
    assert _status(site, org_id) == "verifying"
    rows = site.audit_rows(org_id=org_id, endpoint="admin.org.approve")
    assert [(r["decision"], r["subject"], r["status"]) for r in rows] == [
        ("deny", f"console:{ADMIN[0]}", 409)
    ]
    assert orjson.loads(rows[0]["reasons"]) == ["proof_missing"]
    page.context.close()
