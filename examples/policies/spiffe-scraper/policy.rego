# METADATA
# title: SPIFFE workload identity for a scraper
# description: |
#   A federation scraper presents an mTLS client certificate with a SPIFFE ID.
#   The IDs listed in data.scrapers may call the scrape and federate routes,
#   confined to their clusters; nothing else is allowed to them or to anyone.
package promgate.authz

default decision := {"allow": false, "reason": "denied: only known scraper workloads may scrape or federate"}

decision := {
	"allow": true,
	"reason": "allowed: scraper workload, confined to its clusters",
	"enforce": {"cluster": scraper.clusters},
	"limits": {"max_lookback": "10m"},
} if {
	input.identity.authenticated == true
	input.identity.method == "mtls"
	input.request.route in {"scrape", "federate"}
}

# scraper is looked up by the exact SPIFFE ID; an empty or unknown ID (or a
# trust domain the data does not list) is undefined, and the default denies.
scraper := data.scrapers[input.identity.certificate.spiffe_id]
