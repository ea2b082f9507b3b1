"""The OpenAI-compatible API: each route hands the raw request to the pipeline."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from gateway import pipeline
from gateway.api.deps import RuntimeDep

router = APIRouter(prefix="/v1", tags=["models"])


@router.post("/chat/completions")
async def chat_completions(request: Request, rt: RuntimeDep) -> Response:
    return await pipeline.proxy(rt, request, "chat.completions")


@router.post("/embeddings")
async def embeddings(request: Request, rt: RuntimeDep) -> Response:
    return await pipeline.proxy(rt, request, "embeddings")


@router.get("/models")
async def models(request: Request, rt: RuntimeDep) -> Response:
    return await pipeline.list_models(rt, request)
