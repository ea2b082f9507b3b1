"""The verified caller, as the rest of the pipeline sees it."""

from __future__ import annotations

from dataclasses import dataclass

# Roles a client's tokens may carry. "auditor": read the /audit API (read-only).
AUDITOR = "auditor"
ROLES = (AUDITOR,)


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    client_id: str
    org_id: str
    tier_claim: str
    scopes: tuple[str, ...]
    token_id: str
    issuer: str
    # How the subject proved who it is; client-credentials tokens are "client_secret".
    auth_strength: str = "client_secret"
    # From the token's `roles` claim: "auditor" may read the /audit API.
    roles: tuple[str, ...] = ()
