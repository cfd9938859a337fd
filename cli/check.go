package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/promgate/promgate/config"
)

// runCheck validates a configuration the way serve would build it, without
// listening, and lists every problem.
func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("check", stderr)
	configFile := fs.String("config", "promgate.yml", "configuration file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(*configFile)
	if err != nil {
		return listProblems(stdout, *configFile, err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if _, err := build(ctx, cfg, logger, true); err != nil {
		return listProblems(stdout, *configFile, err)
	}
	fmt.Fprintf(stdout, "%s: OK\n", *configFile)
	fmt.Fprintln(stdout, "note: certificates, policies and the upstream token file reload while serving; listen, internal_listen and upstream.url need a restart")
	return nil
}

// listProblems prints one problem per line and returns a summary error.
func listProblems(w io.Writer, file string, err error) error {
	var lines []string
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		for _, l := range strings.Split(e.Error(), "\n") {
			if l != "" {
				lines = append(lines, l)
			}
		}
	}
	walk(err)
	fmt.Fprintf(w, "%s:\n", file)
	for _, l := range lines {
		fmt.Fprintln(w, "  -", l)
	}
	return fmt.Errorf("%d problem(s) found in %s", len(lines), file)
}
