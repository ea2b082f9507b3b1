"""The OpenAPI description of the `/v1` routes, declared apart from the routes themselves.

The `/v1` routes are plain ASGI (`gateway/api/v1.py`, no per-request validation cost); these
declarations only feed `/openapi.json`. `tests/api/test_openapi.py` checks that every
served route is described and that real answers match the schemas.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field

from gateway.reasons import Reason


class _Open(BaseModel):
    # OpenAI's bodies carry many more fields than the gateway reads; all pass through.
    model_config = ConfigDict(extra="allow")


class ErrorDetail(BaseModel):
    message: str
    type: str
    code: Reason | str = Field(description="A gateway reason code, or the upstream's own code")
    param: str | None = None


class ErrorBody(BaseModel):
    """The OpenAI error format, used for every `/v1` refusal."""

    error: ErrorDetail


Name = Annotated[str, Field(min_length=1, description="A model of the catalog")]
Text = Annotated[str, Field(min_length=1)]
Texts = Annotated[list[Text], Field(min_length=1)]


class ChatRequest(_Open):
    model: Name
    messages: Annotated[list[dict[str, Any]], Field(min_length=1)]
    stream: bool | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)


class CompletionRequest(_Open):
    model: Name
    prompt: Text | Texts
    stream: bool | None = None
    max_tokens: int | None = Field(None, ge=1)


class ResponsesRequest(_Open):
    model: Name
    input: Text | Annotated[list[dict[str, Any]], Field(min_length=1)]
    stream: bool | None = None
    max_output_tokens: int | None = Field(None, ge=1)


class EmbeddingsRequest(_Open):
    model: Name
    input: Text | Texts


class ModelAnswer(_Open):
    """The upstream's answer, with `model` always the catalog's name."""

    model: str | None = None


class Model(BaseModel):
    id: str
    object: str = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: str = "list"
    data: list[Model]


_REFUSALS: dict[int, str] = {
    400: "invalid_json, invalid_request",
    401: "token_* (with WWW-Authenticate), client_unknown, client_revoked",
    403: "the policy's reasons, e.g. tier_too_low, org_suspended, not_verified",
    404: "model_not_found, not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    429: "rate_limited (with Retry-After and RateLimit-* headers)",
    502: "upstream_error, upstream_unavailable",
    503: "trust_, catalog_, policy_, limits_ or audit_unavailable, policy_error (fail closed)",
    504: "upstream_timeout",
}
_SSE = {"text/event-stream": {"schema": {"type": "string"}}}


def _responses(*statuses: int, stream: bool = False) -> dict[int | str, dict[str, Any]]:
    out: dict[int | str, dict[str, Any]] = {
        s: {"model": ErrorBody, "description": _REFUSALS[s]} for s in statuses
    }
    if stream:
        out[200] = {"content": _SSE, "description": "JSON, or SSE when `stream` is true"}
    return out


_MODEL_CALL = (400, 401, 403, 404, 405, 413, 429, 502, 503, 504)
_READ = (401, 404, 405, 429, 503)

router = APIRouter(prefix="/v1", tags=["v1"])


@router.post(
    "/chat/completions", response_model=ModelAnswer, responses=_responses(*_MODEL_CALL, stream=True)
)
def chat_completions(body: ChatRequest) -> None:
    """Chat completion, routed by the caller's verified tier."""


@router.post(
    "/completions", response_model=ModelAnswer, responses=_responses(*_MODEL_CALL, stream=True)
)
def completions(body: CompletionRequest) -> None:
    """Legacy text completion."""


@router.post(
    "/responses", response_model=ModelAnswer, responses=_responses(*_MODEL_CALL, stream=True)
)
def responses(body: ResponsesRequest) -> None:
    """Responses API."""


@router.post("/embeddings", response_model=ModelAnswer, responses=_responses(*_MODEL_CALL))
def embeddings(body: EmbeddingsRequest) -> None:
    """Embeddings."""


@router.get("/models", response_model=ModelList, responses=_responses(*_READ))
def models() -> None:
    """The models the caller's tier may use."""


@router.get("/models/{model_id}", response_model=Model, responses=_responses(*_READ))
def retrieve_model(model_id: str) -> None:
    """One model; 404 when it does not exist or the caller's tier may not use it."""


def install(app: FastAPI, *, finish: Callable[[dict[str, Any]], None] | None = None) -> None:
    """Make `app.openapi()` describe the `/v1` routes from these declarations as well;
    `finish` completes the document with what only the settings know."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = get_openapi(
                title=app.title,
                version=app.version,
                routes=[*router.routes, *app.routes],
                description="OpenAI-compatible API behind verified trust tiers.",
            )
            app.openapi_schema["components"].setdefault("securitySchemes", {})["bearer"] = {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
            }
            for path, item in app.openapi_schema["paths"].items():
                if path.startswith("/v1/"):
                    for operation in item.values():
                        operation["security"] = [{"bearer": []}]
            if finish is not None:
                finish(app.openapi_schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
