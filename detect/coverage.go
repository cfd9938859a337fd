package detect

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Tactics are the MITRE ATT&CK Enterprise tactics, in the matrix's order.
var Tactics = []struct{ ID, Name string }{
	{"TA0043", "Reconnaissance"},
	{"TA0042", "Resource Development"},
	{"TA0001", "Initial Access"},
	{"TA0002", "Execution"},
	{"TA0003", "Persistence"},
	{"TA0004", "Privilege Escalation"},
	{"TA0005", "Defense Evasion"},
	{"TA0006", "Credential Access"},
	{"TA0007", "Discovery"},
	{"TA0008", "Lateral Movement"},
	{"TA0009", "Collection"},
	{"TA0011", "Command and Control"},
	{"TA0010", "Exfiltration"},
	{"TA0040", "Impact"},
}

// techniques names every ATT&CK technique the catalog uses and the tactics
// it serves (a sub-technique serves its parent's). TestTechniquesKnown fails
// when a detector names one that is missing here.
var techniques = map[string]struct {
	Name    string
	Tactics []string
}{
	"T1021":     {"Remote Services", []string{"TA0008"}},
	"T1021.004": {"Remote Services: SSH", []string{"TA0008"}},
	"T1041":     {"Exfiltration Over C2 Channel", []string{"TA0010"}},
	"T1048":     {"Exfiltration Over Alternative Protocol", []string{"TA0010"}},
	"T1059":     {"Command and Scripting Interpreter", []string{"TA0002"}},
	"T1070":     {"Indicator Removal", []string{"TA0005"}},
	"T1074":     {"Data Staged", []string{"TA0009"}},
	"T1078":     {"Valid Accounts", []string{"TA0001", "TA0003", "TA0004", "TA0005"}},
	"T1098.004": {"Account Manipulation: SSH Authorized Keys", []string{"TA0003", "TA0004"}},
	"T1098.006": {"Account Manipulation: Additional Container Cluster Roles", []string{"TA0003", "TA0004"}},
	"T1110":     {"Brute Force", []string{"TA0006"}},
	"T1110.001": {"Brute Force: Password Guessing", []string{"TA0006"}},
	"T1110.003": {"Brute Force: Password Spraying", []string{"TA0006"}},
	"T1110.004": {"Brute Force: Credential Stuffing", []string{"TA0006"}},
	"T1133":     {"External Remote Services", []string{"TA0001", "TA0003"}},
	"T1190":     {"Exploit Public-Facing Application", []string{"TA0001"}},
	"T1210":     {"Exploitation of Remote Services", []string{"TA0008"}},
	"T1213":     {"Data from Information Repositories", []string{"TA0009"}},
	"T1484":     {"Domain or Tenant Policy Modification", []string{"TA0004", "TA0005"}},
	"T1485":     {"Data Destruction", []string{"TA0040"}},
	"T1486":     {"Data Encrypted for Impact", []string{"TA0040"}},
	"T1489":     {"Service Stop", []string{"TA0040"}},
	"T1496":     {"Resource Hijacking", []string{"TA0040"}},
	"T1498":     {"Network Denial of Service", []string{"TA0040"}},
	"T1499":     {"Endpoint Denial of Service", []string{"TA0040"}},
	"T1499.002": {"Endpoint Denial of Service: Service Exhaustion Flood", []string{"TA0040"}},
	"T1499.003": {"Endpoint Denial of Service: Application Exhaustion Flood", []string{"TA0040"}},
	"T1543":     {"Create or Modify System Process", []string{"TA0003", "TA0004"}},
	"T1543.002": {"Create or Modify System Process: Systemd Service", []string{"TA0003", "TA0004"}},
	"T1552.007": {"Unsecured Credentials: Container API", []string{"TA0006"}},
	"T1557":     {"Adversary-in-the-Middle", []string{"TA0006", "TA0009"}},
	"T1562":     {"Impair Defenses", []string{"TA0005"}},
	"T1562.001": {"Impair Defenses: Disable or Modify Tools", []string{"TA0005"}},
	"T1562.006": {"Impair Defenses: Indicator Blocking", []string{"TA0005"}},
	"T1562.008": {"Impair Defenses: Disable or Modify Cloud Logs", []string{"TA0005"}},
	"T1595.003": {"Active Scanning: Wordlist Scanning", []string{"TA0043"}},
	"T1599":     {"Network Boundary Bridging", []string{"TA0005"}},
	"T1609":     {"Container Administration Command", []string{"TA0002"}},
	"T1610":     {"Deploy Container", []string{"TA0002", "TA0005"}},
	"T1611":     {"Escape to Host", []string{"TA0004"}},
	"T1613":     {"Container and Resource Discovery", []string{"TA0007"}},
}

// Coverage is what a set of detectors covers of ATT&CK, and what each data
// source contributes.
type Coverage struct {
	// Have lists the data sources taken as available; empty means all.
	Have []string `json:"have,omitempty"`
	// Usable counts the detectors whose every source is available.
	Usable int `json:"usable_detectors"`
	// Tactics lists every ATT&CK tactic, covered or not.
	Tactics []TacticCoverage `json:"tactics"`
	// Techniques lists the techniques the usable detectors cover.
	Techniques []TechniqueCoverage `json:"techniques"`
	// Sources lists every data source the catalog reads.
	Sources []SourceCoverage `json:"sources"`
}

// TacticCoverage is one tactic and the usable detectors serving it.
type TacticCoverage struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	Detectors  []string `json:"detectors"`
	Techniques []string `json:"techniques"`
}

// TechniqueCoverage is one technique and the usable detectors naming it.
type TechniqueCoverage struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	Tactics   []string `json:"tactics"`
	Detectors []string `json:"detectors"`
}

// SourceCoverage is one data source: the detectors that read it, and what it
// adds. Without Have, Adds lists the techniques that no detector covers
// without this source; with Have, a source already available adds nothing,
// and a missing one adds the detectors that enabling it alone makes usable
// and the techniques they cover that the usable ones do not.
type SourceCoverage struct {
	Source         string   `json:"source"`
	Available      bool     `json:"available"`
	Detectors      []string `json:"detectors"`
	AddsDetectors  []string `json:"adds_detectors"`
	AddsTechniques []string `json:"adds_techniques"`
	AddsTactics    []string `json:"adds_tactics"`
}

// CoverageOf computes the coverage of ds given the data sources in have (all
// of them when have is empty). A detector is usable when every source it
// reads is available. Unknown sources in have are refused.
func CoverageOf(ds []Detector, have []string) (Coverage, error) {
	all := map[string]bool{}
	for _, d := range ds {
		for _, s := range d.Sources {
			all[s] = true
		}
	}
	avail := map[string]bool{}
	for _, h := range have {
		if !all[h] {
			return Coverage{}, fmt.Errorf("unknown source %q; known: %s", h, strings.Join(slices.Sorted(maps.Keys(all)), ", "))
		}
		avail[h] = true
	}
	if len(have) == 0 {
		avail = all
	}
	usableWith := func(extra string) []Detector {
		var out []Detector
		for _, d := range ds {
			ok := true
			for _, s := range d.Sources {
				if !avail[s] && s != extra {
					ok = false
				}
			}
			if ok {
				out = append(out, d)
			}
		}
		return out
	}
	usable := usableWith("")
	techsOf := func(dets []Detector) map[string]bool {
		out := map[string]bool{}
		for _, d := range dets {
			for _, a := range d.Attack {
				if !strings.HasPrefix(a, "TA") {
					out[a] = true
				}
			}
		}
		return out
	}
	tacticsOf := func(dets []Detector) map[string]bool {
		out := map[string]bool{}
		for _, d := range dets {
			for _, a := range d.Attack {
				if strings.HasPrefix(a, "TA") {
					out[a] = true
				}
				for _, ta := range techniques[a].Tactics {
					out[ta] = true
				}
			}
		}
		return out
	}

	c := Coverage{Have: slices.Sorted(slices.Values(have)), Usable: len(usable)}
	for _, ta := range Tactics {
		tc := TacticCoverage{ID: ta.ID, Name: ta.Name, Detectors: []string{}, Techniques: []string{}}
		techs := map[string]bool{}
		for _, d := range usable {
			if tacticsOf([]Detector{d})[ta.ID] {
				tc.Detectors = append(tc.Detectors, d.ID)
				for _, a := range d.Attack {
					if slices.Contains(techniques[a].Tactics, ta.ID) {
						techs[a] = true
					}
				}
			}
		}
		tc.Techniques = slices.Sorted(maps.Keys(techs))
		if tc.Techniques == nil {
			tc.Techniques = []string{}
		}
		c.Tactics = append(c.Tactics, tc)
	}
	for _, id := range slices.Sorted(maps.Keys(techsOf(usable))) {
		tc := TechniqueCoverage{ID: id, Name: techniques[id].Name, Tactics: techniques[id].Tactics}
		for _, d := range usable {
			if slices.Contains(d.Attack, id) {
				tc.Detectors = append(tc.Detectors, d.ID)
			}
		}
		c.Techniques = append(c.Techniques, tc)
	}
	haveTechs, haveTactics := techsOf(usable), tacticsOf(usable)
	for _, s := range slices.Sorted(maps.Keys(all)) {
		sc := SourceCoverage{Source: s, Available: avail[s], Detectors: []string{}, AddsDetectors: []string{}, AddsTechniques: []string{}, AddsTactics: []string{}}
		for _, d := range ds {
			if slices.Contains(d.Sources, s) {
				sc.Detectors = append(sc.Detectors, d.ID)
			}
		}
		var gain []Detector
		base, baseTechs, baseTactics := usable, haveTechs, haveTactics
		if len(have) == 0 {
			// Everything is available: what would be lost without s.
			base = nil
			for _, d := range ds {
				if !slices.Contains(d.Sources, s) {
					base = append(base, d)
				}
			}
			baseTechs, baseTactics = techsOf(base), tacticsOf(base)
			gain = usableWithout(ds, base)
		} else if !avail[s] {
			gain = usableWithout(usableWith(s), usable)
		}
		for _, d := range gain {
			sc.AddsDetectors = append(sc.AddsDetectors, d.ID)
		}
		for t := range techsOf(gain) {
			if !baseTechs[t] {
				sc.AddsTechniques = append(sc.AddsTechniques, t)
			}
		}
		for t := range tacticsOf(gain) {
			if !baseTactics[t] {
				sc.AddsTactics = append(sc.AddsTactics, t)
			}
		}
		slices.Sort(sc.AddsTechniques)
		slices.Sort(sc.AddsTactics)
		c.Sources = append(c.Sources, sc)
	}
	return c, nil
}

// usableWithout returns the detectors of ds that are not in base.
func usableWithout(ds, base []Detector) []Detector {
	var out []Detector
	for _, d := range ds {
		if !slices.ContainsFunc(base, func(b Detector) bool { return b.ID == d.ID }) {
			out = append(out, d)
		}
	}
	return out
}
