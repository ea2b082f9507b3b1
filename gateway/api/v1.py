"""The OpenAI-compatible API: each route hands the raw request to the pipeline.

Plain Starlette routes, not FastAPI ones: the pipeline reads the body and renders every
response itself, so FastAPI's per-request dependency solving would only add cost on the
hottest path (measured with bench/run.py).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import pipeline
from gateway.runtime import Runtime


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def chat_completions(request: Request) -> Response:
    return await pipeline.proxy(_runtime(request), request, "chat.completions")


async def embeddings(request: Request) -> Response:
    return await pipeline.proxy(_runtime(request), request, "embeddings")


async def models(request: Request) -> Response:
    return await pipeline.list_models(_runtime(request), request)


routes = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/embeddings", embeddings, methods=["POST"]),
    Route("/v1/models", models, methods=["GET"]),
]
