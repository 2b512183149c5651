package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dispatchkit/dispatch/internal/endpointpolicy"
	"github.com/dispatchkit/dispatch/internal/signature"
	"github.com/dispatchkit/dispatch/server"
)

// defaultServeAddr is where `dispatch serve` listens without --listen:
// every interface, on the port `dispatch test` uses on loopback.
const defaultServeAddr = ":4450"

// minAPIKeyLen is the shortest API key `dispatch serve` takes.
const minAPIKeyLen = 16

// apiKeyHint says how to set a good API key.
const apiKeyHint = `set DISPATCH_API_KEY to a secret of at least 16 characters, for example: export DISPATCH_API_KEY="$(openssl rand -hex 32)"`

// serveCommand is `dispatch serve`: the server for production.
func serveCommand(stdout, stderr io.Writer) *cobra.Command {
	var (
		endpoints []string
		listen    string
		advertise string
		logFormat string
		verbose   bool
		flags     serverFlags
	)
	cmd := &cobra.Command{
		Use:   "serve [--postgres URL [--advertise URL] | --state DIR] [--endpoint URL ...] [--listen ADDR]",
		Short: "Run the Dispatch server for production",
		Long: `Run the Dispatch server for production, serving until SIGTERM or SIGINT, on
which it stops accepting requests, lets those in progress finish (5 s at
most) and closes its store: calls not finished are resumed by the next start.

Unlike dispatch test, which is for development:

  - the API key comes from DISPATCH_API_KEY, which is required: at least 16
    characters and not "test" (for example "$(openssl rand -hex 32)");
  - it listens on --listen, by default :4450 (every interface, port 4450);
    put it behind a TLS-terminating proxy, or on a private network;
  - calls may name only the --endpoint URLs (and URLs below their paths,
    loopback or not) and what --allow-endpoint allows; other loopback
    endpoints are refused unless --allow-endpoint loopback;
  - logs are JSON lines on stderr (--log-format console for people);
  - it prints one start line on stdout, with its URL, its default endpoint
    and its verification key, not the banner of dispatch test.

--endpoint URL is repeatable: calls that name no endpoint go to the first;
calls may name any of them. With no --endpoint, every call must name its
own, allowed by --allow-endpoint (see dispatch test --help for patterns).

Calls are kept in a SQLite database in the state directory (--state, by
default $XDG_STATE_HOME/dispatch or ~/.local/state/dispatch), or in a
PostgreSQL database (--postgres postgres://user@host:5432/db; the password
may come from PGPASSWORD or ~/.pgpass). One serve per state directory: a
second one is refused while the first runs. On PostgreSQL, any number of
serves may share one database, as replicas: the calls are split into
partitions, each run by one replica under a lease that the others take
over within --lease-ttl (10s) of its death; any replica takes any
request. A shorter --lease-ttl fails over sooner, at the cost of more
renewals (five per lease time, one transaction per partition held). Each
needs the same DISPATCH_API_KEY, --endpoint and --lease-ttl flags, and a
URL at which the others reach it (--advertise, by default
http://HOST:PORT of --listen).
With SQLite, --sync full syncs the disk at every commit (survives a power
loss); the default, normal, syncs at checkpoints (survives a crash of the
process). With PostgreSQL its own synchronous_commit decides.

The signing key is DISPATCH_SIGNING_KEY when set (standard base64 of the
32-byte Ed25519 seed, or PEM PKCS #8), which overrides the key kept in the
state directory or the database; else that kept key, made on first start.
The verification key to give your endpoints (DISPATCH_VERIFICATION_KEY) is
in the start line.

A Dispatch request with an Idempotency-Key header starts its calls once
within --key-retention (24h).`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 0 {
				return usageError{fmt.Errorf("serve takes no arguments: give the endpoint with --endpoint, as in \"dispatch serve --endpoint https://fn.example.com\"")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := serveConfig(endpoints, listen, logFormat, verbose, &flags, stderr)
			if err != nil {
				return err
			}
			if advertise != "" {
				if flags.postgres == "" {
					return usageError{fmt.Errorf("--advertise is the URL at which the other replicas of a PostgreSQL database reach this one: give --postgres too, or leave it out")}
				}
				cfg.Advertise = advertise
			}
			return server.Serve(cmd.Context(), cfg, func(s *server.Server) {
				writeStartLine(stdout, s)
			})
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&endpoints, "endpoint", nil, "URL of a function service calls may be sent to (repeatable; calls naming no endpoint go to the first)")
	f.StringVar(&listen, "listen", defaultServeAddr, "host:port to listen on (\":4450\" is every interface)")
	f.StringVar(&advertise, "advertise", "", "with --postgres: the URL at which the other replicas reach this one (default http://HOST:PORT of --listen, HOST this machine's name when --listen has no host)")
	f.StringVar(&logFormat, "log-format", "json", "log format on stderr: json (JSON lines) or console")
	f.BoolVarP(&verbose, "verbose", "v", false, "log every function run")
	flags.register(f, false, "also allow calls to endpoints matching this pattern (repeatable; loopback for this machine's endpoints, '*' for any)")
	return cmd
}

// serveConfig checks the flags and environment of `dispatch serve` and
// returns the server's configuration.
func serveConfig(endpoints []string, listen, logFormat string, verbose bool, flags *serverFlags, stderr io.Writer) (server.Config, error) {
	var cfg server.Config
	key, err := serveAPIKey(os.Getenv("DISPATCH_API_KEY"))
	if err != nil {
		return cfg, err
	}
	if err := flags.check(); err != nil {
		return cfg, err
	}
	if logFormat != "json" && logFormat != "console" {
		return cfg, usageError{fmt.Errorf("--log-format %q is not known: want json (the default) or console", logFormat)}
	}
	if listen == "" {
		return cfg, usageError{fmt.Errorf("--listen is empty: want host:port, such as :4450 (every interface) or 10.0.0.2:4450")}
	}
	cfg = server.Config{
		Addr:   listen,
		APIKey: key,
		Logger: newLogger(stderr, logFormat == "json", verbose),
	}
	for i, ep := range endpoints {
		p, err := endpointpolicy.EndpointPattern(ep)
		if err != nil {
			return cfg, usageError{fmt.Errorf("--endpoint %q: %v; want one such as https://fn.example.com/app", endpointpolicy.Redact(ep), err)}
		}
		if i == 0 {
			cfg.Endpoint = ep
		} else {
			cfg.AllowEndpoints = append(cfg.AllowEndpoints, p)
		}
	}
	if s := os.Getenv("DISPATCH_SIGNING_KEY"); s != "" {
		k, err := signature.ParsePrivateKey(s)
		if err != nil {
			return cfg, fmt.Errorf("DISPATCH_SIGNING_KEY is unreadable: %v; unset it to use the key kept in the state directory or database", err)
		}
		cfg.SigningKey = k
	}
	if err := flags.apply(&cfg); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// serveAPIKey checks the API key of `dispatch serve`.
func serveAPIKey(key string) (string, error) {
	switch k := strings.TrimSpace(key); {
	case key == "":
		return "", errors.New("DISPATCH_API_KEY is not set: dispatch serve needs an API key; " + apiKeyHint)
	case k != key:
		return "", errors.New("DISPATCH_API_KEY starts or ends with white space, which clients would not send; " + apiKeyHint)
	case strings.EqualFold(k, "test"):
		return "", errors.New(`DISPATCH_API_KEY is "test", the key of dispatch test, which anyone may guess; ` + apiKeyHint)
	case len(k) < minAPIKeyLen:
		return "", fmt.Errorf("DISPATCH_API_KEY has %d characters, too short to be secret; %s", len(k), apiKeyHint)
	}
	return key, nil
}

// writeStartLine prints the one line `dispatch serve` prints on stdout
// once it accepts connections.
func writeStartLine(w io.Writer, s *server.Server) {
	ep := s.Endpoint()
	if ep == "" {
		ep = "(none: calls name theirs)"
	}
	fmt.Fprintf(w, "dispatch serve: listening on %s, default endpoint %s, DISPATCH_VERIFICATION_KEY=%s\n", s.URL(), endpointpolicy.Redact(ep), s.VerificationKey())
}
