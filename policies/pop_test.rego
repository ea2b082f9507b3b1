package tacgw.pop_test

import rego.v1

import data.tacgw.authz

critical := {
	"principal": {"sub": "c1", "scopes": ["models"], "pop": "bearer"},
	"trust": {"tier": "critical", "org_status": "verified"},
	"model": {"name": "cyber", "tier_floor": "critical", "screening": {"state": "current", "max_ci_high": 0.03}},
	"request": {"endpoint": "chat.completions"},
}

test_bearer_token_refused_for_dpop_tier if {
	d := authz.decision with input as critical
	not d.allow
	d.reasons == {"dpop_required"}
}

test_proof_of_possession_allows if {
	authz.decision.allow with input as object.union(critical, {"principal": {"pop": "dpop"}})
}

test_other_tiers_take_bearer_tokens if {
	authz.decision.allow with input as object.union(critical, {"model": {"tier_floor": "verified"}})
}

test_too_low_a_tier_is_told_so_not_to_use_dpop if {
	d := authz.decision with input as object.union(critical, {"trust": {"tier": "verified"}})
	d.reasons == {"tier_too_low"}
}

test_tiers_come_from_data if {
	authz.decision.allow with input as critical with data.tacgw.dpop_required_tiers as []
}
