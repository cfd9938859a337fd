package enforce

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func eq(v bool) *bool { return &v }

func mustEnforcer(t testing.TB, p Policy) *Enforcer {
	t.Helper()
	en, err := NewPolicyEnforcer(p)
	if err != nil {
		t.Fatal(err)
	}
	return en
}

var teamA = Policy{Enforce: Enforcement{"namespace": {"team-a"}}}

func TestParseAMMatcher(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want AMMatcher
		err  bool
	}{
		{in: `namespace="team-a"`, want: AMMatcher{Name: "namespace", Value: "team-a", IsEqual: eq(true)}},
		{in: `namespace=team-a`, want: AMMatcher{Name: "namespace", Value: "team-a", IsEqual: eq(true)}},
		{in: ` severity != "critical" `, want: AMMatcher{Name: "severity", Value: "critical", IsEqual: eq(false)}},
		{in: `namespace=~"team-a|team-b"`, want: AMMatcher{Name: "namespace", Value: "team-a|team-b", IsRegex: true, IsEqual: eq(true)}},
		{in: `job!~"a.*"`, want: AMMatcher{Name: "job", Value: "a.*", IsRegex: true, IsEqual: eq(false)}},
		{in: `a="x\"y\\z\n"`, want: AMMatcher{Name: "a", Value: "x\"y\\z\n", IsEqual: eq(true)}},
		{in: `a="x\qy"`, want: AMMatcher{Name: "a", Value: `x\qy`, IsEqual: eq(true)}},
		{in: `a=""`, want: AMMatcher{Name: "a", Value: "", IsEqual: eq(true)}},
		{in: `a="x"y"`, err: true},
		{in: `a="x`, err: true},
		{in: `1a="x"`, err: true},
		{in: `a=~"("`, err: true},
		{in: `{a="x"}`, err: true},
		{in: ``, err: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseAMMatcher(tc.in)
			if tc.err {
				if err == nil {
					t.Fatalf("ParseAMMatcher(%q) = %+v, want an error", tc.in, got)
				}
				var e *Error
				if !errors.As(err, &e) || e.Kind != BadData {
					t.Fatalf("ParseAMMatcher(%q) error = %v, want BadData", tc.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseAMMatcher(%q): %v", tc.in, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseAMMatcher(%q) (-want +got):\n%s", tc.in, diff)
			}
			again, err := ParseAMMatcher(got.String())
			if err != nil || !cmp.Equal(got, again) {
				t.Errorf("ParseAMMatcher(%q.String() = %q) = %+v, %v; want %+v", tc.in, got.String(), again, err, got)
			}
		})
	}
}

func TestSilenceConfined(t *testing.T) {
	two := Policy{Enforce: Enforcement{"namespace": {"team-a", "team-b"}}}
	withMatcher := Policy{Enforce: Enforcement{"namespace": {"team-a"}}, Matchers: []string{`{detector="",severity!="critical",alertname!=""}`}}
	m := func(name, typ, value string) AMMatcher {
		return AMMatcher{Name: name, Value: value, IsRegex: strings.HasSuffix(typ, "~"), IsEqual: eq(!strings.HasPrefix(typ, "!"))}
	}
	for _, tc := range []struct {
		name string
		pol  Policy
		ms   []AMMatcher
		want bool
	}{
		{"equal allowed", teamA, []AMMatcher{m("namespace", "=", "team-a")}, true},
		{"regex of the allowed value", teamA, []AMMatcher{m("namespace", "=~", "team-a")}, true},
		{"regex reaching team-b", teamA, []AMMatcher{m("namespace", "=~", "team-a|team-b")}, false},
		{"regex reaching team-b, allowed both", two, []AMMatcher{m("namespace", "=~", "team-a|team-b")}, true},
		{"infinite regex", teamA, []AMMatcher{m("namespace", "=~", "team-.*")}, false},
		{"negation", teamA, []AMMatcher{m("namespace", "!=", "team-b")}, false},
		{"no matcher on the label", teamA, []AMMatcher{m("alertname", "=", "X")}, false},
		{"other value", teamA, []AMMatcher{m("namespace", "=", "team-b")}, false},
		{"one confining among others", teamA, []AMMatcher{m("namespace", "!=", "x"), m("namespace", "=", "team-a")}, true},
		{"isEqual absent means equal", teamA, []AMMatcher{{Name: "namespace", Value: "team-a"}}, true},
		{"bad regex", teamA, []AMMatcher{m("namespace", "=~", "(")}, false},
		{"unrestricted", Policy{}, []AMMatcher{m("namespace", "=~", ".*")}, true},
		{"decision matchers implied", withMatcher, []AMMatcher{m("namespace", "=", "team-a"), m("detector", "=", ""), m("severity", "=", "warning"), m("alertname", "=", "X")}, true},
		{"decision matcher missing", withMatcher, []AMMatcher{m("namespace", "=", "team-a"), m("alertname", "=", "X")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := mustEnforcer(t, tc.pol).SilenceConfined(tc.ms); got != tc.want {
				t.Errorf("SilenceConfined(%v) = %v, want %v", tc.ms, got, tc.want)
			}
		})
	}
}

const silenceBody = `{"matchers":[%s],"startsAt":"2026-01-01T00:00:00Z","endsAt":"2026-01-01T01:00:00Z","createdBy":"someone-else","comment":"maintenance"}`

func silenceOf(matchers string) string { return strings.Replace(silenceBody, "%s", matchers, 1) }

func TestConfineSilence(t *testing.T) {
	two := Policy{Enforce: Enforcement{"namespace": {"team-a", "team-b"}}}
	withMatcher := Policy{Enforce: Enforcement{"namespace": {"team-a"}}, Matchers: []string{`{detector="",alertname!=""}`}}
	for _, tc := range []struct {
		name     string
		pol      Policy
		matchers string
		want     []string // the matchers afterwards, in filter syntax
		err      Kind
	}{
		{"injected", teamA, `{"name":"alertname","value":"X","isRegex":false}`, []string{`alertname="X"`, `namespace="team-a"`}, 0},
		{"injected regex of two", two, `{"name":"alertname","value":"X","isRegex":false}`, []string{`alertname="X"`, `namespace=~"team-a|team-b"`}, 0},
		{"own value kept", teamA, `{"name":"namespace","value":"team-a","isRegex":false,"isEqual":true}`, []string{`namespace="team-a"`}, 0},
		{"other team refused", teamA, `{"name":"namespace","value":"team-b","isRegex":false}`, nil, Forbidden},
		{"regex reaching out refused", teamA, `{"name":"namespace","value":"team-a|team-b","isRegex":true}`, nil, Forbidden},
		{"negation refused", teamA, `{"name":"namespace","value":"team-b","isRegex":false,"isEqual":false}`, nil, Forbidden},
		{"decision matchers added", withMatcher, `{"name":"alertname","value":"X","isRegex":false}`, []string{`alertname="X"`, `namespace="team-a"`, `detector=""`}, 0},
		{"unrestricted unchanged", Policy{}, `{"name":"alertname","value":"X","isRegex":false}`, []string{`alertname="X"`}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseSilence([]byte(silenceOf(tc.matchers)))
			if err != nil {
				t.Fatal(err)
			}
			en := mustEnforcer(t, tc.pol)
			err = en.ConfineSilence(s)
			if tc.err != 0 {
				var e *Error
				if !errors.As(err, &e) || e.Kind != tc.err {
					t.Fatalf("ConfineSilence = %v, want kind %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range s.Matchers {
				got = append(got, m.String())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("matchers (-want +got):\n%s", diff)
			}
			if !en.SilenceConfined(s.Matchers) {
				t.Errorf("confined silence %v is not SilenceConfined", got)
			}
		})
	}
}

func TestParseSilence(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		ok         bool
	}{
		{"ok", silenceOf(`{"name":"a","value":"b","isRegex":false}`), true},
		{"with id", strings.Replace(silenceOf(`{"name":"a","value":"b","isRegex":false}`), `{`, `{"id":"4b1f-aa",`, 1), true},
		{"bad id", strings.Replace(silenceOf(`{"name":"a","value":"b","isRegex":false}`), `{`, `{"id":"../x",`, 1), false},
		{"unknown field", strings.Replace(silenceOf(`{"name":"a","value":"b","isRegex":false}`), `{`, `{"status":{},`, 1), false},
		{"no matchers", silenceOf(``), false},
		{"all empty", silenceOf(`{"name":"a","value":"","isRegex":false}`), false},
		{"bad regex", silenceOf(`{"name":"a","value":"(","isRegex":true}`), false},
		{"bad name", silenceOf(`{"name":"a.b","value":"x","isRegex":false}`), false},
		{"ends before start", strings.Replace(silenceOf(`{"name":"a","value":"b","isRegex":false}`), "01:00:00Z", "00:00:00Z", 1), false},
		{"no comment", strings.Replace(silenceOf(`{"name":"a","value":"b","isRegex":false}`), "maintenance", " ", 1), false},
		{"two values", silenceOf(`{"name":"a","value":"b","isRegex":false}`) + "{}", false},
		{"not json", "x", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSilence([]byte(tc.body))
			if (err == nil) != tc.ok {
				t.Errorf("ParseSilence(%s) error = %v, want ok %v", tc.body, err, tc.ok)
			}
		})
	}
}

func TestAlertFilters(t *testing.T) {
	pol := Policy{Enforce: Enforcement{"namespace": {"team-a", "team-b"}}, Matchers: []string{`{secret!="true",__name__!~"x.*"}`}}
	got, err := mustEnforcer(t, pol).AlertFilters()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`namespace=~"team-a|team-b"`, `secret!="true"`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("AlertFilters (-want +got):\n%s", diff)
	}
	for _, s := range got {
		if _, err := ParseAMMatcher(s); err != nil {
			t.Errorf("filter %q does not parse back: %v", s, err)
		}
	}
}

func TestFilterAMAlertsAndGroups(t *testing.T) {
	en := mustEnforcer(t, teamA)
	alerts := `[{"labels":{"alertname":"A","namespace":"team-a"},"fingerprint":"1"},{"labels":{"alertname":"B","namespace":"team-b"},"fingerprint":"2"},{"labels":{"alertname":"C"},"fingerprint":"3"}]`
	got, err := en.FilterAMAlerts([]byte(alerts))
	if err != nil {
		t.Fatal(err)
	}
	if want := `[{"labels":{"alertname":"A","namespace":"team-a"},"fingerprint":"1"}]`; string(got) != want {
		t.Errorf("FilterAMAlerts = %s, want %s", got, want)
	}
	groups := `[{"labels":{"alertname":"A"},"receiver":{"name":"r"},"alerts":` + alerts + `},{"labels":{"alertname":"B"},"receiver":{"name":"r"},"alerts":[{"labels":{"namespace":"team-b"}}]}]`
	got, err = en.FilterAMAlertGroups([]byte(groups))
	if err != nil {
		t.Fatal(err)
	}
	var gs []struct {
		Alerts []json.RawMessage `json:"alerts"`
	}
	if err := json.Unmarshal(got, &gs); err != nil {
		t.Fatal(err)
	}
	if len(gs) != 1 || len(gs[0].Alerts) != 1 {
		t.Errorf("FilterAMAlertGroups = %s, want one group with one alert", got)
	}
	for _, bad := range []string{`{}`, `[1]`, `[{"fingerprint":"x"}]`} {
		if _, err := en.FilterAMAlerts([]byte(bad)); !errors.Is(err, ErrUpstream) {
			t.Errorf("FilterAMAlerts(%s) error = %v, want ErrUpstream", bad, err)
		}
	}
}

func TestFilterSilences(t *testing.T) {
	en := mustEnforcer(t, teamA)
	body := `[{"id":"a","matchers":[{"name":"namespace","value":"team-a","isRegex":false,"isEqual":true}]},` +
		`{"id":"b","matchers":[{"name":"namespace","value":"team-b","isRegex":false,"isEqual":true}]},` +
		`{"id":"ab","matchers":[{"name":"namespace","value":"team-a|team-b","isRegex":true,"isEqual":true}]},` +
		`{"id":"none","matchers":[{"name":"alertname","value":"X","isRegex":false,"isEqual":true}]}]`
	got, err := en.FilterSilences([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	var ss []amObject
	if err := json.Unmarshal(got, &ss); err != nil {
		t.Fatal(err)
	}
	if len(ss) != 1 || ss[0].ID != "a" {
		t.Errorf("FilterSilences kept %s, want only silence a", got)
	}
}

func TestConfineAlerts(t *testing.T) {
	two := Policy{Enforce: Enforcement{"namespace": {"team-a", "team-b"}}}
	for _, tc := range []struct {
		name string
		pol  Policy
		body string
		want string // the namespace afterwards, or "" for a refusal
	}{
		{"allowed", teamA, `[{"labels":{"alertname":"X","namespace":"team-a"}}]`, "team-a"},
		{"injected", teamA, `[{"labels":{"alertname":"X"}}]`, "team-a"},
		{"other team", teamA, `[{"labels":{"alertname":"X","namespace":"team-b"}}]`, ""},
		{"missing with two allowed", two, `[{"labels":{"alertname":"X"}}]`, ""},
		{"second refused", teamA, `[{"labels":{"alertname":"X"}},{"labels":{"alertname":"Y","namespace":"team-b"}}]`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			alerts, err := ParseAlerts([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			err = mustEnforcer(t, tc.pol).ConfineAlerts(alerts)
			if tc.want == "" {
				var e *Error
				if !errors.As(err, &e) || e.Kind != Forbidden {
					t.Fatalf("ConfineAlerts = %v, want Forbidden", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := alerts[0].Labels["namespace"]; got != tc.want {
				t.Errorf("namespace = %q, want %q", got, tc.want)
			}
		})
	}
	for _, bad := range []string{`{}`, `[{"labels":{}}]`, `[{"labels":{"a":"b"},"status":"x"}]`} {
		if _, err := ParseAlerts([]byte(bad)); err == nil {
			t.Errorf("ParseAlerts(%s) = nil error, want one", bad)
		}
	}
}

func TestFilterAMStatusAndReceivers(t *testing.T) {
	status := `{"cluster":{"name":"n","status":"ready","peers":[{"address":"10.0.0.1:9094","name":"p"}]},"config":{"original":"receivers:\n- name: x\n  webhook_configs: [{url: 'https://secret'}]"},"uptime":"2026-01-01T00:00:00Z","versionInfo":{"version":"0.25.0"}}`
	got, err := mustEnforcer(t, teamA).FilterAMStatus([]byte(status))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(got), "secret") || strings.Contains(string(got), "10.0.0.1") || !strings.Contains(string(got), `"0.25.0"`) {
		t.Errorf("FilterAMStatus = %s", got)
	}
	if got, _ := mustEnforcer(t, Policy{}).FilterAMStatus([]byte(status)); string(got) != status {
		t.Errorf("unrestricted FilterAMStatus changed the body: %s", got)
	}
	rs, err := FilterReceivers([]byte(`[{"name":"team-a"},{"name":"team-b"}]`), []string{"team-a"})
	if err != nil || string(rs) != `[{"name":"team-a"}]` {
		t.Errorf("FilterReceivers = %s, %v", rs, err)
	}
	rs, err = FilterReceivers([]byte(`[{"name":"team-a"}]`), nil)
	if err != nil || string(rs) != `[]` {
		t.Errorf("FilterReceivers(none) = %s, %v", rs, err)
	}
}

// FuzzAMMatcher checks that a filter matcher that parses prints back to
// text that parses to the same matcher, and that a parsed silence confined
// by ConfineSilence is SilenceConfined.
func FuzzAMMatcher(f *testing.F) {
	for _, s := range []string{
		`namespace="team-a"`, `namespace=~"team-a|team-b"`, `a!="x\"y"`, `a!~"\\d+"`, `a=b`, `a="x\n"`,
		`a="\q"`, `a=~"("`, `{a="b"}`, ``, `a="x"y"`, `a = "b" `,
	} {
		f.Add(s)
	}
	pols := []Policy{teamA, {Enforce: Enforcement{"namespace": {"team-a", "team-b"}}, Matchers: []string{`{detector="",alertname!=""}`}}}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > maxFuzzInput {
			t.Skip()
		}
		m, err := ParseAMMatcher(s)
		if err != nil {
			return
		}
		again, err := ParseAMMatcher(m.String())
		if err != nil {
			t.Fatalf("ParseAMMatcher(%q).String() = %q does not parse: %v", s, m.String(), err)
		}
		if !cmp.Equal(m, again) {
			t.Fatalf("ParseAMMatcher(%q) = %+v, but its String %q parses to %+v", s, m, m.String(), again)
		}
		body, err := json.Marshal(Silence{Matchers: []AMMatcher{m}, Comment: "c"})
		if err != nil {
			t.Fatal(err)
		}
		body = []byte(strings.Replace(string(body), `"startsAt":"0001-01-01T00:00:00Z","endsAt":"0001-01-01T00:00:00Z"`,
			`"startsAt":"2026-01-01T00:00:00Z","endsAt":"2026-01-01T01:00:00Z"`, 1))
		sil, err := ParseSilence(body)
		if err != nil {
			return
		}
		for _, p := range pols {
			en := mustEnforcer(t, p)
			c := *sil
			c.Matchers = append([]AMMatcher(nil), sil.Matchers...)
			if err := en.ConfineSilence(&c); err != nil {
				continue
			}
			if !en.SilenceConfined(c.Matchers) {
				t.Fatalf("ConfineSilence(%q) = %v, not SilenceConfined", s, c.Matchers)
			}
		}
	})
}

// FuzzParseSilence checks that the silence decoder never panics and that
// what it accepts re-encodes to a silence it accepts again.
func FuzzParseSilence(f *testing.F) {
	f.Add([]byte(silenceOf(`{"name":"namespace","value":"team-a","isRegex":false}`)))
	f.Add([]byte(silenceOf(`{"name":"a","value":"(x|y)+","isRegex":true,"isEqual":false},{"name":"b","value":"c","isRegex":false}`)))
	f.Add([]byte(`{"id":"x","matchers":[]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > maxFuzzInput {
			t.Skip()
		}
		s, err := ParseSilence(b)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Kind != BadData {
				t.Fatalf("ParseSilence error %v is not BadData", err)
			}
			return
		}
		out, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseSilence(out); err != nil {
			t.Fatalf("ParseSilence(%s) accepted, but its encoding %s is refused: %v", b, out, err)
		}
		en := mustEnforcer(t, teamA)
		if err := en.ConfineSilence(s); err == nil && !en.SilenceConfined(s.Matchers) {
			t.Fatalf("ConfineSilence(%s) gave unconfined %v", b, s.Matchers)
		}
	})
}

// FuzzAMBodies feeds one body to every Alertmanager decoder: a push that
// is accepted and confined carries only allowed values, and what the
// response filters keep is confined.
func FuzzAMBodies(f *testing.F) {
	f.Add([]byte(`[{"labels":{"alertname":"X","namespace":"team-a"}}]`))
	f.Add([]byte(`[{"labels":{"alertname":"X"},"annotations":{"a":"b"},"startsAt":"2026-01-01T00:00:00Z"}]`))
	f.Add([]byte(`[{"labels":{"alertname":"A"},"receiver":{"name":"r"},"alerts":[{"labels":{"namespace":"team-b"}}]}]`))
	f.Add([]byte(`[{"id":"a","matchers":[{"name":"namespace","value":"team-a|team-b","isRegex":true}]}]`))
	f.Add([]byte(`{"cluster":{"peers":[{"address":"x"}]},"config":{"original":"secret"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > maxFuzzInput {
			t.Skip()
		}
		en := mustEnforcer(t, teamA)
		if alerts, err := ParseAlerts(b); err == nil && en.ConfineAlerts(alerts) == nil {
			for _, a := range alerts {
				if a.Labels["namespace"] != "team-a" {
					t.Fatalf("confined push %s carries %v", b, a.Labels)
				}
			}
		}
		if out, err := en.FilterAMAlerts(b); err == nil {
			var as []amObject
			if err := json.Unmarshal(out, &as); err != nil {
				t.Fatalf("FilterAMAlerts output %s: %v", out, err)
			}
			for _, a := range as {
				if a.Labels["namespace"] != "team-a" {
					t.Fatalf("FilterAMAlerts kept %v", a.Labels)
				}
			}
		}
		if out, err := en.FilterAMAlertGroups(b); err == nil {
			var gs []struct {
				Alerts []amObject `json:"alerts"`
			}
			if err := json.Unmarshal(out, &gs); err != nil {
				t.Fatalf("FilterAMAlertGroups output %s: %v", out, err)
			}
			for _, g := range gs {
				if len(g.Alerts) == 0 {
					t.Fatalf("FilterAMAlertGroups kept an empty group: %s", out)
				}
				for _, a := range g.Alerts {
					if a.Labels["namespace"] != "team-a" {
						t.Fatalf("FilterAMAlertGroups kept %v", a.Labels)
					}
				}
			}
		}
		if out, err := en.FilterSilences(b); err == nil {
			var ss []amObject
			if err := json.Unmarshal(out, &ss); err != nil {
				t.Fatalf("FilterSilences output %s: %v", out, err)
			}
			for _, s := range ss {
				if !en.SilenceConfined(s.Matchers) {
					t.Fatalf("FilterSilences kept %v", s.Matchers)
				}
			}
		}
		if out, err := en.FilterAMStatus(b); err == nil {
			var st struct {
				Config struct {
					Original string `json:"original"`
				} `json:"config"`
			}
			if err := json.Unmarshal(out, &st); err != nil || st.Config.Original != "" {
				t.Fatalf("FilterAMStatus(%s) = %s, %v: config.original kept", b, out, err)
			}
		}
	})
}
