package proxy

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/promgate/promgate/detect"
)

func consoleFixture(t *testing.T) *fixture {
	t.Helper()
	f := newFixture(t)
	cat, err := detect.Load()
	if err != nil {
		t.Fatal(err)
	}
	f.h.detectors = cat
	f.h.detectorState = func() map[string]detect.State {
		return map[string]detect.State{
			"pod_cpu_over_one_core":      {State: "firing", Firing: 1, Active: 1},
			"k8s_apiserver_unauthorized": {State: "pending", Active: 1},
		}
	}
	return f
}

func TestConsolePages(t *testing.T) {
	f := consoleFixture(t)
	tests := []struct {
		name, user, target string
		status             int
		want, not          []string
	}{
		{name: "alice overview", user: "alice", target: "/ui/", status: 200,
			want: []string{"alice", `namespace=&#34;a&#34;`, "hidden:", "pod_cpu_over_one_core", "evaluated just now"},
			not:  []string{"k8s_apiserver_unauthorized", "background evaluator"}},
		{name: "root overview", user: "root", target: "/ui/", status: 200,
			want: []string{"root", "unrestricted", `<span class="state firing">firing</span>`, `<span class="state pending">pending</span>`, "k8s_apiserver_unauthorized"}},
		{name: "mallory", user: "mallory", target: "/ui/", status: 403, want: []string{"Access denied", "mallory"}, not: []string{"pod_cpu_over_one_core"}},
		{name: "detector page", user: "alice", target: "/ui/detectors/pod_cpu_over_one_core?window=1h", status: 200,
			want: []string{"As enforced for you", `namespace=&#34;a&#34;`, "Runbook", "promgate-detectors", "T1496", "Resource Hijacking"}},
		{name: "cluster detector refused for alice", user: "alice", target: "/ui/detectors/k8s_apiserver_unauthorized", status: 200,
			want: []string{"runs only for unrestricted callers"}},
		{name: "no such detector", user: "alice", target: "/ui/detectors/nope", status: 404, want: []string{"no detector"}},
		{name: "query page empty", user: "alice", target: "/ui/query", status: 200, want: []string{`<textarea id="query"`, "count by (namespace) (up)"}},
		{name: "query page", user: "alice", target: "/ui/query?query=" + url.QueryEscape("up"), status: 200,
			want: []string{`up{namespace=&#34;a&#34;}`}},
		{name: "query refused", user: "alice", target: "/ui/query?query=" + url.QueryEscape(`up{namespace="b"}`), status: 403,
			want: []string{"Refused", "namespace"}},
		{name: "query bad", user: "alice", target: "/ui/query?query=" + url.QueryEscape(`up{`), status: 400, want: []string{"bad_data"}},
		{name: "topology", user: "alice", target: "/ui/topology?compare=1w", status: 200, want: []string{"Service topology", "1w ago"}},
		{name: "unknown page", user: "root", target: "/ui/other", status: 404, want: []string{"no page"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := f.do(t, request{user: tc.user, target: tc.target})
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d\n%s", w.Code, tc.status, w.Body.String())
			}
			body := w.Body.String()
			for _, s := range tc.want {
				if !strings.Contains(body, s) {
					t.Errorf("page lacks %q", s)
				}
			}
			for _, s := range tc.not {
				if strings.Contains(body, s) {
					t.Errorf("page shows %q", s)
				}
			}
			if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe") {
				t.Errorf("CSP %q", csp)
			}
			if strings.Contains(body, "<script") || strings.Contains(body, " style=") {
				t.Error("the page carries a script or a style attribute")
			}
		})
	}
	// Every query alice's pages sent upstream carried her enforcement.
	for _, r := range f.up.reqs {
		_ = r.ParseForm()
		if q := r.PostForm.Get("query"); q != "" && r.Header.Get("X-Scope-OrgID") == "tenant-a" && !strings.Contains(q, `namespace="a"`) {
			t.Errorf("alice's page sent %q", q)
		}
	}
}

func TestConsoleNavigation(t *testing.T) {
	f := consoleFixture(t)
	nav := map[string]string{"Sec-Fetch-Mode": "navigate"}
	for _, p := range []string{"/", "/ui"} {
		w := f.do(t, request{user: "alice", target: p, header: nav})
		if w.Code != http.StatusFound || w.Header().Get("Location") != "/ui/" {
			t.Errorf("%s: status %d to %q, want 302 to /ui/", p, w.Code, w.Header().Get("Location"))
		}
	}
	if w := f.do(t, request{user: "alice", target: "/"}); w.Code != http.StatusNotFound || !strings.Contains(w.Header().Get("Content-Type"), "json") {
		t.Errorf("/ for an API client: status %d %q, want a JSON 404", w.Code, w.Header().Get("Content-Type"))
	}
	w := f.do(t, request{target: "/ui/", header: nav})
	if w.Code != http.StatusUnauthorized || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") || !strings.Contains(w.Body.String(), "client certificate") {
		t.Errorf("anonymous browser without a login: status %d %q\n%s", w.Code, w.Header().Get("Content-Type"), w.Body.String())
	}
	if w := f.do(t, request{target: "/ui/"}); w.Code != http.StatusUnauthorized || !strings.Contains(w.Header().Get("Content-Type"), "json") {
		t.Errorf("anonymous API client: status %d, want a JSON 401", w.Code)
	}
}

func TestConsoleEscapes(t *testing.T) {
	f := consoleFixture(t)
	c := f.certs["root"]
	c.Subject.CommonName = `<script>alert(1)</script>`
	w := f.do(t, request{user: "root", target: "/ui/query?query=" + url.QueryEscape(`up{job="<script>alert(1)</script>"}`)})
	if strings.Contains(w.Body.String(), "<script>") {
		t.Fatal("input was rendered unescaped")
	}
}

func TestConsoleAdmin(t *testing.T) {
	f := consoleFixture(t)
	f.h.gather = f.reg
	// A refusal and an authentication failure, counted by the metrics.
	f.do(t, request{user: "alice", target: "/api/v1/query?query=" + url.QueryEscape(`up{namespace="b"}`)})
	f.do(t, request{target: "/api/v1/query?query=up"})
	w := f.do(t, request{user: "root", target: "/ui/admin?subject=bob&groups=team-a,+other&method=oidc"})
	if w.Code != http.StatusOK {
		t.Fatalf("root: status %d\n%s", w.Code, w.Body.String())
	}
	body := w.Body.String()
	for _, s := range []string{"What would they see?", "query 403", "alice asked for namespace", "none: no_credentials",
		"revision deciding now", "rev1", "writing", `<option value="oidc" selected>`, `<code>namespace=&#34;a&#34;</code>`, "tenant-a"} {
		if !strings.Contains(body, s) {
			t.Errorf("admin page lacks %q", s)
		}
	}
	if w := f.do(t, request{user: "alice", target: "/ui/admin"}); w.Code != http.StatusForbidden || strings.Contains(w.Body.String(), "What would") {
		t.Errorf("alice: status %d, want 403 without the page", w.Code)
	}
	if w := f.do(t, request{user: "alice", target: "/ui/"}); strings.Contains(w.Body.String(), `href="/ui/admin"`) {
		t.Error("alice's navigation links the admin page")
	}
}
