// Command dispatch runs a local Dispatch server (`dispatch test
// <endpoint-url>`) and inspects its calls (`dispatch calls`, `dispatch call
// ID`). See internal/cli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/dispatchkit/dispatch/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
