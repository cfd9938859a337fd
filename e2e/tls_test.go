//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTLSGrade runs testssl (Debian package testssl.sh) against a gateway of
// its own and fails on any "NOT ok" finding, any protocol below TLS 1.2, and
// any CBC or otherwise non-AEAD cipher, so that no client can be downgraded
// to a weak protocol or suite.
func TestTLSGrade(t *testing.T) {
	testssl, err := exec.LookPath("testssl")
	if err != nil {
		t.Fatal("testssl not found in PATH: run scripts/install-deps.sh (Debian package testssl.sh)")
	}
	g := startOwnGateway(t, "tls", "VerifyClientCertIfGiven")

	out := filepath.Join(t.TempDir(), "testssl.json")
	cmd := exec.Command(testssl, "--quiet", "--color", "0", "--nodns", "none", "--warnings", "off",
		"-p", "-s", "-f", "-S", "-E", "--add-ca", filepath.Join(env.pki, "ca.crt"), "--jsonfile", out, g.addr)
	start := time.Now()
	if b, err := cmd.CombinedOutput(); err != nil {
		// testssl exits non-zero on some findings; the JSON is what counts.
		t.Logf("testssl exited with %v after %v; output tail:\n%s", err, time.Since(start).Round(time.Second), tail(string(b), 2000))
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("testssl wrote no JSON: %v", err)
	}
	var findings []struct {
		ID       string `json:"id"`
		Severity string `json:"severity"`
		Finding  string `json:"finding"`
	}
	if err := json.Unmarshal(b, &findings); err != nil {
		t.Fatalf("testssl JSON: %v", err)
	}
	if len(findings) < 20 {
		t.Fatalf("testssl reported only %d findings; the scan did not run", len(findings))
	}
	offered := map[string]bool{}
	for _, f := range findings {
		id, text := f.ID, f.Finding
		switch {
		case id == "cert_revocation":
			// The dev CA has no CRL or OCSP URI; that is a property of the
			// development certificate, not of the listener's TLS settings.
			continue
		case strings.Contains(text, "NOT ok"):
			t.Errorf("testssl %s: %s", id, text)
		case (id == "SSLv2" || id == "SSLv3" || id == "TLS1" || id == "TLS1_1") && !strings.HasPrefix(text, "not offered"):
			t.Errorf("protocol %s: %s", id, text)
		case id == "TLS1_2" || id == "TLS1_3":
			offered[id] = strings.HasPrefix(text, "offered")
		case strings.HasPrefix(id, "cipher-") || strings.HasPrefix(id, "cipher_x"):
			if strings.Contains(text, "CBC") || strings.Contains(text, "-SHA ") || strings.Contains(text, "RC4") || strings.Contains(text, "3DES") {
				t.Errorf("non-AEAD cipher offered: %s %s", id, text)
			}
		case id == "cipherlist_OBSOLETED" || id == "cipherlist_AVERAGE" || id == "cipherlist_3DES_IDEA" || id == "cipherlist_LOW" || id == "cipherlist_EXPORT" || id == "cipherlist_NULL" || id == "cipherlist_aNULL":
			if !strings.HasPrefix(text, "not offered") {
				t.Errorf("%s: %s", id, text)
			}
		}
		if f.Severity == "CRITICAL" || (f.Severity == "HIGH" && id != "cert_revocation") {
			t.Errorf("testssl %s severity %s: %s", id, f.Severity, text)
		}
	}
	if !offered["TLS1_2"] || !offered["TLS1_3"] {
		t.Errorf("TLS 1.2 and 1.3 must both be offered; got %v", offered)
	}
	t.Logf("testssl: %d findings in %v", len(findings), time.Since(start).Round(time.Second))
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
