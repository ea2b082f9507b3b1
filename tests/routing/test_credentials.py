"""Per-target credentials: each upstream receives its own key and nothing else; the
global key is the fallback; the database holds references, never keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest
from sqlalchemy import text

from gateway.demo.upstream import create_upstream_app
from tests.routing.support import MESSAGES, Upstreams, set_targets
from tests.support.gateway import GatewayFactory, RunningGateway

GLOBAL_KEY = "sk-global-test-0001"
HOSTED_KEY = "sk-hosted-test-0002"
DOWN_AT_ONCE = {"health": {"failures_to_down": 1, "backoff_s": 600, "backoff_max_s": 600}}


def ask(gw: RunningGateway, **kw: Any) -> None:
    gw.openai().chat.completions.create(model="general", messages=MESSAGES, **kw)


def stored_targets(gw: RunningGateway) -> list[dict[str, Any]]:
    async def q(engine: Any) -> list[dict[str, Any]]:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT * FROM upstreamtarget"))
            return [dict(r._mapping) for r in rows]

    return list(gw.run(q))


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_hosted_fallback_receives_only_its_own_key(
    gateway_factory: GatewayFactory,
    upstreams: Upstreams,
    monkeypatch: pytest.MonkeyPatch,
    database: str,
) -> None:
    """A local replica (global key) with a hosted fallback (its own key, from the
    environment): each upstream sees exactly its bearer, never the other's or the caller's."""
    monkeypatch.setenv("TACGW_TEST_HOSTED_KEY", HOSTED_KEY)
    local, hosted = upstreams.start("local"), upstreams.start("hosted")
    gw = gateway_factory.start(
        database=database, upstream_api_key=GLOBAL_KEY, upstream_settings=DOWN_AT_ONCE
    )
    set_targets(
        gw,
        "general",
        {"url": local, "name": "local"},
        {
            "url": hosted,
            "name": "hosted",
            "weight": 0,
            "credential": "env:TACGW_TEST_HOSTED_KEY",
            "upstream_model": "gpt-hosted",
            "headers": {"OpenAI-Organization": "org-test"},
        },
    )
    token = gw.token()
    ask(gw)
    seen_local = upstreams.stats("local")["last_headers"]
    assert seen_local["authorization"] == f"Bearer {GLOBAL_KEY}"
    assert "openai-organization" not in seen_local
    assert upstreams.requests("hosted") == 0

    upstreams.kill("local")
    for _ in range(3):
        ask(gw)
    seen_hosted = upstreams.stats("hosted")["last_headers"]
    assert upstreams.requests("hosted") == 3
    assert seen_hosted["authorization"] == f"Bearer {HOSTED_KEY}"
    assert seen_hosted["openai-organization"] == "org-test"
    for seen in (seen_local, seen_hosted):
        assert token not in str(seen)
    # Stored as a reference: no key anywhere in the table.
    rows = stored_targets(gw)
    assert {r["credential"] for r in rows} == {None, "env:TACGW_TEST_HOSTED_KEY"}
    assert HOSTED_KEY not in str(rows) and GLOBAL_KEY not in str(rows)


def test_credential_from_a_file_follows_rotation(
    gateway_factory: GatewayFactory, upstreams: Upstreams, tmp_path: Path
) -> None:
    """A `file:` credential is read at each catalog load: a rotated key is used without a
    restart (catalog_ttl_s is 0 in these tests)."""
    key = tmp_path / "upstream-key"
    key.write_text("sk-file-one\n")
    a = upstreams.start("a")
    gw = gateway_factory.start(upstream_api_key=GLOBAL_KEY)
    set_targets(gw, "general", {"url": a, "name": "a", "credential": f"file:{key}"})
    ask(gw)
    assert upstreams.stats("a")["last_headers"]["authorization"] == "Bearer sk-file-one"
    key.write_text("sk-file-two\n")
    ask(gw)
    assert upstreams.stats("a")["last_headers"]["authorization"] == "Bearer sk-file-two"


def test_unresolvable_credential_keeps_the_target_out(
    gateway_factory: GatewayFactory,
    upstreams: Upstreams,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A target whose key cannot be read is never called (not even with the global key);
    the other target serves, and with none left the model is 503 model_unavailable."""
    good, keyless = upstreams.start("good"), upstreams.start("keyless")
    gw = gateway_factory.start(upstream_api_key=GLOBAL_KEY)
    set_targets(
        gw,
        "general",
        {"url": good, "name": "good"},
        {"url": keyless, "name": "keyless", "credential": "env:TACGW_TEST_UNSET_KEY_X"},
    )
    for _ in range(4):
        ask(gw)
    assert (upstreams.requests("good"), upstreams.requests("keyless")) == (4, 0)
    assert "TACGW_TEST_UNSET_KEY_X is not set" in caplog.text
    assert GLOBAL_KEY not in caplog.text

    only_keyless = {"url": keyless, "name": "keyless", "credential": "env:TACGW_TEST_UNSET_KEY_X"}
    set_targets(gw, "general", only_keyless)
    with pytest.raises(openai.APIStatusError) as caught:
        ask(gw)
    assert (caught.value.status_code, caught.value.code) == (503, "model_unavailable")
    assert upstreams.requests("keyless") == 0


def test_target_without_credential_and_no_global_key_sends_no_authorization(
    gateway_factory: GatewayFactory, upstreams: Upstreams
) -> None:
    a = upstreams.start("a")
    gw = gateway_factory.start()
    set_targets(gw, "general", {"url": a, "name": "a"})
    ask(gw)
    assert "authorization" not in upstreams.stats("a")["last_headers"]


class _SetsCookies:
    """ASGI middleware: every answer of the wrapped model server sets a session cookie."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def with_cookie(message: Any) -> None:
            if message["type"] == "http.response.start":
                cookie = (b"set-cookie", b"upstream_session=caller-a-secret; Path=/")
                message = {**message, "headers": [*message["headers"], cookie]}
            await send(message)

        await self.app(scope, receive, with_cookie)


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_a_cookie_an_upstream_sets_is_never_sent_back_nor_shown(
    gateway_factory: GatewayFactory, upstreams: Upstreams, transport: str
) -> None:
    """The upstream session is shared by every caller: a cookie set in one caller's answer
    must not ride along with the next caller's request, nor reach the caller."""
    app = create_upstream_app("cookies")
    app.add_middleware(_SetsCookies)
    # By host name: aiohttp's default jar ignores cookies from an IP address.
    url = upstreams.start("cookies", app).replace("127.0.0.1", "localhost")
    gw = gateway_factory.start(upstream_settings={"transport": transport})
    set_targets(gw, "general", {"url": url, "name": "cookies"})
    for _ in range(2):
        with gw.caller() as client:
            r = client.post(
                f"{gw.base_url}/v1/chat/completions",
                json={"model": "general", "messages": MESSAGES},
            )
        assert r.status_code == 200, r.text
        assert "set-cookie" not in r.headers
    assert upstreams.requests("cookies") == 2
    assert "cookie" not in upstreams.stats("cookies")["last_headers"]
