package audit

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReplicaPath(t *testing.T) {
	for _, tc := range []struct{ path, id, want string }{
		{"/var/log/promgate/audit.log", "gw-1", "/var/log/promgate/audit-gw-1.log"},
		{"/var/log/promgate/audit.log", "", "/var/log/promgate/audit.log"},
		{"audit", "r2", "audit-r2"},
		{"/a.b/audit.json.log", "x", "/a.b/audit.json-x.log"},
		{"/d/.audit", "x", "/d/.audit-x"},
		{"-", "gw-1", "-"},
	} {
		if got := ReplicaPath(tc.path, tc.id); got != tc.want {
			t.Errorf("ReplicaPath(%q, %q) = %q, want %q", tc.path, tc.id, got, tc.want)
		}
	}
}

func TestChains(t *testing.T) {
	names, chains := Chains([]string{
		"d/audit-a.log.2", "d/audit-b.log.1", "d/audit-a.log.1", "d/audit-a.log", "d/audit-b.log", "d/audit-c.log",
	})
	if diff := cmp.Diff([]string{"d/audit-a.log", "d/audit-b.log", "d/audit-c.log"}, names); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
	want := [][]string{
		{"d/audit-a.log.2", "d/audit-a.log.1", "d/audit-a.log"},
		{"d/audit-b.log.1", "d/audit-b.log"},
		{"d/audit-c.log"},
	}
	if diff := cmp.Diff(want, chains); diff != "" {
		t.Errorf("chains (-want +got):\n%s", diff)
	}
}
