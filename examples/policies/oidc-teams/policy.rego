# METADATA
# title: teams by OIDC group
# description: |
#   Callers who signed in through OIDC are confined to the namespaces of the
#   teams named in their token's groups claim (data.teams). A team may also
#   be given namespace patterns (regexes) and a Mimir tenant. Any other
#   authentication method is denied.
package promgate.authz

default decision := {"allow": false, "reason": "denied: only OIDC users of a known team may read metrics"}

decision := {
	"allow": true,
	"reason": "allowed: confined to the namespaces of the caller's teams",
	"enforce": {"namespace": namespaces},
	"enforce_regex": {"namespace": patterns},
	"tenant": tenant,
} if {
	input.identity.authenticated == true
	input.identity.method == "oidc"
	count(teams) > 0
}

# teams are the caller's groups that data.teams knows, looked up by key.
teams contains g if {
	some g in input.identity.groups
	data.teams[g]
}

namespaces contains ns if {
	some t in teams
	some ns in data.teams[t].namespaces
}

patterns contains p if {
	some t in teams
	some p in data.teams[t].namespace_patterns
}

# tenant is the one tenant of the caller's teams; a caller whose teams map to
# several tenants gets the shared tenant.
tenant := t if {
	ts := {x | some g in teams; x := data.teams[g].tenant}
	count(ts) == 1
	some t in ts
} else := data.shared_tenant
