package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
)

// ppServer serves r.RemoteAddr over plain HTTP behind ClientAddrListener.
func ppServer(t *testing.T, trusted []string) string {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := ClientAddrListener(raw, trusted)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.RemoteAddr) //nolint:gosec // a test server echoing the address it saw, as plain text to a test client
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return raw.Addr().String()
}

// ppGet sends header (nil: none), then a GET, and returns the body, or ""
// when the connection was closed without an answer.
func ppGet(t *testing.T, addr string, header *proxyproto.Header) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if header != nil {
		if _, err := header.WriteTo(c); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		return ""
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func header(version byte, cmd proxyproto.ProtocolVersionAndCommand, src string) *proxyproto.Header {
	s, _ := net.ResolveTCPAddr("tcp", src)
	d, _ := net.ResolveTCPAddr("tcp", "10.0.0.1:443")
	return &proxyproto.Header{Version: version, Command: cmd, TransportProtocol: proxyproto.TCPv4, SourceAddr: s, DestinationAddr: d}
}

// TestProxyProtocol checks whom the listener believes: a trusted peer's v2
// header names the client, a trusted peer without one or with v1 is closed,
// and an untrusted peer may not send one at all.
func TestProxyProtocol(t *testing.T) {
	trusted := ppServer(t, []string{"127.0.0.1/32"})
	untrusted := ppServer(t, []string{"192.0.2.0/24"})
	for _, tc := range []struct {
		name, addr string
		header     *proxyproto.Header
		want       string // "" means closed; a prefix otherwise
	}{
		{"trusted v2 proxy", trusted, header(2, proxyproto.PROXY, "203.0.113.7:40000"), "203.0.113.7:40000"},
		{"trusted v2 local", trusted, header(2, proxyproto.LOCAL, "203.0.113.7:40000"), "127.0.0.1:"},
		{"trusted without header", trusted, nil, ""},
		{"trusted v1", trusted, header(1, proxyproto.PROXY, "203.0.113.7:40000"), ""},
		{"untrusted with header", untrusted, header(2, proxyproto.PROXY, "203.0.113.7:40000"), ""},
		{"untrusted without header", untrusted, nil, "127.0.0.1:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ppGet(t, tc.addr, tc.header)
			if tc.want == "" && got != "" || !strings.HasPrefix(got, tc.want) {
				t.Errorf("RemoteAddr = %q, want %q (empty: closed)", got, tc.want)
			}
		})
	}
}

func TestProxyProtocolNeedsTrusted(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := ClientAddrListener(raw, nil); err == nil {
		t.Error("ClientAddrListener without trusted_proxies: no error")
	}
	if _, err := ClientAddrListener(raw, []string{"nope"}); err == nil {
		t.Error("ClientAddrListener with a bad CIDR: no error")
	}
}

func TestValidateProxyHeader(t *testing.T) {
	unix := header(2, proxyproto.PROXY, "203.0.113.7:1")
	unix.TransportProtocol = proxyproto.UnixStream
	udp := header(2, proxyproto.PROXY, "203.0.113.7:1")
	udp.TransportProtocol = proxyproto.UDPv4
	for name, h := range map[string]*proxyproto.Header{"unix": unix, "udp": udp, "v1": header(1, proxyproto.PROXY, "203.0.113.7:1")} {
		if err := validateProxyHeader(h); err == nil {
			t.Errorf("%s header accepted", name)
		}
	}
	if err := validateProxyHeader(header(2, proxyproto.PROXY, "203.0.113.7:1")); err != nil {
		t.Errorf("v2 TCP header refused: %v", err)
	}
}

// FuzzProxyHeader feeds arbitrary bytes to a trusted connection of
// ClientAddrListener: no panic, and the connection's address is either
// the peer's or a TCP source address from a valid v2 PROXY header.
func FuzzProxyHeader(f *testing.F) {
	for _, h := range []*proxyproto.Header{
		header(2, proxyproto.PROXY, "203.0.113.7:40000"),
		header(2, proxyproto.LOCAL, "203.0.113.7:40000"),
		header(1, proxyproto.PROXY, "203.0.113.7:40000"),
	} {
		b, err := h.Format()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(append(b, "GET / HTTP/1.1\r\n"...))
	}
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4096 {
			return
		}
		peer, local := net.Pipe()
		defer peer.Close()
		go func() {
			_, _ = local.Write(data)
			local.Close()
		}()
		// A short header timeout keeps every run fast: an input that leaves
		// the reader waiting would otherwise take a second, and a slow run
		// at the end of -fuzztime (during minimisation) fails the fuzzing
		// with "context deadline exceeded".
		c := proxyproto.NewConn(peer, proxyproto.WithPolicy(proxyproto.REQUIRE),
			proxyproto.ValidateHeader(validateProxyHeader), proxyproto.SetReadHeaderTimeout(20*time.Millisecond))
		_, _ = c.Read(make([]byte, 16))
		h := c.ProxyHeader()
		if h == nil {
			return
		}
		if err := validateProxyHeader(h); err != nil {
			t.Fatalf("a header that validation refuses was kept: %v", err)
		}
		if a := c.RemoteAddr(); !h.Command.IsLocal() {
			if _, ok := a.(*net.TCPAddr); !ok {
				t.Fatalf("RemoteAddr %v from a PROXY header is not TCP", a)
			}
		}
	})
}
