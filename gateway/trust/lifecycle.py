"""An organization's verification lifecycle: its states and the moves between them.

    applied ──challenge──▶ verifying ──approve──▶ verified ◀──reinstate── suspended
       │                      │                     │  └──────suspend──────▶ │
       └───────reject─────────┴──▶ rejected         └──revoke──▶ revoked ◀───┘

Only a `verified` organization holds anything above the lowest tier; `rejected` and
`revoked` are final (a new application is a new organization).
"""

from __future__ import annotations

from enum import StrEnum


class OrgStatus(StrEnum):
    APPLIED = "applied"
    VERIFYING = "verifying"
    VERIFIED = "verified"
    REJECTED = "rejected"
    SUSPENDED = "suspended"
    REVOKED = "revoked"


class OrgAction(StrEnum):
    CHALLENGE = "challenge"
    APPROVE = "approve"
    REJECT = "reject"
    SUSPEND = "suspend"
    REINSTATE = "reinstate"
    REVOKE = "revoke"


_S = OrgStatus
# action → (states it may start from, state it leads to)
TRANSITIONS: dict[OrgAction, tuple[frozenset[OrgStatus], OrgStatus]] = {
    OrgAction.CHALLENGE: (frozenset({_S.APPLIED, _S.VERIFYING}), _S.VERIFYING),
    OrgAction.APPROVE: (frozenset({_S.VERIFYING}), _S.VERIFIED),
    OrgAction.REJECT: (frozenset({_S.APPLIED, _S.VERIFYING}), _S.REJECTED),
    OrgAction.SUSPEND: (frozenset({_S.VERIFIED}), _S.SUSPENDED),
    OrgAction.REINSTATE: (frozenset({_S.SUSPENDED}), _S.VERIFIED),
    OrgAction.REVOKE: (frozenset({_S.VERIFIED, _S.SUSPENDED}), _S.REVOKED),
}


def next_status(current: str, action: OrgAction) -> OrgStatus | None:
    """The state `action` leads to from `current`, or None when the move is not allowed."""
    sources, target = TRANSITIONS[action]
    return target if current in sources else None


def allowed_from(action: OrgAction) -> list[str]:
    return sorted(TRANSITIONS[action][0])
