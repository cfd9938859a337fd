//go:build e2e

package e2e

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// startOwnGateway starts a gateway of the test's own, so that its traffic
// does not disturb the main gateways' audit accounting.
func startOwnGateway(t *testing.T, name, authType string) *gateway {
	t.Helper()
	g := &gateway{name: name, authType: authType, upstream: env.rec.url}
	if err := env.writeGateway(g); err != nil {
		t.Fatal(err)
	}
	if err := env.startGateway(g); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.proc.stop() })
	if err := env.waitGateway(g); err != nil {
		t.Fatal(err)
	}
	return g
}

func tlsConfigFor(t *testing.T, name string) *tls.Config {
	t.Helper()
	tc := clientTLS(t, env.pki, env.pki, name)
	tc.ServerName = "127.0.0.1"
	return tc
}

// TestSlowloris holds 1,000 connections from another loopback network that
// trickle a TLS record byte by byte, and checks that legitimate queries keep
// being served meanwhile, that the per-network bound closed the excess, and
// that the trickling connections are cut by the server's timeouts.
func TestSlowloris(t *testing.T) {
	g := startOwnGateway(t, "dos", "RequireAndVerifyClientCert")
	const attackers = 1000
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var mu sync.Mutex
	closedByServer := 0
	for i := 0; i < attackers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(1+i%200))}} //nolint:gosec // G115: 1+i%200 is 1 to 200
			c, err := d.Dial("tcp", g.addr)
			if err != nil {
				return
			}
			defer c.Close()
			// A TLS handshake record header, then one byte a second.
			if _, err := c.Write([]byte{0x16, 0x03, 0x01}); err != nil {
				return
			}
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if _, err := c.Write([]byte{0x00}); err != nil {
						mu.Lock()
						closedByServer++
						mu.Unlock()
						return
					}
				}
			}
		}(i)
	}
	defer func() { close(stop); wg.Wait() }()

	c := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfigFor(t, "team-a")}, Timeout: 5 * time.Second}
	ok, failed := 0, 0
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := c.Get("https://" + g.addr + "/api/v1/query?" + url.Values{"query": {"up"}}.Encode())
		if err != nil || resp.StatusCode != 200 {
			failed++
			if err == nil {
				resp.Body.Close()
			}
			continue
		}
		resp.Body.Close()
		ok++
		time.Sleep(50 * time.Millisecond)
	}
	if failed > 0 || ok < 10 {
		t.Errorf("legitimate queries during the attack: %d ok, %d failed", ok, failed)
	}
	resp, err := http.Get("http://" + g.internal + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	refused := ""
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "promgate_connections_refused_total ") {
			refused = strings.TrimPrefix(sc.Text(), "promgate_connections_refused_total ")
		}
	}
	if refused == "" || refused == "0" {
		t.Errorf("promgate_connections_refused_total = %q, want the excess over the per-network bound counted", refused)
	}
	t.Logf("slowloris: %d legitimate queries served, %s attacker connections refused at accept", ok, refused)
}

// TestSmuggling sends ambiguous framings over TLS (Content-Length with
// Transfer-Encoding, two Content-Lengths, a bare-LF chunk: CVE-2025-22871)
// and checks that each is refused and nothing reaches the upstream, and that
// plain HTTP on the TLS port is refused.
func TestSmuggling(t *testing.T) {
	g := startOwnGateway(t, "smuggle", "RequireAndVerifyClientCert")
	before := env.rec.count()
	cases := map[string]string{
		"CL and TE":     "POST /api/v1/query HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 8\r\nTransfer-Encoding: chunked\r\n\r\n8\r\nquery=up\r\n0\r\n\r\n",
		"two CL":        "POST /api/v1/query HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 8\r\nContent-Length: 9\r\n\r\nquery=up",
		"bare LF chunk": "POST /api/v1/query HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n8\nquery=up\r\n0\r\n\r\n",
	}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) {
			c, err := tls.Dial("tcp", g.addr, tlsConfigFor(t, "admin"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write([]byte(raw)); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				return // the server closed the connection: refused
			}
			resp.Body.Close()
			if resp.StatusCode < 400 {
				t.Errorf("status %d, want a refusal", resp.StatusCode)
			}
		})
	}
	t.Run("plain HTTP on the TLS port", func(t *testing.T) {
		c, err := net.Dial("tcp", g.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "GET /api/v1/query?query=up HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("plain HTTP: status %d, want 400", resp.StatusCode)
			}
		}
	})
	if n := env.rec.count() - before; n != 0 {
		t.Errorf("%d smuggled requests reached the upstream", n)
	}
}

// TestHugeRequests sends 10,000 headers, a 100 KiB query in the URL and a
// 10 MiB form: each is refused before any PromQL parsing, with 431, 414 or
// 413, and nothing reaches the upstream.
func TestHugeRequests(t *testing.T) {
	g := startOwnGateway(t, "huge", "RequireAndVerifyClientCert")
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfigFor(t, "admin")}, Timeout: 20 * time.Second}
	before := env.rec.count()

	req, _ := http.NewRequest(http.MethodGet, "https://"+g.addr+"/api/v1/query?query=up", nil)
	for i := 0; i < 10000; i++ {
		req.Header.Add(fmt.Sprintf("X-Junk-%d", i), "x")
	}
	if resp, err := c.Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("10,000 headers: status %d, want 431", resp.StatusCode)
		}
	}
	resp, err := c.Get("https://" + g.addr + "/api/v1/query?query=" + strings.Repeat("a", 100<<10))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge && resp.StatusCode != http.StatusRequestURITooLong {
		t.Errorf("100 KiB query in the URL: status %d, want 414 or 431", resp.StatusCode)
	}
	form := "query=up&x=" + strings.Repeat("a", 10<<20)
	resp, err = c.Post("https://"+g.addr+"/api/v1/query", "application/x-www-form-urlencoded", strings.NewReader(form))
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("10 MiB form: status %d, want 413", resp.StatusCode)
		}
	}
	if n := env.rec.count() - before; n != 0 {
		t.Errorf("%d huge requests reached the upstream", n)
	}
}
