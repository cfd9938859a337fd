package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/promgate/promgate/config"
	"github.com/promgate/promgate/demo"
	"github.com/promgate/promgate/policies"
	"github.com/promgate/promgate/tlsutil"
)

const demoHelp = `Usage: promgate demo [--listen ADDR] [--internal-listen ADDR] [--dir DIR] [--keep]

Runs the whole product on one machine: a development CA with certificates for
alice (group team-a), bob (group team-b) and admin (group admins), the gateway
with the default policy on https://ADDR, and an embedded upstream made of
Prometheus' own PromQL engine over a day of synthetic data held in memory
(the namespaces team-a, team-b and kube-system, plus simulated attacks, and a
rule group whose alerts fire on them). It prints the security console's URL
and ready-to-paste curl commands. Ctrl-C stops everything.

The folder DIR holds:
  ca.crt, ca.key, server.*, client-*.crt/.key   the development PKI; created on
      the first run and reused by every later run (delete the folder for a new
      CA). It is never removed.
  promgate.yml    the gateway configuration the demo runs
  policies/       the default policy, written when missing; edit it while the
      demo runs and the gateway reloads it
  audit.log       one JSON record per request
  login-client-secret, login-cookie-secret   the browser login's secrets: the
      demo runs a development OpenID provider on a loopback port, whose
      sign-in page lets anyone pick alice, bob or admin, so that the printed
      console URL opens in a browser without a client certificate
On exit, promgate.yml, policies/, audit.log and the login's secrets are
removed unless --keep is given, so that the next run starts with the default
policy and an empty audit trail. The synthetic data is never kept: it lives in
memory and is generated anew at every start.

Flags:
`

// demoClients are the identities the demo issues certificates to.
var demoClients = []tlsutil.ClientSpec{
	{CommonName: "alice", OUs: []string{"team-a"}},
	{CommonName: "bob", OUs: []string{"team-b"}},
	{CommonName: "admin", OUs: []string{"admins"}},
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	flags := newFlagSet("demo", stderr)
	flags.Usage = func() {
		fmt.Fprint(stderr, demoHelp)
		flags.PrintDefaults()
	}
	listen := flags.String("listen", "127.0.0.1:8443", "address of the gateway's public (TLS) listener")
	internal := flags.String("internal-listen", "127.0.0.1:9091", "address of the gateway's internal listener (/metrics, /-/ready)")
	dir := flags.String("dir", "", "the demo folder (default: promgate/demo in the user cache folder, or ./promgate-demo)")
	keep := flags.Bool("keep", false, "keep the configuration, policies and audit log on exit")
	logLevel := flags.String("log.level", "warn", "log level of the gateway's JSON logs on stderr: debug, info, warn or error")
	if err := parseFlags(flags, args); err != nil {
		return err
	}
	if flags.NArg() > 0 {
		fmt.Fprintf(stderr, "promgate demo: unexpected argument %q\n", flags.Arg(0))
		return errUsage
	}
	logger, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	if *dir == "" {
		*dir = defaultDemoDir()
	}
	if *dir, err = filepath.Abs(*dir); err != nil {
		return fmt.Errorf("--dir: %w", err)
	}
	host, _, err := net.SplitHostPort(*listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}

	for _, a := range []string{*listen, *internal} {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("%w (choose other addresses with --listen and --internal-listen)", err)
		}
		ln.Close() //nolint:errcheck // the listener only proved the address free; nothing was served
	}

	newPKI, err := ensureDemoPKI(*dir, host)
	if err != nil {
		return err
	}
	if newPKI {
		fmt.Fprintf(stdout, "Created a development CA and certificates in %s (not for production).\n", *dir)
	} else {
		fmt.Fprintf(stdout, "Using the development CA and certificates in %s.\n", *dir)
	}
	generated := []string{filepath.Join(*dir, "promgate.yml")}
	policyDir := filepath.Join(*dir, "policies")
	if _, err := os.Stat(policyDir); errors.Is(err, fs.ErrNotExist) {
		if err := writePolicies(policyDir); err != nil {
			return err
		}
		generated = append(generated, policyDir)
	} else if err != nil {
		return fmt.Errorf("policies: %w", err)
	} else {
		fmt.Fprintf(stdout, "Using the policy folder %s as it is (remove it for the default policy).\n", policyDir)
	}
	auditPath := filepath.Join(*dir, "audit.log")
	generated = append(generated, auditPath)
	if !*keep {
		defer func() {
			for _, p := range generated {
				_ = os.RemoveAll(p)
			}
			matches, _ := filepath.Glob(auditPath + ".*")
			for _, p := range matches {
				_ = os.Remove(p)
			}
		}()
	}

	begin := time.Now()
	up, err := demo.New(demo.Options{Logger: logger.With("component", "demo upstream")})
	if err != nil {
		return err
	}
	defer up.Close() //nolint:errcheck // the demo is ending; there is nothing left to do about a Close error
	ln, err := demo.Listen("127.0.0.1:0")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	upDone := make(chan error, 1)
	go func() { upDone <- up.Serve(ctx, ln) }()
	go up.Run(ctx)
	fmt.Fprintf(stdout, "Generated %d series over the last %v in %v; the embedded upstream serves them on %s.\n",
		up.Scenario().NumSeries(), demo.History, time.Since(begin).Round(time.Millisecond), ln.Addr())

	publicBase := demoPublicBase(*listen)
	login, loginFiles, err := startDemoLogin(*dir, publicBase)
	generated = append(generated, loginFiles...)
	if err != nil {
		return err
	}
	defer login.close()
	cfgText := demoConfig(*listen, *internal, "http://"+ln.Addr().String()) + demoLoginConfig(login.issuer, publicBase)
	if err := os.WriteFile(generated[0], []byte(cfgText), 0o600); err != nil {
		return fmt.Errorf("write the configuration: %w", err)
	}
	cfg, err := config.Parse([]byte(cfgText), *dir)
	if err != nil {
		return fmt.Errorf("the demo configuration: %w", err)
	}
	g, err := build(ctx, cfg, logger, false)
	if err != nil {
		return err
	}
	go func() {
		if waitDemoGateway(ctx, *dir, *listen, 10*time.Second) {
			printDemoConsole(stdout, publicBase, *dir)
			printDemoCommands(stdout, *dir, *listen, *internal, auditPath, policyDir, *keep)
		}
	}()
	serveErr := g.serve(ctx)
	cancel()
	if err := <-upDone; err != nil && serveErr == nil {
		serveErr = fmt.Errorf("embedded upstream: %w", err)
	}
	if serveErr == nil {
		fmt.Fprintln(stdout, "promgate demo stopped.")
	}
	return serveErr
}

// defaultDemoDir is promgate/demo in the user cache folder, or
// ./promgate-demo when there is none.
func defaultDemoDir() string {
	if c, err := os.UserCacheDir(); err == nil {
		return filepath.Join(c, "promgate", "demo")
	}
	return "promgate-demo"
}

// ensureDemoPKI writes the demo's PKI into dir unless it holds one. An
// existing PKI must be complete and still valid; it is never replaced.
func ensureDemoPKI(dir, host string) (created bool, err error) {
	_, err = os.Stat(filepath.Join(dir, tlsutil.DevCACertFile))
	if errors.Is(err, fs.ErrNotExist) {
		opts := tlsutil.DevOptions{Clients: demoClients}
		if ip := net.ParseIP(host); host != "" && host != "localhost" && (ip == nil || !ip.IsUnspecified()) &&
			host != "127.0.0.1" && host != "::1" {
			opts.Hosts = []string{"localhost", "127.0.0.1", "::1", host}
		}
		if _, err := tlsutil.WriteDevPKI(dir, opts); err != nil {
			return false, err
		}
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("check %s: %w", dir, err)
	}
	files := []string{tlsutil.DevCACertFile, tlsutil.DevServerCertFile, tlsutil.DevServerKeyFile}
	for _, c := range demoClients {
		crt, key, err := tlsutil.DevClientFiles(c.CommonName)
		if err != nil {
			return false, err
		}
		files = append(files, crt, key)
	}
	now := time.Now()
	for _, f := range files {
		p := filepath.Join(dir, f)
		b, err := os.ReadFile(p)
		if err != nil {
			return false, fmt.Errorf("%s holds a CA but not a complete demo PKI (%w): remove the folder or choose another --dir", dir, err)
		}
		if !strings.HasSuffix(f, ".crt") {
			continue
		}
		block, _ := pem.Decode(b)
		if block == nil {
			return false, fmt.Errorf("%s is not a PEM certificate: remove %s or choose another --dir", p, dir)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return false, fmt.Errorf("%s: %w", p, err)
		}
		if now.After(cert.NotAfter) {
			return false, fmt.Errorf("%s expired on %s: remove %s for a new development PKI", p, cert.NotAfter.Format(time.DateOnly), dir)
		}
	}
	return false, nil
}

// writePolicies writes the embedded default policy into dir.
func writePolicies(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	return fs.WalkDir(policies.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := policies.FS.ReadFile(path)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(path)), b, 0o600); err != nil {
			return fmt.Errorf("write the default policy: %w", err)
		}
		return nil
	})
}

// demoConfig is the gateway configuration of the demo. Paths are relative to
// the demo folder. Client certificates are verified when given, so that a
// request without one reaches the gateway and is answered 401.
func demoConfig(listen, internal, upstream string) string {
	return fmt.Sprintf(`# Written by promgate demo; the upstream address changes at every run.
listen: %q
internal_listen: %q
tls:
  cert_file: server.crt
  key_file: server.key
  client_ca_file: ca.crt
  client_auth_type: VerifyClientCertIfGiven
upstream:
  url: %q
authz:
  policies: policies
audit:
  path: audit.log
detectors:
  enabled: true
  interval: 15s
`, listen, internal, upstream)
}

// waitDemoGateway reports whether the gateway answers a TLS handshake on
// addr with the demo's own server certificate within d, so that another
// process on the same port is never mistaken for it.
func waitDemoGateway(ctx context.Context, dir, addr string, d time.Duration) bool {
	caPEM, err := os.ReadFile(filepath.Join(dir, tlsutil.DevCACertFile))
	if err != nil {
		return false
	}
	serverPEM, err := os.ReadFile(filepath.Join(dir, tlsutil.DevServerCertFile))
	if err != nil {
		return false
	}
	block, _ := pem.Decode(serverPEM)
	if block == nil {
		return false
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	host, port, _ := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	dialer := &tls.Dialer{NetDialer: &net.Dialer{Timeout: time.Second}, Config: &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12}}
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		c, err := dialer.DialContext(ctx, "tcp", net.JoinHostPort(host, port))
		if err == nil {
			state := c.(*tls.Conn).ConnectionState()
			c.Close() //nolint:errcheck // a probe connection: only its handshake was used
			return len(state.PeerCertificates) > 0 && bytes.Equal(state.PeerCertificates[0].Raw, block.Bytes)
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
	return false
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-:") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func printDemoCommands(w io.Writer, dir, listen, internal, auditPath, policyDir string, keep bool) {
	host, port, _ := net.SplitHostPort(listen)
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	base := "https://" + net.JoinHostPort(host, port)
	ca := "--cacert " + shellQuote(filepath.Join(dir, tlsutil.DevCACertFile))
	as := func(cn string) string {
		crt, key, _ := tlsutil.DevClientFiles(cn)
		return ca + " --cert " + shellQuote(filepath.Join(dir, crt)) + " --key " + shellQuote(filepath.Join(dir, key))
	}
	query := func(who, q string) string {
		return "curl -sS " + who + " -G " + base + "/api/v1/query --data-urlencode " + shellQuote("query="+q)
	}
	fmt.Fprintf(w, `
promgate demo is ready: the gateway listens on %[1]s.

# alice (group team-a) works and sees only team-a:
%[2]s

# admin (group admins) sees every namespace:
%[3]s

# without a certificate: 401
%[4]s

# alice asking for {namespace="team-b"} is refused: 403
%[5]s

# the simulated attacks, as admin (alice sees only team-a's):
%[6]s

# the built-in detectors and their state (the background evaluator runs every 15 s):
curl -sS %[7]s %[1]s/api/promgate/v1/detectors
# one detector evaluated now, as admin and as alice (confined to team-a):
curl -sS %[7]s %[1]s/api/promgate/v1/detectors/pod_cpu_over_one_core
curl -sS %[11]s %[1]s/api/promgate/v1/detectors/pod_cpu_over_one_core
# a cluster-wide detector is refused for alice rather than run confined: 403
curl -sS %[11]s %[1]s/api/promgate/v1/detectors/k8s_apiserver_unauthorized

Gateway metrics: http://%[8]s/metrics
Audit trail:     %[9]s
Policy:          %[10]s (edited files are reloaded within seconds)
`,
		base,
		query(as("alice"), `count by (namespace) (up)`),
		query(as("admin"), `count by (namespace) (up)`),
		query(ca, `count by (namespace) (up)`),
		query(as("alice"), `up{namespace="team-b"}`),
		query(as("admin"), `sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{container!="", image!=""}[5m])) > 1`),
		as("admin"), internal, auditPath, policyDir, as("alice"))
	if keep {
		fmt.Fprintf(w, "Ctrl-C stops the demo; --keep keeps %s as it is.\n", dir)
	} else {
		fmt.Fprintf(w, "Ctrl-C stops the demo and removes the configuration, policies and audit log (the certificates stay in %s).\n", dir)
	}
}
