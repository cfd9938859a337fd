# METADATA
# title: promgate default policy
# description: |
#   Maps the caller's groups to the Kubernetes namespaces whose series they may
#   read. The mapping lives in data.promgate (data.json beside this file); see
#   README.md. Every decision is defined: anything unmatched is a denial.
package promgate.authz

# The decision the gateway evaluates (authz.decision in the configuration).
# The rules below are one else-chain, so exactly one of them applies and no
# two can ever conflict.
default decision := {
	"allow": false,
	"reason": "denied: the default policy found no rule for this request",
}

decision := {
	"allow": false,
	"reason": "denied: the request is not authenticated",
} if {
	not authenticated
} else := {
	"allow": true,
	"reason": sprintf("%s is in admin group %s: unrestricted", [subject, concat(", ", sort(caller_admin_groups))]),
} if {
	count(caller_admin_groups) > 0
} else := {
	"allow": true,
	"reason": sprintf("%s may read namespaces %s through group %s", [
		subject,
		concat(", ", sorted_namespaces),
		concat(", ", sort(granting_groups)),
	]),
	"enforce": {"namespace": sorted_namespaces},
} if {
	count(namespaces) > 0
} else := {
	"allow": false,
	"reason": sprintf("denied: %s (groups: %s) is in no group with access; known groups: %s", [
		subject,
		describe(caller_groups),
		describe(known_groups),
	]),
}

# authenticated holds only for an explicit true: a missing or odd-typed flag
# is unauthenticated.
authenticated if input.identity.authenticated == true

subject := s if {
	s := input.identity.subject
	is_string(s)
	s != ""
} else := "(no subject)"

# caller_groups are the identity's groups; anything but a string is ignored.
caller_groups contains g if {
	some g in input.identity.groups
	is_string(g)
}

admin_groups contains g if {
	some g in data.promgate.admin_groups
	is_string(g)
}

caller_admin_groups := caller_groups & admin_groups

# namespaces are the union of the namespaces of every group the caller is in.
# They come from data only: the input names groups, and nothing else of the
# input (its query, its matchers) can add a namespace.
namespaces contains ns if {
	some g in caller_groups
	some ns in object.get(data.promgate.group_namespaces, g, [])
	is_string(ns)
	ns != ""
}

granting_groups contains g if {
	some g in caller_groups
	some ns in object.get(data.promgate.group_namespaces, g, [])
	is_string(ns)
	ns != ""
}

sorted_namespaces := sort(namespaces)

known_groups := admin_groups | {g | some g, _ in data.promgate.group_namespaces}

describe(groups) := "none" if {
	count(groups) == 0
} else := concat(", ", sort(groups))
