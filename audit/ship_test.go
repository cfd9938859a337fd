package audit

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestUnshippedRotations rotates after every record (max_size 10 bytes) and
// checks that promgate_audit_unshipped_rotations_total counts exactly the
// files deleted without the checkpoint confirming them.
func TestUnshippedRotations(t *testing.T) {
	unknown := sha256Hex("a record of another trail")
	tests := []struct {
		name     string
		maxFiles int
		leftover map[string]string // files present before the writer starts
		n        int               // records written
		// checkpoint is written, when not nil, before the last record, from
		// the hashes of the records before it.
		checkpoint func(h []string) string
		want       float64
	}{
		{name: "first rotation deletes nothing", maxFiles: 1, n: 2},
		{name: "no checkpoint", maxFiles: 1, n: 3, want: 1},
		{name: "checkpoint names the deleted file's last record", maxFiles: 1, n: 3, checkpoint: func(h []string) string { return h[0] }},
		{name: "checkpoint names a newer file's last record", maxFiles: 1, n: 3, checkpoint: func(h []string) string { return h[1] }},
		{name: "white space around the hash", maxFiles: 1, n: 3, checkpoint: func(h []string) string { return " " + h[0] + "\r\n" }},
		{name: "checkpoint names another record", maxFiles: 1, n: 3, checkpoint: func([]string) string { return unknown }, want: 1},
		{name: "checkpoint is not a hash", maxFiles: 1, n: 3, checkpoint: func([]string) string { return "shipped" }, want: 1},
		{name: "checkpoint in upper case", maxFiles: 1, n: 3, checkpoint: func(h []string) string { return strings.ToUpper(h[0]) }, want: 1},
		{name: "empty checkpoint", maxFiles: 1, n: 3, checkpoint: func([]string) string { return "" }, want: 1},
		{name: "stale checkpoint", maxFiles: 1, n: 4, checkpoint: func(h []string) string { return h[0] }, want: 2},
		{name: "max_files 0 deletes the full file", maxFiles: 0, n: 2, want: 1},
		{name: "max_files 0, full file shipped", maxFiles: 0, n: 2, checkpoint: func(h []string) string { return h[0] }},
		{name: "max_files 2, no checkpoint", maxFiles: 2, n: 4, want: 1},
		{name: "max_files 2, checkpoint names the current file's last record", maxFiles: 2, n: 4,
			checkpoint: func(h []string) string { return h[2] }},
		{name: "max_files 2, checkpoint names audit.log.1's last record", maxFiles: 2, n: 4,
			checkpoint: func(h []string) string { return h[1] }},
		{name: "leftovers: a file without records counts, an empty one does not", maxFiles: 2, n: 2,
			leftover: map[string]string{"audit.log.3": "old\n", "audit.log.4": ""}, want: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tc.leftover {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			cfg := fileCfg(dir)
			cfg.MaxSize, cfg.MaxFiles = 10, tc.maxFiles
			tw := newTestWriter(t, cfg, slowFlush)
			var hashes []string
			for i := range tc.n {
				if i == tc.n-1 && tc.checkpoint != nil {
					if err := os.WriteFile(cfg.Path+ShippedSuffix, []byte(tc.checkpoint(hashes)), 0o600); err != nil {
						t.Fatal(err)
					}
				}
				tw.mustWrite(t, fmt.Sprintf("r%d", i))
				hashes = append(hashes, tw.LastHash())
			}
			if got := testutil.ToFloat64(tw.unshippedRotations); got != tc.want {
				t.Errorf("promgate_audit_unshipped_rotations_total = %v, want %v", got, tc.want)
			}
			var warned float64
			for _, m := range tw.logs.messages(slog.LevelWarn) {
				if m == "audit rotation deleted a file not confirmed as shipped" {
					warned++
				}
			}
			if warned != tc.want {
				t.Errorf("%v warnings about unshipped files, want %v", warned, tc.want)
			}
			tw.wantCounts(t, float64(tc.n), 0)
		})
	}
}

func TestReadCheckpoint(t *testing.T) {
	h := sha256Hex("x")
	tests := []struct {
		name, content string
		want          string // "" for an error
	}{
		{"hash", h, h},
		{"newline", h + "\n", h},
		{"white space", "\t " + h + " \r\n\n", h},
		{"empty", "", ""},
		{"short", h[:63], ""},
		{"long", h + "0", ""},
		{"upper case", strings.ToUpper(h), ""},
		{"two hashes", h + "\n" + h, ""},
		{"a record line", `{"hash":"` + h + `"}`, ""},
		{"over 4 KiB", h + strings.Repeat(" ", maxCheckpoint), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log.shipped")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := readCheckpoint(path)
			if got != tc.want || (err == nil) != (tc.want != "") {
				t.Errorf("readCheckpoint(%.70q) = %q, %v; want %q", tc.content, got, err, tc.want)
			}
		})
	}
	if _, err := readCheckpoint(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("readCheckpoint of a missing file succeeded")
	}
}

// FuzzParseCheckpoint checks that a checkpoint parses only as a record hash
// and that its hash parses again to itself.
func FuzzParseCheckpoint(f *testing.F) {
	h := sha256Hex("x")
	for _, s := range []string{h, h + "\n", " " + h + "\r\n", "", "shipped", strings.ToUpper(h), h + h} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := parseCheckpoint(b)
		if err != nil {
			if got != "" {
				t.Fatalf("parseCheckpoint(%q) = %q with error %v", b, got, err)
			}
			return
		}
		if !isHex(got) || !strings.Contains(string(b), got) {
			t.Fatalf("parseCheckpoint(%q) = %q, not a hash from the input", b, got)
		}
		if again, err := parseCheckpoint([]byte(got + "\n")); err != nil || again != got {
			t.Fatalf("parseCheckpoint(%q) = %q, %v; want it unchanged", got+"\n", again, err)
		}
	})
}
