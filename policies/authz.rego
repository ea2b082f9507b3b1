# TAC Gateway access decision.
#
# input:  {principal, trust, model, request}  (see docs/architecture.md)
# output: data.tacgw.authz.decision = {allow, reasons, obligations}
#
# Deny wins: a request is allowed only when no rule gives a reason against it.
package tacgw.authz

import rego.v1

tiers := data.tacgw.tiers

rank(name) := i if {
	some i, t in tiers
	t == name
}

default allow := false

allow if count(reasons) == 0

# Negate named rules only, never an expression over `input`: OPA and rego-cpp differ on
# `not <expr>` when the expression has an undefined operand (tests/policy/test_agreement.py).

# The organization's standing comes first: while it is not verified, that alone explains
# the refusal, and no tier reason is given (it would only repeat the consequence).
reasons contains "org_suspended" if input.trust.org_status == "suspended"

reasons contains "org_revoked" if input.trust.org_status == "revoked"

reasons contains "not_verified" if {
	not org_verified
	not org_stopped
}

org_verified if input.trust.org_status == "verified"

org_stopped if input.trust.org_status == "suspended"

org_stopped if input.trust.org_status == "revoked"

# An unknown tier has no rank, so `tier_sufficient` stays undefined: fail closed.
tier_sufficient if rank(input.trust.tier) >= rank(input.model.tier_floor)

# A dead grant that would have been enough names why the tier is short now.
lapse_explains if {
	lapsed_rank := rank(input.trust.lapsed.tier)
	not tier_sufficient
	lapsed_rank >= rank(input.model.tier_floor)
}

reasons contains "grant_expired" if {
	input.trust.lapsed.reason == "grant_expired"
	org_verified
	lapse_explains
}

reasons contains "grant_revoked" if {
	input.trust.lapsed.reason == "grant_revoked"
	org_verified
	lapse_explains
}

reasons contains "tier_too_low" if {
	org_verified
	not tier_sufficient
	not lapse_explains
}

reasons contains "scope_missing" if not has_models_scope

has_models_scope if "models" in input.principal.scopes

# Misalignment screening (docs/screening.md): for a tier that requires it, the model needs
# a current report (unexpired, made against its present upstream) whose highest upper 95%
# bound is within the tier's threshold. Asked only once the organization is verified and
# the tier suffices, so that a caller refused anyway learns nothing about the model.
screening_required if {
	org_verified
	tier_sufficient
	input.trust.tier in data.tacgw.screening.required_tiers
}

reasons contains "model_not_screened" if {
	screening_required
	not screening_current
}

reasons contains "model_failed_screening" if {
	screening_required
	screening_current
	not screening_passed
}

screening_current if input.model.screening.state == "current"

# is_number first: Rego orders values across types, so `null <= 0.1` would hold.
screening_passed if {
	is_number(input.model.screening.max_ci_high)
	input.model.screening.max_ci_high <= data.tacgw.screening.thresholds[input.trust.tier]
}

# Obligations the gateway enforces on an allowed request.
default max_tokens := 0

max_tokens := data.tacgw.max_tokens[input.trust.tier]

# Whether prompts may be kept in the audit record, per tier. The gateway reads this
# obligation but does not store prompts yet (the audit issue will); none is kept today.
default keep_prompt := false

keep_prompt if input.trust.tier in data.tacgw.keep_prompt_tiers

# Limits for this request that tighten the tier's defaults (the gateway reads those from
# data.tacgw.limits.tiers itself; an obligation can only lower them). Here: per model.
default limits := {}

limits := data.tacgw.limits.models[input.model.name]

obligations := {"max_tokens": max_tokens, "keep_prompt": keep_prompt, "limits": limits}

decision := {"allow": allow, "reasons": reasons, "obligations": obligations}
