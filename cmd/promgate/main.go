// Command promgate is the authenticating gateway for Prometheus. See the
// cli package for its commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/promgate/promgate/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
