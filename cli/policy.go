package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/promgate/promgate/authz"
)

func runPolicy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "test" {
		fmt.Fprintln(stderr, "usage: promgate policy test [-v] [DIR]")
		return errUsage
	}
	fs := newFlagSet("policy test", stderr)
	verbose := fs.Bool("v", false, "list every test")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	dir := "policies"
	if fs.NArg() > 1 {
		return errUsage
	}
	if fs.NArg() == 1 {
		dir = fs.Arg(0)
	}
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("policy folder: %w", err)
	}
	ok, err := authz.Test(ctx, os.DirFS(dir), stdout, *verbose)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("policy tests failed")
	}
	return nil
}
