"""Every reason code the gateway can give, in one place.

A reason code is stable: it appears in error bodies (`error.code`), audit rows and metric
labels, so renaming one is a breaking change for auditors' queries and dashboards.
"""

from enum import StrEnum


class Reason(StrEnum):
    # allowed
    ALLOWED = "allowed"
    # identity
    TOKEN_MISSING = "token_missing"
    TOKEN_MALFORMED = "token_malformed"
    TOKEN_ALG_NOT_ALLOWED = "token_alg_not_allowed"
    TOKEN_UNKNOWN_KID = "token_unknown_kid"
    TOKEN_BAD_SIGNATURE = "token_bad_signature"
    TOKEN_EXPIRED = "token_expired"
    TOKEN_NOT_YET_VALID = "token_not_yet_valid"
    TOKEN_WRONG_ISSUER = "token_wrong_issuer"
    TOKEN_WRONG_AUDIENCE = "token_wrong_audience"
    TOKEN_MISSING_CLAIM = "token_missing_claim"
    # trust
    CLIENT_UNKNOWN = "client_unknown"
    CLIENT_REVOKED = "client_revoked"
    TRUST_UNAVAILABLE = "trust_unavailable"
    ORG_NOT_ACTIVE = "org_not_active"
    # request
    INVALID_JSON = "invalid_json"
    INVALID_REQUEST = "invalid_request"
    BODY_TOO_LARGE = "body_too_large"
    MODEL_NOT_FOUND = "model_not_found"
    # policy (the Rego policy may add its own; these are the ones the gateway knows)
    TIER_TOO_LOW = "tier_too_low"
    POLICY_ERROR = "policy_error"
    POLICY_UNAVAILABLE = "policy_unavailable"
    # limits
    RATE_LIMITED = "rate_limited"
    # forward
    UPSTREAM_ERROR = "upstream_error"
    UPSTREAM_TIMEOUT = "upstream_timeout"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    # anything unexpected; never leaks details to the caller
    CLIENT_CLOSED = "client_closed"
    AUDIT_UNAVAILABLE = "audit_unavailable"
    INTERNAL_ERROR = "internal_error"
