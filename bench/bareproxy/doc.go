// Command bareproxy is the benchmark reference for "the cost of any proxy":
// an httputil.ReverseProxy behind a TLS listener, with the same tuned
// upstream transport as promgate and nothing else. It authenticates nobody
// beyond the optional client-certificate check of the TLS handshake, decides
// nothing, rewrites nothing and audits nothing, so it must never be deployed:
// it exists only so that bench/harness can measure promgate against it on the
// same machine and data.
//
// It refuses to start without a server certificate and key, and it listens
// only where -listen says (the harness uses a loopback port).
//
// Usage:
//
//	bareproxy -listen 127.0.0.1:0 -upstream http://127.0.0.1:9090 \
//	    -cert server.crt -key server.key [-client-ca ca.crt]
//
// It prints "listening on ADDR" once it accepts connections.
package main
