package enforce

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
)

// checkTargets is the independent check of a filtered targets body under p:
// data holds only the known keys, no dropped target and no count, and every
// active target has only the known fields and labels that p allows for its
// up series. It shares no code with the filter.
func checkTargets(out []byte, p Policy) error {
	var env map[string]json.RawMessage
	if err := json.Unmarshal(out, &env); err != nil {
		return fmt.Errorf("output is not a JSON object: %w", err)
	}
	var status string
	if err := json.Unmarshal(env["status"], &status); err != nil {
		return fmt.Errorf("status: %w", err)
	}
	if status != "success" {
		if _, ok := env["data"]; ok {
			return errors.New("an error response kept its data")
		}
		return nil
	}
	var data map[string]json.RawMessage
	if err := json.Unmarshal(env["data"], &data); err != nil {
		return fmt.Errorf("data: %w", err)
	}
	for k, v := range data {
		switch k {
		case "activeTargets":
		case "droppedTargets":
			if string(v) != "[]" {
				return fmt.Errorf("droppedTargets = %s, want []", v)
			}
		case "droppedTargetCounts":
			if string(v) != "{}" {
				return fmt.Errorf("droppedTargetCounts = %s, want {}", v)
			}
		default:
			return fmt.Errorf("data key %q kept", k)
		}
	}
	var active []map[string]json.RawMessage
	if err := json.Unmarshal(data["activeTargets"], &active); err != nil {
		return fmt.Errorf("activeTargets = %s: %w", data["activeTargets"], err)
	}
	if active == nil {
		return fmt.Errorf("activeTargets = %s, want an array", data["activeTargets"])
	}
	known := []string{"labels", "scrapePool", "scrapeUrl", "globalUrl", "lastError", "lastScrape",
		"lastScrapeDuration", "health", "scrapeInterval", "scrapeTimeout"}
	for i, t := range active {
		for k := range t {
			if !slices.Contains(known, k) {
				return fmt.Errorf("target %d kept field %q", i, k)
			}
		}
		var ls map[string]string
		if err := json.Unmarshal(t["labels"], &ls); err != nil {
			return fmt.Errorf("target %d labels %s: %w", i, t["labels"], err)
		}
		if ls == nil {
			return fmt.Errorf("target %d labels %s, want an object", i, t["labels"])
		}
		if err := checkLabelSet(ls, "up", p); err != nil {
			return fmt.Errorf("target %d: %w", i, err)
		}
	}
	return nil
}

// checkLabelSet reports why the series metric{ls} is not one p lets a
// caller see: an enforced label missing or outside its values and regular
// expressions (compiled here, anchored, with the standard library), or a
// decision matcher that refuses it.
func checkLabelSet(ls map[string]string, metric string, p Policy) error {
	names := slices.Collect(maps.Keys(p.Enforce))
	for n := range p.EnforceRegex {
		names = append(names, n)
	}
	for _, name := range names {
		v, ok := ls[name]
		if !ok || v == "" {
			return fmt.Errorf("label %s missing", name)
		}
		allowed := slices.Contains(p.Enforce[name], v)
		for _, r := range p.EnforceRegex[name] {
			if regexp.MustCompile("^(?s:" + r + ")$").MatchString(v) {
				allowed = true
			}
		}
		if !allowed {
			return fmt.Errorf("label %s=%q is not allowed", name, v)
		}
	}
	for _, s := range p.Matchers {
		ms, err := parser.NewParser(parser.Options{}).ParseMetricSelector(s)
		if err != nil {
			return err
		}
		for _, m := range ms {
			v := ls[m.Name]
			if m.Name == "__name__" {
				v = metric
			}
			if !m.Matches(v) {
				return fmt.Errorf("matcher %s refuses %q", m, v)
			}
		}
	}
	return nil
}

// TestFilterTargetsDropsEveryDiscoveredLabel: whatever the upstream sends,
// a restricted caller never gets a discovered label, and the target of a
// namespace it may not read is gone with its address.
func TestFilterTargetsDropsEveryDiscoveredLabel(t *testing.T) {
	p := Policy{Enforce: Enforcement{"namespace": {"team-a"}}}
	en, err := NewPolicyEnforcer(p)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"status":"success","data":{"activeTargets":[` +
		`{"discoveredLabels":{"__meta_kubernetes_pod_annotation_token":"tok"},"labels":{"namespace":"team-a","instance":"10.0.0.1:80"},"scrapeUrl":"http://10.0.0.1:80/metrics"},` +
		`{"discoveredLabels":{"__address__":"10.0.0.2:80"},"labels":{"namespace":"team-b","instance":"10.0.0.2:80"},"scrapeUrl":"http://10.0.0.2:80/metrics"}],` +
		`"droppedTargets":[{"discoveredLabels":{"__address__":"10.0.0.3:80","namespace":"team-a"}}]}}`)
	out, err := en.FilterTargets(body)
	if err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{"discoveredLabels", "__meta", "tok", "10.0.0.2", "10.0.0.3", "team-b"} {
		if bytes.Contains(out, []byte(leak)) {
			t.Errorf("filtered body contains %q: %s", leak, out)
		}
	}
	if !bytes.Contains(out, []byte("10.0.0.1:80")) {
		t.Errorf("filtered body lost the caller's own target: %s", out)
	}
	if err := checkTargets(out, p); err != nil {
		t.Error(err)
	}
}

// TestFilterTargetsSameAsAlerts: a target is visible exactly when an alert
// with the same labels is, __name__ aside (up for targets, ALERTS for
// alerts).
func TestFilterTargetsSameAsAlerts(t *testing.T) {
	en, err := NewPolicyEnforcer(Policy{
		Enforce:      Enforcement{"namespace": {"a", "b"}},
		EnforceRegex: map[string][]string{"env": {"prod-.+"}},
		Matchers:     []string{`{secret!="true"}`},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, ls := range []map[string]string{
		{"namespace": "a", "env": "prod-1"},
		{"namespace": "a", "env": "prod-1", "secret": "true"},
		{"namespace": "c", "env": "prod-1"},
		{"namespace": "b", "env": "prod-"},
		{"env": "prod-1"},
		{},
	} {
		if got, want := en.seriesAllowed(ls, "up"), en.alertAllowed(ls); got != want {
			t.Errorf("labels %v: target visible %v, alert visible %v", ls, got, want)
		}
	}
}

// FuzzFilterTargets checks that no upstream body panics the targets filter,
// that every error wraps ErrUpstream, that an unrestricted caller gets the
// body unchanged, and that every restricted output passes the independent
// checkTargets and is a fixed point of the filter.
func FuzzFilterTargets(f *testing.F) {
	f.Add([]byte(`{"status":"success","data":{"activeTargets":[{"labels":{"namespace":"a"},"discoveredLabels":{"__address__":"x"}}],"droppedTargets":[]}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > maxFuzzInput {
			t.Skip()
		}
		open, err := NewEnforcer(nil)
		if err != nil {
			t.Fatal(err)
		}
		if out, err := open.FilterTargets(body); err != nil || !bytes.Equal(out, body) {
			t.Fatalf("unrestricted FilterTargets changed the body: %q, %v", out, err)
		}
		for _, p := range fuzzPolicies {
			en, err := NewPolicyEnforcer(p)
			if err != nil {
				t.Fatal(err)
			}
			out, err := en.FilterTargets(body)
			if err != nil {
				if !errors.Is(err, ErrUpstream) {
					t.Fatalf("error %v does not wrap ErrUpstream", err)
				}
				continue
			}
			if err := checkTargets(out, p); err != nil {
				t.Fatalf("FilterTargets(%q) under %v = %s: %v", body, p, out, err)
			}
			again, err := en.FilterTargets(out)
			if err != nil || !bytes.Equal(again, out) {
				t.Fatalf("FilterTargets is not idempotent: %s, then %s, %v", out, again, err)
			}
		}
	})
}
