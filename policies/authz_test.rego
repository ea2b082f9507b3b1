package tacgw.authz_test

import rego.v1

import data.tacgw.authz

base := {
	"principal": {"sub": "c1", "scopes": ["models"]},
	"trust": {"tier": "public", "org_status": "verified"},
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
			"principal": {"pop": "dpop"},
			"trust": {"tier": "critical", "org_status": "verified"},
			"model": {"name": "m", "tier_floor": floor},
		})
	}
}

test_suspended_org_denied_for_that_reason_alone if {
	d := authz.decision with input as object.union(base, {"trust": {"tier": "critical", "org_status": "suspended"}})
	not d.allow
	d.reasons == {"org_suspended"}
}

test_revoked_org_denied_even_with_a_lapsed_grant if {
	d := authz.decision with input as object.union(base, {
		"trust": {"tier": "public", "org_status": "revoked", "lapsed": {"tier": "critical", "reason": "grant_revoked"}},
		"model": {"name": "cyber", "tier_floor": "critical"},
	})
	d.reasons == {"org_revoked"}
}

test_unverified_states_denied_as_not_verified if {
	every status in ["applied", "verifying", "rejected", "active", ""] {
		d := authz.decision with input as object.union(base, {"trust": {"tier": "public", "org_status": status}})
		d.reasons == {"not_verified"}
	}
}

test_missing_status_is_not_verified if {
	d := authz.decision with input as object.remove(base, ["trust"])
	d.reasons == {"not_verified"}
}

test_expired_grant_named if {
	d := authz.decision with input as object.union(base, {
		"trust": {"tier": "public", "org_status": "verified", "lapsed": {"tier": "critical", "reason": "grant_expired"}},
		"model": {"name": "cyber", "tier_floor": "critical"},
	})
	d.reasons == {"grant_expired"}
}

test_revoked_grant_named if {
	d := authz.decision with input as object.union(base, {
		"trust": {"tier": "public", "org_status": "verified", "lapsed": {"tier": "verified", "reason": "grant_revoked"}},
		"model": {"name": "tac", "tier_floor": "verified"},
	})
	d.reasons == {"grant_revoked"}
}

test_lapsed_grant_too_low_to_matter_is_tier_too_low if {
	d := authz.decision with input as object.union(base, {
		"trust": {"tier": "public", "org_status": "verified", "lapsed": {"tier": "verified", "reason": "grant_expired"}},
		"model": {"name": "cyber", "tier_floor": "critical"},
	})
	d.reasons == {"tier_too_low"}
}

test_lapsed_grant_ignored_when_tier_suffices if {
	authz.decision.allow with input as object.union(base, {
		"trust": {"tier": "public", "org_status": "verified", "lapsed": {"tier": "critical", "reason": "grant_expired"}},
	})
}

test_unknown_tier_fails_closed if {
	d := authz.decision with input as object.union(base, {"trust": {"tier": "root", "org_status": "verified"}})
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
	d := authz.decision with input as object.union(base, {"trust": {"tier": "critical", "org_status": "verified"}})
	d.obligations.max_tokens == 32768
}

test_prompts_not_kept_by_default if {
	not authz.decision.obligations.keep_prompt with input as base
}

test_prompts_kept_only_for_listed_tiers if {
	critical := object.union(base, {"trust": {"tier": "critical", "org_status": "verified"}})
	authz.decision.obligations.keep_prompt with input as critical with data.tacgw.keep_prompt_tiers as ["critical"]
	not authz.decision.obligations.keep_prompt with input as base with data.tacgw.keep_prompt_tiers as ["critical"]
}

# Screening: the thresholds in data.json are public 0.25, verified 0.15, critical 0.1, and
# verified and critical require a screening.

as_tier(tier, screening) := object.union(base, {
	"trust": {"tier": tier, "org_status": "verified"},
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
		"trust": {"tier": "critical", "org_status": "verified"},
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
		"trust": {"tier": "verified", "org_status": "verified"},
		"model": {"name": "cyber", "tier_floor": "critical", "screening": {"state": "missing", "max_ci_high": null}},
	})
	d.reasons == {"tier_too_low"}
}

test_an_unverified_org_learns_nothing_about_screening if {
	every status in ["suspended", "revoked", "applied"] {
		d := authz.decision with input as object.union(base, {
			"trust": {"tier": "critical", "org_status": status},
			"model": {"screening": {"state": "missing", "max_ci_high": null}},
		})
		not "model_not_screened" in d.reasons
	}
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
