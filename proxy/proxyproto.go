package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/pires/go-proxyproto"
)

// proxyHeaderTimeout bounds how long a trusted balancer's connection may take
// to send its PROXY header.
const proxyHeaderTimeout = 5 * time.Second

// ClientAddrListener reads the PROXY protocol v2 header that a TCP-mode
// load balancer (HAProxy's send-proxy-v2, an AWS NLB, ...) puts before the
// TLS handshake, and makes the connection's RemoteAddr the client address it
// names. Behind a TLS-passthrough balancer the gateway then sees the real
// client everywhere it uses the request's address: the audit record's
// remote_addr, the policy input, and the per-network limits on sign-in pages
// and failed authentication.
//
// Whom it believes (issue 21):
//
//	peer                      header        connection
//	in trusted                v2 PROXY      served as the header's source address
//	in trusted                v2 LOCAL      served as the peer (a health check)
//	in trusted                none, or v1   closed: a trusted balancer always sends v2
//	not in trusted            any           closed: nobody else may name a client
//	not in trusted            none          served as the peer
//
// The header is read on the connection's first read (the TLS handshake),
// not in Accept, so a slow peer holds only its own connection, for at most
// proxyHeaderTimeout. Wrap it inside LimitListener, which then counts the
// balancer's connections: limit connections per client network at the
// balancer.
func ClientAddrListener(ln net.Listener, trusted []string) (net.Listener, error) {
	ip, err := newClientIP(trusted)
	if err != nil {
		return nil, err
	}
	if len(ip.trusted) == 0 {
		return nil, errors.New("proxy_protocol: needs trusted_proxies")
	}
	return &proxyproto.Listener{
		Listener: ln,
		ConnPolicy: func(o proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) {
			if a, ok := addrOf(o.Upstream); ok && ip.isTrusted(a) {
				return proxyproto.REQUIRE, nil
			}
			return proxyproto.REJECT, nil
		},
		ValidateHeader:    validateProxyHeader,
		ReadHeaderTimeout: proxyHeaderTimeout,
	}, nil
}

// validateProxyHeader accepts only version 2 headers, and for the PROXY
// command only TCP over IPv4 or IPv6: the source must be a client address.
func validateProxyHeader(h *proxyproto.Header) error {
	if h.Version != 2 {
		return fmt.Errorf("PROXY protocol version %d refused: only version 2 is accepted", h.Version)
	}
	if h.Command.IsLocal() {
		return nil
	}
	if !h.TransportProtocol.IsStream() || h.TransportProtocol.IsUnix() {
		return fmt.Errorf("PROXY header for transport %v refused: only TCP over IPv4 or IPv6", h.TransportProtocol)
	}
	if _, _, ok := h.TCPAddrs(); !ok {
		return errors.New("PROXY header without TCP addresses refused")
	}
	return nil
}

// addrOf returns the IP of a TCP address.
func addrOf(a net.Addr) (netip.Addr, bool) {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Addr{}, false
	}
	addr, ok := netip.AddrFromSlice(ta.IP)
	return addr.Unmap(), ok
}
