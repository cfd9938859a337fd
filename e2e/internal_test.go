//go:build e2e

package e2e

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestInternalListener: the gateway's own metrics and probes are on
// internal_listen, and the public listener does not serve them.
func TestInternalListener(t *testing.T) {
	// Make sure at least one request was counted.
	callerTeamA.client(t).do(t, request{path: "/api/v1/query", query: url.Values{"query": {"1+1"}, "time": {"4"}}})

	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + env.main.internal + path)
		if err != nil {
			t.Fatalf("GET internal %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}
	for _, path := range []string{"/-/healthy", "/-/ready"} {
		if code, body := get(path); code != http.StatusOK {
			t.Errorf("internal GET %s: %d %q, want 200", path, code, body)
		}
	}
	code, body := get("/metrics")
	if code != http.StatusOK {
		t.Fatalf("internal GET /metrics: %d, want 200", code)
	}
	for _, want := range []string{
		"promgate_requests_total{",
		`route="query"`,
		"promgate_build_info{",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("internal /metrics lacks %q", want)
		}
	}
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "promgate_") && (strings.Contains(line, "subject=") && strings.Contains(line, "promgate_requests_total")) {
			t.Errorf("internal /metrics: unbounded label in %q", line)
		}
	}

	// The public listener has no /metrics, for anyone.
	for _, who := range []caller{callerAdmin, callerTeamA} {
		who.client(t).do(t, request{path: "/metrics"}).wantError(t, http.StatusNotFound, "not_found")
		who.client(t).do(t, request{path: "/-/ready"}).wantError(t, http.StatusNotFound, "not_found")
	}
}

// TestCheck: `promgate check` accepts a good configuration and lists every
// problem of a bad one, each under its YAML path, with exit code 1.
func TestCheck(t *testing.T) {
	good, err := os.ReadFile(env.main.config)
	if err != nil {
		t.Fatal(err)
	}
	run := func(t *testing.T, cfg string) (int, string) {
		t.Helper()
		// The file sits beside the main gateway's, so relative paths resolve
		// the same way.
		f, err := os.CreateTemp(env.main.dir, "check-*.yml")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(f.Name()) })
		if _, err := f.WriteString(cfg); err != nil {
			t.Fatal(err)
		}
		f.Close()
		out, err := env.promgate("check", "--config", f.Name())
		code := 0
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, string(out)
	}

	t.Run("good", func(t *testing.T) {
		code, out := run(t, string(good))
		if code != 0 || !strings.Contains(out, "OK") {
			t.Errorf("check good config: exit %d, output:\n%s\nwant exit 0 and OK", code, out)
		}
	})

	replace := func(old, new string) string {
		if !strings.Contains(string(good), old) {
			t.Fatalf("config has no %q", old)
		}
		return strings.Replace(string(good), old, new, 1)
	}
	cases := []struct {
		name string
		cfg  string
		// want are substrings that must each start a problem line's text
		// (after the YAML path is found on the line).
		want []string
	}{
		{
			name: "RequestClientCert",
			cfg:  replace("client_auth_type: RequireAndVerifyClientCert", "client_auth_type: RequestClientCert"),
			want: []string{"tls.client_auth_type"},
		},
		{
			name: "unknown key",
			cfg:  replace("limits:\n", "limits:\n  bogus_limit_key: 3\n"),
			want: []string{"limits.bogus_limit_key"},
		},
		{
			name: "unknown top-level key",
			cfg:  string(good) + "listne: 127.0.0.1:1\n",
			want: []string{"listne"},
		},
		{
			name: "missing cert file",
			cfg:  replace("cert_file: ../pki/server.crt", "cert_file: ../pki/missing-server.crt"),
			want: []string{"tls.cert_file"},
		},
		{
			name: "two problems at once",
			cfg: strings.Replace(replace("client_auth_type: RequireAndVerifyClientCert", "client_auth_type: RequestClientCert"),
				"url: "+env.main.upstream, "url: ftp://127.0.0.1:1", 1),
			want: []string{"tls.client_auth_type", "upstream.url"},
		},
		{
			name: "missing CA and policies",
			cfg: strings.Replace(replace("client_ca_file: ../pki/ca.crt", "client_ca_file: ../pki/missing-ca.crt"),
				"policies: "+filepath.Join(env.root, "policies"), "policies: ./no-such-policies", 1),
			want: []string{"tls.client_ca_file", "authz.policies"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out := run(t, tc.cfg)
			t.Logf("promgate check: exit %d\n%s", code, out)
			if code != 1 {
				t.Errorf("check: exit %d, want 1; output:\n%s", code, out)
			}
			lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
			for _, w := range tc.want {
				found := false
				for _, l := range lines {
					if strings.Contains(l, w) {
						found = true
					}
				}
				if !found {
					t.Errorf("check output does not name %q on a line of its own; output:\n%s", w, out)
				}
			}
			// Every listed problem names one of the YAML paths at fault:
			// no header lines, no problem counted twice.
			for _, l := range lines {
				if !strings.HasPrefix(l, "  - ") {
					continue
				}
				if !slices.ContainsFunc(tc.want, func(w string) bool { return strings.Contains(l, w) }) {
					t.Errorf("problem line %q names none of the YAML paths %q", l, tc.want)
				}
			}
			if len(tc.want) > 1 {
				// Each problem on its own line.
				for i, a := range tc.want {
					for _, b := range tc.want[i+1:] {
						for _, l := range lines {
							if strings.Contains(l, a) && strings.Contains(l, b) {
								t.Errorf("problems %q and %q share a line: %q", a, b, l)
							}
						}
					}
				}
			}
			if strings.Contains(out, "OK") && !strings.Contains(out, "problem") {
				t.Errorf("bad config reported OK:\n%s", out)
			}
		})
	}
}

// TestUpstreamDown: an unreachable upstream gives 502 unavailable, without
// the upstream's address in the answer.
func TestUpstreamDown(t *testing.T) {
	upstream, _ := url.Parse(env.down.upstream)
	for _, name := range []string{"admin", "team-a"} {
		c := newClient(t, env.down, env.pki, name)
		for _, req := range []request{
			{path: "/api/v1/query", query: url.Values{"query": {"up"}}},
			{path: "/api/v1/series", query: url.Values{"match[]": {"up"}}},
		} {
			res := c.do(t, req)
			if res.status != http.StatusBadGateway {
				t.Errorf("%s: want 502", res)
				continue
			}
			res.wantEnvelope(t, "unavailable")
			for _, secret := range []string{upstream.Host, ":" + upstream.Port(), env.promAddr, "dial tcp", "connection refused"} {
				if strings.Contains(string(res.body), secret) {
					t.Errorf("%s: body reveals %q", res, secret)
				}
			}
		}
	}
}
