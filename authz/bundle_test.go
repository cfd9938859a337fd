package authz

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"

	"github.com/promgate/promgate/config"
)

// signingKey is an RSA key whose private half signs test bundles.
type signingKey struct {
	private string // PEM
	public  string // PEM
}

func newSigningKey(t *testing.T) signingKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return signingKey{
		private: string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})),
		public:  string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})),
	}
}

// makeBundle builds a bundle .tar.gz of one module with the given reason,
// signed with key unless key is nil. broken adds a module that does not
// compile.
func makeBundle(t *testing.T, key *signingKey, revision, reason string, broken bool) []byte {
	t.Helper()
	mods := map[string]string{"promgate/authz.rego": "package promgate.authz\n\ndecision := {\"allow\": false, \"reason\": \"" + reason + "\"}\n"}
	if broken {
		mods["promgate/broken.rego"] = "package promgate.broken\n\nx := \n"
	}
	b := bundle.Bundle{Manifest: bundle.Manifest{Revision: revision}, Data: map[string]any{"fleet": map[string]any{"name": "test"}}}
	for path, src := range mods {
		b.Modules = append(b.Modules, bundle.ModuleFile{URL: path, Path: path, Raw: []byte(src)})
	}
	b.Manifest.Init()
	if key != nil {
		if err := b.GenerateSignature(bundle.NewSigningConfig(key.private, "RS256", ""), config.DefaultBundleKeyID, false); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).Write(b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// bundleServer serves whatever body holds, with an ETag per content, and
// counts full downloads.
type bundleServer struct {
	*httptest.Server
	mu        sync.Mutex
	body      []byte
	etag      string
	downloads atomic.Int64
}

func newBundleServer(t *testing.T, body []byte) *bundleServer {
	s := &bundleServer{}
	s.set(body, "v0")
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		body, etag := s.body, s.etag
		s.mu.Unlock()
		w.Header().Set("ETag", etag)
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		s.downloads.Add(1)
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *bundleServer) set(body []byte, etag string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body, s.etag = body, `"`+etag+`"`
}

func bundleConfig(t *testing.T, url, publicKey string) config.Authz {
	t.Helper()
	keyFile := filepath.Join(t.TempDir(), "bundle.pub")
	if err := os.WriteFile(keyFile, []byte(publicKey), 0o600); err != nil {
		t.Fatal(err)
	}
	return config.Authz{Decision: decisionRef, Bundle: config.Bundle{URL: url, PublicKeyFile: keyFile, PollInterval: model.Duration(1e9)}}
}

func reasonOf(t *testing.T, a *Authorizer) string {
	t.Helper()
	d, _ := a.Decide(context.Background(), queryInput(alice))
	return d.Reason
}

// TestBundle loads a signed bundle, keeps it across a 304, moves to a new
// signed revision, and refuses unsigned, wrongly signed and non-compiling
// bundles while the policy in use stays.
func TestBundle(t *testing.T) {
	key, other := newSigningKey(t), newSigningKey(t)
	srv := newBundleServer(t, makeBundle(t, &key, "rev-1", "one", false))
	reg := prometheus.NewRegistry()
	a, err := New(bundleConfig(t, srv.URL+"/bundle.tar.gz", key.public), nil, reg)
	if err != nil {
		t.Fatalf("New with a signed bundle: %v", err)
	}
	if !a.FromBundle() || a.Revision() != "rev-1" || reasonOf(t, a) != "one" {
		t.Fatalf("revision %q, reason %q; want rev-1, one", a.Revision(), reasonOf(t, a))
	}
	if err := a.Reload(); err != nil || srv.downloads.Load() != 1 {
		t.Fatalf("poll of an unchanged bundle: %v, %d downloads (want a 304)", err, srv.downloads.Load())
	}

	srv.set(makeBundle(t, &key, "rev-2", "two", false), "v2")
	if err := a.Reload(); err != nil || a.Revision() != "rev-2" || reasonOf(t, a) != "two" {
		t.Fatalf("new signed bundle: %v, revision %q", err, a.Revision())
	}

	for _, tc := range []struct {
		name string
		body []byte
		want string
	}{
		{"unsigned", makeBundle(t, nil, "rev-x", "unsigned", false), "signatures"},
		{"signed with another key", makeBundle(t, &other, "rev-x", "other", false), "verif"},
		{"does not compile", makeBundle(t, &key, "rev-x", "broken", true), "broken.rego"},
		{"not a bundle", []byte("<html>maintenance</html>"), "refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv.set(tc.body, tc.name)
			err := a.Reload()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Reload = %v, want an error mentioning %q", err, tc.want)
			}
			if a.Revision() != "rev-2" || reasonOf(t, a) != "two" {
				t.Errorf("after a refused bundle: revision %q, reason %q; want rev-2 kept", a.Revision(), reasonOf(t, a))
			}
			// Refused for its content: not downloaded again until it changes.
			n := srv.downloads.Load()
			if err := a.Reload(); err != nil || srv.downloads.Load() != n {
				t.Errorf("second poll of the refused bundle: %v, %d downloads, want none", err, srv.downloads.Load()-n)
			}
		})
	}
	if got := testutil.ToFloat64(a.metrics.reloads.WithLabelValues("failure")); got != 4 {
		t.Errorf("promgate_policy_reloads_total{result=failure} = %v, want 4", got)
	}
}

// TestBundleRefusedAtStart checks that a gateway whose bundle does not
// verify or cannot be fetched does not start.
func TestBundleRefusedAtStart(t *testing.T) {
	key := newSigningKey(t)
	unsigned := newBundleServer(t, makeBundle(t, nil, "r", "x", false))
	if _, err := New(bundleConfig(t, unsigned.URL, key.public), nil, nil); err == nil || !strings.HasPrefix(err.Error(), "authz.bundle: ") {
		t.Errorf("New with an unsigned bundle = %v", err)
	}
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	if _, err := New(bundleConfig(t, down.URL, key.public), nil, nil); err == nil {
		t.Error("New with an unreachable bundle server: no error")
	}
	if _, err := New(bundleConfig(t, unsigned.URL, "not a key"), nil, nil); err == nil || !strings.Contains(err.Error(), "public_key_file") {
		t.Errorf("New with a bad public key = %v", err)
	}
}

// TestBundleRun checks that Run polls until its context ends.
func TestBundleRun(t *testing.T) {
	key := newSigningKey(t)
	srv := newBundleServer(t, makeBundle(t, &key, "rev-1", "one", false))
	cfg := bundleConfig(t, srv.URL, key.public)
	cfg.Bundle.PollInterval = model.Duration(20e6)
	a, err := New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	srv.set(makeBundle(t, &key, "rev-2", "two", false), "v2")
	for a.Revision() != "rev-2" {
		select {
		case <-done:
			t.Fatal("Run returned early")
		default:
		}
		runtimeGosched()
	}
	cancel()
	<-done
}

func TestRevisionOf(t *testing.T) {
	for in, want := range map[string]string{
		"v1.2.3":                 "v1.2.3",
		"a\nb\x00c":              "a_b_c",
		"é":                      "_",
		strings.Repeat("x", 100): strings.Repeat("x", 64),
	} {
		if got := revisionOf(in); got != want {
			t.Errorf("revisionOf(%q) = %q, want %q", in, got, want)
		}
	}
}

func runtimeGosched() { time.Sleep(time.Millisecond) }
