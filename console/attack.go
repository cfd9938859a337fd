package console

import "strings"

// tactics names the MITRE ATT&CK tactics by id.
var tactics = map[string]string{
	"TA0043": "Reconnaissance", "TA0042": "Resource Development", "TA0001": "Initial Access",
	"TA0002": "Execution", "TA0003": "Persistence", "TA0004": "Privilege Escalation",
	"TA0005": "Defense Evasion", "TA0006": "Credential Access", "TA0007": "Discovery",
	"TA0008": "Lateral Movement", "TA0009": "Collection", "TA0011": "Command and Control",
	"TA0010": "Exfiltration", "TA0040": "Impact",
}

// techniques names the ATT&CK techniques the detector catalog uses, with
// the tactic each is counted under (a technique that serves several tactics
// is counted under its first in ATT&CK's matrix).
var techniques = map[string]struct{ name, tactic string }{
	"T1021": {"Remote Services", "TA0008"},
	"T1041": {"Exfiltration Over C2 Channel", "TA0010"},
	"T1048": {"Exfiltration Over Alternative Protocol", "TA0010"},
	"T1059": {"Command and Scripting Interpreter", "TA0002"},
	"T1070": {"Indicator Removal", "TA0005"},
	"T1074": {"Data Staged", "TA0009"},
	"T1078": {"Valid Accounts", "TA0001"},
	"T1098": {"Account Manipulation", "TA0003"},
	"T1110": {"Brute Force", "TA0006"},
	"T1133": {"External Remote Services", "TA0001"},
	"T1190": {"Exploit Public-Facing Application", "TA0001"},
	"T1210": {"Exploitation of Remote Services", "TA0008"},
	"T1213": {"Data from Information Repositories", "TA0009"},
	"T1484": {"Domain or Tenant Policy Modification", "TA0004"},
	"T1485": {"Data Destruction", "TA0040"},
	"T1486": {"Data Encrypted for Impact", "TA0040"},
	"T1489": {"Service Stop", "TA0040"},
	"T1496": {"Resource Hijacking", "TA0040"},
	"T1498": {"Network Denial of Service", "TA0040"},
	"T1499": {"Endpoint Denial of Service", "TA0040"},
	"T1543": {"Create or Modify System Process", "TA0003"},
	"T1552": {"Unsecured Credentials", "TA0006"},
	"T1562": {"Impair Defenses", "TA0005"},
	"T1595": {"Active Scanning", "TA0043"},
	"T1599": {"Network Boundary Bridging", "TA0005"},
	"T1609": {"Container Administration Command", "TA0002"},
	"T1610": {"Deploy Container", "TA0002"},
	"T1611": {"Escape to Host", "TA0004"},
	"T1613": {"Container and Resource Discovery", "TA0007"},
}

// Techniques describes ATT&CK ids with their names.
func Techniques(ids []string) []Technique {
	out := make([]Technique, 0, len(ids))
	for _, id := range ids {
		if n, ok := tactics[id]; ok {
			out = append(out, Technique{ID: id, Name: n, Tactic: true})
			continue
		}
		base, _, _ := strings.Cut(id, ".")
		t := Technique{ID: id}
		if k, ok := techniques[base]; ok {
			t.Name = k.name
		}
		out = append(out, t)
	}
	return out
}

// Tactics returns the names of the tactics a detector's ATT&CK ids fall
// under, each once, or "unmapped" when none is known.
func Tactics(ids []string) []string {
	var out []string
	add := func(n string) {
		for _, o := range out {
			if o == n {
				return
			}
		}
		out = append(out, n)
	}
	for _, id := range ids {
		if n, ok := tactics[id]; ok {
			add(n)
			continue
		}
		base, _, _ := strings.Cut(id, ".")
		if k, ok := techniques[base]; ok {
			add(tactics[k.tactic])
		}
	}
	if len(out) == 0 {
		out = []string{"unmapped"}
	}
	return out
}
