"""What an OAuth endpoint's answer is audited with: who, which token, what was decided.

The issuer fills these in as it decides; the pipeline (`gateway/pipeline/oauth.py`) makes
them the audit event. Never a secret, a client assertion or a token: only ids. The client
is named only once it authenticated, so that an unknown client id (or a secret typed in
the client id field) is never stored and the log cannot be used to enumerate clients.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Values of `detail`: JSON scalars only (the event is canonical JSON, no floats).
Scalar = str | int | bool | None


@dataclass(frozen=True, slots=True)
class OAuthFacts:
    # The client that authenticated (None: it did not, whatever id it named).
    client_id: str | None = None
    org_id: str | None = None
    # The tier the issued token carries (None when nothing was issued).
    tier: str | None = None
    # The token issued, revoked or introspected (its `jti`).
    token_id: str | None = None
    # Endpoint-specific facts: how the client authenticated, DPoP binding, scope, whether
    # a token was revoked or found active, the organization's status when it was refused.
    detail: dict[str, Scalar] = field(default_factory=dict)
