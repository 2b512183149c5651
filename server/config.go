package server

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"slices"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/rs/zerolog"

	"github.com/dispatchkit/dispatch/internal/endpointpolicy"
	"github.com/dispatchkit/dispatch/internal/localapi"
	"github.com/dispatchkit/dispatch/internal/slogbridge"
	"github.com/dispatchkit/dispatch/internal/store"
	"github.com/dispatchkit/dispatch/internal/store/pgstore"
)

// Config configures a [Server]. The zero value, with Memory set, is a
// working in-memory server on a random loopback port that allows no
// endpoint: set Endpoint (calls without an endpoint go there, and it is
// allowed) or AllowEndpoints (for example []string{"loopback"}) for it to
// run calls.
type Config struct {
	// Endpoint is the URL of the function service that calls without an
	// endpoint are sent to (what `dispatch test <endpoint-url>` takes). It
	// may have a path prefix and a query: http://h/admin?code=k is sent
	// POST /admin/dispatch.sdk.v1.FunctionService/Run?code=k, which suits
	// platforms whose function URLs carry a key in the query (Azure
	// Functions' ?code=). The query is not covered by the request
	// signature (PROTOCOL.md: "the query string and scheme are not
	// covered"): anyone who sees a request can replay it with another
	// query. No credentials (user:password@) nor fragment. Calls may name
	// it, or a URL below its path, whatever AllowEndpoints says. Empty
	// means every call must name its own.
	Endpoint string

	// AllowEndpoints are patterns of the endpoints, beside Endpoint, that
	// calls may name; a call naming any other endpoint is refused with
	// INVALID_ARGUMENT (see "Security" in the package documentation).
	// Empty allows Endpoint only. A pattern is one of:
	//
	//   - "loopback": any http or https URL whose host is localhost or a
	//     loopback IP literal (127.0.0.0/8, ::1), any port and path (the
	//     default of `dispatch test` and of local mode);
	//   - "*": any http or https URL. This turns the policy off: use it
	//     only on a trusted network;
	//   - a URL scheme://host[:port][/path]: scheme http or https; host a
	//     name, an IPv4 literal, an IPv6 literal in brackets, or
	//     *.example.com (subdomains only, not example.com itself),
	//     compared case-insensitively; port a number, * (any port) or
	//     missing (the scheme's default, 80 or 443); path a prefix matched
	//     at a segment boundary (/app allows /app/run, not /apple). No
	//     user information, query or fragment. A URL's query is not
	//     matched.
	//
	// Whatever the patterns, URLs with credentials (user:password@, even
	// user@) or a fragment are refused, and the server does not connect
	// to unspecified (0.0.0.0, ::), link-local (169.254.0.0/16, the cloud
	// metadata service, fe80::/10) or multicast addresses a host name
	// resolves to, unless a pattern names that IP literal or is "*". An
	// invalid pattern fails New with an error naming
	// Config.AllowEndpoints.
	AllowEndpoints []string

	// EndpointRun, if set, serves Endpoint in this process: the engine
	// calls it with each RunRequest to Endpoint instead of sending a
	// signed HTTP request (local mode, where the endpoint is the
	// program's own; see package local). It is the endpoint's Run after
	// decoding; a *connect.Error it returns has the outcome its HTTP
	// status would have. Other endpoints keep signed HTTP.
	EndpointRun func(ctx context.Context, req *sdkv1.RunRequest) (*sdkv1.RunResponse, error)

	// Addr is the host:port to listen on; "127.0.0.1:0" (a random
	// loopback port) when empty.
	Addr string

	// APIKey is the bearer token DispatchService requires; "test" when
	// empty.
	APIKey string

	// StateDir is the directory of the call database (dispatch.db, SQLite
	// in WAL mode) and of the signing key (signing.key, mode 0600), both
	// made on first start. Required unless Memory or Postgres is set.
	StateDir string

	// Memory keeps calls in memory only: nothing is written to disk and
	// nothing survives the process. With Memory, StateDir is still used
	// for the signing key if set.
	Memory bool

	// Postgres is the URL of a PostgreSQL database (13 or later) that
	// keeps the calls, in place of StateDir's SQLite file:
	// postgres://user:password@host:5432/dbname, with any parameter pgx
	// takes (sslmode=verify-full, search_path=...). The tables are made on
	// first start, in the URL's schema (search_path). The signing key is
	// kept in the database too (table keys), made by the first server and
	// read by the next, unless SigningKey is set. Several servers may share
	// one database (one schema): each is a replica that runs the calls of
	// the partitions it holds a lease on, and any of them takes any
	// request (see "Several replicas" in the package documentation).
	// Exclusive with Memory, StateDir and FullSync.
	Postgres string

	// Advertise is the base URL at which the other replicas of
	// Config.Postgres reach this one (they forward to it the requests
	// for the partitions it owns: keyed Dispatch requests and cancels),
	// such as http://10.0.0.2:4450 (`dispatch serve --advertise`). Empty
	// means the listener's address: http://HOST:PORT, HOST being the
	// machine's host name when Addr's host is unspecified (":4450",
	// "0.0.0.0:4450"); set it when that name does not lead here (a
	// container, a proxy in front). Only with Postgres.
	Advertise string

	// Replica names this replica in the database of Config.Postgres (the
	// owner of its leases, in table partitions, and its row in table
	// replicas). Empty means a name unique to the process
	// (host/pid/random). Two running replicas must not share one. Only
	// with Postgres.
	Replica string

	// LeaseTTL is how long a replica's lease on a partition holds without
	// renewal (`dispatch serve --lease-ttl`): the failover time, since a
	// dead replica's partitions wait that long before another replica
	// takes them; 10 s. The replica renews its leases, and heartbeats,
	// five times per LeaseTTL (every 2 s by default), so that a renewal or
	// two may fail without a loss: a shorter LeaseTTL fails over sooner
	// but costs more renewals, each one transaction per partition held
	// (12 partitions at 1 s: 60 a second per replica), and a replica
	// paused longer than it (a long GC or VM pause, a slow database) loses
	// its partitions. At least 1 s. Give every replica of a database the
	// same. Only with Postgres.
	LeaseTTL time.Duration

	// FullSync makes every commit of the file store sync the disk, so
	// that accepted calls survive a crash of the machine, not only of the
	// process. Off, a commit is in SQLite's write-ahead log before it is
	// acknowledged (safe against kill -9) and the disk is synced at
	// checkpoints.
	FullSync bool

	// SigningKey signs requests to endpoints. When nil, the key is loaded
	// from StateDir (made there on first start), or generated afresh when
	// there is no StateDir.
	SigningKey ed25519.PrivateKey

	// Logger receives the server's logs; the zero Logger discards them.
	Logger zerolog.Logger

	// Slog, when not nil, receives the server's logs instead of Logger,
	// through log/slog, the standard interface. The server logs with
	// zerolog: each event becomes a record of Slog's handler at the
	// matching level, with the event's message and its fields as
	// attributes. The lowest level the handler enables is read by New.
	Slog *slog.Logger

	// DefaultExpiration applies to calls that set none; 1 hour.
	DefaultExpiration time.Duration

	// MinBackoff and MaxBackoff bound the exponential back-off between
	// retries (each wait drawn with jitter in [d/2, d)); 100 ms and 30 s.
	MinBackoff, MaxBackoff time.Duration

	// AttemptTimeout bounds one Run request to an endpoint; 5 minutes.
	// A request is also cut at the call's expiration.
	AttemptTimeout time.Duration

	// MaxRestarts bounds the restarts of a call from its input when its
	// endpoint answers INCOMPATIBLE_STATE; 3, at most 255. Negative: no
	// restart, the call fails with INCOMPATIBLE_STATE at once.
	MaxRestarts int

	// InitialConcurrency and MaxConcurrency bound the number of requests
	// in flight to each endpoint; the limit starts at InitialConcurrency
	// (128) and adapts (additive increase, multiplicative decrease on
	// THROTTLED, timeouts, 429 and 503) up to MaxConcurrency (1024).
	// On PostgreSQL they bound the cluster: the partitions a replica runs
	// share one limit per endpoint, and each replica's limit is
	// ceil(value / live replicas) of both (see Several replicas).
	InitialConcurrency, MaxConcurrency int

	// BodyReadTimeout bounds the time to read the body of a request to
	// the server, from the end of its headers (which must come within
	// 10 s); 30 s, enough for the largest DispatchRequest (16 MB) at
	// about 5 Mbit/s. A client that sends its body slower, or stops, gets
	// an error and its connection is closed. It does not bound the time
	// to answer: a wait for a result (up to 60 s) is not cut.
	BodyReadTimeout time.Duration

	// IdleTimeout bounds how long a keep-alive connection waits for its
	// next request before the server closes it; 2 minutes.
	IdleTimeout time.Duration

	// KeyRetention is how long the server keeps the idempotency key of a
	// Dispatch request (the Idempotency-Key header): within it, a request
	// with the key gets the ids of the first one's calls and starts
	// nothing; after it, the key is forgotten and a request with it
	// starts its calls again. 24 hours (--key-retention of dispatch
	// test). See "Idempotency keys" in the package documentation.
	KeyRetention time.Duration

	// Test hooks (export_test.go): wrapStore wraps the store the server
	// opens; commitRetry bounds the retries of a failed commit (the
	// engine's default when zero); maxHold bounds how long a child's
	// outcome waits for its parent's answer (the engine's default when
	// zero); noEarlyStart makes children wait for the commit that
	// creates them (scheduler.Config.NoEarlyStart); wrapKeyFile wraps
	// the temporary file a new signing key is written to. leaseTTL and
	// renewEvery are a replica's lease duration and the period of its
	// manager, below minLeaseTTL if need be (when zero: LeaseTTL, or
	// defaultLeaseTTL, and a fifth of that); partitions is the number of
	// partitions a replica makes in a database that has none (pgstore's
	// default when zero).
	wrapStore    func(store.Store) store.Store
	commitRetry  time.Duration
	maxHold      time.Duration
	noEarlyStart bool
	wrapKeyFile  func(*os.File) keyTemp
	leaseTTL     time.Duration
	renewEvery   time.Duration
	partitions   int
}

const (
	defaultAddr            = "127.0.0.1:0"
	defaultAPIKey          = "test"
	defaultBodyReadTimeout = 30 * time.Second
	defaultIdleTimeout     = 2 * time.Minute
)

func (c *Config) setDefaults() {
	if c.Slog != nil {
		c.Logger = slogbridge.New(c.Slog)
	}
	if c.Addr == "" {
		c.Addr = defaultAddr
	}
	if c.APIKey == "" {
		c.APIKey = defaultAPIKey
	}
	if c.BodyReadTimeout == 0 {
		c.BodyReadTimeout = defaultBodyReadTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = defaultIdleTimeout
	}
	if c.KeyRetention == 0 {
		c.KeyRetention = localapi.DefaultKeyRetention
	}
}

// validate checks c after defaults; each error names the field.
func (c *Config) validate() error {
	if c.Endpoint != "" {
		if err := checkEndpoint(c.Endpoint); err != nil {
			return fmt.Errorf("server: Config.Endpoint %w", err)
		}
	}
	if _, err := c.endpointPolicy(); err != nil {
		return err
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("server: Config.Addr %q is not host:port (for example \"127.0.0.1:4450\" or \":0\"): %v", c.Addr, err)
	}
	if c.Postgres != "" {
		for _, f := range []struct {
			name string
			set  bool
		}{{"Memory", c.Memory}, {"StateDir", c.StateDir != ""}, {"FullSync", c.FullSync}} {
			if f.set {
				return fmt.Errorf("server: Config.Postgres and Config.%s are exclusive: the calls and the signing key are kept in PostgreSQL, whose own settings (synchronous_commit) decide durability; leave Config.%s unset", f.name, f.name)
			}
		}
		if err := pgstore.CheckURL(c.Postgres); err != nil {
			return fmt.Errorf("server: Config.Postgres (--postgres of dispatch serve and dispatch test): %w", err)
		}
	}
	if c.Postgres == "" {
		for _, f := range []struct {
			name string
			set  bool
		}{{"Advertise", c.Advertise != ""}, {"Replica", c.Replica != ""}, {"LeaseTTL", c.LeaseTTL != 0}} {
			if f.set {
				return fmt.Errorf("server: Config.%s is for the replicas of a PostgreSQL database: set Config.Postgres (--postgres), or leave Config.%s empty", f.name, f.name)
			}
		}
	}
	if c.Advertise != "" {
		if err := checkEndpoint(c.Advertise); err != nil {
			return fmt.Errorf("server: Config.Advertise (--advertise of dispatch serve) %w", err)
		}
	}
	if !c.Memory && c.StateDir == "" && c.Postgres == "" {
		return errors.New("server: Config.StateDir is required unless Config.Memory or Config.Postgres is set: give a directory for the call database and signing key")
	}
	if c.SigningKey != nil && len(c.SigningKey) != ed25519.PrivateKeySize {
		return fmt.Errorf("server: Config.SigningKey has %d bytes, want an ed25519.PrivateKey of %d", len(c.SigningKey), ed25519.PrivateKeySize)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"DefaultExpiration", c.DefaultExpiration},
		{"MinBackoff", c.MinBackoff},
		{"MaxBackoff", c.MaxBackoff},
		{"AttemptTimeout", c.AttemptTimeout},
		{"BodyReadTimeout", c.BodyReadTimeout},
		{"IdleTimeout", c.IdleTimeout},
		{"KeyRetention", c.KeyRetention},
	} {
		if d.v < 0 {
			return fmt.Errorf("server: Config.%s is negative (%v); use 0 for the default", d.name, d.v)
		}
	}
	if c.LeaseTTL != 0 && c.LeaseTTL < minLeaseTTL {
		return fmt.Errorf("server: Config.LeaseTTL (--lease-ttl) is %v, at least %v: a replica renews its leases five times per lease time, one transaction each, and a shorter lease is lost to any pause; use 0 for the default, %v", c.LeaseTTL, minLeaseTTL, defaultLeaseTTL)
	}
	if c.MaxRestarts > maxRestarts {
		return fmt.Errorf("server: Config.MaxRestarts is %d, at most %d: a call whose state stays incompatible after that many restarts from its input will not recover by more", c.MaxRestarts, maxRestarts)
	}
	if c.MinBackoff > 0 && c.MaxBackoff > 0 && c.MaxBackoff < c.MinBackoff {
		return fmt.Errorf("server: Config.MaxBackoff (%v) is below Config.MinBackoff (%v)", c.MaxBackoff, c.MinBackoff)
	}
	for _, n := range []struct {
		name string
		v    int
	}{
		{"InitialConcurrency", c.InitialConcurrency},
		{"MaxConcurrency", c.MaxConcurrency},
	} {
		if n.v < 0 {
			return fmt.Errorf("server: Config.%s is negative (%d); use 0 for the default", n.name, n.v)
		}
	}
	return nil
}

// maxRestarts is the most Config.MaxRestarts may be (a call counts its
// restarts in a byte).
const maxRestarts = 255

// endpointPolicy returns the policy of c: Endpoint and AllowEndpoints.
func (c *Config) endpointPolicy() (*endpointpolicy.Policy, error) {
	patterns := c.AllowEndpoints
	if c.Endpoint != "" {
		p, err := endpointpolicy.EndpointPattern(c.Endpoint)
		if err != nil {
			return nil, fmt.Errorf("server: Config.Endpoint %q is refused: %v", endpointpolicy.Redact(c.Endpoint), err)
		}
		patterns = append(slices.Clip(patterns), p)
	}
	pol, err := endpointpolicy.New(patterns...)
	var pe *endpointpolicy.PatternError
	switch {
	case errors.As(err, &pe) && pe.Index >= len(c.AllowEndpoints):
		return nil, fmt.Errorf("server: Config.Endpoint %q cannot be allowed: %v", c.Endpoint, err)
	case errors.As(err, &pe):
		return nil, fmt.Errorf("server: Config.AllowEndpoints[%d] (--allow-endpoint of dispatch test): %v", pe.Index, err)
	case err != nil:
		return nil, fmt.Errorf("server: Config.AllowEndpoints: %w", err)
	}
	return pol, nil
}

// checkEndpoint checks that s is a full http or https URL. Its errors
// show s without its password.
func checkEndpoint(s string) error {
	shown := endpointpolicy.Redact(s)
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, which it repeats
		}
		return fmt.Errorf("%q is not a URL: %v", shown, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q must be an http or https URL, like \"http://127.0.0.1:8000\"", shown)
	}
	if u.Host == "" {
		return fmt.Errorf("%q has no host; want a full URL like \"http://127.0.0.1:8000\"", shown)
	}
	return nil
}
