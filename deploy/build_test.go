package deploy

import (
	"bufio"
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/promgate/promgate/config"
)

var update = flag.Bool("update", false, "rewrite kubernetes/detectors/prometheusrule.yaml from promgate detectors export")

// testVersion is stamped into the test build, to check that -ldflags reach
// cli.Version.
const testVersion = "v0.0.0-deploytest"

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// binaries builds promgate and the health probe once, with `make static`:
// the Makefile's GO_BUILD_STATIC command line, which the Dockerfile runs too.
func binaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "promgate-deploy-"); buildErr != nil {
			return
		}
		cmd := exec.Command("make", "--no-print-directory", "-s", "static", "VERSION="+testVersion, "STATIC_OUT="+buildDir, "GO=go")
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("make static: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildDir
}

// promgate runs the test build of promgate and returns its combined output
// and exit code.
func promgate(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binaries(t), "promgate"), args...)
	out, err := cmd.CombinedOutput()
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("promgate %v: %v", args, err)
	}
	return string(out), 0
}

// promgateStdout is promgate with only its standard output kept.
func promgateStdout(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binaries(t), "promgate"), args...)
	out, err := cmd.Output()
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		return string(out) + string(ee.Stderr), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("promgate %v: %v", args, err)
	}
	return string(out), 0
}

// TestStaticBuildCommand checks that `make static` runs exactly the flags the
// image needs: no cgo, trimmed paths, stripped, the version stamped in.
func TestStaticBuildCommand(t *testing.T) {
	cmd := exec.Command("make", "--no-print-directory", "-n", "static", "VERSION="+testVersion, "STATIC_OUT=/out", "GO=go")
	cmd.Dir = ".."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make -n static: %v\n%s", err, out)
	}
	flags := `CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/promgate/promgate/cli.Version=` + testVersion + `"`
	want := []string{
		flags + " -o /out/promgate ./cmd/promgate",
		flags + " -o /out/healthcheck ./deploy/healthcheck",
	}
	got := strings.Split(strings.TrimSpace(string(out)), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("make -n static =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestStaticBinaries builds the image's binaries and checks that they need no
// dynamic loader or shared library (distroless static has neither), that
// the build settings are the Makefile's, and that promgate runs.
func TestStaticBinaries(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the image is linux; ELF checks need a linux build")
	}
	dir := binaries(t)
	for _, name := range []string{"promgate", "healthcheck"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			f, err := elf.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
					t.Errorf("%s has a %v program header: it is dynamically linked", name, p.Type)
				}
			}
			if s := f.Section(".dynamic"); s != nil {
				t.Errorf("%s has a .dynamic section", name)
			}
			if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
				t.Errorf("%s imports shared libraries %v (err %v)", name, libs, err)
			}
			bi, err := buildinfo.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			settings := map[string]string{}
			for _, s := range bi.Settings {
				settings[s.Key] = s.Value
			}
			for k, v := range map[string]string{"CGO_ENABLED": "0", "-trimpath": "true"} {
				if settings[k] != v {
					t.Errorf("%s built with %s=%q, want %q", name, k, settings[k], v)
				}
			}
			// -trimpath keeps -ldflags out of the build information, so
			// -s shows as the missing symbol table, and -X as promgate
			// version below.
			if f.Section(".symtab") != nil {
				t.Errorf("%s has a symbol table: built without -ldflags -s", name)
			}
		})
	}
	out, code := promgate(t, "version")
	if code != 0 || !strings.HasPrefix(out, "promgate "+testVersion+" ") {
		t.Errorf("promgate version = %q (exit %d), want it to start with %q", out, code, "promgate "+testVersion+" ")
	}
}

// dockerInstructions returns the Dockerfile's instructions, continuation
// lines joined and comments dropped, as [instruction, rest] pairs.
func dockerInstructions(t *testing.T) [][2]string {
	t.Helper()
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var out [][2]string
	var cur strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			cur.WriteString(strings.TrimSuffix(line, `\`) + " ")
			continue
		}
		cur.WriteString(line)
		ins, rest, _ := strings.Cut(cur.String(), " ")
		out = append(out, [2]string{strings.ToUpper(ins), strings.Join(strings.Fields(rest), " ")})
		cur.Reset()
	}
	return out
}

// TestDockerfile checks the image's contract: built by `make static`, a
// distroless static nonroot runtime, user 65532, a HEALTHCHECK against the
// default internal_listen.
func TestDockerfile(t *testing.T) {
	var froms, runs, copies, users, healthchecks, entrypoints []string
	for _, in := range dockerInstructions(t) {
		switch in[0] {
		case "FROM":
			froms = append(froms, in[1])
		case "RUN":
			runs = append(runs, in[1])
		case "COPY":
			copies = append(copies, in[1])
		case "USER":
			users = append(users, in[1])
		case "HEALTHCHECK":
			healthchecks = append(healthchecks, in[1])
		case "ENTRYPOINT":
			entrypoints = append(entrypoints, in[1])
		}
	}
	if len(froms) != 2 || !strings.HasPrefix(froms[0], "golang:") || froms[1] != "gcr.io/distroless/static-debian12:nonroot" {
		t.Errorf("FROM = %q; want a golang builder, then gcr.io/distroless/static-debian12:nonroot", froms)
	}
	built := false
	for _, r := range runs {
		if strings.Contains(r, `make static VERSION="${VERSION}" STATIC_OUT=/out`) {
			built = true
		}
		if strings.Contains(r, "go build") {
			t.Errorf("RUN %q: build with make static, so that the image and the test share GO_BUILD_STATIC", r)
		}
	}
	if !built {
		t.Errorf("no RUN make static VERSION=\"${VERSION}\" STATIC_OUT=/out in %q", runs)
	}
	for _, want := range []string{"--from=build /out/promgate /usr/local/bin/promgate", "--from=build /out/healthcheck /usr/local/bin/healthcheck"} {
		found := false
		for _, c := range copies {
			found = found || c == want
		}
		if !found {
			t.Errorf("no COPY %s in %q", want, copies)
		}
	}
	if len(users) != 1 || users[0] != "65532:65532" {
		t.Errorf("USER = %q, want 65532:65532 once, after the runtime FROM", users)
	}
	wantHC := fmt.Sprintf(`CMD ["/usr/local/bin/healthcheck", "http://%s/-/healthy"]`, config.Default().InternalListen)
	if len(healthchecks) != 1 || !strings.HasSuffix(healthchecks[0], wantHC) {
		t.Errorf("HEALTHCHECK = %q, want one ending in %s", healthchecks, wantHC)
	}
	if len(entrypoints) != 1 || entrypoints[0] != `["/usr/local/bin/promgate"]` {
		t.Errorf("ENTRYPOINT = %q", entrypoints)
	}

	b, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	ignored := map[string]bool{}
	for l := range strings.Lines(string(b)) {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			ignored[l] = true
		}
	}
	if !ignored[".git"] || !ignored["**/*.key"] {
		t.Errorf(".dockerignore must exclude .git and private keys; has %v", ignored)
	}
	for _, need := range []string{"go.mod", "go.sum", "Makefile", "cmd", "deploy", "deploy/healthcheck", "policies"} {
		if ignored[need] {
			t.Errorf(".dockerignore excludes %s, which the build needs", need)
		}
	}
}

// TestHealthcheck runs the image's probe against live and failing endpoints.
func TestHealthcheck(t *testing.T) {
	probe := filepath.Join(binaries(t), "healthcheck")
	handler := http.NewServeMux()
	handler.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	handler.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "not ready", http.StatusServiceUnavailable)
	})
	handler.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/-/healthy", http.StatusFound) })
	srv := httptest.NewServer(handler)
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/-/healthy"
	ln.Close()

	tests := []struct {
		name string
		args []string
		ok   bool
	}{
		{"healthy", []string{srv.URL + "/-/healthy"}, true},
		{"503", []string{srv.URL + "/-/ready"}, false},
		{"redirect is not followed", []string{srv.URL + "/redirect"}, false},
		{"nothing listening", []string{closed}, false},
		{"not http", []string{"file:///etc/passwd"}, false},
		{"two arguments", []string{srv.URL, srv.URL}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(probe, tc.args...)
			out, err := cmd.CombinedOutput()
			if ok := err == nil; ok != tc.ok {
				t.Errorf("healthcheck %v: err %v (%s), want ok %v", tc.args, err, out, tc.ok)
			}
		})
	}
}
