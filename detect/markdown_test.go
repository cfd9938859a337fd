package detect

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestDocsUpToDate fails when docs/detectors.md differs from what
// `promgate detectors docs` generates from the catalog.
func TestDocsUpToDate(t *testing.T) {
	var b bytes.Buffer
	if err := mustLoad(t).WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "docs", "detectors.md")
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v; generate it with: go run ./cmd/promgate detectors docs > docs/detectors.md", err)
	}
	if !bytes.Equal(got, b.Bytes()) {
		t.Fatalf("%s is stale; regenerate it with: go run ./cmd/promgate detectors docs > docs/detectors.md", path)
	}
}
