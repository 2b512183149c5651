package dispatch

import (
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/dispatchkit/dispatch/internal/localmode"
	"github.com/dispatchkit/dispatch/internal/signature"
	"github.com/dispatchkit/dispatch/internal/slogbridge"
	"github.com/rs/zerolog"
)

// An Option configures a [Dispatch] instance. Options passed to [New] win
// over the environment variables of the same meaning.
//
// Option is sealed: only this package implements it, so that options can
// grow without breaking anyone.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithAPIKey sets the key that authenticates this program to Dispatch
// (environment: DISPATCH_API_KEY).
func WithAPIKey(key string) Option {
	return optionFunc(func(c *config) { c.apiKey, c.apiKeySet = key, true })
}

// WithAPIURL sets where Dispatch is, for example http://127.0.0.1:4450 for
// a local server (environment: DISPATCH_API_URL).
func WithAPIURL(url string) Option {
	return optionFunc(func(c *config) { c.apiURL, c.apiURLSet = url, true })
}

// WithEndpointURL sets the public URL at which Dispatch reaches this
// program's functions (environment: DISPATCH_ENDPOINT_URL).
func WithEndpointURL(url string) Option {
	return optionFunc(func(c *config) { c.endpointURL, c.endpointURLSet = url, true })
}

// WithVerificationKey sets the Ed25519 public key that signs the requests
// Dispatch sends, in PEM or as the base64 of the raw 32 bytes (environment:
// DISPATCH_VERIFICATION_KEY). Requests that are not signed by it are
// rejected.
func WithVerificationKey(key string) Option {
	return optionFunc(func(c *config) {
		k, err := signature.ParsePublicKey(key)
		if err != nil {
			c.errs = append(c.errs, fmt.Errorf("dispatch: WithVerificationKey: %w", err))
			return
		}
		c.verificationKey = k
	})
}

// WithPublicKey is [WithVerificationKey] for a key already parsed.
func WithPublicKey(key ed25519.PublicKey) Option {
	return optionFunc(func(c *config) {
		if len(key) != ed25519.PublicKeySize {
			c.errs = append(c.errs, fmt.Errorf("dispatch: WithPublicKey: an Ed25519 public key has %d bytes, got %d", ed25519.PublicKeySize, len(key)))
			return
		}
		c.verificationKey = key
	})
}

// WithLogger sends the instance's logs to l, the standard interface
// (log/slog), and the logs of its embedded server in local mode; nil turns
// them off. The default writes warnings and errors to standard error and
// nothing else.
//
// The SDK logs with zerolog: each event becomes a record of l's handler at
// the matching level (debug, info, warn, error), with the event's message
// and its fields as attributes. The lowest level the handler enables is
// read when New runs; events below it are not built. [WithZerolog] takes a
// zerolog.Logger as it is.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) { c.logger, c.loggerSet = slogbridge.New(l), true })
}

// WithZerolog is [WithLogger] for a program that logs with zerolog: the
// instance, and its embedded server in local mode, log to l directly.
func WithZerolog(l zerolog.Logger) Option {
	return optionFunc(func(c *config) { c.logger, c.loggerSet = l, true })
}

// WithTrace sends the frame dump of every suspending workflow to w (nil
// turns it off). The default follows DISPATCH_TRACE, writing to standard
// output.
func WithTrace(w io.Writer) Option {
	return optionFunc(func(c *config) { c.trace, c.traceSet = w, true })
}

// WithHTTPClient sets the HTTP client used to reach Dispatch. With
// [ProtocolGRPC] it must speak HTTP/2 (see [WithProtocol]).
func WithHTTPClient(hc *http.Client) Option {
	return optionFunc(func(c *config) { c.httpClient = hc })
}

// WithClock sets the clock used to check request signatures and by
// workflows (tests inject a fixed one).
func WithClock(now func() time.Time) Option {
	return optionFunc(func(c *config) { c.now = now })
}

// WithMaxRequestBytes bounds the size of a request body the endpoint
// accepts (default 16 MiB); larger requests are rejected with
// resource_exhausted (HTTP 413).
func WithMaxRequestBytes(n int64) Option {
	return optionFunc(func(c *config) { c.maxRequestBytes = n })
}

// WithBodyTimeout bounds the time the endpoint waits for the body of a
// request once its headers are in (default [DefaultBodyTimeout], 30 s; zero
// or less keeps it), so that a client that sends headers and then stalls
// does not hold a connection and a goroutine forever. A Run request whose
// body is late is answered deadline_exceeded (and an HTTP/1.x connection
// closed after it); it also bounds the reading of what is left of a body
// the endpoint refuses without reading it all (another path, a body over
// the limit), which net/http does after the answer. Only the body is bounded: a function may run for as long as it
// needs. Raise it for bodies of many megabytes over slow links. A handler
// mounted on a server whose ResponseWriter cannot set read deadlines (see
// http.ResponseController) reads without one.
func WithBodyTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.bodyTimeout = d })
}

// WithReplayCache sets the number of signatures the endpoint remembers to
// refuse replays (default [DefaultReplayCacheSize], 1<<20; 0 keeps it). An
// entry takes 20 to 40 bytes; the cache holds each signature for the 306
// seconds it could verify in, so the default covers 3,400 requests a
// second in at most 40 MiB. Under more load the oldest signatures go first
// and the endpoint refuses the requests signed before them as too old,
// never accepting a replay; it logs a warning the first time. See
// "Replays" in the package documentation.
func WithReplayCache(n int) Option {
	return optionFunc(func(c *config) { c.replayCache = n })
}

// withLocalStarter replaces the starter of local mode registered by
// package local (tests: nil stands for a program without the import).
func withLocalStarter(s localmode.Starter) Option {
	return optionFunc(func(c *config) { c.localStarter, c.localStarterSet = s, true })
}

// withEnv replaces the process environment (tests).
func withEnv(lookup func(string) (string, bool)) Option {
	return optionFunc(func(c *config) { c.lookupEnv = lookup })
}

// WithLocalServer runs a local Dispatch server in this process, whatever
// the environment says (see [StateDir] for local mode, which starts one
// when no Dispatch server is configured). Its calls are kept in dir, or in
// memory only if dir is "". Tests use it with t.TempDir() or "".
//
// Local mode is linked into the program by a blank import of package
// local (import _ "github.com/dispatchkit/dispatch/local"); without it,
// New fails with an error saying so.
func WithLocalServer(dir string) Option {
	return optionFunc(func(c *config) { c.localServerSet, c.localDir = true, dir })
}

// WithLocalPostgres runs a local Dispatch server in this process, as
// [WithLocalServer] does, with its calls in the PostgreSQL database at
// url (postgres://user:password@host:5432/dbname, any parameter pgx
// takes) instead of a SQLite file: the server of `dispatch serve
// --postgres`, embedded, calling this program's functions in process.
// The tables and the signing key are made in the database on first
// start.
//
// Several instances of the program on one database are replicas of one
// cluster, as dispatch serve's are (see "Several replicas" in the
// README): each runs the calls of the partitions it holds a lease on, a
// call dispatched by one may run on another, and when an instance dies
// the others take its partitions after the lease's 10 s and resume its
// calls. The replicas reach each other at their embedded servers'
// loopback addresses (for keyed Dispatch requests and cancels of calls
// another one owns), so instances sharing a database must run on one
// machine; across machines, run `dispatch serve --postgres` and point the
// programs at it with DISPATCH_API_URL and DISPATCH_API_KEY.
//
// It cannot be combined with WithLocalServer or WithLocalFullSync:
// PostgreSQL's synchronous_commit decides the durability of a commit.
func WithLocalPostgres(url string) Option {
	return optionFunc(func(c *config) { c.localPGSet, c.localPostgres = true, url })
}

// WithLocalFullSync makes the local server (local mode, [WithLocalServer])
// sync the disk at every commit of its SQLite store (synchronous=FULL), so
// that accepted calls survive a crash of the machine, not only of the
// process; by default (synchronous=NORMAL) a commit is in the write-ahead
// log before it is acknowledged and the disk is synced at checkpoints. It
// changes nothing when the local server keeps its calls in memory, or when
// a separate Dispatch server is configured.
func WithLocalFullSync() Option {
	return optionFunc(func(c *config) { c.localFullSync = true })
}
