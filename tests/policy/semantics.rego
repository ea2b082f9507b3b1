# Exercises the Rego features the gateway's policies rely on, so that the embedded
# evaluator (rego-cpp) is checked against OPA itself: defaults, negation and undefined,
# sets, `every`, comprehensions, partial rules, functions, else chains, builtins.
package tacgw.semantics

import rego.v1

default flag := false

flag if input.enabled == true

# negation of an undefined reference is true; of a false value too
default missing_is_not := false

missing_is_not if not input.absent

default false_is_not := false

false_is_not if not input.falsy

roles := {r | some r in input.roles}

admin_or_auditor := roles & {"admin", "auditor"}

not_privileged := roles - {"admin", "auditor"}

all_roles := roles | {"defender"}

default every_short := false

every_short if {
	every r in input.roles {
		count(r) < 10
	}
}

every_empty_is_true if {
	every x in [] {
		x == 1
	}
}

default every_object_values_positive := false

every_object_values_positive if {
	every _, v in input.limits {
		v > 0
	}
}

tier_rank := {t: i | some i, t in ["public", "verified", "critical"]}

higher_tiers contains t if {
	some t, rank in tier_rank
	rank > object.get(tier_rank, input.tier, -1)
}

quota[name] := n * 2 if {
	some name, n in input.limits
}

classify(n) := "small" if n < 10

classify(n) := "large" if n >= 10

default size := "none"

size := classify(sum([v | some v in input.limits]))

label := "admin" if {
	"admin" in roles
} else := "auditor" if {
	"auditor" in roles
} else := "other"

greeting := concat("-", [lower(object.get(input, "name", "ANON")), format_int(count(roles), 10)])

prefixed := [r | some r in input.roles; startswith(r, "a")]

sorted_roles := sort([r | some r in roles])

default max_limit := null

max_limit := max([v | some v in input.limits]) if count(input.limits) > 0

result := {
	"flag": flag,
	"missing_is_not": missing_is_not,
	"false_is_not": false_is_not,
	"admin_or_auditor": admin_or_auditor,
	"not_privileged": not_privileged,
	"all_roles": all_roles,
	"every_short": every_short,
	"every_empty_is_true": every_empty_is_true,
	"every_object_values_positive": every_object_values_positive,
	"higher_tiers": higher_tiers,
	"quota": quota,
	"size": size,
	"label": label,
	"greeting": greeting,
	"prefixed": prefixed,
	"sorted_roles": sorted_roles,
	"max_limit": max_limit,
}
