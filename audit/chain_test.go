package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/alecthomas/units"
	"github.com/google/go-cmp/cmp"

	"github.com/promgate/promgate/config"
)

// TestCanonicalJSON checks the definition of doc.go independently of the
// writer's code: every line is encoding/json's encoding (no HTML escaping) of
// the Record it decodes to; its hash is SHA-256 of the previous hash's hex
// followed by that encoding with Hash empty; and each prev_hash is the hash
// of the line before.
func TestCanonicalJSON(t *testing.T) {
	var out lockedBuffer
	w, err := NewWriter(config.Audit{Path: "-"}, nil, nil, withStdout(&out))
	if err != nil {
		t.Fatal(err)
	}
	forged := "x\n\",\"hash\":\"" + ZeroHash + "\"}\u2028<b>&"
	for _, r := range []*Record{fullRecord(), {ID: "minimal"}, {ID: forged, Path: forged, Error: forged},
		{ID: "caller-set chain fields", PrevHash: "bogus", Hash: "bogus", ChainStart: "bogus"}} {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	prev := ZeroHash
	for i, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		var r Record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		if r.PrevHash != prev {
			t.Errorf("line %d: prev_hash %s, want %s", i+1, r.PrevHash, prev)
		}
		if (i == 0) != (r.ChainStart == StartStdout) {
			t.Errorf("line %d: chain_start %q", i+1, r.ChainStart)
		}
		stored := r.Hash
		r.Hash = ""
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(&r); err != nil {
			t.Fatal(err)
		}
		canonical := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
		if want := string(canonical[:len(canonical)-1]) + `,"hash":"` + stored + `"}`; line != want {
			t.Errorf("line %d is not encoding/json's encoding of its record:\n got %s\nwant %s", i+1, line, want)
		}
		sum := sha256.Sum256(append([]byte(prev), canonical...))
		if got := hex.EncodeToString(sum[:]); got != stored {
			t.Errorf("line %d: hash %s, want SHA-256(prev_hash || canonical) = %s", i+1, stored, got)
		}
		prev = stored
	}
}

// writeSet writes n records through a writer that rotates into several files
// and returns the files oldest first.
func writeSet(t *testing.T, dir string, n int) []string {
	t.Helper()
	cfg := fileCfg(dir)
	cfg.MaxSize, cfg.MaxFiles = 4*units.KiB, 5
	tw := newTestWriter(t, cfg, slowFlush)
	for i := range n {
		tw.mustWrite(t, fmt.Sprintf("r%03d", i))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	files := []string{cfg.Path}
	for i := 1; ; i++ {
		p := fmt.Sprintf("%s.%d", cfg.Path, i)
		if _, err := os.Stat(p); err != nil {
			break
		}
		files = append(files, p)
	}
	slices.Reverse(files)
	if len(files) < 3 {
		t.Fatalf("want at least 3 files, got %q", files)
	}
	return files
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.SplitAfter(string(b), "\n")[:strings.Count(string(b), "\n")]
}

func writeLines(t *testing.T, path string, lines []string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Join(lines, "")), 0o600); err != nil {
		t.Fatal(err)
	}
}

// got is the comparable part of a break.
type got struct {
	File string
	Line int
	ID   string
	Link Link
}

func TestVerify(t *testing.T) {
	tests := []struct {
		name   string
		opts   VerifyOptions
		tamper func(t *testing.T, files []string) []string // returns the files to verify
		want   []got                                       // files by index into the set, as "0", "1", ...
	}{
		{
			name:   "clean rotated set",
			tamper: func(_ *testing.T, files []string) []string { return files },
		},
		{
			name: "one byte changed",
			tamper: func(t *testing.T, files []string) []string {
				lines := readLines(t, files[1])
				lines[2] = strings.Replace(lines[2], `"status":0`, `"status":1`, 1)
				writeLines(t, files[1], lines)
				return files
			},
			want: []got{{File: "1", Line: 3, ID: "", Link: LinkHash}},
		},
		{
			name: "hash edited",
			tamper: func(t *testing.T, files []string) []string {
				lines := readLines(t, files[1])
				i := strings.Index(lines[4], `"hash":"`) + len(`"hash":"`)
				c := byte('0')
				if lines[4][i] == '0' {
					c = '1'
				}
				lines[4] = lines[4][:i] + string(c) + lines[4][i+1:]
				writeLines(t, files[1], lines)
				return files
			},
			// The next record links to the real hash, which the
			// edited record no longer carries.
			want: []got{{File: "1", Line: 5, Link: LinkHash}, {File: "1", Line: 6, Link: LinkPrev}},
		},
		{
			name: "record removed",
			tamper: func(t *testing.T, files []string) []string {
				lines := readLines(t, files[1])
				writeLines(t, files[1], slices.Delete(lines, 3, 4))
				return files
			},
			want: []got{{File: "1", Line: 4, Link: LinkPrev}},
		},
		{
			name: "records reordered",
			tamper: func(t *testing.T, files []string) []string {
				lines := readLines(t, files[1])
				lines[3], lines[4] = lines[4], lines[3]
				writeLines(t, files[1], lines)
				return files
			},
			want: []got{{File: "1", Line: 4, Link: LinkPrev}, {File: "1", Line: 5, Link: LinkPrev}, {File: "1", Line: 6, Link: LinkPrev}},
		},
		{
			name: "record duplicated",
			tamper: func(t *testing.T, files []string) []string {
				lines := readLines(t, files[1])
				writeLines(t, files[1], slices.Insert(lines, 3, lines[1]))
				return files
			},
			want: []got{{File: "1", Line: 4, Link: LinkPrev}, {File: "1", Line: 5, Link: LinkPrev}},
		},
		{
			name: "forged record with a correct hash inserted",
			tamper: func(t *testing.T, files []string) []string {
				lines := readLines(t, files[1])
				c := chain{last: [32]byte{1}}
				line, err := c.link([]byte(`{"id":"forged","status":200}`))
				if err != nil {
					t.Fatal(err)
				}
				writeLines(t, files[1], slices.Insert(lines, 3, string(line)))
				return files
			},
			want: []got{{File: "1", Line: 4, ID: "forged", Link: LinkPrev}, {File: "1", Line: 5, Link: LinkPrev}},
		},
		{
			name: "empty line inserted",
			tamper: func(t *testing.T, files []string) []string {
				lines := readLines(t, files[1])
				writeLines(t, files[1], slices.Insert(lines, 3, "\n"))
				return files
			},
			want: []got{{File: "1", Line: 4, Link: LinkFormat}},
		},
		{
			name: "garbage line inserted",
			tamper: func(t *testing.T, files []string) []string {
				lines := readLines(t, files[1])
				writeLines(t, files[1], slices.Insert(lines, 3, `{"id":"x"}`+"\n"))
				return files
			},
			want: []got{{File: "1", Line: 4, Link: LinkFormat}},
		},
		{
			name: "tail of the last file cut inside a record",
			tamper: func(t *testing.T, files []string) []string {
				last := files[len(files)-1]
				b, _ := os.ReadFile(last)
				if err := os.WriteFile(last, b[:len(b)-10], 0o600); err != nil {
					t.Fatal(err)
				}
				return files
			},
			want: []got{{File: "last", Line: -1, Link: LinkFormat}},
		},
		{
			name: "files out of order",
			tamper: func(_ *testing.T, files []string) []string {
				f := slices.Clone(files)
				f[1], f[2] = f[2], f[1]
				return f
			},
			want: []got{{File: "2", Line: 1, Link: LinkPrev}, {File: "1", Line: 1, Link: LinkPrev}, {File: "3", Line: 1, Link: LinkPrev}},
		},
		{
			name: "middle file missing",
			tamper: func(_ *testing.T, files []string) []string {
				return slices.Delete(slices.Clone(files), 1, 2)
			},
			want: []got{{File: "2", Line: 1, Link: LinkPrev}},
		},
		{
			name: "whole records cut from the end are invisible without the last hash",
			tamper: func(t *testing.T, files []string) []string {
				last := files[len(files)-1]
				lines := readLines(t, last)
				writeLines(t, last, lines[:len(lines)-2])
				return files
			},
		},
		{
			name: "whole records cut from the end are found with the last hash",
			opts: VerifyOptions{LastHash: "last"},
			tamper: func(t *testing.T, files []string) []string {
				last := files[len(files)-1]
				lines := readLines(t, last)
				writeLines(t, last, lines[:len(lines)-2])
				return files
			},
			want: []got{{Link: LinkLastHash}},
		},
		{
			name:   "last hash present",
			opts:   VerifyOptions{LastHash: "last"},
			tamper: func(_ *testing.T, files []string) []string { return files },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			files := writeSet(t, t.TempDir(), 60)
			if tc.opts.LastHash == "last" {
				lines := readLines(t, files[len(files)-1])
				c, err := parseLine([]byte(strings.TrimSuffix(lines[len(lines)-1], "\n")))
				if err != nil {
					t.Fatal(err)
				}
				tc.opts.LastHash = c.Hash[:LastHashPrefix]
			}
			given := tc.tamper(t, files)
			res, err := Verify(tc.opts, given...)
			if err != nil {
				t.Fatal(err)
			}
			var gotBreaks []got
			for _, b := range res.Breaks {
				g := got{File: b.File, Line: b.Line, ID: b.ID, Link: b.Link}
				if i := slices.Index(files, b.File); i >= 0 {
					g.File = fmt.Sprint(i)
				}
				if b.Link == LinkHash || b.Link == LinkPrev && b.ID != "forged" {
					g.ID = "" // ids are checked below
				}
				gotBreaks = append(gotBreaks, g)
			}
			want := slices.Clone(tc.want)
			for i, w := range want {
				if w.File == "last" {
					want[i].File = fmt.Sprint(len(files) - 1)
					want[i].Line = len(readLines(t, files[len(files)-1])) + 1
				}
			}
			if diff := cmp.Diff(want, gotBreaks); diff != "" {
				t.Errorf("breaks (-want +got):\n%s\nall: %v", diff, res.Breaks)
			}
			if res.OK() != (len(tc.want) == 0) {
				t.Errorf("OK() = %v with breaks %v", res.OK(), res.Breaks)
			}
			for _, b := range res.Breaks {
				if b.Link == LinkHash && b.ID == "" {
					t.Errorf("break %v does not name the record", b)
				}
			}
		})
	}
}

// TestVerifyNamesRecord checks that each break names the changed record by its
// id, file and line.
func TestVerifyNamesRecord(t *testing.T) {
	files := writeSet(t, t.TempDir(), 60)
	lines := readLines(t, files[2])
	var r Record
	if err := json.Unmarshal([]byte(lines[1]), &r); err != nil {
		t.Fatal(err)
	}
	lines[1] = strings.Replace(lines[1], `"method":""`, `"method":"X"`, 1)
	writeLines(t, files[2], lines)
	res, err := Verify(VerifyOptions{}, files...)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`%s:2: hash: the record was changed: its hash does not match its content (record id %q)`, files[2], r.ID)
	if len(res.Breaks) != 1 || res.Breaks[0].String() != want {
		t.Errorf("breaks = %v, want exactly %q", res.Breaks, want)
	}
}

func TestResume(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, path string)
		start   string // ChainStart of the first new record; "" = linked
		warn    bool
		// breaks expected when verifying the whole set
		want []Link
	}{
		{name: "fresh", prepare: func(*testing.T, string) {}, start: StartNewTrail},
		{name: "continues the current file", prepare: func(t *testing.T, path string) { writeN(t, path, 3) }},
		{
			name: "continues the rotated file when the current one is empty",
			prepare: func(t *testing.T, path string) {
				writeN(t, path, 3)
				if err := os.Rename(path, path+".1"); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "torn last record",
			prepare: func(t *testing.T, path string) {
				writeN(t, path, 3)
				b, _ := os.ReadFile(path)
				if err := os.WriteFile(path, b[:len(b)-5], 0o600); err != nil {
					t.Fatal(err)
				}
			},
			start: "chain restarted", warn: true, want: []Link{LinkFormat, LinkRestart},
		},
		{
			name: "last record edited",
			prepare: func(t *testing.T, path string) {
				writeN(t, path, 3)
				lines := readLines(t, path)
				lines[2] = strings.Replace(lines[2], `"id":"`, `"id":"x`, 1)
				writeLines(t, path, lines)
			},
			start: "chain restarted", warn: true, want: []Link{LinkHash, LinkRestart},
		},
		{
			name: "record from before the chain",
			prepare: func(t *testing.T, path string) {
				if err := os.WriteFile(path, []byte(`{"time":"2026-01-01T00:00:00Z","id":"old"}`+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			},
			start: "chain restarted", warn: true, want: []Link{LinkFormat, LinkRestart},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fileCfg(t.TempDir())
			tc.prepare(t, cfg.Path)
			tw := newTestWriter(t, cfg, slowFlush)
			tw.mustWrite(t, "new-1")
			tw.mustWrite(t, "new-2")
			if err := tw.Close(); err != nil {
				t.Fatal(err)
			}
			lines := readLines(t, cfg.Path)
			var first Record
			for _, l := range lines {
				if strings.Contains(l, `"id":"new-1"`) {
					if err := json.Unmarshal([]byte(l), &first); err != nil {
						t.Fatal(err)
					}
				}
			}
			if !strings.HasPrefix(first.ChainStart, tc.start) || (tc.start == "") != (first.ChainStart == "") {
				t.Errorf("chain_start = %q, want prefix %q", first.ChainStart, tc.start)
			}
			if warned := len(tw.logs.messages(slog.LevelWarn)) > 0; warned != tc.warn {
				t.Errorf("warned = %v, want %v: %q", warned, tc.warn, tw.logs.messages(slog.LevelWarn))
			}
			files := []string{cfg.Path}
			if _, err := os.Stat(cfg.Path + ".1"); err == nil {
				files = []string{cfg.Path + ".1", cfg.Path}
			}
			res, err := Verify(VerifyOptions{}, files...)
			if err != nil {
				t.Fatal(err)
			}
			var links []Link
			for _, b := range res.Breaks {
				links = append(links, b.Link)
			}
			if diff := cmp.Diff(tc.want, links); diff != "" {
				t.Errorf("breaks (-want +got):\n%s\n%v", diff, res.Breaks)
			}
			res, err = Verify(VerifyOptions{AllowRestart: true}, files...)
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range res.Breaks {
				if b.Link == LinkRestart {
					t.Errorf("AllowRestart still reports %v", b)
				}
			}
		})
	}
}

// writeN writes n records to path and closes the writer.
func writeN(t *testing.T, path string, n int) {
	t.Helper()
	w, err := NewWriter(config.Audit{Path: path, Mode: config.AuditBuffered}, nil, nil, slowFlush)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := w.Write(&Record{ID: fmt.Sprintf("old-%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestChainSkipsRefusedRecords checks that a record refused on a failed write
// leaves no gap: the next record links to the last one stored.
func TestChainSkipsRefusedRecords(t *testing.T) {
	cfg := fileCfg(t.TempDir())
	var fail atomic.Bool
	tw := newTestWriter(t, cfg, flakyOpen(&fail, 0), slowFlush)
	tw.mustWrite(t, "a")
	fail.Store(true)
	if err := tw.Flush(); err == nil {
		t.Fatal("Flush succeeded on a full disk")
	}
	for range 3 {
		if err := tw.Write(&Record{ID: "refused"}); err == nil {
			t.Fatal("Write succeeded on a full disk")
		}
	}
	fail.Store(false)
	tw.mustWrite(t, "b")
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a", "b"}, readIDs(t, cfg.Path)); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	res, err := Verify(VerifyOptions{LastHash: tw.LastHash()}, cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() || res.Records != 2 {
		t.Errorf("Verify = %d records, breaks %v; want 2 records, none", res.Records, res.Breaks)
	}
}

// TestFullDisk fills a real 64 KiB tmpfs: writes fail, the writer is
// unhealthy (so that on_failure: deny refuses requests), and once space is
// freed writes recover and the chain over the stored records verifies.
func TestFullDisk(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s); TestWriteFailureAndRecovery injects ENOSPC instead", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", dir).Run() })
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, 40<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fileCfg(dir)
	tw := newTestWriter(t, cfg, slowFlush)
	var werr error
	for i := 0; i < 10000 && werr == nil; i++ {
		id := fmt.Sprintf("r%05d-%s", i, strings.Repeat("x", 200))
		if werr = tw.Write(&Record{ID: id}); werr != nil {
			if err := tw.Flush(); err == nil {
				t.Fatal("Flush succeeded after a failed Write")
			}
		}
	}
	if !errors.Is(werr, syscall.ENOSPC) {
		t.Fatalf("Write on a full tmpfs = %v, want ENOSPC", werr)
	}
	if tw.Healthy() {
		t.Fatal("Healthy() = true on a full disk")
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	tw.mustWrite(t, "after")
	if !tw.Healthy() {
		t.Fatal("Healthy() = false after space was freed")
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	ids := readIDs(t, cfg.Path)
	if len(ids) == 0 || ids[len(ids)-1] != "after" {
		t.Fatalf("last record = %q, want after", ids[len(ids)-1:])
	}
	// Records acknowledged before the failure were buffered, so some may be
	// lost with the buffer; each one stored is whole and in order.
	res, err := Verify(VerifyOptions{LastHash: tw.LastHash()}, cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() {
		t.Errorf("Verify after a full disk: %v", res.Breaks)
	}
	_, failures := tw.counts()
	if failures < 1 {
		t.Errorf("failures_total = %v, want at least 1", failures)
	}
}

// BenchmarkWrite measures records per second from parallel writers into a
// file, with the default flush interval (buffered, synced every second):
// "allowed" is a typical forwarded request, "denied" carries an error string,
// which Redact scans with regular expressions.
func BenchmarkWrite(b *testing.B) {
	allowed := fullRecord()
	allowed.Error, allowed.ClientRequestID = "", ""
	for _, bc := range []struct {
		name string
		rec  *Record
	}{{"allowed", allowed}, {"denied", fullRecord()}} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := config.Audit{Path: filepath.Join(b.TempDir(), "audit.log"), MaxSize: 100 * units.MiB, MaxFiles: 2, Mode: config.AuditBuffered}
			w, err := NewWriter(cfg, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				r := *bc.rec
				for pb.Next() {
					if err := w.Write(&r); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
