package audit

import (
	"testing"
)

// FuzzParseLine feeds the verifier's line parser arbitrary bytes, as a
// tampered or truncated audit file would. It must never panic, and a line
// it accepts has a well-formed hash and prev_hash.
func FuzzParseLine(f *testing.F) {
	zero := "0000000000000000000000000000000000000000000000000000000000000000"
	for _, s := range []string{
		`{"id":"a","prev_hash":"` + zero + `","chain_start":"new","hash":"` + zero + `"}`,
		`{"id":"a","prev_hash":"` + zero + `","hash":"` + zero + `"}`,
		`{"id":"a","prev_hash":"x","hash":"` + zero + `"}`,
		`{"hash":"` + zero + `"}`,
		`not json,"hash":"` + zero + `"}`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		c, err := parseLine(line)
		if err != nil {
			return
		}
		if !isHex(c.Hash) || !isHex(c.PrevHash) || !isHex(c.Computed) {
			t.Fatalf("accepted %q with hash %q prev_hash %q computed %q", line, c.Hash, c.PrevHash, c.Computed)
		}
	})
}
