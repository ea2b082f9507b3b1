"""Sign-in with an OpenID Connect provider: authorization code flow with PKCE (S256).

Not yet built: the routes answer 404 until `console.oidc` is configured and the flow
lands (issue 9, second part).
"""

from __future__ import annotations

from fastapi import APIRouter

from gateway.settings import Settings


def make_router(settings: Settings) -> APIRouter:
    return APIRouter()
