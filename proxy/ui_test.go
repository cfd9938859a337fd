package proxy

import (
	"net/http"
	"strings"
	"testing"

	"github.com/promgate/promgate/detect"
)

func TestUI(t *testing.T) {
	f := newFixture(t)
	cat, err := detect.Load()
	if err != nil {
		t.Fatal(err)
	}
	f.h.detectors = cat
	f.h.detectorState = func() map[string]detect.State {
		return map[string]detect.State{"pod_cpu_over_one_core": {State: "firing", Firing: 1}}
	}
	tests := []struct {
		user      string
		status    int
		want, not []string
	}{
		{user: "alice", status: 200, want: []string{"alice", "<code>namespace</code>", "<code>a</code>", "evaluate"}, not: []string{`<span class="firing">`, "evaluator off"}},
		{user: "root", status: 200, want: []string{"root", "not restricted by label", `<span class="firing">firing</span>`}},
		{user: "mallory", status: 403, want: []string{"Access denied", "mallory"}, not: []string{"evaluate</a>"}},
	}
	for _, tc := range tests {
		t.Run(tc.user, func(t *testing.T) {
			w := f.do(t, request{user: tc.user, target: "/ui/"})
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d", w.Code, tc.status)
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
			if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
				t.Errorf("CSP %q", csp)
			}
		})
	}
	if w := f.do(t, request{target: "/ui/", header: map[string]string{"Sec-Fetch-Mode": "navigate"}}); w.Code != http.StatusUnauthorized {
		t.Errorf("anonymous browser without a login configured: status %d, want 401", w.Code)
	}
	if w := f.do(t, request{user: "root", target: "/ui/other"}); w.Code != http.StatusNotFound {
		t.Errorf("/ui/other: status %d, want 404", w.Code)
	}
	if f.up.count() != 0 {
		t.Errorf("the page sent %d requests upstream", f.up.count())
	}
}

func TestUIEscapes(t *testing.T) {
	f := newFixture(t)
	c := f.certs["root"]
	c.Subject.CommonName = `<script>alert(1)</script>`
	w := f.do(t, request{user: "root", target: "/ui/"})
	if strings.Contains(w.Body.String(), "<script>") {
		t.Fatal("the subject was rendered unescaped")
	}
}
