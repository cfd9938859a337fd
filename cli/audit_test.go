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
