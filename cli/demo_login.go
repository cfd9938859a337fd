package cli

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/promgate/promgate/demo"
)

// The demo's browser login: a development OpenID provider on a loopback
// port (demo.DevIdP), and the gateway's authn.login against it, so that the
// console opens in a browser from one printed URL without a client
// certificate.

// demoLoginUsers mirror the demo's client certificates.
var demoLoginUsers = []demo.DevUser{
	{Name: "alice", Groups: []string{"team-a"}},
	{Name: "bob", Groups: []string{"team-b"}},
	{Name: "admin", Groups: []string{"admins"}},
}

// Files of the demo's login, in the demo folder; removed on exit like the
// configuration.
const (
	demoLoginSecretFile = "login-client-secret" //nolint:gosec // G101: a file name; the secret is random per run
	demoLoginCookieFile = "login-cookie-secret"
	demoLoginClientID   = "promgate-demo"
)

// demoLogin is the running development provider.
type demoLogin struct {
	issuer string
	srv    *http.Server
}

// startDemoLogin writes the client and cookie secrets into dir and starts
// the development provider for the gateway at publicBase (https://host:port).
func startDemoLogin(dir, publicBase string) (*demoLogin, []string, error) {
	ln, err := demo.Listen("127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	issuer := "http://" + ln.Addr().String()
	secret, cookie := make([]byte, 32), make([]byte, 48)
	_, _ = rand.Read(secret)
	_, _ = rand.Read(cookie)
	files := []string{filepath.Join(dir, demoLoginSecretFile), filepath.Join(dir, demoLoginCookieFile)}
	secretText := base64.RawURLEncoding.EncodeToString(secret)
	for i, content := range []string{secretText, base64.StdEncoding.EncodeToString(cookie)} {
		if err := os.WriteFile(files[i], []byte(content+"\n"), 0o600); err != nil {
			ln.Close() //nolint:errcheck // unused listener
			return nil, files, fmt.Errorf("write the demo login's secrets: %w", err)
		}
	}
	idp, err := demo.NewDevIdP(issuer, demoLoginClientID, secretText, publicBase+"/oauth2/callback", demoLoginUsers)
	if err != nil {
		ln.Close() //nolint:errcheck // unused listener
		return nil, files, err
	}
	l := &demoLogin{issuer: issuer, srv: &http.Server{Handler: idp.Handler(), ReadHeaderTimeout: 10 * time.Second}}
	go func() {
		if err := l.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintf(os.Stderr, "promgate demo: development login provider: %v\n", err)
		}
	}()
	return l, files, nil
}

func (l *demoLogin) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = l.srv.Shutdown(ctx)
}

// demoLoginConfig is the authn section of the demo's configuration.
func demoLoginConfig(issuer, publicBase string) string {
	return fmt.Sprintf(`authn:
  login:
    issuer: %q
    client_id: %s
    client_secret_file: %s
    redirect_url: %q
    cookie_secret_file: %s
`, issuer, demoLoginClientID, demoLoginSecretFile, publicBase+"/oauth2/callback", demoLoginCookieFile)
}

// demoPublicBase is the gateway's https URL as a browser on this machine
// reaches it.
func demoPublicBase(listen string) string {
	host, port, _ := net.SplitHostPort(listen)
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "https://" + net.JoinHostPort(host, port)
}

// printDemoConsole prints the console's URL first: one step to a browser.
func printDemoConsole(w io.Writer, base, dir string) {
	fmt.Fprintf(w, `
Open the security console in a browser: %[1]s/ui/
  Sign in at the demo's development login as alice (team-a), bob (team-b) or admin
  (everything); it asks no password and is for the demo only. The browser warns that
  the gateway's certificate comes from an unknown CA (the demo's own): accept it, or
  import %[2]s as a trusted authority.
`, base, filepath.Join(dir, "ca.crt"))
}
