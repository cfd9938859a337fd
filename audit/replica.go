package audit

import (
	"path/filepath"
	"regexp"
	"strings"
)

// ReplicaPath returns the audit file of one replica of a fleet: path with
// "-" and the replica id inserted before its extension, so that
// /var/log/promgate/audit.log becomes /var/log/promgate/audit-gw-1.log for
// replica gw-1. Every replica then writes its own hash chain, with its own
// rotation, and no two processes ever append to one file. An empty id, or
// stdout ("-"), returns path unchanged.
func ReplicaPath(path, replica string) string {
	if replica == "" || path == "-" {
		return path
	}
	dir, base := filepath.Split(path)
	ext := filepath.Ext(base)
	if ext == base {
		ext = "" // a dot file such as .audit has no extension
	}
	return dir + strings.TrimSuffix(base, ext) + "-" + replica + ext
}

// rotated matches the suffix rotation gives a file: audit.log.3.
var rotated = regexp.MustCompile(`\.([0-9]+)$`)

// Chains sorts audit files into hash chains by name: a file and its rotated
// copies (audit-gw-1.log, audit-gw-1.log.1, audit-gw-1.log.2, ...) are one
// chain; files of different names, such as each replica's, are separate
// chains. Within a chain the files keep the order they were given in, which
// must be oldest first. Chains are returned in the order their first file
// was given, each named by its file without the rotation suffix.
func Chains(files []string) (names []string, chains [][]string) {
	index := map[string]int{}
	for _, f := range files {
		name := rotated.ReplaceAllString(f, "")
		i, ok := index[name]
		if !ok {
			i = len(chains)
			index[name] = i
			names = append(names, name)
			chains = append(chains, nil)
		}
		chains[i] = append(chains[i], f)
	}
	return names, chains
}
