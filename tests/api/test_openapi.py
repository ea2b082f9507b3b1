"""The OpenAPI document describes every route the gateway serves; /docs is opt-in."""

from __future__ import annotations

import httpx

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
