//go:build e2e

package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"
)

// The bundle test (issue 21): three replicas load their policy from one
// signed OPA bundle that Debian's nginx serves, poll it with ETag, refuse
// unsigned, wrongly signed and non-compiling bundles while the policy in
// use stays, and all move to a new signed revision within one poll
// interval; every audit record names the revision that decided it.
const bundlePoll = 2 * time.Second

const bundleGatewayConfig = `listen: %[1]s
internal_listen: %[2]s
tls:
  cert_file: %[3]s/server.crt
  key_file: %[3]s/server.key
  client_ca_file: %[3]s/ca.crt
  client_auth_type: RequireAndVerifyClientCert
upstream:
  url: %[4]s
authz:
  bundle:
    url: %[5]s
    public_key_file: %[6]s
    poll_interval: %[7]s
audit:
  path: %[8]s/audit.log
limits:
  requests_per_second: 1000
  burst: 1000
`

const nginxConfig = `daemon off;
master_process off;
user root root;
pid %[1]s/nginx.pid;
error_log stderr warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path %[1]s/tmp;
  proxy_temp_path %[1]s/tmp;
  fastcgi_temp_path %[1]s/tmp;
  uwsgi_temp_path %[1]s/tmp;
  scgi_temp_path %[1]s/tmp;
  types { application/gzip gz; }
  server {
    listen %[2]s;
    root %[1]s/www;
  }
}
`

// rsaKey is a bundle signing key pair as PEM.
type rsaKey struct{ private, public string }

func newRSAKey(t *testing.T) rsaKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return rsaKey{
		private: string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})),
		public:  string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})),
	}
}

// policyBundle makes a bundle of the repository's default policy and data,
// with the given revision, signed with key unless it is nil; extra modules
// are added as they are (a broken one makes the bundle not compile).
func policyBundle(t *testing.T, key *rsaKey, revision string, extra map[string]string) []byte {
	t.Helper()
	rego, err := os.ReadFile(filepath.Join(env.root, "policies", "policy.rego"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(env.root, "policies", "data.json"))
	if err != nil {
		t.Fatal(err)
	}
	var data map[string]any
	if err := json.Unmarshal(raw, &data); err != nil {
		t.Fatal(err)
	}
	b := bundle.Bundle{Manifest: bundle.Manifest{Revision: revision}, Data: data,
		Modules: []bundle.ModuleFile{{URL: "promgate/policy.rego", Path: "promgate/policy.rego", Raw: rego}}}
	for path, src := range extra {
		b.Modules = append(b.Modules, bundle.ModuleFile{URL: path, Path: path, Raw: []byte(src)})
	}
	b.Manifest.Init()
	if key != nil {
		if err := b.GenerateSignature(bundle.NewSigningConfig(key.private, "RS256", ""), "default", false); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).Write(b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestPolicyBundle(t *testing.T) {
	began := time.Now()
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nginx"); serr != nil {
			t.Fatal("nginx not found: run scripts/install-deps.sh (it installs the Debian package nginx)")
		}
		nginx = "/usr/sbin/nginx"
	}
	dir := filepath.Join(env.tmp, "bundle")
	for _, d := range []string{"www", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	key, other := newRSAKey(t), newRSAKey(t)
	pubFile := filepath.Join(dir, "bundle.pub")
	if err := os.WriteFile(pubFile, []byte(key.public), 0o600); err != nil {
		t.Fatal(err)
	}
	// publish replaces the served bundle atomically, as a deployment would.
	publish := func(body []byte) {
		t.Helper()
		tmp := filepath.Join(dir, "www", ".promgate.tar.gz.tmp")
		if err := os.WriteFile(tmp, body, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "www", "promgate.tar.gz")); err != nil {
			t.Fatal(err)
		}
	}
	publish(policyBundle(t, &key, "fleet-1", nil))

	nginxAddr, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(nginxConfig, dir, nginxAddr)), 0o600); err != nil {
		t.Fatal(err)
	}
	ngx, err := env.start("bundle-nginx", dir, nginx, "-p", dir, "-c", conf, "-e", "stderr")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !ngx.exited() {
			_ = ngx.stop()
		}
	})
	bundleURL := "http://" + nginxAddr + "/promgate.tar.gz"
	deadline := time.Now().Add(startBudget)
	for {
		resp, err := http.Get(bundleURL) //nolint:gosec // G107: the URL of the nginx this test started on loopback
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && resp.Header.Get("ETag") != "" {
				break
			}
		}
		if time.Now().After(deadline) || ngx.exited() {
			t.Fatalf("nginx does not serve the bundle with an ETag at %s: %v", bundleURL, err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	f := &fleet{dir: dir}
	for i := 1; i <= 3; i++ {
		r := &replica{id: "b" + fmt.Sprint(i)}
		if r.addr, err = freePort(); err != nil {
			t.Fatal(err)
		}
		if r.internal, err = freePort(); err != nil {
			t.Fatal(err)
		}
		r.config = filepath.Join(dir, "promgate-"+r.id+".yml")
		cfg := fmt.Sprintf(bundleGatewayConfig, r.addr, r.internal, env.pki, env.promURL, bundleURL, pubFile, bundlePoll, dir)
		if err := os.WriteFile(r.config, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		f.replicas = append(f.replicas, r)
		f.start(t, r)
	}
	t.Cleanup(func() {
		for _, r := range f.replicas {
			if !r.proc.exited() {
				_ = r.proc.stop()
			}
		}
	})
	hc := fleetClient(t)
	// revisionOf asks replica r a query as team-a and returns the policy
	// revision its audit record names.
	revisionOf := func(r *replica) string {
		t.Helper()
		resp, err := hc.Get("https://" + r.addr + "/api/v1/query?" + url.Values{"query": {"up"}}.Encode())
		if err != nil {
			t.Fatalf("%s: %v", r.id, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d", r.id, resp.StatusCode)
		}
		id := resp.Header.Get("X-Request-Id")
		for _, rec := range readBundleAudit(t, filepath.Join(dir, "audit-"+r.id+".log")) {
			if rec.ID == id {
				if rec.Decision == nil {
					t.Fatalf("%s: record %s has no decision", r.id, id)
				}
				return rec.Decision.PolicyRevision
			}
		}
		t.Fatalf("%s: no audit record %s", r.id, id)
		return ""
	}
	for _, r := range f.replicas {
		if got := revisionOf(r); got != "fleet-1" {
			t.Fatalf("%s decides with revision %q, want fleet-1", r.id, got)
		}
	}

	refusals := func(r *replica) int {
		b, _ := os.ReadFile(r.proc.stderr)
		return strings.Count(string(b), "policy bundle refused")
	}
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"unsigned", policyBundle(t, nil, "evil-unsigned", nil)},
		{"signed with another key", policyBundle(t, &other, "evil-other-key", nil)},
		{"signed but does not compile", policyBundle(t, &key, "broken", map[string]string{"promgate/broken.rego": "package promgate.broken\n\nx := \n"})},
		{"a file changed after signing", func() []byte {
			// The signed fleet-1 bundle, with the policy swapped for one
			// that allows everything: the hashes no longer match.
			b := policyBundle(t, &key, "fleet-1-tampered", nil)
			return tamper(t, b)
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := make([]int, len(f.replicas))
			for i, r := range f.replicas {
				before[i] = refusals(r)
			}
			publish(tc.body)
			time.Sleep(bundlePoll + bundlePoll/2)
			for i, r := range f.replicas {
				if got := revisionOf(r); got != "fleet-1" {
					t.Errorf("%s decides with revision %q after a refused bundle, want fleet-1 kept", r.id, got)
				}
				if refusals(r) == before[i] {
					t.Errorf("%s did not log the refusal", r.id)
				}
			}
		})
	}

	publish(policyBundle(t, &key, "fleet-2", nil))
	published := time.Now()
	converged := map[string]time.Duration{}
	for len(converged) < len(f.replicas) && time.Since(published) < 3*bundlePoll {
		for _, r := range f.replicas {
			if _, ok := converged[r.id]; !ok && revisionOf(r) == "fleet-2" {
				converged[r.id] = time.Since(published)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("bundle: replicas on fleet-2 after %v (poll interval %v)", converged, bundlePoll)
	for _, r := range f.replicas {
		d, ok := converged[r.id]
		switch {
		case !ok:
			t.Errorf("%s never moved to fleet-2", r.id)
		case d > bundlePoll+time.Second:
			t.Errorf("%s moved to fleet-2 after %v, more than one poll interval (%v) and a second to fetch", r.id, d, bundlePoll)
		}
	}
	t.Logf("bundle e2e took %v", time.Since(began).Round(time.Millisecond))
}

// tamper replaces the policy module inside a signed bundle with one that
// allows everything, keeping .signatures.json as it was.
func tamper(t *testing.T, signed []byte) []byte {
	t.Helper()
	b, err := bundle.NewReader(bytes.NewReader(signed)).WithSkipBundleVerification(true).Read()
	if err != nil {
		t.Fatal(err)
	}
	for i := range b.Modules {
		b.Modules[i].Raw = []byte("package promgate.authz\n\ndecision := {\"allow\": true, \"unrestricted\": true}\n")
	}
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).Write(b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type bundleRecord struct {
	ID       string `json:"id"`
	Decision *struct {
		PolicyRevision string `json:"policy_revision"`
	} `json:"decision"`
}

func readBundleAudit(t *testing.T, path string) []bundleRecord {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []bundleRecord
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var r bundleRecord
		if err := json.Unmarshal(line, &r); err == nil {
			out = append(out, r)
		}
	}
	return out
}
