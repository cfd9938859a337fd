# METADATA
# title: exclusion policy hiding secret metrics
# description: |
#   Every authenticated caller may read everything except series marked
#   secret="true" and the kube_secret_* metrics, which the decision's
#   matchers exclude from every selector, rule and alert. Members of
#   data.security_groups see everything.
package promgate.authz

default decision := {"allow": false, "reason": "denied: the request is not authenticated"}

decision := {
	"allow": true,
	"reason": "allowed: security team, unrestricted",
} if {
	input.identity.authenticated == true
	some g in input.identity.groups
	g in data.security_groups
} else := {
	"allow": true,
	"reason": "allowed: everything except secret series",
	"matchers": ["{secret!=\"true\"}", "{__name__!~\"kube_secret_.*\"}"],
} if {
	input.identity.authenticated == true
}
