package promgate.authz_test

import data.promgate.authz

oidc(groups) := {
	"authenticated": true, "method": "oidc", "subject": "alice@example.com", "groups": groups,
	"issuer": "https://idp.example", "claims": {"groups": groups},
	"certificate": {"subject": "", "sans": [], "spiffe_id": "", "fingerprint_sha256": ""},
}

req := {"method": "GET", "path": "/api/v1/query", "route": "query", "remote_addr": "10.0.0.7"}

test_payments_member_confined_to_payments if {
	d := authz.decision with input as {"identity": oidc(["payments"]), "request": req}
	d.allow == true
	d.enforce == {"namespace": {"payments", "payments-staging"}}
	d.enforce_regex == {"namespace": set()}
	d.tenant == "payments"
}

test_search_member_gets_pattern if {
	d := authz.decision with input as {"identity": oidc(["search"]), "request": req}
	d.enforce == {"namespace": {"search"}}
	d.enforce_regex == {"namespace": {"search-pr-[0-9]+"}}
	d.tenant == "search"
}

test_two_teams_union_and_shared_tenant if {
	d := authz.decision with input as {"identity": oidc(["search", "payments", "other"]), "request": req}
	d.enforce == {"namespace": {"payments", "payments-staging", "search"}}
	d.tenant == "shared"
}

test_unknown_group_denied if {
	d := authz.decision with input as {"identity": oidc(["marketing"]), "request": req}
	d.allow == false
}

test_mtls_with_same_group_denied if {
	id := object.union(oidc(["payments"]), {"method": "mtls"})
	d := authz.decision with input as {"identity": id, "request": req}
	d.allow == false
}

test_unauthenticated_denied if {
	id := object.union(oidc(["payments"]), {"authenticated": false})
	d := authz.decision with input as {"identity": id, "request": req}
	d.allow == false
}
