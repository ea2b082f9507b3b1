"""The refusals the admin and `/orgs` routes document in OpenAPI (the OpenAI error shape)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import Path

from gateway.api.v1_schema import ErrorBody

_REFUSALS: dict[int, str] = {
    400: "invalid_request, field_invalid, domain_*, sector_unknown, country_unknown, tier_*",
    401: "token_* (with WWW-Authenticate), client_unknown, client_revoked",
    403: "the admin policy's reasons: admin_role_required, auditor_read_only, not_your_org, "
    "tier_raise_forbidden, role_not_grantable",
    404: "org_not_found, grant_not_found, client_not_found, member_not_found, "
    "challenge_not_found, model_not_found",
    409: "version_conflict, transition_not_allowed, domain_taken, name_taken, proof_missing, "
    "challenge_expired, already_revoked, not_verified",
    503: "policy_unavailable, policy_error, trust_unavailable (fail closed)",
}


# Row ids are INTEGER columns: a larger number in a path is a 422, never a database error.
MAX_ROW_ID = 2**31 - 1
RowId = Annotated[int, Path(ge=0, le=MAX_ROW_ID)]


def refusals(*statuses: int) -> dict[int | str, dict[str, Any]]:
    chosen = statuses or tuple(_REFUSALS)
    return {s: {"model": ErrorBody, "description": _REFUSALS[s]} for s in chosen}


def describe_tiers(doc: dict[str, Any], grantable: Sequence[str]) -> None:
    """List the tiers an admin may grant wherever a model marks a field as one (the names
    come from the policy data, so the models cannot list them)."""
    for model in doc.get("components", {}).get("schemas", {}).values():
        for prop in model.get("properties", {}).values():
            if prop.pop("x-tacgw-grantable-tier", False):
                prop["enum"] = list(grantable)
