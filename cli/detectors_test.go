package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/promgate/promgate/detect"
)

func TestDetectorsCoverage(t *testing.T) {
	code, out, errb := run(t, "detectors", "coverage", "--have", "promgate,node-exporter")
	if code != 0 || !strings.Contains(out, "With data sources node-exporter,promgate:") ||
		!strings.Contains(out, "TA0040  Impact") || !strings.Contains(out, "promgate (have)") {
		t.Fatalf("coverage = %d\n%s\n%s", code, out, errb)
	}
	code, out, _ = run(t, "detectors", "coverage", "--output", "json")
	var c detect.Coverage
	if code != 0 || json.Unmarshal([]byte(out), &c) != nil || len(c.Tactics) != 14 {
		t.Fatalf("coverage --output json = %d\n%.300s", code, out)
	}
	if code, _, errb := run(t, "detectors", "coverage", "--have", "splunk"); code == 0 || !strings.Contains(errb, `unknown source "splunk"`) {
		t.Errorf("coverage --have splunk = %d, %s", code, errb)
	}
}

func TestDetectorsExportFlavour(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "rules.yml")
	for _, tc := range []struct {
		args     []string
		want     string // in the rule file
		wantNot  string
		wantNote string // on stderr
	}{
		{nil, "alert: gateway_cert_expiry_forecast", "gateway_query_rate_forecast", "left out for Prometheus 3.x: gateway_query_rate_forecast"},
		{[]string{"--prometheus-version", "2.42.0"}, "holt_winters(promgate:identity_queries:rate5m[1h] offset 20m", "double_exponential_smoothing", "for Prometheus 2.x"},
		{[]string{"--prometheus-version", "v3.5.0", "--enable-feature", "promql-experimental-functions"}, "double_exponential_smoothing(promgate:identity_queries:rate5m", "holt_winters", "with promql-experimental-functions"},
	} {
		code, _, errb := run(t, append([]string{"detectors", "export", "--out", out}, tc.args...)...)
		b, err := os.ReadFile(out)
		if code != 0 || err != nil || !strings.Contains(string(b), tc.want) || strings.Contains(string(b), tc.wantNot) || !strings.Contains(errb, tc.wantNote) {
			t.Errorf("export %v = %d, %v\n%s", tc.args, code, err, errb)
		}
		if !strings.Contains(string(b), "record: promgate:tls_cert_expiry:remaining_seconds") {
			t.Errorf("export %v has no recording rules", tc.args)
		}
	}
	for _, args := range [][]string{
		{"--prometheus-version", "1.8"},
		{"--enable-feature", "promql-experimental-functions"},
		{"--upstream", "http://127.0.0.1:1", "--prometheus-version", "2.42.0"},
		{"--upstream", "ftp://x"},
	} {
		if code, _, _ := run(t, append([]string{"detectors", "export"}, args...)...); code == 0 {
			t.Errorf("export %v succeeded", args)
		}
	}
}
