"""The verified caller, as the rest of the pipeline sees it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    client_id: str
    # The gateway's organization id for its own tokens; for a federated token, the value
    # of the issuer's organization claim (the trust stage maps it through `orgissuer`).
    org_id: str
    tier_claim: str
    scopes: tuple[str, ...]
    token_id: str
    issuer: str
    # How the subject proved who it is: the client authentication behind one of the
    # gateway's tokens ("client_secret", "private_key_jwt"), or a federated token's `acr`.
    auth_strength: str = "client_secret"
    auth_time: int | None = None
    # Roles the token claims (the gateway's own: `admin`, `auditor`, `org_admin`, which the
    # admin API honours only while the client still holds them, gateway/api/admin_deps;
    # a federated token's: mapped from the IdP's claim).
    roles: tuple[str, ...] = ()
    federated: bool = False
    # RFC 9449: the thumbprint of the DPoP key the token is bound to (`cnf.jkt`).
    jkt: str | None = None
    # "dpop" once this request proved possession of `jkt`; "bearer" otherwise.
    pop: str = "bearer"
    expires_at: int = 0
