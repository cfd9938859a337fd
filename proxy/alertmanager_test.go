package proxy

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/promgate/promgate/authn"
	"github.com/promgate/promgate/authz"
	"github.com/promgate/promgate/config"
	"github.com/promgate/promgate/tlsutil"
)

// fakeAM is an Alertmanager that records every request and knows two
// silences: "sa" for namespace a and "sb" for namespace b.
type fakeAM struct {
	mu   sync.Mutex
	reqs []string // method path?query
	body []string
	hdr  []http.Header
}

func (f *fakeAM) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reqs)
}

const (
	amAlertsBody = `[{"labels":{"alertname":"A","namespace":"a"},"fingerprint":"1","receivers":[{"name":"team-a"}]},` +
		`{"labels":{"alertname":"B","namespace":"b"},"fingerprint":"2","receivers":[{"name":"team-b"}]}]`
	silenceA     = `{"id":"sa","status":{"state":"active"},"matchers":[{"name":"namespace","value":"a","isRegex":false,"isEqual":true}],"startsAt":"2026-01-01T00:00:00Z","endsAt":"2026-01-01T01:00:00Z","createdBy":"x","comment":"c"}`
	silenceB     = `{"id":"sb","status":{"state":"active"},"matchers":[{"name":"namespace","value":"b","isRegex":false,"isEqual":true}],"startsAt":"2026-01-01T00:00:00Z","endsAt":"2026-01-01T01:00:00Z","createdBy":"x","comment":"c"}`
	silenceD     = `{"id":"sd","status":{"state":"active"},"matchers":[{"name":"namespace","value":"a","isRegex":false,"isEqual":true},{"name":"detector","value":"x","isRegex":false,"isEqual":true}],"startsAt":"2026-01-01T00:00:00Z","endsAt":"2026-01-01T01:00:00Z","createdBy":"x","comment":"c"}`
	amStatusBody = `{"cluster":{"name":"n","status":"ready","peers":[{"address":"10.1.2.3:9094","name":"n"}]},"config":{"original":"receivers: [{name: x, webhook_configs: [{url: 'https://hook.example/secret'}]}]"},"uptime":"2026-01-01T00:00:00Z","versionInfo":{"version":"0.25.0"}}`
)

func (f *fakeAM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.reqs = append(f.reqs, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
	f.body = append(f.body, string(b))
	f.hdr = append(f.hdr, r.Header.Clone())
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch r.Method + " " + r.URL.Path {
	case "GET /api/v2/alerts":
		_, _ = io.WriteString(w, amAlertsBody)
	case "GET /api/v2/alerts/groups":
		_, _ = io.WriteString(w, `[{"labels":{"alertname":"A"},"receiver":{"name":"team-a"},"alerts":[`+strings.Split(amAlertsBody[1:], `,{"labels":{"alertname":"B"`)[0]+`]},`+
			`{"labels":{"alertname":"B"},"receiver":{"name":"team-b"},"alerts":[{"labels":{"alertname":"B","namespace":"b"},"fingerprint":"2"}]}]`)
	case "GET /api/v2/silences":
		_, _ = io.WriteString(w, "["+silenceA+","+silenceB+","+silenceD+"]")
	case "GET /api/v2/silence/sa":
		_, _ = io.WriteString(w, silenceA)
	case "GET /api/v2/silence/sb":
		_, _ = io.WriteString(w, silenceB)
	case "GET /api/v2/silence/sd":
		_, _ = io.WriteString(w, silenceD)
	case "POST /api/v2/silences":
		_, _ = io.WriteString(w, `{"silenceID":"new-1"}`)
	case "DELETE /api/v2/silence/sa", "DELETE /api/v2/silence/sb", "DELETE /api/v2/silence/sd", "POST /api/v2/alerts":
		w.WriteHeader(http.StatusOK)
	case "GET /api/v2/status":
		_, _ = io.WriteString(w, amStatusBody)
	case "GET /api/v2/receivers":
		_, _ = io.WriteString(w, `[{"name":"team-a"},{"name":"team-b"}]`)
	default:
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `"silence not found"`)
	}
}

// amDecider: admins unrestricted, security unrestricted and alone allowed
// to touch silences with a detector matcher, team-a confined to namespace a
// with receiver team-a.
type amDecider struct {
	mu     sync.Mutex
	inputs []authz.Input
}

func (d *amDecider) Decide(_ context.Context, in authz.Input) (authz.Decision, error) {
	d.mu.Lock()
	d.inputs = append(d.inputs, in)
	d.mu.Unlock()
	dec := authz.Decision{Allow: false, Reason: "no access"}
	groups := in.Identity.Groups
	touchesDetector := false
	if am := in.Alertmanager; am != nil {
		for _, s := range []*authz.Silence{am.Silence, am.Existing} {
			if s == nil {
				continue
			}
			for _, m := range s.Matchers {
				touchesDetector = touchesDetector || m.Name == "detector"
			}
		}
	}
	switch {
	case touchesDetector && !slices.Contains(groups, "security"):
		dec.Reason = "only security may silence detector alerts"
	case slices.Contains(groups, "admins"), slices.Contains(groups, "security"):
		dec = authz.Decision{Allow: true, Tenant: "all"}
	case slices.Contains(groups, "team-b"):
		dec = authz.Decision{Allow: true, Enforce: map[string][]string{"namespace": {"b"}}}
	case slices.Contains(groups, "team-a"):
		dec = authz.Decision{Allow: true, Enforce: map[string][]string{"namespace": {"a"}}, Tenant: "tenant-a", Receivers: []string{"team-a"}}
	}
	return authz.Compile(dec)
}

type amFixture struct {
	*fixture
	am  *fakeAM
	dec *amDecider
}

func newAMFixture(t *testing.T) *amFixture {
	t.Helper()
	return newAMFixtureToken(t, "")
}

// newAMFixtureToken is newAMFixture with alertmanager.bearer_token_file
// set to tokenFile when it is not "".
func newAMFixtureToken(t *testing.T, tokenFile string) *amFixture {
	t.Helper()
	f := &amFixture{fixture: &fixture{aud: &fakeAuditor{}, certs: map[string]*x509.Certificate{}, reg: prometheus.NewRegistry()}, am: &fakeAM{}, dec: &amDecider{}}
	prom := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		t.Error("the Prometheus upstream was asked")
		w.WriteHeader(http.StatusTeapot)
	}))
	t.Cleanup(prom.Close)
	am := httptest.NewServer(f.am)
	t.Cleanup(am.Close)
	cfg := config.Default()
	cfg.Upstream.URL = prom.URL
	cfg.Limits.RequestsPerSecond = 0
	cfg.Alertmanager = &config.Alertmanager{URL: am.URL, TenantHeader: "X-Scope-OrgID", BearerTokenFile: tokenFile}
	mtls, err := authn.NewMTLS(cfg.Authn.MTLS)
	if err != nil {
		t.Fatal(err)
	}
	f.h, err = New(Options{
		Config: cfg, Authn: authn.Chain{mtls}, Authz: f.dec, Audit: f.aud,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: f.reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := tlsutil.NewDevCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ cn, ou string }{{"alice", "team-a"}, {"bob", "team-b"}, {"root", "admins"}, {"sec", "security"}, {"mallory", "nobody"}} {
		certPEM, _, err := ca.Issue(tlsutil.CertSpec{CommonName: c.cn, OUs: []string{c.ou}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		if err != nil {
			t.Fatal(err)
		}
		blk, _ := pem.Decode(certPEM)
		if f.certs[c.cn], err = x509.ParseCertificate(blk.Bytes); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func silenceJSON(id string, matchers ...string) string {
	var ms []string
	for _, m := range matchers {
		name, value, _ := strings.Cut(m, "=")
		ms = append(ms, `{"name":"`+name+`","value":"`+value+`","isRegex":false}`)
	}
	idField := ""
	if id != "" {
		idField = `"id":"` + id + `",`
	}
	return `{` + idField + `"matchers":[` + strings.Join(ms, ",") + `],"startsAt":"2026-01-01T00:00:00Z","endsAt":"2026-01-01T02:00:00Z","createdBy":"spoofed","comment":"maintenance"}`
}

func TestAlertmanagerRoutes(t *testing.T) {
	for _, tc := range []struct {
		name      string
		req       request
		status    int
		msg       string   // substring of the error message
		forwarded []string // the requests that reached the Alertmanager
		body      string   // substring of the answer
		notBody   string   // must not be in the answer
	}{
		{name: "v1 not found", req: request{user: "root", target: "/api/v1/silences"}, status: 404},
		{name: "unknown v2 path not found", req: request{user: "root", target: "/api/v2/alerts/x"}, status: 404},
		{name: "odd silence id not found", req: request{user: "root", target: "/api/v2/silence/a.b"}, status: 404},
		{name: "encoded path not found", req: request{user: "root", target: "/api/v2/silence/a%2Fb"}, status: 404},
		{name: "method not allowed", req: request{user: "root", method: "PUT", target: "/api/v2/silences"}, status: 405},
		{name: "anonymous", req: request{target: "/api/v2/alerts"}, status: 401},
		{name: "no access", req: request{user: "mallory", target: "/api/v2/alerts"}, status: 403},
		{
			name: "team-a alerts: filter injected, answer filtered", req: request{user: "alice", target: "/api/v2/alerts?active=true&filter=" + url.QueryEscape(`alertname=~"A|B"`)},
			status: 200, forwarded: []string{`GET /api/v2/alerts?active=true&filter=alertname%3D~%22A%7CB%22&filter=namespace%3D%22a%22`},
			body: `"namespace":"a"`, notBody: `"namespace":"b"`,
		},
		{name: "admin alerts unfiltered", req: request{user: "root", target: "/api/v2/alerts"}, status: 200, forwarded: []string{`GET /api/v2/alerts?`}, body: `"namespace":"b"`},
		{name: "team-a groups", req: request{user: "alice", target: "/api/v2/alerts/groups"}, status: 200, forwarded: []string{`GET /api/v2/alerts/groups?filter=namespace%3D%22a%22`}, body: `"alertname":"A"`, notBody: `"B"`},
		{name: "bad filter is 400, not forwarded", req: request{user: "alice", target: "/api/v2/alerts?filter=" + url.QueryEscape(`a="x"y"`)}, status: 400},
		{name: "bad flag is 400", req: request{user: "alice", target: "/api/v2/alerts?active=yes"}, status: 400},
		{name: "team-a silences confined", req: request{user: "alice", target: "/api/v2/silences"}, status: 200, forwarded: []string{"GET /api/v2/silences?"}, body: `"id":"sa"`, notBody: `"id":"sb"`},
		{name: "team-a reads own silence", req: request{user: "alice", target: "/api/v2/silence/sa"}, status: 200, forwarded: []string{"GET /api/v2/silence/sa?"}, body: `"id":"sa"`},
		{name: "team-a reads team-b silence", req: request{user: "alice", target: "/api/v2/silence/sb"}, status: 403, forwarded: []string{"GET /api/v2/silence/sb?"}, notBody: `namespace`},
		{
			name: "team-a creates: namespace injected", req: request{user: "alice", method: "POST", target: "/api/v2/silences", body: silenceJSON("", "alertname=X")},
			status: 200, forwarded: []string{"POST /api/v2/silences?"}, body: "new-1",
		},
		{name: "team-a creates for team-b: refused", req: request{user: "alice", method: "POST", target: "/api/v2/silences", body: silenceJSON("", "namespace=b")}, status: 403, msg: "namespace"},
		{name: "team-a updates team-b's silence: refused", req: request{user: "alice", method: "POST", target: "/api/v2/silences", body: silenceJSON("sb", "namespace=a")}, status: 403, forwarded: []string{"GET /api/v2/silence/sb?"}},
		{name: "team-a updates own silence", req: request{user: "alice", method: "POST", target: "/api/v2/silences", body: silenceJSON("sa", "alertname=Y")}, status: 200, forwarded: []string{"GET /api/v2/silence/sa?", "POST /api/v2/silences?"}},
		{name: "team-a updates unknown silence", req: request{user: "alice", method: "POST", target: "/api/v2/silences", body: silenceJSON("nope", "alertname=Y")}, status: 404, forwarded: []string{"GET /api/v2/silence/nope?"}},
		{name: "team-a expires team-b's silence: refused", req: request{user: "alice", method: "DELETE", target: "/api/v2/silence/sb"}, status: 403, forwarded: []string{"GET /api/v2/silence/sb?"}},
		{name: "team-a expires own silence", req: request{user: "alice", method: "DELETE", target: "/api/v2/silence/sa"}, status: 200, forwarded: []string{"GET /api/v2/silence/sa?", "DELETE /api/v2/silence/sa?"}},
		{name: "team-a expires a detector silence: policy refuses", req: request{user: "alice", method: "DELETE", target: "/api/v2/silence/sd"}, status: 403, msg: "security", forwarded: []string{"GET /api/v2/silence/sd?"}},
		{name: "security expires a detector silence", req: request{user: "sec", method: "DELETE", target: "/api/v2/silence/sd"}, status: 200, forwarded: []string{"GET /api/v2/silence/sd?", "DELETE /api/v2/silence/sd?"}},
		{name: "team-a silences a detector: refused", req: request{user: "alice", method: "POST", target: "/api/v2/silences", body: silenceJSON("", "detector=x")}, status: 403, msg: "security"},
		{name: "admin silences a detector: refused", req: request{user: "root", method: "POST", target: "/api/v2/silences", body: silenceJSON("", "detector=x")}, status: 403},
		{name: "security silences a detector", req: request{user: "sec", method: "POST", target: "/api/v2/silences", body: silenceJSON("", "detector=x")}, status: 200, forwarded: []string{"POST /api/v2/silences?"}},
		{name: "malformed silence is 400", req: request{user: "alice", method: "POST", target: "/api/v2/silences", body: `{"matchers":[]}`}, status: 400},
		{name: "form body is 415", req: request{user: "alice", method: "POST", target: "/api/v2/silences", body: silenceJSON("", "a=b"), contentType: "application/x-www-form-urlencoded"}, status: 415},
		{name: "silence with unknown field is 400", req: request{user: "alice", method: "POST", target: "/api/v2/silences", body: strings.Replace(silenceJSON("", "a=b"), "{", `{"status":{},`, 1)}, status: 400},
		{name: "team-a status without config", req: request{user: "alice", target: "/api/v2/status"}, status: 200, forwarded: []string{"GET /api/v2/status?"}, body: `"0.25.0"`, notBody: "hook.example"},
		{name: "admin status whole", req: request{user: "root", target: "/api/v2/status"}, status: 200, forwarded: []string{"GET /api/v2/status?"}, body: "hook.example"},
		{name: "team-a receivers from the decision", req: request{user: "alice", target: "/api/v2/receivers"}, status: 200, forwarded: []string{"GET /api/v2/receivers?"}, body: "team-a", notBody: "team-b"},
		{name: "team-a pushes: namespace injected", req: request{user: "alice", method: "POST", target: "/api/v2/alerts", body: `[{"labels":{"alertname":"X"}}]`}, status: 200, forwarded: []string{"POST /api/v2/alerts?"}},
		{name: "team-a pushes for team-b: refused", req: request{user: "alice", method: "POST", target: "/api/v2/alerts", body: `[{"labels":{"alertname":"X","namespace":"b"}}]`}, status: 403},
		{name: "no tenant while tenant_header is set", req: request{user: "bob", target: "/api/v2/alerts"}, status: 403, msg: "names no tenant"},
		{name: "query string on a silence is dropped", req: request{user: "alice", target: "/api/v2/silence/sa?x=1"}, status: 200, forwarded: []string{"GET /api/v2/silence/sa?"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newAMFixture(t)
			w := f.do(t, tc.req)
			if w.Code != tc.status {
				t.Fatalf("status = %d, want %d; body %s", w.Code, tc.status, w.Body)
			}
			if tc.status >= 400 && w.Code != 405 || tc.msg != "" {
				_, msg := errorBody(t, w)
				if !strings.Contains(msg, tc.msg) {
					t.Errorf("error %q does not contain %q", msg, tc.msg)
				}
			}
			if got := f.am.requests(); !slices.Equal(got, tc.forwarded) {
				t.Errorf("forwarded %q, want %q", got, tc.forwarded)
			}
			if tc.body != "" && !strings.Contains(w.Body.String(), tc.body) {
				t.Errorf("body %s does not contain %s", w.Body, tc.body)
			}
			if tc.notBody != "" && strings.Contains(w.Body.String(), tc.notBody) {
				t.Errorf("body %s contains %s", w.Body, tc.notBody)
			}
		})
	}
}

// TestAlertmanagerSilenceForwarded checks what a created silence looks like
// upstream (namespace injected, createdBy the subject), the tenant header,
// and the audit record of the change.
func TestAlertmanagerSilenceForwarded(t *testing.T) {
	f := newAMFixture(t)
	w := f.do(t, request{user: "alice", method: "POST", target: "/api/v2/silences", body: silenceJSON("", "alertname=X"),
		header: map[string]string{"X-Scope-OrgID": "tenant-b", "Authorization": "Bearer stolen"}})
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var s struct {
		Matchers []struct {
			Name, Value string
			IsRegex     bool
		}
		CreatedBy string
	}
	if err := json.Unmarshal([]byte(f.am.body[0]), &s); err != nil {
		t.Fatal(err)
	}
	if s.CreatedBy != "alice" {
		t.Errorf("createdBy = %q, want alice", s.CreatedBy)
	}
	if len(s.Matchers) != 2 || s.Matchers[1].Name != "namespace" || s.Matchers[1].Value != "a" {
		t.Errorf("matchers = %+v, want alertname and namespace=a", s.Matchers)
	}
	if got := f.am.hdr[0].Get("X-Scope-OrgID"); got != "tenant-a" {
		t.Errorf("tenant = %q, want tenant-a", got)
	}
	if got := f.am.hdr[0].Get("Authorization"); got != "" {
		t.Errorf("the caller's Authorization reached the Alertmanager: %q", got)
	}
	in := f.dec.inputs[0].Alertmanager
	if in == nil || in.Operation != "create" || in.Silence.CreatedBy != "alice" || len(in.Silence.Matchers) != 1 {
		t.Errorf("policy input = %+v", in)
	}
	rec := f.aud.records[0]
	if rec.Route != RouteAMSilence || rec.SilenceOperation != "create" || rec.SilenceID != "new-1" ||
		!slices.Equal(rec.SilenceMatchers, []string{`alertname="X"`, `namespace="a"`}) ||
		rec.SilenceStartsAt != "2026-01-01T00:00:00Z" || rec.SilenceEndsAt != "2026-01-01T02:00:00Z" {
		t.Errorf("audit record = %+v", rec)
	}

	// A refused create is audited with the silence as sent.
	f = newAMFixture(t)
	if w := f.do(t, request{user: "alice", method: "POST", target: "/api/v2/silences", body: silenceJSON("", "namespace=b")}); w.Code != 403 {
		t.Fatalf("create for b: status %d", w.Code)
	}
	if rec := f.aud.records[0]; rec.SilenceOperation != "create" || !slices.Equal(rec.SilenceMatchers, []string{`namespace="b"`}) || rec.SilenceEndsAt == "" {
		t.Errorf("audit record of a refused create = %+v", rec)
	}

	// An expire is asked twice: before the read ({id} only) and with the
	// silence read.
	f = newAMFixture(t)
	if w := f.do(t, request{user: "alice", method: "DELETE", target: "/api/v2/silence/sa"}); w.Code != 200 {
		t.Fatalf("expire: status %d: %s", w.Code, w.Body)
	}
	if len(f.dec.inputs) != 2 || f.dec.inputs[0].Alertmanager.Existing != nil || f.dec.inputs[1].Alertmanager.Existing == nil ||
		f.dec.inputs[1].Alertmanager.Existing.Matchers[0].Value != "a" {
		t.Errorf("policy inputs of an expire = %+v", f.dec.inputs)
	}
	rec = f.aud.records[0]
	if rec.SilenceOperation != "expire" || rec.SilenceID != "sa" || !slices.Equal(rec.SilenceMatchers, []string{`namespace="a"`}) {
		t.Errorf("audit record of an expire = %+v", rec)
	}
}

// TestAlertmanagerOff checks that without the alertmanager block its paths
// are not found.
func TestAlertmanagerOff(t *testing.T) {
	f := newFixture(t)
	for _, p := range []string{"/api/v2/alerts", "/api/v2/silences", "/api/v2/status"} {
		if w := f.do(t, request{user: "root", target: p}); w.Code != 404 {
			t.Errorf("%s: status %d, want 404", p, w.Code)
		}
	}
	if f.up.count() != 0 {
		t.Errorf("%d requests forwarded", f.up.count())
	}
}

// do sends a POST as application/json unless the request says otherwise.
func (f *amFixture) do(t testing.TB, rq request) *httptest.ResponseRecorder {
	t.Helper()
	if rq.method == http.MethodPost && rq.contentType == "" {
		rq.contentType = "application/json"
	}
	return f.fixture.do(t, rq)
}

// TestAlertmanagerToken checks that the Alertmanager gets its own token,
// reloaded when the file changes, and never the caller's.
func TestAlertmanagerToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "am-token")
	if err := os.WriteFile(path, []byte("am-secret-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := newAMFixtureToken(t, path)
	if w := f.do(t, request{user: "root", target: "/api/v2/status", header: map[string]string{"Authorization": "Bearer caller"}}); w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if got := f.am.hdr[0].Get("Authorization"); got != "Bearer am-secret-1" {
		t.Errorf("Authorization upstream = %q, want the Alertmanager token", got)
	}
	if err := os.WriteFile(path, []byte("am-secret-2"), 0o600); err != nil {
		t.Fatal(err)
	}
	part := f.h.AlertmanagerToken()
	if err := part.Reload(); err != nil {
		t.Fatal(err)
	}
	if w := f.do(t, request{user: "root", target: "/api/v2/status"}); w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if got := f.am.hdr[1].Get("Authorization"); got != "Bearer am-secret-2" {
		t.Errorf("Authorization upstream after reload = %q", got)
	}
}

// TestAlertmanagerTokenMissing checks that a missing token file fails the
// gateway's construction, naming the setting.
func TestAlertmanagerTokenMissing(t *testing.T) {
	cfg := config.Default()
	cfg.Upstream.URL = "http://127.0.0.1:9"
	cfg.Alertmanager = &config.Alertmanager{URL: "http://127.0.0.1:9", BearerTokenFile: filepath.Join(t.TempDir(), "missing")}
	mtls, err := authn.NewMTLS(cfg.Authn.MTLS)
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(Options{Config: cfg, Authn: authn.Chain{mtls}, Authz: &amDecider{}, Audit: &fakeAuditor{},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: prometheus.NewRegistry()})
	if err == nil || !strings.HasPrefix(err.Error(), "alertmanager.bearer_token_file: ") {
		t.Errorf("New = %v, want an error naming alertmanager.bearer_token_file", err)
	}
}
