package detect

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

func TestSelect(t *testing.T) {
	c := mustLoad(t)
	tests := []struct {
		name    string
		sel     Selector
		wantIDs []string // checked when non-nil
		check   func(Detector) bool
		wantErr string
	}{
		{name: "all", sel: Selector{}, check: func(Detector) bool { return true }},
		{name: "critical", sel: Selector{Severities: []string{"critical"}}, wantIDs: []string{
			"falco_critical_events", "k8s_new_cluster_admin_binding", "prometheus_admin_api_use",
			"security_sensor_down", "gateway_audit_volume_exhaustion", "gateway_audit_write_failure",
		}},
		{name: "ns scope", sel: Selector{Scopes: []string{"ns"}}, check: func(d Detector) bool { return d.Scope == ScopeNamespace }},
		{name: "promgate source", sel: Selector{Sources: []string{"promgate"}}, wantIDs: []string{
			"gateway_cert_expiry_forecast", "gateway_query_rate_forecast", "gateway_client_authn_failures", "gateway_authn_failure_zscore", "gateway_identity_query_zscore",
			"gateway_identity_bytes_zscore", "gateway_cross_tenant_probe", "gateway_audit_write_failure",
			"gateway_bypass_direct_upstream", "gateway_silence_burst",
		}},
		{name: "two sources and a severity", sel: Selector{Sources: []string{"falco", "istio"}, Severities: []string{"warning"}},
			wantIDs: []string{"service_edge_new", "falco_rule_burst", "falco_event_drops"}},
		{name: "unknown severity", sel: Selector{Severities: []string{"high"}}, wantErr: `unknown severity "high"`},
		{name: "unknown source", sel: Selector{Sources: []string{"kube-state"}}, wantErr: `unknown source "kube-state"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := c.Select(tc.sel)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Select = %v, want error %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, d := range got {
				ids = append(ids, d.ID)
			}
			if tc.wantIDs != nil {
				if diff := gocmp.Diff(tc.wantIDs, ids); diff != "" {
					t.Errorf("Select ids (-want +got):\n%s", diff)
				}
				return
			}
			n := 0
			for _, d := range c.List() {
				if tc.check(d) {
					n++
				}
			}
			if n != len(got) || n == 0 {
				t.Errorf("Select returned %d detectors, want %d", len(got), n)
			}
		})
	}
}

// TestRuleFileIsValid loads the export with Prometheus' own rule file parser,
// which is what promtool check rules and the rule manager use: for a 3.x
// Prometheus without feature flags (the smoothing detector left out) and with
// promql-experimental-functions. The 2.x form (holt_winters) is checked by
// the e2e test with Debian's promtool 2.42, since this parser no longer knows
// the old name.
func TestRuleFileIsValid(t *testing.T) {
	c := mustLoad(t)
	for _, tc := range []struct {
		f       Flavour
		p       parser.Parser
		skipped []string
	}{
		{DefaultFlavour, stockParser, []string{"gateway_query_rate_forecast"}},
		{Flavour{Major: 3, Experimental: true}, dialectParser, nil},
	} {
		t.Run(tc.f.String(), func(t *testing.T) {
			ds, skipped, err := tc.f.Adapt(c.List())
			if err != nil {
				t.Fatal(err)
			}
			if diff := gocmp.Diff(tc.skipped, skipped); diff != "" {
				t.Errorf("skipped (-want +got):\n%s", diff)
			}
			b, err := RuleFile(ds)
			if err != nil {
				t.Fatal(err)
			}
			groups, errs := rulefmt.Parse(b, false, model.UTF8Validation, tc.p, slog.New(slog.DiscardHandler))
			if len(errs) > 0 {
				t.Fatalf("rulefmt.Parse: %v", errs)
			}
			var records []Record
			for _, d := range ds {
				records = append(records, d.Records...)
			}
			if len(groups.Groups) != 1 || len(groups.Groups[0].Rules) != len(records)+len(ds) {
				t.Fatalf("got %d groups, want one with %d rules", len(groups.Groups), len(records)+len(ds))
			}
			rules := groups.Groups[0].Rules
			for i, r := range records {
				if rules[i].Record != r.Name || rules[i].Expr != r.Expr || rules[i].Alert != "" {
					t.Errorf("rule %d = record %q %q, want %s", i, rules[i].Record, rules[i].Expr, r.Name)
				}
			}
			for i, r := range rules[len(records):] {
				d := ds[i]
				if r.Alert != d.ID || r.Expr != d.RuleExpr || time.Duration(r.For) != d.For {
					t.Errorf("rule %d = %s %q for %v, want %s", i, r.Alert, r.Expr, r.For, d.ID)
				}
				for _, k := range []string{LabelSeverity, LabelDetector, LabelTechnique} {
					if r.Labels[k] == "" {
						t.Errorf("rule %s has no %s label", r.Alert, k)
					}
				}
				for _, k := range []string{"summary", "description", "runbook"} {
					if r.Annotations[k] == "" {
						t.Errorf("rule %s has no %s annotation", r.Alert, k)
					}
				}
			}
		})
	}
}

func TestPrometheusRule(t *testing.T) {
	c := mustLoad(t)
	ds, _ := c.Select(Selector{Severities: []string{"critical"}})
	b, err := PrometheusRule(ds, "", "monitoring")
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   struct {
			Name, Namespace string
		} `yaml:"metadata"`
		Spec yaml.Node `yaml:"spec"`
	}
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m.APIVersion != "monitoring.coreos.com/v1" || m.Kind != "PrometheusRule" || m.Metadata.Name != GroupName || m.Metadata.Namespace != "monitoring" {
		t.Errorf("manifest header = %+v", m)
	}
	spec, err := yaml.Marshal(&m.Spec)
	if err != nil {
		t.Fatal(err)
	}
	groups, errs := rulefmt.Parse(spec, false, model.UTF8Validation, stockParser, slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		t.Fatalf("spec is not a valid rule file: %v", errs)
	}
	if got := len(groups.Groups[0].Rules); got != len(ds) {
		t.Errorf("spec has %d rules, want %d", got, len(ds))
	}
}

func TestTestFile(t *testing.T) {
	c := mustLoad(t)
	d, _ := c.Get("k8s_new_ingress")
	b, err := TestFile([]Detector{d}, "rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f unitTestFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	want := []alertTest{{
		EvalTime:  f.Tests[0].AlertRuleTest[0].EvalTime,
		Alertname: "k8s_new_ingress",
		ExpAlerts: []expAlert{{
			ExpLabels: map[string]string{"namespace": "shop", "ingress": "backdoor", "severity": "warning", "detector": "k8s_new_ingress", "technique": "T1133"},
			ExpAnnotations: map[string]string{
				"summary":     "New Ingress shop/backdoor",
				"description": d.Description,
				"runbook":     d.Runbook,
			},
		}},
	}}
	if diff := gocmp.Diff(want, f.Tests[0].AlertRuleTest); diff != "" {
		t.Errorf("fire test (-want +got):\n%s", diff)
	}
	if len(f.Tests) != 2 || f.Tests[1].AlertRuleTest[0].ExpAlerts == nil || len(f.Tests[1].AlertRuleTest[0].ExpAlerts) != 0 {
		t.Errorf("benign test = %+v, want exp_alerts: []", f.Tests[1:])
	}
	if !strings.Contains(string(b), "exp_alerts: []") {
		t.Error("benign test does not spell exp_alerts: []")
	}
	if _, err := TestFile([]Detector{d}, ""); err == nil {
		t.Error("TestFile without a rule file succeeded")
	}
}

func TestOpenMetrics(t *testing.T) {
	s := Scenario{Eval: 2 * time.Minute, Series: []Series{
		{Series: `x_total{job="a",namespace="shop"}`, Values: `0+1x2`},
		{Series: `y{job="a"}`, Values: `_x1 5`},
	}}
	end := time.Unix(1700000000, 0)
	b, err := s.OpenMetrics(end, map[string]string{"namespace": "team-a"})
	if err != nil {
		t.Fatal(err)
	}
	want := `# TYPE x_total unknown
x_total{job="a",namespace="team-a"} 0 1699999880.000
x_total{job="a",namespace="team-a"} 1 1699999940.000
x_total{job="a",namespace="team-a"} 2 1700000000.000
# TYPE y unknown
y{job="a",namespace="team-a"} 5 1699999940.000
# EOF
`
	if diff := gocmp.Diff(want, string(b)); diff != "" {
		t.Errorf("OpenMetrics (-want +got):\n%s", diff)
	}
}
