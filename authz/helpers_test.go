package authz

import "github.com/promgate/promgate/config"

func configFor(dir string) config.Authz {
	return config.Authz{Policies: dir, Decision: decisionRef}
}
