package dispatch

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/dispatchkit/dispatch/internal/localmode"
	"github.com/dispatchkit/dispatch/internal/signature"
	"github.com/dispatchkit/dispatch/trace"
	"github.com/rs/zerolog"
)

// Environment variables read by [New]; options win over them.
const (
	EnvAPIKey          = "DISPATCH_API_KEY"
	EnvAPIURL          = "DISPATCH_API_URL"
	EnvEndpointURL     = "DISPATCH_ENDPOINT_URL"
	EnvVerificationKey = "DISPATCH_VERIFICATION_KEY"
	EnvTrace           = "DISPATCH_TRACE"
)

// DefaultAPIURL is the hosted Dispatch platform.
const DefaultAPIURL = "https://api.dispatch.run"

// DefaultMaxRequestBytes bounds the body of a Run request.
const DefaultMaxRequestBytes = 16 << 20

// DefaultBodyTimeout bounds the time the endpoint waits for the body of a
// Run request (see [WithBodyTimeout]).
const DefaultBodyTimeout = 30 * time.Second

// DefaultReplayCacheSize is the number of signatures the endpoint
// remembers to refuse replays (see [WithReplayCache]).
const DefaultReplayCacheSize = signature.DefaultReplayCacheSize

type config struct {
	apiKey, apiURL, endpointURL          string
	apiKeySet, apiURLSet, endpointURLSet bool

	verificationKey ed25519.PublicKey

	logger    zerolog.Logger
	loggerSet bool
	trace     io.Writer
	traceSet  bool

	httpClient      *http.Client
	protocol        Protocol
	now             func() time.Time
	maxRequestBytes int64
	bodyTimeout     time.Duration
	replayCache     int
	lookupEnv       func(string) (string, bool)
	localServerSet  bool   // WithLocalServer
	localDir        string // its dir; "" keeps the calls in memory
	localFullSync   bool   // WithLocalFullSync
	localPostgres   string // WithLocalPostgres
	localPGSet      bool

	localStarter    localmode.Starter // withLocalStarter (tests)
	localStarterSet bool

	errs []error
}

// forceLocal reports whether an option asks for the local server,
// whatever the environment says: WithLocalServer or WithLocalPostgres.
func (c *config) forceLocal() bool { return c.localServerSet || c.localPGSet }

// loadConfig applies the environment, then the options, and validates the
// result. Every error names the option or variable at fault.
func loadConfig(opts []Option) (*config, error) {
	c := &config{lookupEnv: os.LookupEnv}
	// Options first into a scratch config, so that an injected environment
	// (withEnv) is known before the environment is read.
	for _, o := range opts {
		o.apply(c)
	}
	env := c.lookupEnv
	var errs []error
	if !c.apiKeySet {
		c.apiKey, _ = env(EnvAPIKey)
	}
	if !c.apiURLSet {
		v, ok := env(EnvAPIURL)
		switch {
		case ok && v == "":
			errs = append(errs, fmt.Errorf("dispatch: %s is set but empty: unset it to use %s, or set it to the URL of a Dispatch server such as http://127.0.0.1:4450", EnvAPIURL, DefaultAPIURL))
		case ok:
			c.apiURL = v
		default:
			c.apiURL = DefaultAPIURL
		}
	}
	if c.apiURL != "" {
		if err := checkURL(c.apiURL); err != nil {
			errs = append(errs, fmt.Errorf("dispatch: %s: %w", source(c.apiURLSet, "WithAPIURL", EnvAPIURL), err))
		}
	}
	if !c.endpointURLSet {
		c.endpointURL, _ = env(EnvEndpointURL)
	}
	if c.endpointURL != "" {
		if err := checkURL(c.endpointURL); err != nil {
			errs = append(errs, fmt.Errorf("dispatch: %s: %w", source(c.endpointURLSet, "WithEndpointURL", EnvEndpointURL), err))
		}
	}
	if c.verificationKey == nil {
		// Set but empty is an error, not "no key": a deployment that meant
		// to set a key must not silently accept unsigned requests.
		if v, ok := env(EnvVerificationKey); ok {
			k, err := signature.ParsePublicKey(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("dispatch: %s: %w", EnvVerificationKey, err))
			}
			c.verificationKey = k
		}
	}
	if !c.traceSet {
		if v, _ := env(EnvTrace); trace.EnabledFrom(v) {
			c.trace = os.Stdout
		}
	}
	if !c.loggerSet {
		c.logger = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, NoColor: true, TimeFormat: time.TimeOnly}).Level(zerolog.WarnLevel).With().Timestamp().Logger()
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.maxRequestBytes <= 0 {
		c.maxRequestBytes = DefaultMaxRequestBytes
	}
	if c.bodyTimeout <= 0 {
		c.bodyTimeout = DefaultBodyTimeout
	}
	if c.replayCache < 0 {
		errs = append(errs, fmt.Errorf("dispatch: WithReplayCache(%d): the number of signatures remembered cannot be negative; pass 0 for the default of %d", c.replayCache, DefaultReplayCacheSize))
	}
	if c.localPGSet {
		switch {
		case c.localPostgres == "":
			errs = append(errs, errors.New(`dispatch: WithLocalPostgres(""): want the URL of a PostgreSQL database, such as postgres://user:password@127.0.0.1:5432/dbname`))
		case c.localServerSet:
			errs = append(errs, errors.New("dispatch: WithLocalServer and WithLocalPostgres both name where the local server keeps its calls: pass one of them"))
		case c.localFullSync:
			errs = append(errs, errors.New("dispatch: WithLocalFullSync is for the local server's SQLite file: with WithLocalPostgres, PostgreSQL's synchronous_commit decides the durability of a commit; drop WithLocalFullSync"))
		}
	}
	if c.httpClient == nil {
		c.httpClient = defaultHTTPClient(c.protocol)
	}
	if err := errors.Join(append(c.errs, errs...)...); err != nil {
		return nil, err
	}
	return c, nil
}

func source(fromOption bool, option, variable string) string {
	if fromOption {
		return option
	}
	return variable
}

// checkURL accepts absolute http and https URLs.
func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %v", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("%q is not a full URL: want a scheme and a host, such as http://127.0.0.1:8000", s)
	}
	return nil
}
