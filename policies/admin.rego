# TAC Gateway admin decision: who may do what in trust administration.
#
# input:  {principal: {sub, org_id, roles}, memberships: [{org_id, role}],
#          action: "org.approve", target: {org_id, roles}}
# output: data.tacgw.admin.decision = {allow, reasons}
#
# Roles: `admin` may do everything; `auditor` may read everything and change nothing;
# an org admin (token role `org_admin` for the token's own organization, or an
# `org_admin` membership) manages its own organization's members, service clients and
# domain proof, and can never raise a tier nor touch another organization. Any
# authenticated caller may apply for an organization.
package tacgw.admin

import rego.v1

reads := {
	"org.list", "org.show", "challenge.list", "grant.list", "grant.expiring",
	"member.list", "client.list", "model.list", "screening.show", "usage.list",
	# The auditor API (/audit): decisions, exports, proofs, checkpoints, replay.
	"audit.read",
}

# What an org admin may do, on its own organization only.
org_admin_actions := {
	"org.show", "challenge.list", "challenge.start", "challenge.check", "grant.list",
	"member.list", "member.set", "member.remove",
	"client.list", "client.create", "client.revoke", "client.rotate",
}

# Moves that give an organization or subject a tier (back): admins only.
tier_actions := {"org.approve", "org.reinstate", "grant.create"}

admin_only := {
	"org.approve", "org.reject", "org.suspend", "org.reinstate", "org.revoke",
	"grant.create", "grant.revoke", "model.disable", "model.remove",
	"policy.reload", "model.screen",
}

known := ((reads | org_admin_actions) | admin_only) | {"org.apply"}

default allow := false

allow if count(reasons) == 0

# Negate named rules only (see authz.rego): OPA and rego-cpp differ on `not <expr>`.
known_action if input.action in known

authenticated if input.principal.sub != ""

is_admin if "admin" in input.principal.roles

is_auditor if "auditor" in input.principal.roles

is_read if input.action in reads

is_org_admin if "org_admin" in input.principal.roles

is_org_admin if {
	some m in input.memberships
	m.role == "org_admin"
}

acts_for_target_org if {
	"org_admin" in input.principal.roles
	input.principal.org_id == input.target.org_id
}

acts_for_target_org if {
	some m in input.memberships
	m.role == "org_admin"
	m.org_id == input.target.org_id
}

default target_roles := []

target_roles := input.target.roles

# An org admin's service clients may be org admins too, nothing more.
grantable_roles if {
	every role in target_roles {
		role == "org_admin"
	}
}

permitted if is_admin

permitted if {
	is_auditor
	is_read
}

permitted if input.action == "org.apply"

permitted if {
	input.action in org_admin_actions
	input.action != "client.create"
	acts_for_target_org
}

permitted if {
	input.action == "client.create"
	acts_for_target_org
	grantable_roles
}

denied if not authenticated

denied if {
	known_action
	not permitted
}

reasons contains "unknown_action" if not known_action

auditor_write if {
	is_auditor
	not is_read
}

tier_raise if {
	is_org_admin
	input.action in tier_actions
}

foreign_org if {
	is_org_admin
	input.action in org_admin_actions
	not acts_for_target_org
}

bad_roles if {
	input.action == "client.create"
	acts_for_target_org
	not grantable_roles
}

reasons contains "auditor_read_only" if {
	denied
	auditor_write
}

reasons contains "tier_raise_forbidden" if {
	denied
	tier_raise
}

reasons contains "not_your_org" if {
	denied
	foreign_org
}

reasons contains "role_not_grantable" if {
	denied
	bad_roles
}

reasons contains "admin_role_required" if {
	denied
	not auditor_write
	not tier_raise
	not foreign_org
	not bad_roles
}

decision := {"allow": allow, "reasons": reasons}
