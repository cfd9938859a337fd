package promgate.authz_test

import data.promgate.authz

workload(spiffe_id) := {
	"authenticated": true, "method": "mtls", "subject": "CN=federator", "groups": [], "issuer": "CN=workload CA", "claims": {},
	"certificate": {"subject": "CN=federator", "sans": [spiffe_id], "spiffe_id": spiffe_id, "fingerprint_sha256": "ab"},
}

route(r) := {"method": "GET", "path": "/federate", "route": r, "remote_addr": "10.0.0.9"}

federator := "spiffe://prod.example.org/ns/monitoring/sa/federator"

test_federator_may_federate_its_clusters if {
	d := authz.decision with input as {"identity": workload(federator), "request": route("federate")}
	d.allow == true
	d.enforce == {"cluster": ["eu-1", "eu-2"]}
	d.limits == {"max_lookback": "10m"}
}

test_federator_may_scrape if {
	d := authz.decision with input as {"identity": workload(federator), "request": route("scrape")}
	d.allow == true
}

test_federator_may_not_query if {
	d := authz.decision with input as {"identity": workload(federator), "request": route("query")}
	d.allow == false
}

test_other_workload_denied if {
	every id in [
		"spiffe://prod.example.org/ns/default/sa/federator",
		"spiffe://evil.example.org/ns/monitoring/sa/federator",
		concat("", [federator, "/"]),
		"",
	] {
		d := authz.decision with input as {"identity": workload(id), "request": route("federate")}
		d.allow == false
	}
}

test_oidc_user_with_spiffe_claim_denied if {
	id := object.union(workload(federator), {"method": "oidc"})
	d := authz.decision with input as {"identity": id, "request": route("federate")}
	d.allow == false
}
