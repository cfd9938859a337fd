package authz

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/util"
)

// Limits on what a policy folder may hold. They catch a folder setting that
// points at the wrong place (a home directory, /) before it eats the memory of
// the gateway; real policy folders are far smaller.
const (
	maxFileSize  = 16 << 20
	maxTotalSize = 64 << 20
	maxFiles     = 10000
)

// removedBuiltins are the Rego built-in functions a promgate policy cannot
// call. A call to one of them is a compile error, so a policy that uses them
// is refused at load time, never at request time.
//
//	builtin          why it is removed
//	http.send        outbound requests from the gateway: SSRF towards the
//	                 upstream or the cloud metadata endpoint, and a decision
//	                 that depends on another service's availability
//	net.*            net.lookup_ip_addr does DNS, which is network I/O and can
//	                 leak input to a resolver; net.cidr_expand can allocate
//	                 millions of addresses. The pure CIDR helpers go with them
//	                 so that the rule is simply "no net.*"
//	opa.runtime      exposes the process environment and OPA configuration,
//	                 where secrets live
//
// Kept on purpose: time.now_ns (reads the clock, nothing more), trace (writes
// only to a tracer, which serving never installs), rego.parse_module and
// rego.metadata.* (pure functions of their arguments and the policy).
// Capabilities.AllowNet is also set to an empty list, so that JSON-schema
// built-ins never fetch a remote $ref.
func removedBuiltin(name string) bool {
	return name == "http.send" || name == "opa.runtime" || strings.HasPrefix(name, "net.")
}

// capabilities returns the capabilities policies are compiled with: those of
// this OPA version minus removedBuiltin, with no network access at all.
func capabilities() *ast.Capabilities {
	c := ast.CapabilitiesForThisVersion()
	c.Builtins = slices.DeleteFunc(slices.Clone(c.Builtins), func(b *ast.Builtin) bool {
		return removedBuiltin(b.Name)
	})
	c.AllowNet = []string{}
	return c
}

// file is one policy or data file read from a policy folder.
type file struct {
	// name is the slash-separated path inside the folder.
	name string
	data []byte
}

func isRego(name string) bool     { return strings.HasSuffix(name, ".rego") }
func isRegoTest(name string) bool { return strings.HasSuffix(name, "_test.rego") }

func isData(name string) bool {
	switch path.Ext(name) {
	case ".json", ".yaml", ".yml":
		return true
	}
	return false
}

// readFiles reads every *.rego, *.json, *.yaml and *.yml file of fsys, sorted
// by name. Test modules (*_test.rego) are read only when withTests is set.
// Names starting with a dot are skipped, files and folders alike: they are
// editor and VCS leftovers, and Kubernetes keeps the real files of a mounted
// ConfigMap in "..data" folders behind symlinks. A symlink to a file is
// followed; a symlink to a folder is not. Anything that is not a regular file
// (a FIFO, a device) is skipped, so a read never blocks.
func readFiles(fsys fs.FS, withTests bool) ([]file, error) {
	var files []file
	total := 0
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if name != "." && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		if !isRego(name) && !isData(name) {
			return nil
		}
		if isRegoTest(name) && !withTests {
			return nil
		}
		info, err := fs.Stat(fsys, name) // follows a symlink
		if err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		if info.Size() > maxFileSize {
			return fmt.Errorf("%s: larger than %d MiB", name, maxFileSize>>20)
		}
		if len(files) >= maxFiles {
			return fmt.Errorf("more than %d policy and data files", maxFiles)
		}
		b, err := readFile(fsys, name)
		if err != nil {
			return err
		}
		total += len(b)
		if total > maxTotalSize {
			return fmt.Errorf("policy and data files larger than %d MiB in total", maxTotalSize>>20)
		}
		files = append(files, file{name: name, data: b})
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(files, func(a, b file) int { return strings.Compare(a.name, b.name) })
	return files, nil
}

// readFile reads at most maxFileSize+1 bytes, so that a file growing between
// the stat and the read is still bounded.
func readFile(fsys fs.FS, name string) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close() //nolint:errcheck // read-only file: a Close error loses nothing
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(b) > maxFileSize {
		return nil, fmt.Errorf("%s: larger than %d MiB", name, maxFileSize>>20)
	}
	return b, nil
}

// revision is a short hex SHA-256 over the names and contents of files. Each
// name and content is length-prefixed, so that no two different sets of files
// hash alike by moving bytes between them.
func revision(files []file) string {
	h := sha256.New()
	var n [8]byte
	for _, f := range files {
		binary.BigEndian.PutUint64(n[:], uint64(len(f.name)))
		h.Write(n[:])
		h.Write([]byte(f.name))
		binary.BigEndian.PutUint64(n[:], uint64(len(f.data)))
		h.Write(n[:])
		h.Write(f.data)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// parsed is the content of a policy folder, ready to compile.
type parsed struct {
	modules map[string]*ast.Module
	data    map[string]any
}

// parse parses the modules and merges the data files of files. root is
// prepended to file names in module locations and errors, so that an error
// names the file as the operator knows it.
//
// Data files are merged as `opa run` does with plain files: a file in the top
// folder is merged at the data root (data.json holding {"promgate": {...}} is
// data.promgate), and a file in a sub-folder a/b is merged at data.a.b. Every
// data file must hold an object. Objects merge key by key; the same key set to
// anything but an object by two files is an error.
func parse(root string, files []file) (parsed, error) {
	p := parsed{modules: map[string]*ast.Module{}, data: map[string]any{}}
	var errs []error
	for _, f := range files {
		display := displayName(root, f.name)
		switch {
		case isRego(f.name):
			m, err := ast.ParseModuleWithOpts(display, string(f.data), ast.ParserOptions{
				RegoVersion:       ast.RegoV1,
				ProcessAnnotation: true,
			})
			if err != nil {
				errs = append(errs, regoError(err))
				continue
			}
			if m == nil {
				errs = append(errs, fmt.Errorf("%s: empty module", display))
				continue
			}
			p.modules[display] = m
		case isData(f.name):
			v, err := parseData(f)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", display, err))
				continue
			}
			var prefix []string
			if dir := path.Dir(f.name); dir != "." {
				prefix = strings.Split(dir, "/")
			}
			if err := mergeAt(p.data, prefix, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", display, err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return parsed{}, err
	}
	if len(p.modules) == 0 {
		return parsed{}, errors.New("no .rego policy files")
	}
	return p, nil
}

func displayName(root, name string) string {
	if root == "" {
		return name
	}
	return strings.TrimSuffix(root, "/") + "/" + name
}

// parseData decodes a JSON or YAML data file, which must hold an object.
func parseData(f file) (map[string]any, error) {
	var v any
	var err error
	if path.Ext(f.name) == ".json" {
		err = util.UnmarshalJSON(bytes.TrimPrefix(f.data, []byte("\xef\xbb\xbf")), &v)
	} else {
		err = util.Unmarshal(f.data, &v)
	}
	if err != nil {
		return nil, fmt.Errorf("decode data: %w", err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("a data file must hold an object")
	}
	return obj, nil
}

// mergeAt merges v into dst at the path prefix.
func mergeAt(dst map[string]any, prefix []string, v map[string]any) error {
	for i, key := range prefix {
		next, ok := dst[key]
		if !ok {
			m := map[string]any{}
			dst[key] = m
			dst = m
			continue
		}
		m, ok := next.(map[string]any)
		if !ok {
			return fmt.Errorf("data at %s is already set to a non-object by another file", strings.Join(prefix[:i+1], "."))
		}
		dst = m
	}
	return merge(dst, v, prefix)
}

func merge(dst, src map[string]any, at []string) error {
	for k, sv := range src {
		dv, ok := dst[k]
		if !ok {
			dst[k] = sv
			continue
		}
		dm, dok := dv.(map[string]any)
		sm, sok := sv.(map[string]any)
		here := append(slices.Clone(at), k)
		if !dok || !sok {
			return fmt.Errorf("data at %s is set by more than one file", strings.Join(here, "."))
		}
		if err := merge(dm, sm, here); err != nil {
			return err
		}
	}
	return nil
}
