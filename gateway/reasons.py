"""Every reason code the gateway can give, in one place.

A reason code is stable: it appears in error bodies (`error.code`, or `error` on the token
endpoint), audit rows and metric labels, so renaming one is a breaking change for
auditors' queries and dashboards. The Rego policies may only give codes listed here
(tests/policy/test_reasons.py checks every `reasons contains "..."` in `policies/`).
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
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    # routing
    MODEL_NOT_FOUND = "model_not_found"
    CATALOG_UNAVAILABLE = "catalog_unavailable"
    # policy (every code the Rego policies may give is listed here)
    TIER_TOO_LOW = "tier_too_low"
    SCOPE_MISSING = "scope_missing"
    POLICY_ERROR = "policy_error"
    POLICY_UNAVAILABLE = "policy_unavailable"
    # limits
    RATE_LIMITED = "rate_limited"
    LIMITS_UNAVAILABLE = "limits_unavailable"
    # forward
    UPSTREAM_ERROR = "upstream_error"
    UPSTREAM_TIMEOUT = "upstream_timeout"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    CLIENT_CLOSED = "client_closed"
    # audit
    AUDIT_UNAVAILABLE = "audit_unavailable"
    # the auditor API (/audit)
    ROLE_MISSING = "role_missing"
    DECISION_NOT_FOUND = "decision_not_found"
    NOT_IN_CHECKPOINT = "not_in_checkpoint"
    NOT_REPLAYABLE = "not_replayable"
    # the token endpoint (RFC 6749 §5.2 error codes; `invalid_request` is shared above)
    INVALID_CLIENT = "invalid_client"
    INVALID_GRANT = "invalid_grant"
    INVALID_SCOPE = "invalid_scope"
    UNAUTHORIZED_CLIENT = "unauthorized_client"
    UNSUPPORTED_GRANT_TYPE = "unsupported_grant_type"
    SLOW_DOWN = "slow_down"
    # anything unexpected; never leaks details to the caller
    INTERNAL_ERROR = "internal_error"
