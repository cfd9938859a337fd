package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

const usage = `promgate: an authenticating, label-enforcing gateway for Prometheus.

Usage:
  promgate serve --config FILE       run the gateway (the default command)
  promgate check --config FILE       validate config, certificates and policies
  promgate certs dev --out DIR       write a development CA, server and client certificates
  promgate demo [--dir DIR]          run the gateway, dev certificates and a synthetic Prometheus on this machine
  promgate policy test [DIR]         run the Rego unit tests of a policy folder
  promgate policy eval --config FILE --input FILE
                                     evaluate the policy for one input, as serve would
  promgate audit verify FILE...      verify an audit trail's hash chain, files oldest first
  promgate detectors list|export|docs
                                     the built-in security detectors: a table, Prometheus rules, or their reference
  promgate version                   print version and build information

Run "promgate COMMAND -h" for a command's flags.
`

// errUsage marks a command-line mistake: exit code 2.
var errUsage = errors.New("usage")

// Main runs the command in args and returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = runServe(ctx, args, stdout, stderr)
	case "check":
		err = runCheck(ctx, args, stdout, stderr)
	case "certs":
		err = runCerts(args, stdout, stderr)
	case "demo":
		err = runDemo(ctx, args, stdout, stderr)
	case "policy":
		err = runPolicy(ctx, args, stdout, stderr)
	case "audit":
		err = runAudit(args, stdout, stderr)
	case "detectors":
		err = runDetectors(ctx, args, stdout, stderr)
	case "version":
		err = runVersion(args, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "promgate: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintf(stderr, "promgate %s: %v\n", cmd, err)
		return 1
	}
}

// newFlagSet returns a flag set that reports errors as errUsage.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("promgate "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	return nil
}

// newLogger returns the JSON logger on stderr.
func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log.level: %w", err)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), nil
}
