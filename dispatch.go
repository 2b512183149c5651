package dispatch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"buf.build/gen/go/stealthrocket/dispatch-proto/connectrpc/go/dispatch/sdk/v1/sdkv1connect"
	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"connectrpc.com/connect"
	"github.com/dispatchkit/dispatch/internal/flowrun"
	"github.com/dispatchkit/dispatch/internal/localapi"
	"github.com/dispatchkit/dispatch/internal/localmode"
	"github.com/dispatchkit/dispatch/internal/signature"
	"github.com/rs/zerolog"
)

// Dispatch is one configured instance of the SDK: the endpoint that serves
// the registered functions to Dispatch (see [Dispatch.Handler]) and the
// client that dispatches calls (see [Dispatch.Dispatch]). Build it with
// [New]; it is safe for concurrent use.
type Dispatch struct {
	cfg      *config
	log      zerolog.Logger
	rt       *runtime
	verifier *signature.Verifier
	client   sdkv1connect.DispatchServiceClient

	local       localmode.Server // the embedded server, in local mode (see package local)
	localRun    bool             // it calls the functions in process, and is called so (runLocal, inprocDispatch)
	stateDir    string           // its state directory
	serving     chan struct{}    // closed once the endpoint is served (Serve or Handler): in-process runs wait for it
	servingOnce sync.Once
	endpointLn  net.Listener // the endpoint's listener, made early in local mode; guarded by mu

	mu   sync.Mutex
	stop context.CancelFunc // ends the Serve started by Start
	done chan error         // its result

	// unverifiedWarned is when the endpoint last warned that it served a
	// request unverified (unix nanoseconds of cfg.now; 0: never).
	unverifiedWarned atomic.Int64
}

// unverifiedWarnEvery is how often, at most, an endpoint without a
// verification key warns that it serves requests unverified.
const unverifiedWarnEvery = time.Minute

var defaultInstance struct {
	sync.Mutex
	d *Dispatch
	// create serialises the creation of an instance by Default, so that
	// concurrent first calls make only one (in local mode a second one
	// would fail on the lock of the state directory). It is taken before
	// the Mutex, never while holding it: New takes the Mutex in SetDefault.
	create sync.Mutex
}

// New returns an instance configured by opts and the environment variables
// DISPATCH_API_KEY, DISPATCH_API_URL, DISPATCH_ENDPOINT_URL,
// DISPATCH_VERIFICATION_KEY and DISPATCH_TRACE (options win). Wrong values
// fail here, with messages naming the option or variable. Without a
// verification key, requests are accepted unverified: New logs a warning
// saying so, and the endpoint logs it again when it serves such requests,
// at most once a minute.
//
// The instance becomes the default one, used by [Function.Dispatch], until
// another is created or it is closed.
func New(opts ...Option) (*Dispatch, error) {
	cfg, err := loadConfig(opts)
	if err != nil {
		return nil, err
	}
	d := &Dispatch{cfg: cfg, log: cfg.logger, serving: make(chan struct{})}
	d.rt = &runtime{flowConfig: flowrun.Config{Trace: cfg.trace, Now: cfg.now, Logger: cfg.logger}}
	if cfg.forceLocal() || cfg.wantsLocal() {
		if err := d.startLocal(); err != nil {
			return nil, err
		}
	}
	if cfg.verificationKey != nil {
		d.verifier = signature.NewVerifier(cfg.verificationKey, signature.WithClock(cfg.now), signature.WithReplayCache(cfg.replayCache, d.replayCacheFull))
	} else {
		d.log.Warn().Msgf("dispatch: no verification key (%s): requests to this endpoint are accepted without checking their signature; set it to the key printed by `dispatch test` or given by the platform", EnvVerificationKey)
	}
	switch {
	case d.local != nil && d.localRun:
		d.client = &inprocDispatch{srv: d.local, auth: "Bearer " + cfg.apiKey}
	case cfg.apiURL != "":
		opts := append(cfg.protocol.clientOptions(), connect.WithInterceptors(bearer(cfg.apiKey)))
		d.client = sdkv1connect.NewDispatchServiceClient(cfg.httpClient, strings.TrimSuffix(cfg.apiURL, "/"), opts...)
	}
	SetDefault(d)
	return d, nil
}

// replayCacheFull logs, once, that the replay cache is full and the window
// of accepted signatures shrinks.
func (d *Dispatch) replayCacheFull(minCreated time.Time) {
	d.log.Warn().Time("min_created", minCreated).Msgf("dispatch: the replay cache is full (%d signatures within the last 5 minutes): requests signed before %s are refused as too old; pass a larger WithReplayCache if this endpoint serves that many requests (logged once)", d.verifierCacheSize(), minCreated.UTC().Format(time.RFC3339))
}

func (d *Dispatch) verifierCacheSize() int {
	if d.cfg.replayCache > 0 {
		return d.cfg.replayCache
	}
	return DefaultReplayCacheSize
}

// warnUnverified logs that a request was served without verifying its
// signature, at most once per unverifiedWarnEvery.
func (d *Dispatch) warnUnverified() {
	now := d.cfg.now().UnixNano()
	last := d.unverifiedWarned.Load()
	if last != 0 && now-last < int64(unverifiedWarnEvery) {
		return
	}
	if !d.unverifiedWarned.CompareAndSwap(last, now) {
		return // another request is warning
	}
	d.log.Warn().Msgf("dispatch: served a request without checking its signature: no verification key is set, so this endpoint accepts requests from anyone who can reach it; set %s (or WithVerificationKey) to the key printed by `dispatch test` or given by the platform (logged at most once a minute)", EnvVerificationKey)
}

// Default returns the default instance: the one last created by [New] or
// set by [SetDefault]. Without one, it creates one from the environment,
// as New() does. It is safe for concurrent use: concurrent calls that find
// no default create a single instance and all return it. When creating it
// fails, Default returns the error and a later call tries again.
func Default() (*Dispatch, error) {
	if d := currentDefault(); d != nil {
		return d, nil
	}
	defaultInstance.create.Lock()
	defer defaultInstance.create.Unlock()
	if d := currentDefault(); d != nil {
		return d, nil // made by a concurrent call
	}
	return New()
}

// currentDefault returns the default instance, nil if there is none.
func currentDefault() *Dispatch {
	defaultInstance.Lock()
	defer defaultInstance.Unlock()
	return defaultInstance.d
}

// SetDefault makes d the default instance (nil clears it).
func SetDefault(d *Dispatch) {
	defaultInstance.Lock()
	defaultInstance.d = d
	defaultInstance.Unlock()
}

// Close stops what the instance started (the endpoint served by
// [Dispatch.Start], the embedded server of local mode) and stops it being
// the default. Calls in flight on the embedded server are kept in its
// store and resume when the program runs again.
func (d *Dispatch) Close() error {
	defaultInstance.Lock()
	if defaultInstance.d == d {
		defaultInstance.d = nil
	}
	defaultInstance.Unlock()
	var errs []error
	// The embedded server stops first: it stops sending runs and closes
	// its connections to the endpoint, so that the endpoint's graceful
	// shutdown does not wait on connections it opened but never used.
	if d.local != nil {
		if err := d.local.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	d.mu.Lock()
	stop, done, ln := d.stop, d.done, d.endpointLn
	d.stop, d.endpointLn = nil, nil
	d.mu.Unlock()
	if stop != nil {
		stop()
		if err := <-done; err != nil {
			errs = append(errs, err)
		}
	}
	if ln != nil { // made by local mode, never served
		ln.Close()
	}
	d.cfg.httpClient.CloseIdleConnections()
	return errors.Join(errs...)
}

// StateDir returns the directory where the embedded server of local mode
// keeps its calls, or "" when there is none (another server is used, or
// the embedded one keeps its calls in memory).
func (d *Dispatch) StateDir() string { return d.stateDir }

// APIURL returns the URL of the Dispatch server this instance dispatches to.
func (d *Dispatch) APIURL() string { return d.cfg.apiURL }

// EndpointURL returns the URL at which Dispatch reaches this program, or ""
// if it is not configured.
func (d *Dispatch) EndpointURL() string { return d.cfg.endpointURL }

// Caller is a call ready to be dispatched: a [flow.Call] of any result type.
type Caller interface {
	Proto() (*sdkv1.Call, error)
}

// ErrNoAPIKey is returned when dispatching without an API key.
var ErrNoAPIKey = errors.New("dispatch: no API key: set " + EnvAPIKey + " (for a local server, the key printed by `dispatch test`) or pass WithAPIKey")

// Dispatch dispatches calls atomically: all are recorded or none is. It
// returns their dispatch ids in the order of the calls. Calls without an
// endpoint go to this program's endpoint URL (DISPATCH_ENDPOINT_URL).
func (d *Dispatch) Dispatch(ctx context.Context, calls ...Caller) ([]string, error) {
	if len(calls) == 0 {
		return nil, nil
	}
	return d.dispatch(ctx, "", calls)
}

// dispatch is Dispatch, with the idempotency key key unless it is ""
// (DispatchKey, key.go).
func (d *Dispatch) dispatch(ctx context.Context, key string, calls []Caller) ([]string, error) {
	if d.client == nil {
		return nil, fmt.Errorf("dispatch: no Dispatch server configured: set %s or pass WithAPIURL", EnvAPIURL)
	}
	if d.cfg.apiKey == "" {
		return nil, ErrNoAPIKey
	}
	req := &sdkv1.DispatchRequest{Calls: make([]*sdkv1.Call, len(calls))}
	for i, c := range calls {
		pc, err := c.Proto()
		if err != nil {
			return nil, fmt.Errorf("dispatch: call %d: %w", i, err)
		}
		if pc.Endpoint == "" {
			if d.cfg.endpointURL == "" {
				return nil, fmt.Errorf("dispatch: call %d to %q has no endpoint: set %s to the URL at which Dispatch reaches this program, or pass WithEndpointURL", i, pc.Function, EnvEndpointURL)
			}
			pc.Endpoint = d.cfg.endpointURL
		}
		req.Calls[i] = pc
	}
	creq := connect.NewRequest(req)
	if key != "" {
		creq.Header().Set(localapi.HeaderKey, key)
	}
	res, err := d.client.Dispatch(ctx, creq)
	if err != nil {
		if key != "" && connect.CodeOf(err) == connect.CodeAlreadyExists {
			return nil, keyConflict(err)
		}
		return nil, dispatchError(err, d.cfg.protocol)
	}
	ids := res.Msg.GetDispatchIds()
	if len(ids) != len(calls) {
		return nil, fmt.Errorf("dispatch: Dispatch answered %d ids for %d calls", len(ids), len(calls))
	}
	if key != "" {
		if err := d.checkKeyHonoured(res.Header(), key, ids); err != nil {
			return ids, err
		}
	}
	return ids, nil
}

// dispatchError explains the errors a user can act on.
func dispatchError(err error, p Protocol) error {
	if mismatch(err) {
		hint := "if it speaks only gRPC, as the mock server of dispatch-py (python -m dispatch.test) does, pass WithProtocol(dispatch.ProtocolGRPC)"
		if p == ProtocolGRPC {
			hint = "gRPC needs HTTP/2: a client given with WithHTTPClient must speak it (h2c for http:// URLs, see WithProtocol); if the server does not speak gRPC, leave out WithProtocol(dispatch.ProtocolGRPC)"
		}
		return fmt.Errorf("dispatch: the Dispatch server did not answer in the %s protocol: check %s; %s: %w", p, EnvAPIURL, hint, err)
	}
	switch connect.CodeOf(err) {
	case connect.CodeUnauthenticated, connect.CodePermissionDenied:
		return fmt.Errorf("dispatch: Dispatch refused the API key: check %s: %w", EnvAPIKey, err)
	case connect.CodeUnavailable:
		return fmt.Errorf("dispatch: cannot reach Dispatch: check %s and that the server is running: %w", EnvAPIURL, err)
	}
	return fmt.Errorf("dispatch: %w", err)
}

// mismatch reports whether err suggests a server that speaks another
// protocol than the client: it was reached (the error is not about dialing,
// name resolution, or the caller's context), but did not answer in the
// client's protocol (a connection reset or closed mid-request, an HTTP
// status such as 415 without an error of the protocol).
func mismatch(err error) bool {
	if connect.IsWireError(err) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return false
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return false
	}
	var timeout interface{ Timeout() bool }
	if errors.As(err, &timeout) && timeout.Timeout() {
		return false
	}
	switch connect.CodeOf(err) {
	case connect.CodeUnknown, connect.CodeInternal, connect.CodeUnavailable, connect.CodeCanceled, connect.CodeUnimplemented:
		return true
	}
	return false
}

func bearer(key string) connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set("Authorization", "Bearer "+key)
			return next(ctx, req)
		}
	}
}
