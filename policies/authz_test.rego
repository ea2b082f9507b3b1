package tacgw.authz_test

import rego.v1

import data.tacgw.authz

base := {
	"principal": {"sub": "c1", "scopes": ["models"]},
	"trust": {"tier": "public", "org_status": "active"},
	"model": {"name": "general", "tier_floor": "public"},
	"request": {"endpoint": "chat.completions"},
}

test_public_may_use_public_model if {
	authz.decision.allow with input as base
}

test_public_refused_critical_model if {
	d := authz.decision with input as object.union(base, {"model": {"name": "cyber", "tier_floor": "critical"}})
	not d.allow
	d.reasons == {"tier_too_low"}
}

test_critical_may_use_every_tier if {
	every floor in data.tacgw.tiers {
		authz.decision.allow with input as object.union(base, {
			"trust": {"tier": "critical", "org_status": "active"},
			"model": {"name": "m", "tier_floor": floor},
		})
	}
}

test_suspended_org_denied if {
	d := authz.decision with input as object.union(base, {"trust": {"tier": "critical", "org_status": "suspended"}})
	not d.allow
	"org_not_active" in d.reasons
}

test_unknown_tier_fails_closed if {
	d := authz.decision with input as object.union(base, {"trust": {"tier": "root", "org_status": "active"}})
	not d.allow
	"tier_too_low" in d.reasons
}

test_missing_scope_denied if {
	d := authz.decision with input as object.union(base, {"principal": {"sub": "c1", "scopes": []}})
	d.reasons == {"scope_missing"}
}

test_empty_input_denied if {
	not authz.decision.allow with input as {}
}

test_max_tokens_cap_per_tier if {
	authz.decision.obligations.max_tokens == 4096 with input as base
	d := authz.decision with input as object.union(base, {"trust": {"tier": "critical", "org_status": "active"}})
	d.obligations.max_tokens == 32768
}

test_prompts_not_kept_by_default if {
	not authz.decision.obligations.keep_prompt with input as base
}

test_prompts_kept_only_for_listed_tiers if {
	critical := object.union(base, {"trust": {"tier": "critical", "org_status": "active"}})
	authz.decision.obligations.keep_prompt with input as critical with data.tacgw.keep_prompt_tiers as ["critical"]
	not authz.decision.obligations.keep_prompt with input as base with data.tacgw.keep_prompt_tiers as ["critical"]
}

test_no_model_limits_by_default if {
	authz.decision.obligations.limits == {} with input as base
}

test_model_limits_from_data if {
	cyber := object.union(base, {"model": {"name": "cyber", "tier_floor": "public"}})
	models := {"cyber": {"tokens_per_minute": 1000}}
	d := authz.decision with input as cyber with data.tacgw.limits.models as models
	d.obligations.limits == {"tokens_per_minute": 1000}
	authz.decision.obligations.limits == {} with input as base with data.tacgw.limits.models as models
}
