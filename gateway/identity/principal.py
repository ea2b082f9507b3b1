"""The verified caller, as the rest of the pipeline sees it."""

from __future__ import annotations

from dataclasses import dataclass


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
    # Administrative roles the token claims (`admin`, `auditor`, `org_admin`); the admin
    # API honours only those the client still holds in the database (gateway/api/admin_deps).
    roles: tuple[str, ...] = ()
