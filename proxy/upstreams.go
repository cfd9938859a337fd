package proxy

import (
	"errors"
	"fmt"
	"net/url"
	"sort"

	"github.com/promgate/promgate/config"
	"github.com/promgate/promgate/promapi"
	"github.com/promgate/promgate/reload"
)

// Named upstreams (config upstreams, issue 21). Each is a whole upstream of
// its own (its transport and TLS, its token file, its tenant header, its
// flavour, its coalescing), built once in New. The decision's "upstream"
// picks one; a decision without it goes to upstream, and one naming an
// upstream the gateway does not have is a denial: nothing is forwarded.
//
// Parameters are read before the decision, so they are checked with the
// most permissive flavour configured (thanos when any upstream is Thanos,
// whose own parameters are then checked as Thanos checks them); once the
// decision has picked an upstream, the parameters its flavour does not take
// are dropped, and recorded as dropped.

// namedUpstreams builds the named upstreams of cfg.
func (h *Handler) namedUpstreams(cfg *config.Config) error {
	for _, name := range cfg.UpstreamNames() {
		c := *cfg
		c.Upstream = cfg.Upstreams[name]
		tr, err := NewTransport(&c)
		if err != nil {
			return fmt.Errorf("upstreams.%s: %w", name, err)
		}
		tok, err := NewTokenFile(c.Upstream.BearerTokenFile)
		if err != nil {
			return fmt.Errorf("upstreams.%s: %w", name, err)
		}
		up, err := newUpstream(&c, tr, tok.Token, h.tel, h.log)
		if err != nil {
			return fmt.Errorf("upstreams.%s: %w", name, err)
		}
		if h.named == nil {
			h.named = map[string]*upstream{}
		}
		h.named[name] = up
		h.namedTokens = append(h.namedTokens, tok)
		if c.Upstream.Flavor == config.FlavorThanos {
			h.namedThanos = true
		}
	}
	return nil
}

// paramFlavor is the flavour parameters are read with: thanos when any
// upstream is Thanos, else the default upstream's.
func (h *Handler) paramFlavor() string {
	if h.namedThanos {
		return config.FlavorThanos
	}
	return h.cfg.Upstream.Flavor
}

// upstreamOf returns the upstream a decision picks.
func (h *Handler) upstreamOf(name, subject string) (*upstream, error) {
	if name == "" {
		return h.up, nil
	}
	if up, ok := h.named[name]; ok {
		return up, nil
	}
	return nil, &promapi.Error{Type: promapi.ErrForbidden,
		Msg: "access denied for " + subject + ": the policy names an upstream this gateway does not have",
		Err: fmt.Errorf("decision names unknown upstream %q", name)}
}

// dropForFlavor removes the parameters that up's flavour does not take,
// when they were read for a more permissive one, and records them.
func (h *Handler) dropForFlavor(up *upstream, st *state, params url.Values) {
	flavor := up.cfg.Upstream.Flavor
	if flavor == h.paramFlavor() {
		return
	}
	var dropped []string
	for k := range params {
		if !st.rt.forwards(k, flavor) {
			delete(params, k)
			dropped = append(dropped, k)
		}
	}
	if len(dropped) > 0 {
		sort.Strings(dropped)
		st.dropped = append(st.dropped, dropped...)
		h.m.dropped.add(st.route, dropped)
	}
}

// UpstreamTokens is the reload part of the named upstreams' token files.
func (h *Handler) UpstreamTokens() reload.Part {
	files := h.namedTokens
	paths := []string{}
	for _, f := range files {
		paths = append(paths, f.Files()...)
	}
	return reload.Func{Paths: paths, Fn: func() error {
		var errs []error
		for _, f := range files {
			errs = append(errs, f.Reload())
		}
		return errors.Join(errs...)
	}}
}
