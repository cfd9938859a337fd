package authn

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/promgate/promgate/config"
)

// NewChain builds the authenticators of cfg in their fixed order: bearer
// tokens when cfg.OIDC is set, then mTLS, then the session cookie when
// cfg.Login is set. Login is nil when there is no browser login.
//
// Secret files are read here, so a missing or short secret fails. Issuers
// are not contacted here: each one's discovery runs in the background with
// backoff until it succeeds or ctx is done, and meanwhile its tokens get 401
// "issuer unavailable" (promgate_oidc_issuer_up is 0). With a cancelled ctx
// nothing is contacted at all, which is what `promgate check` wants.
func NewChain(ctx context.Context, cfg config.Authn, logger *slog.Logger, reg prometheus.Registerer) (Chain, *Login, error) {
	return newChain(ctx, cfg, logger, reg, time.Now)
}

func newChain(ctx context.Context, cfg config.Authn, logger *slog.Logger, reg prometheus.Registerer, now func() time.Time) (Chain, *Login, error) {
	log := logger.With("component", "authn")
	mtls, err := NewMTLS(cfg.MTLS)
	if err != nil {
		return nil, nil, err
	}
	var issuers []string
	for _, o := range cfg.OIDC {
		issuers = append(issuers, o.Issuer)
	}
	if cfg.Login != nil && !containsString(issuers, cfg.Login.Issuer) {
		issuers = append(issuers, cfg.Login.Issuer)
	}
	var bearer *Bearer
	var cacheLen func() float64
	m := &metrics{}
	if len(cfg.OIDC) > 0 {
		// The cache exists before the metrics that read it.
		bearer = &Bearer{}
		cacheLen = func() float64 { return float64(bearer.cache.len()) }
	}
	m, err = newMetrics(reg, issuers, cacheLen)
	if err != nil {
		return nil, nil, err
	}

	var chain Chain
	var providers []*provider
	if len(cfg.OIDC) > 0 {
		b, err := newBearer(cfg.OIDC, now, log, m)
		if err != nil {
			return nil, nil, err
		}
		*bearer = *b
		chain = append(chain, bearer)
		providers = append(providers, bearer.providers(cfg.OIDC)...)
	}
	chain = append(chain, mtls)
	var login *Login
	if cfg.Login != nil {
		if login, err = newLogin(cfg.Login, now, log, m); err != nil {
			return nil, nil, err
		}
		chain = append(chain, login.Session())
		login.chain = chain
		providers = append(providers, login.p)
	}
	if ctx.Err() == nil {
		for _, p := range providers {
			go p.run(ctx)
		}
	}
	return chain, login, nil
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
