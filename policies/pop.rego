# Sender-constrained tokens (RFC 9449 DPoP) for the tiers that need them.
#
# A model whose tier floor is in data.tacgw.dpop_required_tiers may be used only by a
# request that proved possession of the key its token is bound to (input.principal.pop
# is "dpop"): a copied bearer token alone is refused. Given only when nothing else
# refuses the request, so that a caller is told the one thing it must change.
package tacgw.authz

import rego.v1

reasons contains "dpop_required" if {
	dpop_required_for_model
	tier_sufficient
	org_verified
	not proof_of_possession
}

dpop_required_for_model if input.model.tier_floor in data.tacgw.dpop_required_tiers

proof_of_possession if input.principal.pop == "dpop"
