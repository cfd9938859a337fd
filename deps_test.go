package promgate_test

import (
	"encoding/json"
	"go/parser"
	"go/token"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
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

// TestDependencies enforces the layering of the packages. Only cmd imports
// cli, and nothing imports cmd. config, promapi, enforce and policies
// import no package of ours; audit, tlsutil, authn and tracing only config;
// authz only config and authn (for the identity). enforce, audit and config
// neither serve nor send HTTP, and enforce, audit and config never link OPA.
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
		"authz":    {"config", "authn", "enforce"},
		"policies": {},
		"reload":   {},
		"tracing":  {"config"},
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

// leanForbidden are the import path prefixes that must never be linked into
// the gateway binary: cloud SDKs and gRPC. The gateway never calls them;
// they came in through Prometheus' tsdb and rules packages, which the demo's
// embedded upstream used (issue 17). k8s.io/ belongs here too, but
// Prometheus' promql package imports client-go (through util/logging) up to
// module v0.315.x; v0.316.0 no longer does. Until the module moves there,
// k8sEntry is the one package allowed to bring Kubernetes packages in.
var leanForbidden = []string{
	"github.com/aws/",
	"github.com/Azure/",
	"cloud.google.com/",
	"google.golang.org/grpc",
}

// TestGatewayBinaryIsLean fails when ./cmd/promgate depends on a package
// under leanForbidden. It names each such package that a permitted package
// imports, with the chain of imports from cmd/promgate to it.
func TestGatewayBinaryIsLean(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", "./cmd/promgate").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	imports := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		imports[f[0]] = f[1:]
	}
	forbidden := func(p string) bool {
		for _, f := range leanForbidden {
			if strings.HasPrefix(p, f) {
				return true
			}
		}
		return false
	}
	// Breadth first from the binary: via[p] is the package that brought p.
	root := module + "/cmd/promgate"
	via := map[string]string{root: ""}
	queue := []string{root}
	n := 0
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if forbidden(p) {
			n++
		}
		for _, d := range imports[p] {
			if _, seen := via[d]; !seen {
				via[d] = p
				queue = append(queue, d)
			}
		}
	}
	var entries []string
	for p, from := range via {
		if forbidden(p) && !forbidden(from) {
			entries = append(entries, p)
		}
	}
	slices.Sort(entries)
	for _, p := range entries {
		chain := []string{p}
		for q := via[p]; q != ""; q = via[q] {
			chain = append(chain, q)
		}
		slices.Reverse(chain)
		t.Errorf("cmd/promgate depends on %s: %s", p, strings.Join(chain, " -> "))
	}
	if n > 0 {
		t.Errorf("cmd/promgate depends on %d packages under %v; keep them out of every package it reaches", n, leanForbidden)
	}
	isK8s := func(p string) bool { return strings.HasPrefix(p, "k8s.io/") || strings.HasPrefix(p, "sigs.k8s.io/") }
	for p := range via {
		if isK8s(p) {
			continue
		}
		for _, d := range imports[p] {
			if isK8s(d) && p != k8sEntry {
				t.Errorf("%s imports %s; only %s may bring Kubernetes packages in", p, d, k8sEntry)
			}
		}
	}
}

// k8sEntry is the only package through which Kubernetes packages may reach
// the gateway binary (see leanForbidden).
const k8sEntry = "github.com/prometheus/prometheus/util/logging"
