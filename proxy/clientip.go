package proxy

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// clientIP finds the caller's address. X-Forwarded-For is believed only when
// the peer is a trusted proxy, and then the right-most hop that is not itself
// trusted is the caller: everything left of it could have been written by
// the caller. X-Real-IP and Forwarded are never read.
type clientIP struct {
	trusted []netip.Prefix
}

func newClientIP(cidrs []string) (*clientIP, error) {
	c := &clientIP{}
	for i, s := range cidrs {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("trusted_proxies[%d]: %w", i, err)
		}
		c.trusted = append(c.trusted, p.Masked())
	}
	return c, nil
}

func (c *clientIP) isTrusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range c.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// of returns the caller's IP address as text.
func (c *clientIP) of(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	peer = peer.Unmap()
	if len(c.trusted) == 0 || !c.isTrusted(peer) {
		return peer.String()
	}
	hops := r.Header.Values("X-Forwarded-For")
	var all []string
	for _, h := range hops {
		all = append(all, strings.Split(h, ",")...)
	}
	for i := len(all) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(all[i]))
		if err != nil {
			// A hop we cannot read ends the walk: trust stops here.
			return peer.String()
		}
		a = a.Unmap()
		if !c.isTrusted(a) {
			return a.String()
		}
		peer = a
	}
	return peer.String()
}

// clientNetwork returns the /24 (IPv4) or /56 (IPv6) network of an address,
// the unit in which unauthenticated clients are counted and limited.
func clientNetwork(addr string) string { return networkOf(addr, 24, 56) }

// networkOf returns the network of an address with the given prefix
// lengths, or "other" for what is not an address.
func networkOf(addr string, v4, v6 int) string {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return "other"
	}
	a = a.Unmap()
	bits := v6
	if a.Is4() {
		bits = v4
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return "other"
	}
	return p.String()
}
