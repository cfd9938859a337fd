package promgate_test

import (
	"encoding/json"
	"go/parser"
	"go/token"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/promgate/promgate"

type pkg struct {
	ImportPath string
	Dir        string
	Deps       []string
	Imports    []string
	GoFiles    []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", "-deps=false", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	var pkgs []pkg
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// TestDependencies enforces the layering of STYLE.md: leaves import no other
// package of ours except config, config imports none, and the request-path
// leaves stay free of net/http and OPA.
func TestDependencies(t *testing.T) {
	ours := func(deps []string) []string {
		var out []string
		for _, d := range deps {
			if strings.HasPrefix(d, module+"/") {
				out = append(out, strings.TrimPrefix(d, module+"/"))
			}
		}
		return out
	}
	allowed := map[string][]string{
		"config":   {},
		"promapi":  {},
		"enforce":  {},
		"audit":    {"config"},
		"tlsutil":  {"config"},
		"authn":    {"config"},
		"authz":    {"config", "authn"},
		"policies": {},
	}
	// Direct imports: client_golang and the PromQL parser bring net/http in
	// transitively, but the package itself must not serve or send HTTP.
	forbiddenImports := map[string][]string{
		"enforce": {"net/http"},
		"audit":   {"net/http"},
		"config":  {"net/http"},
	}
	forbidden := map[string][]string{
		"enforce": {"github.com/open-policy-agent/opa"},
		"audit":   {"github.com/open-policy-agent/opa"},
		"config":  {"github.com/open-policy-agent/opa", "net/http"},
	}
	for _, p := range listPackages(t) {
		name := strings.TrimPrefix(p.ImportPath, module+"/")
		for _, d := range ours(p.Deps) {
			if (d == "cli" || strings.HasPrefix(d, "cmd")) && name != "cmd/promgate" {
				t.Errorf("%s imports %s; nothing but cmd may import cli or cmd", name, d)
			}
		}
		if ok, listed := allowed[name]; listed {
			for _, d := range ours(p.Deps) {
				found := false
				for _, a := range ok {
					found = found || d == a
				}
				if !found {
					t.Errorf("%s depends on %s; allowed: %v", name, d, ok)
				}
			}
		}
		for _, f := range forbiddenImports[name] {
			for _, d := range p.Imports {
				if d == f {
					t.Errorf("%s imports %s", name, d)
				}
			}
		}
		for _, f := range forbidden[name] {
			for _, d := range p.Deps {
				if d == f || strings.HasPrefix(d, f+"/") {
					t.Errorf("%s depends on %s", name, d)
				}
			}
		}
	}
}

// TestPackageDocs checks that every package has exactly one package doc
// comment, in doc.go.
func TestPackageDocs(t *testing.T) {
	for _, p := range listPackages(t) {
		if len(p.GoFiles) == 0 {
			continue
		}
		var withDoc []string
		for _, f := range p.GoFiles {
			file, err := parser.ParseFile(token.NewFileSet(), filepath.Join(p.Dir, f), nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			if file.Doc != nil {
				withDoc = append(withDoc, f)
			}
		}
		if len(withDoc) != 1 {
			t.Errorf("%s: package doc comment in %v; want exactly one, in doc.go", p.ImportPath, withDoc)
		}
	}
}
