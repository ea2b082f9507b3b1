package tacgw.authz_test

import rego.v1

import data.tacgw.authz

base := {
	"principal": {"sub": "c1", "scopes": ["models"]},
	"trust": {"tier": "public", "org_status": "active"},
	"model": {
		"name": "general",
		"tier_floor": "public",
		"screening": {"state": "current", "max_ci_high": 0.037},
	},
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

# Screening: the thresholds in data.json are public 0.25, verified 0.15, critical 0.1, and
# verified and critical require a screening.

as_tier(tier, screening) := object.union(base, {
	"trust": {"tier": tier, "org_status": "active"},
	"model": {"screening": screening},
})

test_required_tiers_refuse_a_model_without_a_current_report if {
	every tier in ["verified", "critical"] {
		every state in ["missing", "expired", "stale"] {
			d := authz.decision with input as as_tier(tier, {"state": state, "max_ci_high": null})
			d.reasons == {"model_not_screened"}
		}
	}
}

test_required_tiers_refuse_a_model_without_any_screening_input if {
	unscreened := object.remove(base, ["model"])
	d := authz.decision with input as object.union(unscreened, {
		"trust": {"tier": "critical", "org_status": "active"},
		"model": {"name": "general", "tier_floor": "public"},
	})
	d.reasons == {"model_not_screened"}
}

test_a_tier_that_does_not_require_screening_ignores_it if {
	authz.decision.allow with input as as_tier("public", {"state": "missing", "max_ci_high": null})
}

test_failing_report_refused if {
	every tier in ["verified", "critical"] {
		d := authz.decision with input as as_tier(tier, {"state": "current", "max_ci_high": 0.984})
		d.reasons == {"model_failed_screening"}
	}
}

test_threshold_is_per_tier_and_inclusive if {
	authz.decision.allow with input as as_tier("verified", {"state": "current", "max_ci_high": 0.15})
	authz.decision.allow with input as as_tier("critical", {"state": "current", "max_ci_high": 0.1})
	d := authz.decision with input as as_tier("critical", {"state": "current", "max_ci_high": 0.12})
	d.reasons == {"model_failed_screening"}
	authz.decision.allow with input as as_tier("verified", {"state": "current", "max_ci_high": 0.12})
}

test_a_current_report_without_a_figure_fails if {
	d := authz.decision with input as as_tier("critical", {"state": "current", "max_ci_high": null})
	d.reasons == {"model_failed_screening"}
}

test_a_lower_tier_learns_nothing_about_screening if {
	d := authz.decision with input as object.union(base, {
		"trust": {"tier": "verified", "org_status": "active"},
		"model": {"name": "cyber", "tier_floor": "critical", "screening": {"state": "missing", "max_ci_high": null}},
	})
	d.reasons == {"tier_too_low"}
}
