package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/promgate/promgate/audit"
	"github.com/promgate/promgate/config"
)

func TestAuditVerify(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	w, err := audit.NewWriter(config.Audit{Path: path}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b", "c"} {
		if err := w.Write(&audit.Record{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	last := w.LastHash()

	if code, out, stderr := run(t, "audit", "verify", "-last-hash", last[:16], path); code != 0 || !strings.HasPrefix(out, "OK: 1 files, 3 records") {
		t.Fatalf("verify clean file: exit %d\n%s%s", code, out, stderr)
	}
	b, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(b), "\n")
	lines[1] = strings.Replace(lines[1], `"id":"b"`, `"id":"B"`, 1)
	if err := os.WriteFile(path, []byte(strings.Join(lines, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := run(t, "audit", "verify", path)
	if code != 1 || !strings.HasPrefix(out, path+`:2: hash: the record was changed`) || !strings.Contains(out, `(record id "B")`) {
		t.Errorf("verify changed record: exit %d, want 1 naming line 2\n%s", code, out)
	}
	if !strings.Contains(stderr, "the audit hash chain is broken") {
		t.Errorf("stderr = %q", stderr)
	}
	for _, args := range [][]string{{"audit"}, {"audit", "verify"}, {"audit", "check", path}} {
		if code, _, _ := run(t, args...); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
	if code, _, _ := run(t, "audit", "verify", "-last-hash", "abc", path); code != 1 {
		t.Errorf("short -last-hash: exit %d, want 1", code)
	}
	if code, _, _ := run(t, "audit", "verify", filepath.Join(dir, "missing")); code != 1 {
		t.Errorf("missing file: exit %d, want 1", code)
	}
}

// TestAuditVerifyReplicas gives the files of three replicas at once: each
// chain is verified on its own, and a break in one fails the whole.
func TestAuditVerifyReplicas(t *testing.T) {
	dir := t.TempDir()
	var files []string
	for _, replica := range []string{"gw-1", "gw-2", "gw-3"} {
		path := audit.ReplicaPath(filepath.Join(dir, "audit.log"), replica)
		w, err := audit.NewWriter(config.Audit{Path: path}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"a", "b"} {
			if err := w.Write(&audit.Record{ID: replica + id}); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		files = append(files, path)
	}
	args := append([]string{"audit", "verify"}, files...)
	code, out, stderr := run(t, args...)
	if code != 0 || !strings.Contains(out, "chain "+files[1]+": OK: 1 files, 2 records") || !strings.HasSuffix(out, "OK: 3 chains, 6 records\n") {
		t.Fatalf("verify three replicas: exit %d\n%s%s", code, out, stderr)
	}
	if code, _, stderr := run(t, append([]string{"audit", "verify", "-last-hash", strings.Repeat("a", 64)}, files...)...); code != 1 || !strings.Contains(stderr, "one replica's files") {
		t.Errorf("-last-hash with three chains: exit %d, %s", code, stderr)
	}
	b, _ := os.ReadFile(files[2])
	if err := os.WriteFile(files[2], []byte(strings.Replace(string(b), `"id":"gw-3b"`, `"id":"gw-3B"`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ = run(t, args...)
	if code != 1 || !strings.Contains(out, "chain "+files[2]+": FAIL") || !strings.Contains(out, "chain "+files[0]+": OK") {
		t.Errorf("verify with one replica's record changed: exit %d\n%s", code, out)
	}
}

func TestApplyReplica(t *testing.T) {
	cfg := config.Default()
	cfg.Audit.Path = "/var/log/promgate/audit.log"
	cfg.ReplicaID = "from-file"
	if err := applyReplica(cfg, "gw-2"); err != nil || cfg.Audit.Path != "/var/log/promgate/audit-gw-2.log" || cfg.ReplicaID != "gw-2" {
		t.Errorf("applyReplica(gw-2) = %v, path %s, id %s", err, cfg.Audit.Path, cfg.ReplicaID)
	}
	if err := applyReplica(config.Default(), "../x"); err == nil {
		t.Error("applyReplica(../x) accepted a path")
	}
}
