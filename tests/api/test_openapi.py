"""The OpenAPI document describes every route the gateway serves; /docs is opt-in."""

from __future__ import annotations

from typing import Any

import httpx

from gateway.admin import clients, ops
from gateway.admin.actor import Actor
from tests.support.gateway import GatewayFactory, RunningGateway

V1 = {
    ("post", "/v1/chat/completions"),
    ("post", "/v1/completions"),
    ("post", "/v1/responses"),
    ("post", "/v1/embeddings"),
    ("get", "/v1/models"),
    ("get", "/v1/models/{model_id}"),
}


def test_v1_routes_are_documented(module_gateway: RunningGateway) -> None:
    """Each /v1 route has its request schema and its refusals in the OpenAI error format."""
    doc = httpx.get(f"{module_gateway.base_url}/openapi.json").json()
    documented = {(m, p) for p, item in doc["paths"].items() for m in item}
    assert documented >= V1 | {("post", "/oauth/token"), ("get", "/readyz")}
    chat = doc["paths"]["/v1/chat/completions"]["post"]
    assert "requestBody" in chat and chat["security"] == [{"bearer": []}]
    assert {"401", "403", "404", "429", "503"} <= set(chat["responses"])
    error = chat["responses"]["403"]["content"]["application/json"]["schema"]["$ref"]
    assert error.endswith("/ErrorBody")
    assert "text/event-stream" in chat["responses"]["200"]["content"]


def test_interactive_docs_are_off_unless_enabled(gateway_factory: GatewayFactory) -> None:
    """`/docs` answers 404 by default and 200 with `api_docs`; the JSON is always there."""
    off = gateway_factory.start()
    assert httpx.get(f"{off.base_url}/docs").status_code == 404
    assert httpx.get(f"{off.base_url}/openapi.json").status_code == 200
    on = gateway_factory.start(api_docs=True)
    assert httpx.get(f"{on.base_url}/docs").status_code == 200


def test_admin_and_orgs_routes_are_documented(module_gateway: RunningGateway) -> None:
    """The admin and /orgs routes carry their models, bearer security and error answers."""
    doc = httpx.get(f"{module_gateway.base_url}/openapi.json").json()
    paths = doc["paths"]
    for method, path in (
        ("post", "/orgs"),
        ("post", "/orgs/{org_id}/challenges"),
        ("post", "/orgs/{org_id}/challenges/{challenge_id}/check"),
        ("get", "/admin/orgs"),
        ("post", "/admin/orgs/{org_id}/approve"),
        ("post", "/admin/orgs/{org_id}/revoke"),
        ("post", "/admin/grants"),
        ("get", "/admin/grants/expiring"),
        ("post", "/admin/clients/{client_id}/rotate"),
        ("delete", "/admin/models/{name}"),
    ):
        operation = paths[path][method]
        assert operation["security"] == [{"bearer": []}], path
        assert {"400", "401", "403", "404", "409"} <= set(operation["responses"]), path
        refusal = operation["responses"]["409"]["content"]["application/json"]["schema"]
        assert refusal["$ref"].endswith("/ErrorBody")
    approve = paths["/admin/orgs/{org_id}/approve"]["post"]
    assert approve["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/Approval"
    )
    assert (
        "ApproveRequest" in approve["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    )
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def _admin_token(gw: RunningGateway) -> str:
    async def make(engine: Any) -> Any:
        org = await ops.create_org(engine, name="operators")
        return await clients.create_client(
            engine, actor=Actor.cli(), org_id=org.id, name="ops", roles=["admin"]
        )

    issued = gw.run(make)
    reply = httpx.post(
        f"{gw.base_url}/oauth/token",
        auth=(issued.client_id, issued.client_secret),
        data={"grant_type": "client_credentials"},
    )
    return str(reply.json()["access_token"])


def test_what_schemathesis_found(gateway_factory: GatewayFactory) -> None:
    """Regressions from a schemathesis run (--checks all) against the document: a 405 names
    every method of the path; a malformed id or body is a 4xx, never a 500 or 503."""
    gw = gateway_factory.start()
    admin = {"authorization": f"Bearer {_admin_token(gw)}"}
    options = httpx.options(f"{gw.base_url}/admin/grants", headers=admin)
    assert options.status_code == 405 and options.headers["allow"] == "GET, POST"
    odd_id = httpx.post(f"{gw.base_url}/admin/grants/null,null/revoke", json={}, headers=admin)
    assert odd_id.status_code == 404, odd_id.text
    assert odd_id.json()["error"]["code"] == "grant_not_found"
    org = gw.org_ids["public"]
    odd_body = httpx.post(
        f"{gw.base_url}/admin/orgs/{org}/clients",
        json={"name": -1689, "roles": [197496, -2007]},
        headers=admin,
    )
    assert odd_body.status_code == 400, odd_body.text
