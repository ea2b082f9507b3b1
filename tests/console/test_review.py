"""The admin's review in a real browser, and what it changes at once for defenders; the
auditor following it through the log."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import openai
import pytest
from playwright.sync_api import expect

from gateway.admin import clients
from gateway.admin.actor import Actor
from tests.console.conftest import ADMIN, AUDITOR, Site, off_loop, screenshot
from tests.support.dpop import DpopAuth, DpopKey

MSG = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def approved(site: Site) -> Iterator[str]:
    """An applied, proved organization that the admin approves as `critical` in the browser."""
    org_id = site.proved_org("Grid Defenders", "grid-defenders.com")
    page = site.sign_in(ADMIN)
    page.click("nav >> text=Organizations")
    expect(page.locator("#queue")).to_contain_text("Grid Defenders")
    expect(page.locator("#queue")).to_contain_text("passed")  # the domain proof
    screenshot(page, "orgs")
    page.click("#queue >> text=Grid Defenders")
    expect(page.locator("#org-status")).to_have_text("verifying")
    screenshot(page, "review")
    form = page.locator("#form-approve")
    form.locator("select[name=tier]").select_option("critical")
    form.locator("input[name=reason]").fill("grid SOC, CISA letter checked")
    form.locator("button[type=submit]").click()
    expect(page.locator("#done")).to_contain_text("approve")
    expect(page.locator("#org-status")).to_have_text("verified")
    expect(page.locator("#grants")).to_contain_text("critical")
    screenshot(page, "org")
    page.context.close()
    yield org_id


def test_admin_approval_reaches_the_cyber_model_at_once(site: Site, approved: str) -> None:
    """The organization's defender token reaches the cyber model right after the click."""
    issued = site.run(
        lambda engine: clients.create_client(
            engine, actor=Actor.cli(), org_id=approved, name="SOC automation"
        )
    )
    # The critical tier takes only sender-constrained tokens: bound to a DPoP key (RFC 9449).
    key = DpopKey()
    token_url = f"{site.gw.base_url}/oauth/token"
    token = httpx.post(
        token_url,
        auth=(issued.client_id, issued.client_secret),
        data={"grant_type": "client_credentials"},
        headers={"DPoP": key.proof("POST", token_url)},
    ).json()["access_token"]
    defender = openai.OpenAI(
        base_url=f"{site.gw.base_url}/v1",
        api_key=token,
        max_retries=0,
        http_client=httpx.Client(auth=DpopAuth(key, token)),
    )
    reply = defender.chat.completions.create(model="cyber", messages=MSG)
    assert reply.choices[0].message.content
    # The approval is the admin API's own event, naming the console account as the actor.
    rows = site.audit_rows(org_id=approved, endpoint="admin.org.approve")
    assert [(r["decision"], r["subject"], r["tier"]) for r in rows] == [
        ("allow", "console:alice", "critical")
    ]


def test_auditor_finds_opens_verifies_and_exports(site: Site, approved: str) -> None:
    page = site.sign_in(AUDITOR)
    page.click("nav >> text=Audit")
    page.select_option("#filter-org", label="Grid Defenders")
    page.click("#apply-filters")
    events = page.locator("#events")
    expect(events).to_contain_text("admin.org.approve")
    expect(events).to_contain_text("console:alice")
    screenshot(page, "audit")
    page.click("#events tr:has-text('admin.org.approve') a")
    expect(page.locator("#event-facts")).to_contain_text("admin.org.approve")
    expect(page.locator("#event-facts")).to_contain_text(approved)
    page.click("#verify")
    expect(page.locator("#verification")).to_contain_text("Intact.")
    assert "/console/audit/events/" in page.url  # htmx swapped the result into the page
    screenshot(page, "event")

    page.go_back()
    with page.expect_download() as csv_download:
        page.click("#export-csv")
    csv_text = csv_download.value.path().read_text()
    assert "admin.org.approve" in csv_text and approved in csv_text
    assert re.search(r"^ts,decision_id,decision", csv_text)
    with page.expect_download() as log_download:
        page.click("#export-jsonl")
    first = log_download.value.path().read_text().splitlines()[0]
    assert '"format"' in first and '"vkey"' in first
    page.context.close()


def test_models_page_shows_floors_and_screening(site: Site) -> None:
    page = site.sign_in(AUDITOR)
    page.click("nav >> text=Models")
    row = page.locator("#models tr:has-text('cyber')")
    expect(row).to_contain_text("critical")
    expect(row).to_contain_text("current")
    screenshot(page, "models")
    row.locator("a").first.click()
    expect(page.locator("dl.facts")).to_contain_text("the stored body matches it")
    page.context.close()


def test_overview_charts_the_day_and_lists_what_waits(site: Site) -> None:
    """Requests by tier and decision, applications to review, the log's checkpoint."""
    site.proved_org("Harbor Ops", "harbor-ops.com")

    def traffic() -> None:
        public, verified = site.gw.openai("public"), site.gw.openai("verified")
        for _ in range(3):
            public.chat.completions.create(model="general", messages=MSG)
        verified.chat.completions.create(model="general-tac", messages=MSG)
        for _ in range(2):
            with pytest.raises(openai.PermissionDeniedError):
                public.chat.completions.create(model="cyber", messages=MSG)

    off_loop(traffic)
    page = site.browser.new_page(viewport={"width": 1280, "height": 860})
    page.goto(f"{site.url}/")
    page.wait_for_url(re.compile(r".*/console/signin\?next=/console/$"))
    screenshot(page, "signin")
    page.fill("input[name=name]", ADMIN[0])
    page.fill("input[name=password]", ADMIN[1])
    page.click("#signin-form button[type=submit]")
    page.wait_for_url(f"{site.url}/")
    chart = page.locator("svg.chart")
    expect(chart.locator("rect.tier-0 title").first).to_contain_text("public")
    assert "denied" in " ".join(chart.locator("rect title").all_text_contents())
    expect(page.locator("main")).to_contain_text("Harbor Ops")
    page.click("text=Verify the log now")
    expect(page.locator("#verification")).to_contain_text("Intact.")
    screenshot(page, "overview")
    page.context.close()
