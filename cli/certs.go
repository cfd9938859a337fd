package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/promgate/promgate/tlsutil"
)

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// defaultClients are minted when no --client is given: an admin and two
// teams, matching the default policy's data.
var defaultClients = []string{"admin:admins", "team-a:team-a", "team-b:team-b"}

func runCerts(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "dev" {
		fmt.Fprintln(stderr, "usage: promgate certs dev --out DIR [--client CN[:OU,OU...]]... [--host NAME]... [--days N]")
		return errUsage
	}
	fs := newFlagSet("certs dev", stderr)
	out := fs.String("out", "", "folder to write the CA, server and client certificates to (required)")
	days := fs.Int("days", 90, "validity of every certificate, in days")
	var clients, hosts listFlag
	fs.Var(&clients, "client", "a client certificate as CN[:OU,OU...]; the OUs are its groups (repeatable; default admin:admins, team-a:team-a, team-b:team-b)")
	fs.Var(&hosts, "host", "a DNS name or IP address of the server certificate (repeatable; default localhost, 127.0.0.1, ::1)")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if *out == "" {
		fmt.Fprintln(stderr, "promgate certs dev: --out is required")
		return errUsage
	}
	if *days < 1 || *days > 825 {
		return errors.New("--days must be between 1 and 825")
	}
	if len(clients) == 0 {
		clients = defaultClients
	}
	opts := tlsutil.DevOptions{Hosts: hosts, Validity: time.Duration(*days) * 24 * time.Hour}
	for _, c := range clients {
		cn, ous, _ := strings.Cut(c, ":")
		if cn == "" {
			return fmt.Errorf("--client %q: the common name is empty", c)
		}
		spec := tlsutil.ClientSpec{CommonName: cn}
		if ous != "" {
			spec.OUs = strings.Split(ous, ",")
		}
		opts.Clients = append(opts.Clients, spec)
	}
	files, err := tlsutil.WriteDevPKI(*out, opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote a development PKI to %s (not for production):\n", *out)
	for _, f := range files {
		fmt.Fprintln(stdout, " ", f)
	}
	return nil
}
