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
#
# The policy runs for every request the decision cache cannot answer, so the
# allow paths are kept cheap. They walk the caller's groups (a handful) and
# look each one up in data by key, never iterating over all of data, and their
# reasons are constant strings (the audit record carries the subject and the
# enforced namespaces); only a denial builds a detailed reason, and that
# reason names the caller alone. The checks of the API's allow paths (admin,
# team member) are written inside the else-chain rather than as helper rules,
# and read each data document into a local variable once rather than inside
# the loop over the groups: OPA pays for each rule it evaluates about as much
# as for several expressions.
default decision := {
	"allow": false,
	"reason": "denied: the default policy found no rule for this request",
}

decision := {
	"allow": false,
	"reason": "denied: the request is not authenticated",
} if {
	# Only an explicit true is authenticated: a missing or odd-typed flag
	# is not.
	not input.identity.authenticated == true
} else := {
	"allow": true,
	"reason": "allowed: member of a scrape group, unrestricted scrape",
} if {
	# The exporter sidecar's scrape route (upstream.kind metrics) needs a
	# scrape group; see scraper below.
	input.request.route == "scrape"
	scraper
} else := {
	"allow": false,
	"reason": sprintf("denied: %s (groups: %s) may not scrape this exporter; scraping needs a group in data.promgate.scrape_groups or data.promgate.filtered_scrape_groups", [
		subject,
		describe(caller_groups),
	]),
} if {
	input.request.route == "scrape"
	not filtered_scraper
} else := am if {
	# The Alertmanager routes' own rules (am_decision, below), one branch
	# here so that the other routes pay for one comparison. Where they say
	# nothing, the rules below apply to these routes too.
	startswith(input.request.route, "am_")
	am := am_decision
} else := {
	"allow": true,
	"reason": "allowed: member of an admin group, unrestricted",
} if {
	# One of the caller's groups is listed in data.promgate.admin_groups.
	# Groups compare exactly; a group that is not a string matches no admin
	# group name.
	admin_groups := data.promgate.admin_groups
	some g in input.identity.groups
	g == admin_groups[_]
	is_string(g)
} else := {
	"allow": true,
	"reason": "allowed: confined to the namespaces of the caller's groups",
	"enforce": {"namespace": namespaces},
} if {
	# namespaces are the union of the namespaces data gives each of the
	# caller's groups, looked up by key. A group that is not a key of
	# data.promgate.group_namespaces grants nothing, and empty or non-string
	# namespace names are ignored. Only data can name a namespace: nothing
	# else of the input (its query, its matchers) is read.
	group_namespaces := data.promgate.group_namespaces
	namespaces := {ns |
		some g in input.identity.groups
		some ns in group_namespaces[g]
		is_string(ns)
		ns != ""
	}
	namespaces != set()
} else := {
	# The caller learns its own name and groups and what to ask for, never
	# which other groups or namespaces the policy knows.
	"allow": false,
	"reason": sprintf("denied: %s (groups: %s) is in no group with access; ask an administrator to grant one of your groups access in the policy data", [
		subject,
		describe(caller_groups),
	]),
}

# scraper holds for a member of a group in data.promgate.scrape_groups (the
# Prometheus server's group), which scrapes unrestricted. filtered_scraper
# holds for a member of a group in data.promgate.filtered_scrape_groups,
# which scrapes as on the API (admins unrestricted, team members confined to
# their namespaces, the exposition filtered). Any other caller, team members
# included, may not scrape.
scraper if {
	some g in input.identity.groups
	is_string(g)
	g in data.promgate.scrape_groups
}

filtered_scraper if {
	some g in input.identity.groups
	is_string(g)
	g in data.promgate.filtered_scrape_groups
}

# The rules below serve only the denial's reason.

subject := s if {
	s := input.identity.subject
	is_string(s)
	s != ""
} else := "(no subject)"

caller_groups contains g if {
	some g in input.identity.groups
	is_string(g)
}

describe(groups) := "none" if {
	count(groups) == 0
} else := concat(", ", sort(groups))

# The Alertmanager rules. A silence is under decision on route am_silence
# (input.alertmanager: operation create, update or expire; silence as sent;
# existing, the silence an update or expire replaces, as read from the
# Alertmanager). It is protected when a matcher of either can select
# detector alerts (any matcher on detector but detector="") or critical
# ones (a matcher on severity that accepts "critical").
protected_silence if {
	some key in ["silence", "existing"]
	some m in input.alertmanager[key].matchers
	protected_matcher(m)
}

protected_matcher(m) if {
	m.name == "detector"
	not m.type == "="
}

protected_matcher(m) if {
	m.name == "detector"
	m.type == "="
	m.value != ""
}

protected_matcher(m) if {
	m.name == "severity"
	accepts_critical(m)
}

accepts_critical(m) if {
	m.type == "="
	m.value == "critical"
}

accepts_critical(m) if {
	m.type == "!="
	m.value != "critical"
}

accepts_critical(m) if {
	m.type == "=~"
	regex.match(sprintf("^(?:%s)$", [m.value]), "critical")
}

accepts_critical(m) if {
	m.type == "!~"
	not regex.match(sprintf("^(?:%s)$", [m.value]), "critical")
}

# silence_guard keeps a silence off detector and critical alerts. Every
# alert has an alertname, and a selector needs one matcher that does not
# match the empty string.
silence_guard := `{detector="",severity!="critical",alertname!=""}`

# in_groups holds when one of the caller's groups is listed in groups.
in_groups(groups) if {
	some g in input.identity.groups
	is_string(g)
	g in groups
}

# caller_namespaces are the namespaces of the caller's groups, as the team
# rule above computes them.
caller_namespaces := {ns |
	some g in input.identity.groups
	some ns in data.promgate.group_namespaces[g]
	is_string(ns)
	ns != ""
}

# am_decision is the Alertmanager routes' part of the decision: defined
# only where one of its branches holds, else the main chain goes on to
# the admin and team rules. Its first branches are denials that hold for
# everyone outside a security group, admins included.
am_decision := {
	# Alertmanager (routes am_*): only a security group may create, update
	# or expire a silence that can cover detector alerts (label detector)
	# or critical ones (severity="critical"), whatever else the caller may
	# do. See the silence rules below.
	"allow": false,
	"reason": sprintf("denied: %s (groups: %s) may not %s a silence that can cover detector or critical alerts; only members of a security group may", [
		subject,
		describe(caller_groups),
		input.alertmanager.operation,
	]),
} if {
	input.request.route == "am_silence"
	protected_silence
	not in_groups(data.promgate.security_groups)
} else := {
	"allow": false,
	"reason": sprintf("denied: %s (groups: %s) may not make a silence longer than 24h; that needs an on-call group", [
		subject,
		describe(caller_groups),
	]),
} if {
	input.request.route == "am_silence"
	input.alertmanager.silence.duration_seconds > 86400
	not in_groups(data.promgate.oncall_groups)
} else := {
	"allow": false,
	"reason": sprintf("denied: %s (groups: %s) may not push alerts that carry the detector label; only the gateway's detector evaluator may", [
		subject,
		describe(caller_groups),
	]),
} if {
	input.request.route == "am_alert_push"
	not in_groups(data.promgate.alert_sender_groups)
	some a in input.alertmanager.alerts
	a.labels.detector
} else := {
	"allow": true,
	"reason": "allowed: member of a security group, unrestricted on Alertmanager",
} if {
	startswith(input.request.route, "am_")
	in_groups(data.promgate.security_groups)
} else := {
	"allow": true,
	"reason": "allowed: alert sender, unrestricted push",
} if {
	input.request.route == "am_alert_push"
	in_groups(data.promgate.alert_sender_groups)
} else := {
	# Anyone else's silence is kept off detector and critical alerts:
	# the gateway adds these matchers to a silence that lacks them, and
	# refuses to update or expire one that does not imply them.
	"allow": true,
	"reason": "allowed: member of an admin group, silences kept off detector and critical alerts",
	"matchers": [silence_guard],
} if {
	input.request.route == "am_silence"
	in_groups(data.promgate.admin_groups)
} else := {
	"allow": true,
	"reason": "allowed: confined to the namespaces of the caller's groups, silences kept off detector and critical alerts",
	"enforce": {"namespace": caller_namespaces},
	"matchers": [silence_guard],
} if {
	input.request.route == "am_silence"
	caller_namespaces != set()
}
