//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/promgate/promgate/enforce"
)

// testRemoteRead runs a Prometheus whose only storage for old data is
// remote_read through the gateway as team-a (read_recent, so every query
// reads it), then reads with a Go client asking each response type, since
// one Prometheus version asks for only one of them.
func (s *writeStack) testRemoteRead(t *testing.T) {
	addr, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(s.dir, "reader")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), fmt.Appendf(nil, readerConfig, s.gw.addr, s.pki), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := env.start("prometheus-reader", dir, "prometheus", "--config.file=prometheus.yml", "--storage.tsdb.path=data",
		"--web.listen-address="+addr, "--log.level=warn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !p.exited() {
			_ = p.stop()
		}
	})
	readerURL := "http://" + addr
	waitHTTPReady(t, readerURL+"/-/ready", p)

	t.Run("Prometheus remote_read", func(t *testing.T) {
		// The receiver itself holds both namespaces.
		all, err := promVector(s.recvURL, `count by (namespace) (e2e_write_target_info{source="receiver"})`)
		if err != nil || len(all) != 2 {
			t.Fatalf("the receiver's own series: %v (%v), want team-a and team-b", all, err)
		}
		vec, err := promVector(readerURL, `count by (namespace, source) (e2e_write_target_info)`)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, m := range vec {
			seen[m["namespace"]] = true
		}
		if !seen["team-a"] || len(seen) != 1 {
			t.Errorf("the reader sees namespaces %v through the gateway, want team-a only", keys(seen))
		}
		// A query for team-b only: the gateway refuses it; Prometheus turns
		// the remote read error into a warning and no data.
		vec, err = promVector(readerURL, `e2e_write_target_info{namespace="team-b"}`)
		if len(vec) != 0 {
			t.Errorf("team-b query through the reader: %v (%v), want nothing", vec, err)
		}
		t.Logf("team-b query through the reader: %d series, error %v", len(vec), err)
	})

	// The audit writer flushes every second.
	time.Sleep(1500 * time.Millisecond)
	samples, chunks, _ := s.readRecords(t)
	t.Logf("Prometheus 2.42's remote read requests: %d answered with SAMPLES, %d with STREAMED_XOR_CHUNKS", samples, chunks)
	if samples+chunks == 0 {
		t.Error("no remote read request of Prometheus was answered")
	}

	client := readClient(t, s.pki, "reader")
	for _, tc := range []struct {
		name string
		typ  prompb.ReadRequest_ResponseType
	}{
		{"Go client, SAMPLES", prompb.ReadRequest_SAMPLES},
		{"Go client, STREAMED_XOR_CHUNKS", prompb.ReadRequest_STREAMED_XOR_CHUNKS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			series, status := remoteRead(t, client, s.gw.addr, tc.typ, &prompb.LabelMatcher{Name: "__name__", Value: "e2e_write_target_info"})
			if status != http.StatusOK {
				t.Fatalf("status %d", status)
			}
			ns := map[string]bool{}
			for _, ls := range series {
				for _, l := range ls {
					if l.Name == "namespace" {
						ns[l.Value] = true
					}
				}
			}
			if len(series) == 0 || !ns["team-a"] || len(ns) != 1 {
				t.Errorf("%d series, namespaces %v; want team-a's only", len(series), keys(ns))
			}
			t.Logf("%s: %d series, namespaces %v", tc.name, len(series), keys(ns))
			_, status = remoteRead(t, client, s.gw.addr, tc.typ, &prompb.LabelMatcher{Name: "namespace", Value: "team-b"})
			if status != http.StatusForbidden {
				t.Errorf("a team-b query: status %d, want 403", status)
			}
		})
	}
	t.Run("another team's certificate reads nothing", func(t *testing.T) {
		_, status := remoteRead(t, readClient(t, s.pki, "stranger"), s.gw.addr, prompb.ReadRequest_SAMPLES, &prompb.LabelMatcher{Name: "__name__", Value: "e2e_write_target_info"})
		if status != http.StatusForbidden {
			t.Errorf("team-b reader: status %d, want 403", status)
		}
	})

	_ = p.stop()
	time.Sleep(1500 * time.Millisecond)
	t.Run("audit of the reads", func(t *testing.T) {
		samples, chunks, refused := s.readRecords(t)
		t.Logf("reader's read records: %d answered with samples, %d with chunks, %d refused", samples, chunks, refused)
		if samples == 0 || chunks == 0 || refused == 0 {
			t.Errorf("want read records of both response types and refusals")
		}
	})
}

// readRecords counts the reader's read records so far by outcome, and
// checks that each answered one was confined.
func (s *writeStack) readRecords(t *testing.T) (samples, chunks, refused int) {
	t.Helper()
	b, err := os.ReadFile(s.gw.audit)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var r remoteAudit
		if json.Unmarshal(line, &r) != nil || r.Route != "read" || r.Identity == nil || r.Identity.Subject != "reader" {
			continue
		}
		switch {
		case r.Status == http.StatusForbidden:
			refused++
		case r.Remote != nil && r.Remote.Chunks > 0:
			chunks++
		case r.Remote != nil && r.Remote.Samples > 0:
			samples++
		}
		if r.Status == http.StatusOK && !slices.ContainsFunc(r.EnforcedQuery, func(q string) bool { return bytes.Contains([]byte(q), []byte(`namespace="team-a"`)) }) {
			t.Errorf("read record without the confinement: %s", line)
		}
	}
	return samples, chunks, refused
}

// readClient is an HTTP client with a client certificate of pki.
func readClient(t *testing.T, pki, name string) *http.Client {
	t.Helper()
	return &http.Client{Timeout: requestBudget, Transport: &http.Transport{TLSClientConfig: clientTLS(t, pki, pki, name)}}
}

// remoteRead sends one remote read query of the last five minutes asking
// for typ only, and returns the label sets answered.
func remoteRead(t *testing.T, c *http.Client, addr string, typ prompb.ReadRequest_ResponseType, ms ...*prompb.LabelMatcher) ([][]prompb.Label, int) {
	t.Helper()
	now := time.Now()
	body, err := enforce.EncodeRead(&prompb.ReadRequest{
		Queries:               []*prompb.Query{{StartTimestampMs: now.Add(-5 * time.Minute).UnixMilli(), EndTimestampMs: now.UnixMilli(), Matchers: ms}},
		AcceptedResponseTypes: []prompb.ReadRequest_ResponseType{typ},
	})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, "https://"+addr+"/api/v1/read", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Read-Version", "0.1.0")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, resp.StatusCode
	}
	var out [][]prompb.Label
	if typ == prompb.ReadRequest_SAMPLES {
		b, _ := io.ReadAll(resp.Body)
		raw, err := snappy.Decode(nil, b)
		if err != nil {
			t.Fatalf("SAMPLES answer: %v (Content-Type %s)", err, resp.Header.Get("Content-Type"))
		}
		var rr prompb.ReadResponse
		if err := rr.Unmarshal(raw); err != nil {
			t.Fatal(err)
		}
		for _, r := range rr.Results {
			for _, ts := range r.Timeseries {
				out = append(out, ts.Labels)
			}
		}
		return out, resp.StatusCode
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse" {
		t.Fatalf("streamed answer with Content-Type %q", ct)
	}
	br := bufio.NewReader(resp.Body)
	for {
		_, data, err := enforce.ReadFrame(br, 64<<20, nil)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var cr prompb.ChunkedReadResponse
		if err := cr.Unmarshal(data); err != nil {
			t.Fatal(err)
		}
		for _, cs := range cr.ChunkedSeries {
			out = append(out, cs.Labels)
		}
	}
	return out, resp.StatusCode
}
