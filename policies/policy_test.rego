package promgate.authz_test

import data.promgate.authz

identity(subject, groups) := {
	"authenticated": true,
	"method": "mtls",
	"subject": subject,
	"groups": groups,
	"issuer": "CN=promgate dev CA",
	"claims": {},
	"certificate": {"subject": sprintf("CN=%s", [subject]), "sans": [], "spiffe_id": "", "fingerprint_sha256": "ab"},
}

request := {"method": "GET", "path": "/api/v1/query", "route": "query", "remote_addr": "10.0.0.7"}

query_for(namespace) := {
	"expressions": [sprintf(`up{namespace="%s"}`, [namespace])],
	"selectors": [{"metric": "up", "matchers": [
		{"name": "__name__", "type": "=", "value": "up"},
		{"name": "namespace", "type": "=", "value": namespace},
	]}],
}

test_admin_is_unrestricted if {
	d := authz.decision with input as {"identity": identity("root@example.com", ["admins"]), "request": request}
	d == {"allow": true, "reason": "allowed: member of an admin group, unrestricted"}
}

test_admin_who_is_also_a_team_member_is_unrestricted if {
	d := authz.decision with input as {"identity": identity("root@example.com", ["team-a", "admins"]), "request": request}
	d.allow == true
	not d.enforce
}

test_team_member_is_confined_to_its_namespaces if {
	d := authz.decision with input as {"identity": identity("alice@example.com", ["team-a"]), "request": request}
	d == {
		"allow": true,
		"reason": "allowed: confined to the namespaces of the caller's groups",
		"enforce": {"namespace": {"team-a", "team-a-staging"}},
	}
}

test_member_of_two_teams_gets_the_union if {
	d := authz.decision with input as {"identity": identity("carol@example.com", ["team-b", "team-a"]), "request": request}
	d.allow == true
	d.enforce == {"namespace": {"team-a", "team-a-staging", "team-b"}}
}

test_overlapping_groups_do_not_duplicate_namespaces if {
	d := authz.decision with input as {"identity": identity("dan@example.com", ["x", "y"]), "request": request}
		with data.promgate.group_namespaces as {"x": ["shared", "x"], "y": ["shared"]}
	d.enforce == {"namespace": {"shared", "x"}}
}

test_unknown_group_is_denied_and_told_what_to_ask if {
	d := authz.decision with input as {"identity": identity("mallory@example.com", ["team-z"]), "request": request}
	d.allow == false
	not d.enforce
	d.reason == "denied: mallory@example.com (groups: team-z) is in no group with access; ask an administrator to grant one of your groups access in the policy data"
}

# An outsider's denial names no other group, namespace or data key: it
# would tell a stranger which groups to forge or which teams exist.
test_denial_discloses_no_policy_data if {
	d := authz.decision with input as {"identity": identity("mallory@example.com", ["team-z"]), "request": request}
		with data.promgate.admin_groups as ["root-squad"]
		with data.promgate.group_namespaces as {"payments": ["pci-prod"], "team-a": ["team-a"]}
	d.allow == false
	every secret in ["root-squad", "payments", "pci-prod", "team-a", "data.promgate", "admin_groups", "group_namespaces"] {
		not contains(d.reason, secret)
	}
}

test_no_groups_is_denied if {
	d := authz.decision with input as {"identity": identity("bob@example.com", []), "request": request}
	d.allow == false
	contains(d.reason, "bob@example.com (groups: none)")
}

test_missing_groups_is_denied if {
	id := object.remove(identity("bob@example.com", []), ["groups"])
	d := authz.decision with input as {"identity": id, "request": request}
	d.allow == false
}

test_non_string_groups_are_ignored if {
	d := authz.decision with input as {"identity": identity("eve@example.com", [["admins"], {"admins": true}, 1]), "request": request}
	d.allow == false
}

test_group_names_match_exactly if {
	every g in ["Admins", "admins ", " admins", "team-a/", "team-", "TEAM-A"] {
		d := authz.decision with input as {"identity": identity("eve@example.com", [g]), "request": request}
		d.allow == false
	}
}

test_unauthenticated_is_denied if {
	d := authz.decision with input as {"identity": {"authenticated": false, "groups": ["admins"]}, "request": request}
	d == {"allow": false, "reason": "denied: the request is not authenticated"}
}

test_authenticated_must_be_exactly_true if {
	every flag in ["true", 1, null] {
		id := object.union(identity("eve@example.com", ["admins"]), {"authenticated": flag})
		d := authz.decision with input as {"identity": id, "request": request}
		d.allow == false
	}
}

test_empty_input_is_denied if {
	d := authz.decision with input as {}
	d.allow == false
}

test_query_cannot_change_enforced_namespaces if {
	d := authz.decision with input as {
		"identity": identity("alice@example.com", ["team-a"]),
		"request": request,
		"query": query_for("team-b"),
	}
	d.enforce == {"namespace": {"team-a", "team-a-staging"}}
}

test_input_cannot_smuggle_enforce_or_data if {
	d := authz.decision with input as {
		"identity": object.union(identity("alice@example.com", ["team-a"]), {"enforce": {"namespace": ["kube-system"]}}),
		"request": request,
		"enforce": {"namespace": ["kube-system"]},
		"promgate": {"group_namespaces": {"team-a": ["kube-system"]}},
		"query": query_for("kube-system"),
	}
	d.enforce == {"namespace": {"team-a", "team-a-staging"}}
}

test_group_with_no_namespaces_is_denied if {
	d := authz.decision with input as {"identity": identity("fay@example.com", ["team-c"]), "request": request}
		with data.promgate.group_namespaces as {"team-c": []}
	d.allow == false
}

test_empty_namespace_values_are_ignored if {
	d := authz.decision with input as {"identity": identity("fay@example.com", ["team-c"]), "request": request}
		with data.promgate.group_namespaces as {"team-c": ["", "c"]}
	d.enforce == {"namespace": {"c"}}
}

test_without_data_everyone_authenticated_is_denied if {
	d := authz.decision with input as {"identity": identity("root@example.com", ["admins"]), "request": request}
		with data.promgate.admin_groups as []
		with data.promgate.group_namespaces as {}
	d.allow == false
	contains(d.reason, "root@example.com (groups: admins) is in no group with access")
}

test_decision_is_always_defined if {
	every in_ in [{}, {"identity": null}, {"identity": {"authenticated": true}}, {"identity": {"authenticated": true, "groups": "admins"}}] {
		d := authz.decision with input as in_
		is_boolean(d.allow)
		is_string(d.reason)
	}
}

test_group_lookup_is_by_exact_key if {
	every g in [{"team-a": true}, ["team-a"], 1, null] {
		d := authz.decision with input as {"identity": identity("eve@example.com", [g]), "request": request}
		d.allow == false
	}
}

test_non_string_namespaces_are_ignored if {
	d := authz.decision with input as {"identity": identity("fay@example.com", ["team-c"]), "request": request}
		with data.promgate.group_namespaces as {"team-c": [1, null, ["x"], "c"]}
	d.enforce == {"namespace": {"c"}}
}

test_non_string_admin_entries_grant_nothing if {
	d := authz.decision with input as {"identity": identity("eve@example.com", [1]), "request": request}
		with data.promgate.admin_groups as [1]
	d.allow == false
}

# Scrapes of the exporter sidecar (route scrape).

scrape_request := {"method": "GET", "path": "/metrics", "route": "scrape", "remote_addr": "10.0.0.9"}

test_scraper_group_scrapes_unrestricted if {
	d := authz.decision with input as {"identity": identity("prometheus", ["scrapers"]), "request": scrape_request}
	d == {"allow": true, "reason": "allowed: member of a scrape group, unrestricted scrape"}
}

test_team_member_may_not_scrape_by_default if {
	d := authz.decision with input as {"identity": identity("alice@example.com", ["team-a"]), "request": scrape_request}
	d.allow == false
	not d.enforce
	contains(d.reason, "may not scrape")
}

test_admin_may_not_scrape_without_a_scrape_group if {
	d := authz.decision with input as {"identity": identity("root@example.com", ["admins"]), "request": scrape_request}
	d.allow == false
}

test_filtered_scrape_group_is_confined_to_its_namespaces if {
	d := authz.decision with input as {"identity": identity("alice@example.com", ["team-a"]), "request": scrape_request}
		with data.promgate.filtered_scrape_groups as ["team-a"]
	d == {
		"allow": true,
		"reason": "allowed: confined to the namespaces of the caller's groups",
		"enforce": {"namespace": {"team-a", "team-a-staging"}},
	}
}

test_filtered_scrape_group_without_namespaces_is_denied if {
	d := authz.decision with input as {"identity": identity("x@example.com", ["team-z"]), "request": scrape_request}
		with data.promgate.filtered_scrape_groups as ["team-z"]
	d.allow == false
}

test_scrape_groups_not_a_list_deny if {
	d := authz.decision with input as {"identity": identity("prometheus", ["scrapers"]), "request": scrape_request}
		with data.promgate.scrape_groups as null
	d.allow == false
}

test_scrape_group_grants_nothing_on_the_api if {
	d := authz.decision with input as {"identity": identity("prometheus", ["scrapers"]), "request": request}
	d.allow == false
}

test_unauthenticated_scrape_is_denied if {
	inp := {"identity": object.union(identity("prometheus", ["scrapers"]), {"authenticated": false}), "request": scrape_request}
	d := authz.decision with input as inp
	d.allow == false
}

# Queries without selectors (Grafana's 1+1 health check, vector(1)): the
# gateway asks the policy for them too, and the answer is the caller's usual
# one, so that a caller with no access cannot probe the gateway either.

query_without_selectors(expr) := {"expressions": [expr], "selectors": []}

test_no_selectors_admin_is_unrestricted if {
	every expr in ["1+1", "vector(1)", "time()"] {
		d := authz.decision with input as {"identity": identity("root@example.com", ["admins"]), "request": request, "query": query_without_selectors(expr)}
		d == {"allow": true, "reason": "allowed: member of an admin group, unrestricted"}
	}
}

test_no_selectors_team_member_keeps_its_enforcement if {
	every expr in ["1+1", "vector(1)"] {
		d := authz.decision with input as {"identity": identity("alice@example.com", ["team-a"]), "request": request, "query": query_without_selectors(expr)}
		d.allow == true
		d.enforce == {"namespace": {"team-a", "team-a-staging"}}
	}
}

test_no_selectors_caller_in_no_group_is_denied if {
	every expr in ["1+1", "vector(1)"] {
		d := authz.decision with input as {"identity": identity("mallory@example.com", ["team-z"]), "request": request, "query": query_without_selectors(expr)}
		d.allow == false
		not d.enforce
	}
}

test_no_selectors_caller_without_groups_is_denied if {
	d := authz.decision with input as {"identity": identity("bob@example.com", []), "request": request, "query": query_without_selectors("1+1")}
	d.allow == false
}

test_no_selectors_unauthenticated_is_denied if {
	d := authz.decision with input as {"identity": {"authenticated": false}, "request": request, "query": query_without_selectors("1+1")}
	d == {"allow": false, "reason": "denied: the request is not authenticated"}
}

test_no_selectors_without_a_selectors_key if {
	d := authz.decision with input as {"identity": identity("alice@example.com", ["team-a"]), "request": request, "query": {"expressions": ["1+1"]}}
	d.enforce == {"namespace": {"team-a", "team-a-staging"}}
}

# The status routes (routes.status) are decided as the API: the gateway,
# not the policy, serves runtimeinfo, flags, tsdb, config and walreplay to
# unrestricted callers only and filters targets for the others.
status_routes := ["buildinfo", "runtimeinfo", "flags", "tsdb", "config", "walreplay", "targets"]

status_request(route) := {"method": "GET", "path": "/api/v1/status/x", "route": route, "remote_addr": "10.0.0.7"}

test_status_routes_admin_is_unrestricted if {
	every route in status_routes {
		d := authz.decision with input as {"identity": identity("root@example.com", ["admins"]), "request": status_request(route)}
		d == {"allow": true, "reason": "allowed: member of an admin group, unrestricted"}
	}
}

test_status_routes_team_member_is_confined if {
	every route in status_routes {
		d := authz.decision with input as {"identity": identity("alice@example.com", ["team-a"]), "request": status_request(route)}
		d.allow == true
		d.enforce == {"namespace": {"team-a", "team-a-staging"}}
	}
}

test_status_routes_caller_in_no_group_is_denied if {
	every route in status_routes {
		d := authz.decision with input as {"identity": identity("mallory@example.com", ["team-z"]), "request": status_request(route)}
		d.allow == false
	}
}

test_status_routes_scrape_group_grants_nothing if {
	every route in status_routes {
		d := authz.decision with input as {"identity": identity("prometheus", ["scrapers"]), "request": status_request(route)}
		d.allow == false
	}
}

# Alertmanager silences (route am_silence).

silence_input(subject, groups, op, matchers, seconds) := {
	"identity": identity(subject, groups),
	"request": {"method": "POST", "path": "/api/v2/silences", "route": "am_silence", "remote_addr": "10.0.0.7"},
	"alertmanager": {"operation": op, "silence": {
		"id": "", "matchers": matchers, "comment": "c", "created_by": subject,
		"starts_at": "", "ends_at": "", "duration_seconds": seconds,
	}},
}

m(name, type, value) := {"name": name, "type": type, "value": value}

test_team_member_silence_is_confined_and_guarded if {
	d := authz.decision with input as silence_input("alice", ["team-a"], "create", [m("alertname", "=", "X")], 3600)
	d.allow == true
	d.enforce == {"namespace": {"team-a", "team-a-staging"}}
	d.matchers == [`{detector="",severity!="critical",alertname!=""}`]
}

test_team_member_may_not_silence_a_detector if {
	d := authz.decision with input as silence_input("alice", ["team-a"], "create", [m("detector", "=", "gateway_bypass_direct_upstream")], 3600)
	d.allow == false
	contains(d.reason, "only members of a security group")
}

test_admin_may_not_silence_a_detector if {
	d := authz.decision with input as silence_input("root", ["admins"], "create", [m("detector", "=~", ".+")], 3600)
	d.allow == false
}

test_security_may_silence_a_detector if {
	d := authz.decision with input as silence_input("sec", ["security"], "create", [m("detector", "=", "x")], 3600)
	d == {"allow": true, "reason": "allowed: member of a security group, unrestricted on Alertmanager"}
}

test_critical_silences_need_security if {
	every ms in [
		[m("severity", "=", "critical")],
		[m("severity", "=~", "crit.*")],
		[m("severity", "!=", "warning")],
		[m("severity", "!~", "warning|info")],
		[m("detector", "!=", "x")],
	] {
		d := authz.decision with input as silence_input("alice", ["team-a"], "create", ms, 3600)
		d.allow == false
	}
}

test_non_critical_and_guard_matchers_are_not_protected if {
	every ms in [
		[m("severity", "=", "warning")],
		[m("severity", "!=", "critical")],
		[m("severity", "!~", "crit.*")],
		[m("detector", "=", ""), m("alertname", "=", "X")],
	] {
		d := authz.decision with input as silence_input("alice", ["team-a"], "create", ms, 3600)
		d.allow == true
	}
}

test_expiring_a_detector_silence_needs_security if {
	req := {
		"identity": identity("alice", ["team-a"]),
		"request": {"method": "DELETE", "path": "/api/v2/silence/x", "route": "am_silence", "remote_addr": "10.0.0.7"},
		"alertmanager": {"operation": "expire", "silence": {"id": "x", "matchers": []}, "existing": {"id": "x", "matchers": [m("detector", "=", "x")]}},
	}
	d := authz.decision with input as req
	d.allow == false
	d2 := authz.decision with input as req with input.identity as identity("sec", ["security"])
	d2.allow == true
}

test_long_silences_need_oncall if {
	d := authz.decision with input as silence_input("alice", ["team-a"], "create", [m("alertname", "=", "X")], 90000)
	d.allow == false
	contains(d.reason, "longer than 24h")
	d2 := authz.decision with input as silence_input("alice", ["team-a", "oncall"], "create", [m("alertname", "=", "X")], 90000)
	d2.allow == true
	d3 := authz.decision with input as silence_input("sec", ["security"], "create", [m("detector", "=", "x")], 90000)
	d3.allow == false
}

test_alertmanager_reads_are_confined if {
	req := {"identity": identity("alice", ["team-a"]), "request": {"method": "GET", "path": "/api/v2/alerts", "route": "am_alerts", "remote_addr": "10.0.0.7"}}
	d := authz.decision with input as req
	d.enforce == {"namespace": {"team-a", "team-a-staging"}}
	not d.matchers
	d2 := authz.decision with input as req with input.identity as identity("sec", ["security"])
	d2.allow == true
	not d2.enforce
}

test_only_alert_senders_push_detector_alerts if {
	req := {
		"identity": identity("alice", ["team-a"]),
		"request": {"method": "POST", "path": "/api/v2/alerts", "route": "am_alert_push", "remote_addr": "10.0.0.7"},
		"alertmanager": {"operation": "push", "alerts": [{"labels": {"alertname": "X", "detector": "fake"}}]},
	}
	d := authz.decision with input as req
	d.allow == false
	d2 := authz.decision with input as req with input.identity as identity("promgate-detectors", ["alert-senders"])
	d2 == {"allow": true, "reason": "allowed: alert sender, unrestricted push"}
	d3 := authz.decision with input as req with input.alertmanager.alerts as [{"labels": {"alertname": "X"}}]
	d3.enforce == {"namespace": {"team-a", "team-a-staging"}}
}
