package tacgw.admin_test

import rego.v1

import data.tacgw.admin

who(roles, org) := {"sub": "s", "org_id": org, "roles": roles}

ask(principal, action, target) := d if {
	d := admin.decision with input as {
		"principal": principal,
		"memberships": [],
		"action": action,
		"target": target,
	}
}

test_admin_may_do_everything if {
	every action in admin.known {
		ask(who(["admin"], "ops"), action, {"org_id": "o1"}).allow
	}
}

test_defender_cannot_approve if {
	d := ask(who([], "o1"), "org.approve", {"org_id": "o1"})
	not d.allow
	d.reasons == {"admin_role_required"}
}

test_anyone_authenticated_may_apply if {
	ask(who([], "o1"), "org.apply", {}).allow
}

test_unauthenticated_may_not_even_apply if {
	d := admin.decision with input as {"action": "org.apply", "target": {}}
	not d.allow
}

test_auditor_reads_only if {
	every action in admin.reads {
		ask(who(["auditor"], "x"), action, {"org_id": "o1"}).allow
	}
	d := ask(who(["auditor"], "x"), "org.suspend", {"org_id": "o1"})
	d.reasons == {"auditor_read_only"}
}

test_org_admin_manages_own_org if {
	every action in admin.org_admin_actions {
		ask(who(["org_admin"], "o1"), action, {"org_id": "o1"}).allow
	}
}

test_org_admin_cannot_touch_another_org if {
	d := ask(who(["org_admin"], "o1"), "client.revoke", {"org_id": "o2"})
	d.reasons == {"not_your_org"}
}

test_org_admin_cannot_raise_a_tier if {
	every action in admin.tier_actions {
		d := ask(who(["org_admin"], "o1"), action, {"org_id": "o1"})
		d.reasons == {"tier_raise_forbidden"}
	}
}

test_org_admin_cannot_suspend_or_list_everyone if {
	ask(who(["org_admin"], "o1"), "org.suspend", {"org_id": "o1"}).reasons == {"admin_role_required"}
	ask(who(["org_admin"], "o1"), "org.list", {}).reasons == {"admin_role_required"}
}

test_org_admin_gives_only_org_admin_to_clients if {
	ask(who(["org_admin"], "o1"), "client.create", {"org_id": "o1", "roles": ["org_admin"]}).allow
	ask(who(["org_admin"], "o1"), "client.create", {"org_id": "o1"}).allow
	d := ask(who(["org_admin"], "o1"), "client.create", {"org_id": "o1", "roles": ["admin"]})
	d.reasons == {"role_not_grantable"}
}

test_membership_makes_an_applicant_org_admin_of_its_application if {
	d := admin.decision with input as {
		"principal": who([], "elsewhere"),
		"memberships": [{"org_id": "new", "role": "org_admin"}],
		"action": "challenge.start",
		"target": {"org_id": "new"},
	}
	d.allow
	e := admin.decision with input as {
		"principal": who([], "elsewhere"),
		"memberships": [{"org_id": "new", "role": "defender"}],
		"action": "challenge.start",
		"target": {"org_id": "new"},
	}
	e.reasons == {"admin_role_required"}
}

test_unknown_action_denied if {
	d := ask(who(["admin"], "o"), "org.delete", {"org_id": "o"})
	not d.allow
	"unknown_action" in d.reasons
}

test_empty_input_denied if {
	not admin.decision.allow with input as {}
}

test_only_admins_start_a_screening if {
	ask(who(["admin"], "ops"), "model.screen", {}).allow
	ask(who(["auditor"], "ops"), "model.screen", {}).reasons == {"auditor_read_only"}
	ask(who(["org_admin"], "o1"), "model.screen", {"org_id": "o1"}).reasons == {"admin_role_required"}
	ask(who([], "o1"), "model.screen", {}).reasons == {"admin_role_required"}
}

test_admins_and_auditors_follow_a_screening if {
	ask(who(["admin"], "ops"), "screening.show", {}).allow
	ask(who(["auditor"], "ops"), "screening.show", {}).allow
	not ask(who(["org_admin"], "o1"), "screening.show", {"org_id": "o1"}).allow
	not ask(who([], "o1"), "screening.show", {}).allow
}

test_audit_api_is_for_admins_and_auditors if {
	ask(who(["admin"], "ops"), "audit.read", {}).allow
	ask(who(["auditor"], "x"), "audit.read", {}).allow
	not ask(who(["org_admin"], "o1"), "audit.read", {"org_id": "o1"}).allow
	not ask(who([], "o1"), "audit.read", {}).allow
}
