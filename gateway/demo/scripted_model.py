"""The scripted screening model served over real HTTP (OpenAI-compatible chat completions).

`tac-gateway screening scripted-model --harm-rate P --port N` runs it; tests serve
`create_scripted_app(...)` on loopback. What it answers is `gateway.screening.scripted`;
this module only speaks HTTP. `GET /_scripted/stats` counts the requests it served.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.screening.scripted import ScriptedModel
from gateway.serve import run_server


def _json(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


def _error(status: int, message: str) -> Response:
    return _json(
        {"error": {"message": message, "type": "invalid_request_error", "code": None}}, status
    )


def create_scripted_app(
    model: ScriptedModel, name: str = "scripted", api_key: str | None = None
) -> Starlette:
    """With `api_key`, a chat request without `Authorization: Bearer <api_key>` gets a 401,
    as a hosted upstream would answer."""
    stats = {"requests": 0}

    async def chat(request: Request) -> Response:
        stats["requests"] += 1
        if api_key is not None and request.headers.get("authorization") != f"Bearer {api_key}":
            return _error(401, "invalid API key")
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _error(400, "malformed JSON body")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _error(400, "the body must be an object with a 'messages' list")
        return _json(model.complete(body))

    async def models(request: Request) -> Response:
        return _json(
            {"object": "list", "data": [{"id": name, "object": "model", "owned_by": "scripted"}]}
        )

    async def health(request: Request) -> Response:
        return _json({"status": "ok"})

    async def stats_view(request: Request) -> Response:
        return _json(
            {
                **stats,
                "harm_rate": model.harm_rate,
                "false_positive_rate": model.false_positive_rate,
            }
        )

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/models", models),
            Route("/healthz", health),
            Route("/_scripted/stats", stats_view),
        ]
    )


def run_scripted(
    *, host: str, port: int, harm_rate: float, seed: int = 0, false_positive_rate: float = 0.0
) -> None:
    """Serve until interrupted (the CLI's `screening scripted-model`)."""
    model = ScriptedModel(harm_rate=harm_rate, false_positive_rate=false_positive_rate, seed=seed)
    run_server(create_scripted_app(model), host=host, port=port)
