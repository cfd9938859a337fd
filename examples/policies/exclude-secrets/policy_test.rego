package promgate.authz_test

import data.promgate.authz

user(groups) := {
	"authenticated": true, "method": "oidc", "subject": "bob@example.com", "groups": groups,
	"issuer": "https://idp.example", "claims": {},
	"certificate": {"subject": "", "sans": [], "spiffe_id": "", "fingerprint_sha256": ""},
}

req := {"method": "GET", "path": "/api/v1/query", "route": "query", "remote_addr": "10.0.0.7"}

test_user_gets_exclusions if {
	d := authz.decision with input as {"identity": user(["dev"]), "request": req}
	d.allow == true
	d.matchers == ["{secret!=\"true\"}", "{__name__!~\"kube_secret_.*\"}"]
	not "enforce" in object.keys(d)
}

test_security_team_unrestricted if {
	d := authz.decision with input as {"identity": user(["dev", "security"]), "request": req}
	d == {"allow": true, "reason": "allowed: security team, unrestricted"}
}

test_unauthenticated_denied if {
	d := authz.decision with input as {"identity": object.union(user(["security"]), {"authenticated": false}), "request": req}
	d.allow == false
}
