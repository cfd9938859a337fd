package detect

import (
	"slices"
	"strings"
	"testing"
)

// TestTechniquesKnown makes every ATT&CK id of the catalog either a tactic
// or a technique with a name and tactics, so that coverage never drops one.
func TestTechniquesKnown(t *testing.T) {
	tactics := map[string]bool{}
	for _, ta := range Tactics {
		tactics[ta.ID] = true
	}
	for _, d := range mustLoad(t).List() {
		for _, a := range d.Attack {
			if strings.HasPrefix(a, "TA") {
				if !tactics[a] {
					t.Errorf("%s: unknown tactic %s", d.ID, a)
				}
				continue
			}
			te, ok := techniques[a]
			if !ok || te.Name == "" || len(te.Tactics) == 0 {
				t.Errorf("%s: technique %s has no name or tactics in coverage.go", d.ID, a)
			}
			for _, ta := range te.Tactics {
				if !tactics[ta] {
					t.Errorf("technique %s: unknown tactic %s", a, ta)
				}
			}
		}
	}
}

func TestCoverage(t *testing.T) {
	c := mustLoad(t)
	all, err := CoverageOf(c.List(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if all.Usable != len(c.List()) || len(all.Tactics) != 14 {
		t.Errorf("all sources: %d usable, %d tactics", all.Usable, len(all.Tactics))
	}
	tactic := func(cov Coverage, id string) TacticCoverage {
		for _, ta := range cov.Tactics {
			if ta.ID == id {
				return ta
			}
		}
		t.Fatalf("no tactic %s", id)
		return TacticCoverage{}
	}
	source := func(cov Coverage, s string) SourceCoverage {
		for _, sc := range cov.Sources {
			if sc.Source == s {
				return sc
			}
		}
		t.Fatalf("no source %s", s)
		return SourceCoverage{}
	}
	// A tactic named directly and one reached through a technique.
	if ta := tactic(all, "TA0010"); !slices.Contains(ta.Detectors, "pod_egress_volume_high") {
		t.Errorf("TA0010 detectors = %v", ta.Detectors)
	}
	if ta := tactic(all, "TA0006"); !slices.Contains(ta.Detectors, "failed_login_spike") || !slices.Contains(ta.Techniques, "T1110") {
		t.Errorf("TA0006 = %+v", ta)
	}
	// With every source, a source "adds" what is lost without it: istio is
	// the only way to T1210.
	if s := source(all, "istio"); !slices.Equal(s.AddsDetectors, []string{"service_edge_new"}) || !slices.Contains(s.AddsTechniques, "T1210") {
		t.Errorf("istio = %+v", s)
	}

	// A team with node-exporter and promgate only.
	some, err := CoverageOf(c.List(), []string{"promgate", "node-exporter"})
	if err != nil {
		t.Fatal(err)
	}
	for _, te := range some.Techniques {
		for _, id := range te.Detectors {
			d, _ := c.Get(id)
			for _, s := range d.Sources {
				if s != "promgate" && s != "node-exporter" {
					t.Errorf("%s needs %s but counts as usable", id, s)
				}
			}
		}
	}
	// gateway_bypass_direct_upstream needs prometheus as well: enabling
	// prometheus adds it.
	if s := source(some, "prometheus"); s.Available || !slices.Contains(s.AddsDetectors, "gateway_bypass_direct_upstream") {
		t.Errorf("prometheus = %+v", s)
	}
	if s := source(some, "promgate"); !s.Available || len(s.AddsDetectors) != 0 {
		t.Errorf("promgate = %+v", s)
	}
	if _, err := CoverageOf(c.List(), []string{"splunk"}); err == nil || !strings.Contains(err.Error(), `unknown source "splunk"`) {
		t.Errorf("unknown source: %v", err)
	}
}
