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
reasons contains "org_not_active" if not org_active

org_active if input.trust.org_status == "active"

# An unknown tier has no rank, so `tier_sufficient` stays undefined: fail closed.
reasons contains "tier_too_low" if not tier_sufficient

tier_sufficient if rank(input.trust.tier) >= rank(input.model.tier_floor)

reasons contains "scope_missing" if not has_models_scope

has_models_scope if "models" in input.principal.scopes

# Obligations the gateway enforces on an allowed request.
default max_tokens := 0

max_tokens := data.tacgw.max_tokens[input.trust.tier]

# Whether prompts may be kept in the audit record, per tier. The gateway reads this
# obligation but does not store prompts yet (the audit issue will); none is kept today.
default keep_prompt := false

keep_prompt if input.trust.tier in data.tacgw.keep_prompt_tiers

obligations := {"max_tokens": max_tokens, "keep_prompt": keep_prompt}

decision := {"allow": allow, "reasons": reasons, "obligations": obligations}
