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
    POLICY_REFUSED = "policy_refused"  # a reload refused: the policy in use keeps serving
    # screening (issue 8): the model has no current report, or it fails the caller's tier
    MODEL_NOT_SCREENED = "model_not_screened"
    MODEL_FAILED_SCREENING = "model_failed_screening"
    # screening runs through the admin API (gateway/admin/screening_runs.py)
    MODEL_UNSCREENABLE = "model_unscreenable"  # no enabled target, or it cannot be called
    SCREENING_IN_PROGRESS = "screening_in_progress"
    SCREENING_RUN_NOT_FOUND = "screening_run_not_found"
    # limits
    RATE_LIMITED = "rate_limited"
    LIMITS_UNAVAILABLE = "limits_unavailable"
    # limits: tokens per minute, the organization's daily budget, concurrent requests
    TOKENS_EXHAUSTED = "tokens_exhausted"
    BUDGET_EXHAUSTED = "budget_exhausted"
    TOO_MANY_IN_FLIGHT = "too_many_in_flight"
    # forward
    UPSTREAM_ERROR = "upstream_error"
    UPSTREAM_TIMEOUT = "upstream_timeout"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    CLIENT_CLOSED = "client_closed"
    # routing to upstream targets (failover, upstream safety)
    MODEL_UNAVAILABLE = "model_unavailable"  # no healthy, usable target for the model
    UPSTREAM_REDIRECT = "upstream_redirect"  # a 3xx from an upstream: never followed
    UPSTREAM_TOO_LARGE = "upstream_too_large"  # answer over upstream.max_response_bytes
    # audit
    AUDIT_UNAVAILABLE = "audit_unavailable"
    # the auditor API (/audit)
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
    # trust standing (the authz policy gives these; gateway/trust/resolve.py feeds it)
    ORG_SUSPENDED = "org_suspended"
    ORG_REVOKED = "org_revoked"
    NOT_VERIFIED = "not_verified"
    GRANT_EXPIRED = "grant_expired"
    GRANT_REVOKED = "grant_revoked"
    # trust administration: who may act (policies/admin.rego gives these)
    ADMIN_ROLE_REQUIRED = "admin_role_required"
    AUDITOR_READ_ONLY = "auditor_read_only"
    NOT_YOUR_ORG = "not_your_org"
    TIER_RAISE_FORBIDDEN = "tier_raise_forbidden"
    ROLE_NOT_GRANTABLE = "role_not_grantable"
    UNKNOWN_ACTION = "unknown_action"
    # trust administration: what was asked (gateway/admin/, gateway/trust/domains.py)
    DOMAIN_INVALID = "domain_invalid"
    DOMAIN_IS_IP = "domain_is_ip"
    DOMAIN_WILDCARD = "domain_wildcard"
    DOMAIN_PUBLIC_SUFFIX = "domain_public_suffix"
    DOMAIN_TAKEN = "domain_taken"
    NAME_TAKEN = "name_taken"
    FIELD_INVALID = "field_invalid"
    SECTOR_UNKNOWN = "sector_unknown"
    COUNTRY_UNKNOWN = "country_unknown"
    TIER_UNKNOWN = "tier_unknown"
    TIER_NOT_FOR_INDIVIDUALS = "tier_not_for_individuals"
    ORG_NOT_FOUND = "org_not_found"
    GRANT_NOT_FOUND = "grant_not_found"
    CLIENT_NOT_FOUND = "client_not_found"
    MEMBER_NOT_FOUND = "member_not_found"
    CHALLENGE_NOT_FOUND = "challenge_not_found"
    CHALLENGE_EXPIRED = "challenge_expired"
    PROOF_MISSING = "proof_missing"
    TRANSITION_NOT_ALLOWED = "transition_not_allowed"
    VERSION_CONFLICT = "version_conflict"
    ALREADY_REVOKED = "already_revoked"
    # identity: keys, revocation, federation, proof of possession (issue 6)
    TOKEN_REVOKED = "token_revoked"
    IDP_UNAVAILABLE = "idp_unavailable"
    ORG_NOT_MAPPED = "org_not_mapped"
    KEYS_UNAVAILABLE = "keys_unavailable"
    # RFC 9449 §7.1 / §12.2 error codes (`WWW-Authenticate: DPoP error=...`)
    INVALID_DPOP_PROOF = "invalid_dpop_proof"
    DPOP_REQUIRED = "dpop_required"
    # RFC 7009 §2.2.1
    UNSUPPORTED_TOKEN_TYPE = "unsupported_token_type"
    # the console (gateway/console)
    SIGN_IN_REQUIRED = "sign_in_required"  # no live session: the page sends you to sign in
    SIGN_IN_FAILED = "sign_in_failed"  # wrong name or password, unknown account alike
    CSRF_FAILED = "csrf_failed"  # a form without its valid CSRF token
    OIDC_FAILED = "oidc_failed"  # the IdP's answer could not be used (state, token, claims)
    NO_CONSOLE_ROLE = "no_console_role"  # signed in at the IdP, but with no console role
    # an upstream stream that is not well-formed SSE (gateway/forward/events.py)
    UPSTREAM_MALFORMED = "upstream_malformed"
    # transport limits (gateway/api/hardening.py), before any route runs
    HEADERS_TOO_LARGE = "headers_too_large"
    REQUEST_TIMEOUT = "request_timeout"
    # anything unexpected; never leaks details to the caller
    INTERNAL_ERROR = "internal_error"
