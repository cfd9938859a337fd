//go:build e2e

package e2e

import (
	"bytes"
	"crypto/tls"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2Conn opens a raw HTTP/2 connection to g with the admin certificate.
func h2Conn(t *testing.T, g *gateway) (*tls.Conn, *http2.Framer) {
	t.Helper()
	tc := tlsConfigFor(t, "admin")
	tc.NextProtos = []string{"h2"}
	c, err := tls.Dial("tcp", g.addr, tc)
	if err != nil {
		t.Fatal(err)
	}
	if c.ConnectionState().NegotiatedProtocol != "h2" {
		t.Fatalf("negotiated %q, want h2", c.ConnectionState().NegotiatedProtocol)
	}
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return c, fr
}

func h2Headers(t *testing.T, g *gateway, path string) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for _, f := range []hpack.HeaderField{
		{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "https"},
		{Name: ":authority", Value: g.addr}, {Name: ":path", Value: path},
	} {
		if err := enc.WriteField(f); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// drain reads frames until the connection ends or the deadline passes, and
// reports whether the server sent GOAWAY.
func drain(fr *http2.Framer) (goAway bool) {
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return goAway
		}
		if _, ok := f.(*http2.GoAwayFrame); ok {
			goAway = true
		}
	}
}

// TestHTTP2Abuse sends a rapid-reset burst, a CONTINUATION flood and more
// concurrent streams than allowed over raw HTTP/2 frames, and checks that the
// gateway bounds each and keeps serving normal requests.
func TestHTTP2Abuse(t *testing.T) {
	g := startOwnGateway(t, "h2", "RequireAndVerifyClientCert")
	path := "/api/v1/query?" + url.Values{"query": {"up"}}.Encode()
	before := env.rec.count()

	t.Run("rapid reset", func(t *testing.T) {
		c, fr := h2Conn(t, g)
		defer c.Close()
		hdr := h2Headers(t, g, path)
		var err error
		for id := uint32(1); id < 2*2000 && err == nil; id += 2 {
			if err = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hdr, EndStream: true, EndHeaders: true}); err == nil {
				err = fr.WriteRSTStream(id, http2.ErrCodeCancel)
			}
		}
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		drain(fr)
	})
	t.Run("continuation flood", func(t *testing.T) {
		c, fr := h2Conn(t, g)
		defer c.Close()
		hdr := h2Headers(t, g, path)
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hdr, EndStream: true, EndHeaders: false}); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		enc := hpack.NewEncoder(&buf)
		junk := bytes.Repeat([]byte("x"), 4000)
		var err error
		sent := 0
		for i := 0; i < 10000 && err == nil; i++ {
			buf.Reset()
			_ = enc.WriteField(hpack.HeaderField{Name: "x-junk", Value: string(junk)})
			err = fr.WriteContinuation(1, false, buf.Bytes())
			sent += buf.Len()
		}
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		goAway := drain(fr)
		if err == nil && !goAway {
			t.Errorf("the server accepted %d bytes of CONTINUATION frames without closing the connection", sent)
		}
	})
	t.Run("too many streams", func(t *testing.T) {
		c, fr := h2Conn(t, g)
		defer c.Close()
		hdr := h2Headers(t, g, path)
		// Open streams without ending them, far past MaxConcurrentStreams.
		for id := uint32(1); id < 2*300; id += 2 {
			if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hdr, EndStream: false, EndHeaders: true}); err != nil {
				break
			}
		}
		refused := 0
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				break
			}
			if rst, ok := f.(*http2.RSTStreamFrame); ok && (rst.ErrCode == http2.ErrCodeRefusedStream || rst.ErrCode == http2.ErrCodeProtocol) {
				refused++
			}
			if _, ok := f.(*http2.GoAwayFrame); ok {
				refused++
				break
			}
		}
		if refused == 0 {
			t.Error("300 concurrent streams were all accepted; want the excess over MaxConcurrentStreams refused")
		}
	})

	// The gateway still serves, and the abuse forwarded a bounded number of
	// requests at most (rapid reset may let some through before their reset).
	cl := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfigFor(t, "team-a"), ForceAttemptHTTP2: true}, Timeout: 10 * time.Second}
	resp, err := cl.Get("https://" + g.addr + path)
	if err != nil {
		t.Fatalf("a normal request after the abuse: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Errorf("a normal request after the abuse: status %d over HTTP/%d", resp.StatusCode, resp.ProtoMajor)
	}
	if n := env.rec.count() - before; n > 1000 {
		t.Errorf("the abuse forwarded %d requests upstream", n)
	}
}
