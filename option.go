package dispatch

import (
	"crypto/ed25519"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/dispatchkit/dispatch/internal/signature"
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

// WithLogger sets the logger. The default writes warnings and errors to
// standard error and nothing else.
func WithLogger(l zerolog.Logger) Option {
	return optionFunc(func(c *config) { c.logger, c.loggerSet = l, true })
}

// WithTrace sends the frame dump of every suspending workflow to w (nil
// turns it off). The default follows DISPATCH_TRACE, writing to standard
// output.
func WithTrace(w io.Writer) Option {
	return optionFunc(func(c *config) { c.trace, c.traceSet = w, true })
}

// WithHTTPClient sets the HTTP client used to reach Dispatch.
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

// withEnv replaces the process environment (tests).
func withEnv(lookup func(string) (string, bool)) Option {
	return optionFunc(func(c *config) { c.lookupEnv = lookup })
}

// WithLocalServer runs a local Dispatch server in this process, whatever
// the environment says (see [StateDir] for local mode, which starts one
// when no Dispatch server is configured). Its calls are kept in dir, or in
// memory only if dir is "". Tests use it with t.TempDir() or "".
func WithLocalServer(dir string) Option {
	return optionFunc(func(c *config) { c.forceLocal, c.localDir = true, dir })
}
