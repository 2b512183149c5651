// Command dispatch runs a Dispatch server (`dispatch serve`, or `dispatch test
// <endpoint-url>`) and inspects its calls (`dispatch calls`, `dispatch call
// ID`). See internal/cli.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/dispatchkit/dispatch/internal/cli"
)

// gcPercent is the garbage collector's target of the dispatch command
// when GOGC is not set. A busy local server keeps a small live heap and
// allocates fast (requests, signatures, HTTP on both sides), so with Go's
// default of 100 it collects dozens of times a second: in `dispatch bench`
// (b), GOGC=400 cut the CPU per workflow by about a fifth. The heap may
// then grow to five times the live data, a few tens of MB for a local
// server. Programs that embed the server keep their own setting.
const gcPercent = 400

func main() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(gcPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
