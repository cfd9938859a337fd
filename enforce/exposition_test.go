package enforce

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
	"golang.org/x/tools/txtar"
)

// expositionCase is one golden case of testdata/exposition.
type expositionCase struct {
	name   string
	path   string
	ar     *txtar.Archive
	format Format
	policy Policy
	input  string
	want   string
}

func loadExpositionGolden(tb testing.TB) []expositionCase {
	tb.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "exposition", "*.txtar"))
	if err != nil {
		tb.Fatal(err)
	}
	if len(paths) < 10 {
		tb.Fatalf("found %d exposition cases, want at least 10", len(paths))
	}
	var out []expositionCase
	for _, p := range paths {
		ar, err := txtar.ParseFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		c := expositionCase{name: strings.TrimSuffix(filepath.Base(p), ".txtar"), path: p, ar: ar}
		for _, f := range ar.Files {
			switch f.Name {
			case "format":
				switch strings.TrimSpace(string(f.Data)) {
				case "text":
					c.format = FormatText
				case "openmetrics":
					c.format = FormatOpenMetrics
				default:
					tb.Fatalf("%s: unknown format %q", p, f.Data)
				}
			case "policy":
				var pol struct {
					Enforce      Enforcement         `json:"enforce"`
					EnforceRegex map[string][]string `json:"enforce_regex"`
					Matchers     []string            `json:"matchers"`
				}
				if err := json.Unmarshal(f.Data, &pol); err != nil {
					tb.Fatalf("%s: policy: %v", p, err)
				}
				c.policy = Policy{Enforce: pol.Enforce, EnforceRegex: pol.EnforceRegex, Matchers: pol.Matchers}
			case "input":
				c.input = string(f.Data)
			case "want":
				c.want = string(f.Data)
			}
		}
		out = append(out, c)
	}
	return out
}

// TestExpositionGolden filters the cases of testdata/exposition/*.txtar:
// format (text or openmetrics), policy (a Policy as JSON), input (the
// exporter's body) and want (the filtered body, or "error: ..."). With
// -update the want sections are rewritten. Every successful output must
// parse again and hold only allowed samples (checkExposition).
func TestExpositionGolden(t *testing.T) {
	for _, c := range loadExpositionGolden(t) {
		t.Run(c.name, func(t *testing.T) {
			en, err := NewPolicyEnforcer(c.policy)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			_, err = en.FilterExposition(&out, strings.NewReader(c.input), c.format)
			got := out.String()
			if err != nil {
				if !errors.Is(err, ErrUpstream) {
					t.Errorf("error %v does not wrap ErrUpstream", err)
				}
				if out.Len() != 0 {
					t.Errorf("FilterExposition wrote %q before failing", out.String())
				}
				got = "error: " + err.Error() + "\n"
			} else if err := checkExposition(out.Bytes(), c.format, c.policy); err != nil {
				t.Errorf("output does not check: %v\n%s", err, got)
			}
			if *update {
				for i := range c.ar.Files {
					if c.ar.Files[i].Name == "want" {
						c.ar.Files[i].Data = []byte(got)
					}
				}
				if err := os.WriteFile(c.path, txtar.Format(c.ar), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("FilterExposition mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// parsedSample is one sample as a client reads it.
type parsedSample struct {
	Labels    string
	Value     float64
	TS        int64
	Exemplars []string
}

// parseExposition reads b as Prometheus does and returns its samples, and
// the metadata names in order.
func parseExposition(b []byte, f Format) ([]parsedSample, []string, error) {
	var p textparse.Parser
	if f == FormatText {
		p = textparse.NewPromParser(b, labels.NewSymbolTable(), false)
	} else {
		p = textparse.NewOpenMetricsParser(b, labels.NewSymbolTable())
	}
	var (
		out  []parsedSample
		meta []string
		ls   labels.Labels
		ex   exemplar.Exemplar
	)
	for {
		e, err := p.Next()
		if errors.Is(err, io.EOF) {
			return out, meta, nil
		}
		if err != nil {
			return nil, nil, err
		}
		switch e {
		case textparse.EntryHelp:
			n, _ := p.Help()
			meta = append(meta, "help "+string(n))
		case textparse.EntryType:
			n, _ := p.Type()
			meta = append(meta, "type "+string(n))
		case textparse.EntryUnit:
			n, _ := p.Unit()
			meta = append(meta, "unit "+string(n))
		case textparse.EntrySeries:
			_, ts, v := p.Series()
			p.Labels(&ls)
			s := parsedSample{Labels: ls.String(), Value: v, TS: -1}
			if ts != nil {
				s.TS = *ts
			}
			for ex = (exemplar.Exemplar{}); p.Exemplar(&ex); ex = (exemplar.Exemplar{}) {
				s.Exemplars = append(s.Exemplars, fmt.Sprintf("%s %g %v %d", ex.Labels, ex.Value, ex.HasTs, ex.Ts))
			}
			out = append(out, s)
		}
	}
}

// checkExposition parses a filtered output again and checks, independently
// of the filter's own code, that every sample satisfies the policy: each
// enforced label has a listed value or one a fully anchored allowed regular
// expression matches, and each decision matcher holds.
func checkExposition(b []byte, f Format, pol Policy) error {
	samples, _, err := parseExposition(b, f)
	if err != nil {
		return fmt.Errorf("output does not parse: %w", err)
	}
	var extra []*labels.Matcher
	for _, s := range pol.Matchers {
		ms, err := ParseDecisionMatcher(s)
		if err != nil {
			return err
		}
		extra = append(extra, ms...)
	}
	for _, s := range samples {
		ls, err := parseLabelsString(s.Labels)
		if err != nil {
			return err
		}
		for name, values := range pol.Enforce {
			v := ls[name]
			ok := v != "" && slices.Contains(values, v)
			for _, r := range pol.EnforceRegex[name] {
				if regexp.MustCompile("^(?s:"+r+")$").MatchString(v) && v != "" {
					ok = true
				}
			}
			if !ok {
				return fmt.Errorf("sample %s: %s=%q is not allowed", s.Labels, name, v)
			}
		}
		for name, res := range pol.EnforceRegex {
			if _, ok := pol.Enforce[name]; ok {
				continue
			}
			v, ok := ls[name], false
			for _, r := range res {
				if v != "" && regexp.MustCompile("^(?s:"+r+")$").MatchString(v) {
					ok = true
				}
			}
			if !ok {
				return fmt.Errorf("sample %s: %s=%q is not allowed", s.Labels, name, v)
			}
		}
		for _, m := range extra {
			if !m.Matches(ls[m.Name]) {
				return fmt.Errorf("sample %s: decision matcher %s does not hold", s.Labels, m)
			}
		}
	}
	return nil
}

// parseLabelsString reads labels.Labels.String() output back into a map.
func parseLabelsString(s string) (map[string]string, error) {
	ms, err := promql.ParseMetricSelector(s)
	if err != nil {
		return nil, fmt.Errorf("labels %s: %w", s, err)
	}
	out := map[string]string{}
	for _, m := range ms {
		out[m.Name] = m.Value
	}
	return out, nil
}

// TestExpositionRoundTrip checks that filtering keeps exactly what the
// client would have read from the exporter: every kept sample has the same
// labels, value, timestamp and exemplars as in the input.
func TestExpositionRoundTrip(t *testing.T) {
	for _, c := range loadExpositionGolden(t) {
		if strings.HasPrefix(c.want, "error: ") {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			en, err := NewPolicyEnforcer(c.policy)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			st, err := en.FilterExposition(&out, strings.NewReader(c.input), c.format)
			if err != nil {
				t.Fatal(err)
			}
			in, _, err := parseExposition([]byte(c.input), c.format)
			if err != nil {
				t.Fatal(err)
			}
			got, _, err := parseExposition(out.Bytes(), c.format)
			if err != nil {
				t.Fatal(err)
			}
			var want []parsedSample
			for _, s := range in {
				ls, _ := parseLabelsString(s.Labels)
				lb := labels.FromMap(ls)
				if en.sampleAllowed(lb) {
					want = append(want, s)
				}
			}
			if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b float64) bool { return a == b || a != a && b != b })); diff != "" {
				t.Errorf("kept samples differ from the input's (-want +got):\n%s", diff)
			}
			if st.Samples != len(in) || st.Kept != len(got) {
				t.Errorf("stats %+v, want %d samples, %d kept", st, len(in), len(got))
			}
		})
	}
}

// TestExpositionNothingKept checks that an exposition whose samples are all
// refused gives an empty text body and a bare # EOF in OpenMetrics.
func TestExpositionNothingKept(t *testing.T) {
	en, err := NewEnforcer(Enforcement{"namespace": {"team-z"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		format Format
		in     string
		want   string
	}{
		{FormatText, "# HELP a x\n# TYPE a gauge\na{namespace=\"team-a\"} 1\n", ""},
		{FormatOpenMetrics, "# TYPE a gauge\na{namespace=\"team-a\"} 1\n# EOF\n", "# EOF\n"},
		{FormatText, "", ""},
	}
	for _, tc := range tests {
		var out bytes.Buffer
		if _, err := en.FilterExposition(&out, strings.NewReader(tc.in), tc.format); err != nil {
			t.Fatalf("FilterExposition(%q): %v", tc.in, err)
		}
		if out.String() != tc.want {
			t.Errorf("FilterExposition(%q) = %q, want %q", tc.in, out.String(), tc.want)
		}
	}
}

// TestExpositionTimestampsReadBack checks that OpenMetrics timestamps come
// back as the same milliseconds, for values where the exact decimal would
// truncate one millisecond low.
func TestExpositionTimestampsReadBack(t *testing.T) {
	en, err := NewEnforcer(nil)
	if err != nil {
		t.Fatal(err)
	}
	var in strings.Builder
	stamps := []string{"1520879607.789", "1520879607.001", "0.001", "1700000000.999", "-1.5", "1234567890.123"}
	for i, s := range stamps {
		fmt.Fprintf(&in, "m{i=\"%d\"} 1 %s # {t=\"x\"} 2 %s\n", i, s, s)
	}
	in.WriteString("# EOF\n")
	want, _, err := parseExposition([]byte(in.String()), FormatOpenMetrics)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := en.FilterExposition(&out, strings.NewReader(in.String()), FormatOpenMetrics); err != nil {
		t.Fatal(err)
	}
	got, _, err := parseExposition(out.Bytes(), FormatOpenMetrics)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("timestamps read back differently (-want +got):\n%s\noutput:\n%s", diff, out.String())
	}
}

// TestExpositionReadError checks that a failing reader (the caller's size
// cap) is returned as is, not as a malformed exposition, and that nothing
// is written.
func TestExpositionReadError(t *testing.T) {
	en, err := NewEnforcer(Enforcement{"namespace": {"team-a"}})
	if err != nil {
		t.Fatal(err)
	}
	capErr := errors.New("over the cap")
	r := io.MultiReader(strings.NewReader("a{namespace=\"team-a\"} 1\n"), errReader{capErr})
	var out bytes.Buffer
	_, err = en.FilterExposition(&out, r, FormatText)
	if !errors.Is(err, capErr) || errors.Is(err, ErrUpstream) {
		t.Errorf("FilterExposition error = %v, want the reader's error and not ErrUpstream", err)
	}
	if out.Len() != 0 {
		t.Errorf("wrote %q", out.String())
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestParseFormat(t *testing.T) {
	tests := []struct {
		ct      string
		want    Format
		wantErr bool
	}{
		{ct: "text/plain; version=0.0.4; charset=utf-8", want: FormatText},
		{ct: "text/plain; version=1.0.0; charset=utf-8; escaping=allow-utf-8", want: FormatText},
		{ct: "text/plain", want: FormatText},
		{ct: "application/openmetrics-text; version=1.0.0; charset=utf-8", want: FormatOpenMetrics},
		{ct: "application/openmetrics-text; version=0.0.1", want: FormatOpenMetrics},
		{ct: "application/openmetrics-text; version=2.0.0", wantErr: true},
		{ct: "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited", wantErr: true},
		{ct: "application/json", wantErr: true},
		{ct: "", wantErr: true},
		{ct: "text/plain; version=", wantErr: true},
	}
	for _, tc := range tests {
		got, err := ParseFormat(tc.ct)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParseFormat(%q) = %v, %v; want %v, error %v", tc.ct, got, err, tc.want, tc.wantErr)
		}
	}
}

// nodeExporterBody builds a node_exporter-sized exposition (about 1 MB):
// families of counters, gauges and histograms, each sample with a
// namespace of one of four teams.
func nodeExporterBody(tb testing.TB, target int) ([]byte, int) {
	tb.Helper()
	var b bytes.Buffer
	n := 0
	teams := []string{"team-a", "team-b", "team-c", "kube-system"}
	for fam := 0; b.Len() < target; fam++ {
		switch fam % 3 {
		case 0:
			fmt.Fprintf(&b, "# HELP node_cpu_seconds_%d_total Seconds the CPUs spent in each mode.\n# TYPE node_cpu_seconds_%d_total counter\n", fam, fam)
			for cpu := 0; cpu < 16; cpu++ {
				for _, mode := range []string{"idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"} {
					fmt.Fprintf(&b, "node_cpu_seconds_%d_total{cpu=\"%d\",mode=\"%s\",namespace=\"%s\"} %d.%02d\n", fam, cpu, mode, teams[(cpu+fam)%4], 123456+cpu, cpu)
					n++
				}
			}
		case 1:
			fmt.Fprintf(&b, "# HELP node_filesystem_avail_bytes_%d Filesystem space available.\n# TYPE node_filesystem_avail_bytes_%d gauge\n", fam, fam)
			for i := 0; i < 64; i++ {
				fmt.Fprintf(&b, "node_filesystem_avail_bytes_%d{device=\"/dev/sda%d\",fstype=\"ext4\",mountpoint=\"/var/lib/kubelet/pods/%d\",namespace=\"%s\"} %e\n", fam, i, i, teams[i%4], float64(i)*1.5e9)
				n++
			}
		case 2:
			fmt.Fprintf(&b, "# HELP http_request_duration_seconds_%d Request latency.\n# TYPE http_request_duration_seconds_%d histogram\n", fam, fam)
			for _, team := range teams {
				for _, le := range []string{"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"} {
					fmt.Fprintf(&b, "http_request_duration_seconds_%d_bucket{handler=\"/api\",namespace=\"%s\",le=\"%s\"} 42\n", fam, team, le)
					n++
				}
				fmt.Fprintf(&b, "http_request_duration_seconds_%d_sum{handler=\"/api\",namespace=\"%s\"} 12.5\nhttp_request_duration_seconds_%d_count{handler=\"/api\",namespace=\"%s\"} 42\n", fam, team, fam, team)
				n += 2
			}
		}
	}
	return b.Bytes(), n
}

// BenchmarkFilter filters a 1 MB node_exporter-sized text exposition to one
// team of four and reports samples per second (target: 1M per core).
func BenchmarkFilter(b *testing.B) {
	body, n := nodeExporterBody(b, 1<<20)
	for _, bc := range []struct {
		name   string
		policy Policy
	}{
		{"one-team", Policy{Enforce: Enforcement{"namespace": {"team-a"}}}},
		{"regex-and-matchers", Policy{EnforceRegex: map[string][]string{"namespace": {"team-[ab]"}}, Matchers: []string{`{mode!="steal"}`}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			en, err := NewPolicyEnforcer(bc.policy)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := en.FilterExposition(io.Discard, bytes.NewReader(body), FormatText); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
		})
	}
}

// FuzzExposition checks that no exposition panics the filter, that every
// error wraps ErrUpstream with nothing written, and that a filtered output
// parses again in its format, holds only samples the policy allows (by the
// independent checkExposition), and filters to itself.
func FuzzExposition(f *testing.F) {
	for _, c := range loadExpositionGolden(f) {
		f.Add(c.input, c.format == FormatOpenMetrics)
	}
	f.Fuzz(func(t *testing.T, in string, om bool) {
		if len(in) > maxFuzzInput {
			t.Skip()
		}
		format := FormatText
		if om {
			format = FormatOpenMetrics
		}
		for _, pol := range fuzzPolicies {
			en, err := NewPolicyEnforcer(pol)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if _, err := en.FilterExposition(&out, strings.NewReader(in), format); err != nil {
				if !errors.Is(err, ErrUpstream) {
					t.Fatalf("FilterExposition(%q) error %v does not wrap ErrUpstream", in, err)
				}
				if out.Len() != 0 {
					t.Fatalf("FilterExposition(%q) failed but wrote %q", in, out.String())
				}
				continue
			}
			if err := checkExposition(out.Bytes(), format, pol); err != nil {
				t.Fatalf("FilterExposition(%q) under %v = %q: %v", in, pol, out.String(), err)
			}
			var again bytes.Buffer
			if _, err := en.FilterExposition(&again, bytes.NewReader(out.Bytes()), format); err != nil {
				t.Fatalf("filtering the output %q again: %v", out.String(), err)
			}
			if again.String() != out.String() {
				t.Fatalf("filtering is not idempotent:\nonce:  %q\ntwice: %q", out.String(), again.String())
			}
		}
	})
}
