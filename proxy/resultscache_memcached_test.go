package proxy

import (
	"crypto/sha256"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/promgate/promgate/config"
)

func writeKey(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mc.key")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func testTier(t *testing.T, key string) *memcachedTier {
	t.Helper()
	mc, err := newMemcachedTier(config.Memcached{Addresses: []string{"127.0.0.1:1"}, SigningKeyFile: writeKey(t, key), MaxItemSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return mc
}

// TestMemcachedSigned checks the memcached items' integrity: an item
// opens only under the key it was written for, with the fleet's signing
// key, unchanged. Anything else (a changed byte of the series, key or
// signature, another key, another signing key, a short item) is a miss.
func TestMemcachedSigned(t *testing.T) {
	mc := testTier(t, strings.Repeat("k", 48))
	key := sha256.Sum256([]byte("part"))
	series, err := json.Marshal([]partSeries{{Metric: json.RawMessage(`{"a":"b"}`), Values: []json.RawMessage{json.RawMessage(`[1,"1"]`)}}})
	if err != nil {
		t.Fatal(err)
	}
	item := append(append(append([]byte{}, key[:]...), mc.itemMAC(key, series)...), series...)
	if got, ok := mc.open(key, item); !ok || string(got) != string(series) {
		t.Fatalf("the item as written does not open: %v %s", ok, got)
	}
	for i := range item {
		bad := append([]byte{}, item...)
		bad[i] ^= 0x01
		if _, ok := mc.open(key, bad); ok {
			t.Fatalf("an item with byte %d changed opens", i)
		}
	}
	if _, ok := mc.open(sha256.Sum256([]byte("other part")), item); ok {
		t.Error("an item opens under another part's key")
	}
	if _, ok := testTier(t, strings.Repeat("o", 48)).open(key, item); ok {
		t.Error("an item opens with another signing key")
	}
	for _, n := range []int{0, 31, 64} {
		if _, ok := mc.open(key, item[:n]); ok {
			t.Errorf("an item cut to %d bytes opens", n)
		}
	}
	// A forger who knows the format but not the key.
	forged := append(append(append([]byte{}, key[:]...), make([]byte, sha256.Size)...), series...)
	if _, ok := mc.open(key, forged); ok {
		t.Error("an item with a made-up signature opens")
	}
}

// TestMemcachedSigningKey checks the key file: missing, short or absent is
// an error that names the file and never shows its content.
func TestMemcachedSigningKey(t *testing.T) {
	for _, tc := range []struct {
		name, path, want string
	}{
		{"none", "", "signing_key_file: required"},
		{"missing", filepath.Join(t.TempDir(), "nope"), "no such file"},
		{"short", writeKey(t, "  shortsecret-do-not-print \n"), "24 bytes, want at least 32"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newMemcachedTier(config.Memcached{Addresses: []string{"127.0.0.1:1"}, SigningKeyFile: tc.path})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "shortsecret") {
				t.Fatalf("the error shows the key: %v", err)
			}
		})
	}
}
