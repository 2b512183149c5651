package cli

import (
	"fmt"
	"io"
	"net"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/dispatchkit/dispatch/server"
)

// testCommand is `dispatch test <endpoint-url>`: a local Dispatch server
// for development, serving until interrupted.
func testCommand(stdout, stderr io.Writer) *cobra.Command {
	var (
		apiKey   string
		hostname string
		port     int
		verbose  bool
		flags    serverFlags
	)
	cmd := &cobra.Command{
		Use:   "test <endpoint-url>",
		Short: "Run a local Dispatch server that calls the endpoint at <endpoint-url>",
		Long: `Run a local Dispatch server that sends function calls to the endpoint at
<endpoint-url> (for example http://127.0.0.1:8000), print the environment
the SDK needs, and serve until interrupted (Ctrl-C).

Calls are kept in a SQLite database in the state directory (--state, by
default $XDG_STATE_HOME/dispatch or ~/.local/state/dispatch), so they
survive a restart; --memory keeps them in memory only. The signing key is
made on first start and kept in the state directory, so the verification
key printed stays valid across restarts.

--postgres URL keeps the calls and the signing key in a PostgreSQL database
instead (postgres://user:password@host:5432/dbname; the password may come
from PGPASSWORD or ~/.pgpass rather than the command line). The tables are
made on first start. Several servers may share one database, as replicas
that split its calls between them (see dispatch serve --help).

Calls may name their own endpoint. The server sends requests only to
<endpoint-url> (and URLs below its path) and to loopback endpoints
(localhost, 127.0.0.0/8, ::1, any port): it refuses calls to any other
endpoint with INVALID_ARGUMENT. --allow-endpoint PATTERN (repeatable) allows
more:

  --allow-endpoint https://api.example.com        that host, port 443, any path
  --allow-endpoint 'https://*.example.com:*/app'  its subdomains, any port, below /app
  --allow-endpoint http://10.0.0.5:8000           that address and port
  --allow-endpoint '*'                            any endpoint: only on a trusted network

URLs with credentials (user:password@) or a fragment are always refused, and
so are unspecified (0.0.0.0), link-local (169.254.169.254, the cloud
metadata service) and multicast addresses that a host name resolves to,
unless a pattern names that IP literal or is '*'.

A Dispatch request with an Idempotency-Key header (DispatchKey in the Go SDK)
starts its calls once: a request with the same key within --key-retention
(24h) gets the ids of the first one and starts nothing.

--sync full makes SQLite sync the disk at every commit (synchronous=FULL),
so that accepted calls survive a power loss or a crash of the machine; the
default, normal, syncs at checkpoints: a commit is in the write-ahead log
before it is acknowledged, which survives a crash of the process (kill -9)
but may lose the last commits on a power loss. --sync is refused with
--memory (no file to sync) and --postgres (PostgreSQL's own
synchronous_commit decides).`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{fmt.Errorf("test takes the endpoint URL, as in \"dispatch test http://127.0.0.1:8000\"")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if port < 0 || port > 65535 {
				return usageError{fmt.Errorf("--port %d is out of range: want 0 (any free port) to 65535", port)}
			}
			if err := flags.check(); err != nil {
				return err
			}
			cfg := server.Config{
				Endpoint: args[0],
				Addr:     net.JoinHostPort(hostname, strconv.Itoa(port)),
				APIKey:   apiKey,
				Logger:   newLogger(stderr, false, verbose),
				// Loopback by default: the endpoint being developed and
				// its neighbours on this machine.
				AllowEndpoints: []string{"loopback"},
			}
			if err := flags.apply(&cfg); err != nil {
				return err
			}
			return server.Serve(cmd.Context(), cfg, func(s *server.Server) {
				_, p, _ := net.SplitHostPort(s.Addr())
				writeBanner(stdout, net.JoinHostPort(hostname, p), s)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&apiKey, "api-key", "test", "API key the SDK must send (DISPATCH_API_KEY)")
	f.StringVar(&hostname, "hostname", "127.0.0.1", "host name or address to listen on")
	f.IntVar(&port, "port", 4450, "port to listen on (0 picks a free one)")
	f.BoolVarP(&verbose, "verbose", "v", false, "log every function run")
	flags.register(f, true, "also allow calls to endpoints matching this pattern (repeatable; loopback and <endpoint-url> are always allowed)")
	return cmd
}

// writeBanner prints the banner of PROTOCOL.md, byte for byte.
func writeBanner(w io.Writer, addr string, s *server.Server) {
	fmt.Fprintf(w, `Spawned a local Dispatch server on %s

Dispatching function calls to the endpoint at %s

The Dispatch SDK can be configured with:

  export DISPATCH_API_URL="http://%s"
  export DISPATCH_API_KEY="%s"
  export DISPATCH_ENDPOINT_URL="%s"
  export DISPATCH_VERIFICATION_KEY="%s"

`, addr, s.Endpoint(), addr, s.APIKey(), s.Endpoint(), s.VerificationKey())
}

// checkSync validates the --sync of dispatch test (set: given on the
// command line) and reports whether it asks for synchronous=FULL.
func checkSync(mode string, set, memory, postgres bool) (bool, error) {
	if mode != "normal" && mode != "full" {
		return false, fmt.Errorf("--sync %q: want normal (sync at checkpoints: survives a process crash) or full (sync every commit: survives a power loss)", mode)
	}
	switch {
	case set && memory:
		return false, fmt.Errorf("--sync %s: --memory keeps no file to sync: leave out --sync or --memory", mode)
	case set && postgres:
		return false, fmt.Errorf("--sync %s: with --postgres, PostgreSQL's own synchronous_commit decides durability (set it on the server or the database): leave out --sync", mode)
	}
	return mode == "full", nil
}
