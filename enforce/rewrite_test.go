package enforce

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/tools/txtar"
)

var update = flag.Bool("update", false, "rewrite the want sections of testdata/rewrite/*.txtar")

// goldenCase is one testdata/rewrite/*.txtar file.
type goldenCase struct {
	path    string
	archive *txtar.Archive
	query   string
	policy  Policy
	want    string
}

func loadGolden(tb testing.TB) []goldenCase {
	tb.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "rewrite", "*.txtar"))
	if err != nil {
		tb.Fatal(err)
	}
	var cases []goldenCase
	for _, p := range paths {
		ar, err := txtar.ParseFile(p)
		if err != nil {
			tb.Fatalf("%s: %v", p, err)
		}
		c := goldenCase{path: p, archive: ar}
		seen := map[string]bool{}
		for _, f := range ar.Files {
			seen[f.Name] = true
			data := strings.TrimSuffix(string(f.Data), "\n")
			switch f.Name {
			case "query":
				c.query = data
			case "enforce":
				decodeSection(tb, p, f.Name, data, &c.policy.Enforce)
			case "enforce_regex":
				decodeSection(tb, p, f.Name, data, &c.policy.EnforceRegex)
			case "matchers":
				decodeSection(tb, p, f.Name, data, &c.policy.Matchers)
			case "want":
				c.want = data
			default:
				tb.Fatalf("%s: unknown section %q", p, f.Name)
			}
		}
		for _, s := range []string{"query", "enforce", "want"} {
			if !seen[s] {
				tb.Fatalf("%s: missing section %q", p, s)
			}
		}
		cases = append(cases, c)
	}
	return cases
}

func decodeSection(tb testing.TB, path, name, data string, dst any) {
	tb.Helper()
	dec := json.NewDecoder(strings.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		tb.Fatalf("%s: %s: %v", path, name, err)
	}
}

// rewriteText runs ParseQuery, NewPolicyEnforcer and Rewrite and renders the
// outcome as a want section: the enforced query or "error: <msg>".
func rewriteText(query string, p Policy) (string, error) {
	q, err := ParseQuery(query)
	if err == nil {
		var en *Enforcer
		if en, err = NewPolicyEnforcer(p); err == nil {
			var out string
			if out, err = en.Rewrite(q); err == nil {
				return out, nil
			}
		}
	}
	if _, aerr := asError(err); aerr != nil {
		return "", aerr
	}
	return "error: " + err.Error(), nil
}

func TestRewriteGolden(t *testing.T) {
	cases := loadGolden(t)
	if len(cases) < 100 {
		t.Fatalf("found %d golden cases, want at least 100", len(cases))
	}
	for _, c := range cases {
		name := strings.TrimSuffix(filepath.Base(c.path), ".txtar")
		t.Run(name, func(t *testing.T) {
			got, err := rewriteText(c.query, c.policy)
			if err != nil {
				t.Fatal(err)
			}
			if *update {
				for i := range c.archive.Files {
					if c.archive.Files[i].Name == "want" {
						c.archive.Files[i].Data = []byte(got + "\n")
					}
				}
				if err := os.WriteFile(c.path, txtar.Format(c.archive), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("Rewrite(%q, %+v) mismatch (-want +got):\n%s", c.query, c.policy, diff)
			}
			if strings.HasPrefix(got, "error: ") {
				return
			}
			if err := checkRewritten(got, c.policy); err != nil {
				t.Error(err)
			}
			again, err := rewriteText(got, c.policy)
			if err != nil {
				t.Fatal(err)
			}
			if again != got {
				t.Errorf("Rewrite is not idempotent: %q, then %q", got, again)
			}
		})
	}
}

// TestGoldenFilesAreTidy keeps the golden files free of stray whitespace, so
// that a diff after -update shows only real changes.
func TestGoldenFilesAreTidy(t *testing.T) {
	for _, c := range loadGolden(t) {
		if !bytes.Equal(txtar.Format(c.archive), mustRead(t, c.path)) {
			t.Errorf("%s is not in txtar canonical form", c.path)
		}
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// grafanaQuery is a typical Grafana panel query: two aggregated selectors, a
// range selector and a template variable expanded to a regex.
const grafanaQuery = `sum by (pod) (rate(container_cpu_usage_seconds_total{namespace=~"team-a|team-a-staging",container!="",image!=""}[5m])) / sum by (pod) (kube_pod_container_resource_requests{namespace=~"team-a|team-a-staging",resource="cpu"})`

func BenchmarkRewrite(b *testing.B) {
	e := Enforcement{"namespace": {"team-a", "team-a-staging", "team-b"}}
	b.Run("parse+rewrite", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			q, err := ParseQuery(grafanaQuery)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := Rewrite(q, e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("rewrite", func(b *testing.B) {
		q, err := ParseQuery(grafanaQuery)
		if err != nil {
			b.Fatal(err)
		}
		en, err := NewEnforcer(e)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := en.Rewrite(q); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("enforcer", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := NewEnforcer(e); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// query20 builds a query of 20 selectors, half with a caller matcher on the
// enforced label, as a large Grafana panel would send.
func query20() string {
	var b strings.Builder
	for i := range 20 {
		if i > 0 {
			b.WriteString(" + ")
		}
		if i%2 == 0 {
			b.WriteString(`sum by (pod) (rate(http_requests_total{namespace=~"team-a|team-b",code=~"5.."}[5m]))`)
		} else {
			b.WriteString(`sum by (pod) (kube_pod_info{node!=""})`)
		}
	}
	return b.String()
}

// BenchmarkRewrite20 measures confining a parsed 20-selector query with a
// prepared Enforcer (target: under 20 µs), for literal values only and for a
// policy with literals, a regex and an exclusion matcher.
func BenchmarkRewrite20(b *testing.B) {
	q, err := ParseQuery(query20())
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		p    Policy
	}{
		{"literal", Policy{Enforce: Enforcement{"namespace": {"team-a", "team-a-staging", "team-b"}}}},
		{"regex+matchers", Policy{
			Enforce:      Enforcement{"namespace": {"shared"}},
			EnforceRegex: map[string][]string{"namespace": {"team-.*"}},
			Matchers:     []string{`{secret!="true"}`},
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			en, err := NewPolicyEnforcer(tc.p)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := en.Rewrite(q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
