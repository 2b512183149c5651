package scheduler

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"time"

	"buf.build/gen/go/stealthrocket/dispatch-proto/connectrpc/go/dispatch/sdk/v1/sdkv1connect"
	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"buf.build/go/protovalidate"
	"connectrpc.com/connect"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	"github.com/dispatchkit/dispatch/internal/endpointpolicy"
	"github.com/dispatchkit/dispatch/internal/store"
)

// ErrClosed is returned by Dispatch once the engine is closing.
var ErrClosed = errors.New("scheduler: closed")

// StoreError is returned by Dispatch once a commit has failed for good:
// the store cannot write, so the engine accepts and runs nothing more
// until a restart (see "Store failures" in the package documentation).
type StoreError struct {
	Err error // the store's error
}

func (e *StoreError) Error() string { return "scheduler: the store cannot write: " + e.Err.Error() }
func (e *StoreError) Unwrap() error { return e.Err }

// Config configures an [Engine]. Zero durations and limits take the
// defaults documented on each field.
type Config struct {
	// Store keeps calls durable. Required. The engine does not close it.
	Store store.Store
	// Sign signs the body of each Run request (sets Content-Digest,
	// Signature-Input and Signature). Nil sends unsigned requests.
	Sign func(r *http.Request, body []byte) error
	// Logger receives the engine's logs.
	Logger zerolog.Logger
	// DefaultExpiration applies to calls without an expiration; 1 hour.
	DefaultExpiration time.Duration
	// MinBackoff and MaxBackoff bound the exponential back-off between
	// retries (with jitter: each wait is drawn in [d/2, d)); 100 ms, 30 s.
	MinBackoff, MaxBackoff time.Duration
	// AttemptTimeout bounds one Run request; 5 minutes. It is also capped
	// by the call's expiration.
	AttemptTimeout time.Duration
	// MaxRestarts bounds restarts on INCOMPATIBLE_STATE; 3. Negative: no
	// restart, the call fails with INCOMPATIBLE_STATE at once.
	MaxRestarts int
	// DefaultEndpoint is the endpoint that calls without one were given
	// (the server's default). It is kept in the store; when Start finds
	// another one there, the live calls bound to that previous default
	// are moved to this one before anything runs. Empty moves nothing
	// and keeps the stored value.
	DefaultEndpoint string
	// InitialConcurrency, MinConcurrency, MaxConcurrency bound each
	// endpoint's adaptive limit of requests in flight; 128, 1, 1024.
	InitialConcurrency, MinConcurrency, MaxConcurrency int
	// Limits, if set, holds the endpoints' limits shared with the other
	// engines given the same Limits (the partitions of one server): the
	// requests in flight of them all to an endpoint are bounded by one
	// limit, which they adapt together. Nil: each endpoint's limit is the
	// engine's own.
	Limits *Limits
	// MaxResponseBytes bounds a RunResponse; 16 MiB.
	MaxResponseBytes int
	// CommitRetry bounds how long a failed commit is retried before the
	// store is deemed broken; 5 s. Negative: no retry.
	CommitRetry time.Duration
	// MaxHold bounds how long the final outcome of a child that resumed
	// its parent waits, not yet stored, for the parent's answer, to be
	// committed with it (see "One commit per await step" in the package
	// documentation); [DefaultMaxHold], 20 ms. Negative: never held, two
	// commits per await step.
	MaxHold time.Duration
	// NoEarlyStart makes the children of a Poll wait for the commit of
	// the batch that creates them before they run, and their parent
	// suspend only then. By default (false) they start as soon as that
	// batch is submitted, so that no commit sits on the critical path
	// of an await step (see "Early start" in the package
	// documentation). Setting it costs latency and buys nothing for
	// correctness; it is kept to compare the two and to rule early start
	// out when a problem is looked into.
	NoEarlyStart bool
	// Policy says which endpoints calls may name (the calls of polls and
	// tail calls, and recovered calls; the server checks the calls of a
	// DispatchRequest with [Engine.CheckCall]), and which addresses the
	// engine's dialer may connect to. Nil allows every endpoint and
	// address: the server always sets one.
	Policy *endpointpolicy.Policy
	// KeyRetention is how long an idempotency key of DispatchKey is
	// kept (keys.go); 24 hours.
	KeyRetention time.Duration
	// Local, if set, is the endpoint served in this process (local
	// mode): Run requests to Local.URL call Local.Run directly, unsigned;
	// other endpoints use signed HTTP.
	Local *LocalEndpoint
	// Partitions and Partition, when Partitions > 0, make the engine the
	// owner of partition Partition (1..Partitions) of a store shared with
	// other engines (the server's replicas on PostgreSQL, each owning some
	// partitions under a lease): every root call it makes gets an id whose
	// store.PartitionOf(id, Partitions) is Partition, so that its calls,
	// whose children share their root's partition through their root id,
	// stay in the partition the store writes and recovers. The previous
	// default endpoint (see DefaultEndpoint) is kept per partition then.
	// Zero: the engine owns its whole store.
	Partitions, Partition int
	// Now is the clock; time.Now.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.DefaultExpiration <= 0 {
		c.DefaultExpiration = time.Hour
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 100 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 30 * time.Second
	}
	c.MaxBackoff = max(c.MaxBackoff, c.MinBackoff)
	if c.AttemptTimeout <= 0 {
		c.AttemptTimeout = 5 * time.Minute
	}
	if c.MaxRestarts == 0 {
		c.MaxRestarts = 3
	}
	// A call counts its restarts in a uint8.
	c.MaxRestarts = min(max(c.MaxRestarts, 0), math.MaxUint8)
	if c.InitialConcurrency <= 0 {
		c.InitialConcurrency = 128
	}
	if c.MinConcurrency <= 0 {
		c.MinConcurrency = 1
	}
	if c.MaxConcurrency <= 0 {
		c.MaxConcurrency = 1024
	}
	c.MaxConcurrency = max(c.MaxConcurrency, c.MinConcurrency)
	c.InitialConcurrency = min(max(c.InitialConcurrency, c.MinConcurrency), c.MaxConcurrency)
	if c.MaxResponseBytes <= 0 {
		c.MaxResponseBytes = 16 << 20
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.CommitRetry == 0 {
		c.CommitRetry = 5 * time.Second
	}
	if c.MaxHold == 0 {
		c.MaxHold = DefaultMaxHold
	}
	if c.KeyRetention <= 0 {
		c.KeyRetention = 24 * time.Hour
	}
}

// Engine runs calls. Create it with [New], then [Engine.Start].
type Engine struct {
	cfg       Config
	log       zerolog.Logger
	now       func() time.Time
	commit    *store.Committer
	validator protovalidate.Validator
	policy    *endpointpolicy.Policy
	transport *http.Transport
	signer    *signingTransport
	client    *http.Client
	ids       idGen

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	closing   bool
	starting  bool
	started   bool
	calls     map[string]*call
	endpoints map[string]*endpoint
	timers    timerHeap
	timerWake chan struct{}
	timerDue  int64         // when the timer goroutine plans to wake (timer.go)
	slotWake  chan struct{} // a shared limit granted a slot (limiter.go)
	workers   workerPool    // the goroutines of Run requests (workers.go)
	seq       int64         // inbox arrival order
	running   int           // Run requests in flight, all endpoints
	// holds counts the batches held for a parent's answer, holdsAlone
	// those committed on their own (hold.go).
	holds, holdsAlone int64
	// early counts the children started before the commit of the batch
	// that creates them (transition.go, poll).
	early     int64
	recovered []*call
	// broken is the error of the commit the committer gave up on: once
	// set, nothing is acted on any more (no attempt starts, Dispatch
	// fails) until a restart.
	broken error
	// finishing holds the calls completed in memory whose outcome is not
	// yet durable, with their parent ids (cancel.go, treeOf); waiters
	// holds the watchers of live calls (watch.go).
	finishing map[string]string
	waiters   map[string]*waiter
	// knownEndpoints are endpoints protovalidate accepted (validate.go).
	knownEndpoints map[string]struct{}
	// keyLocks serialises the requests of each idempotency key;
	// keysUntil is the latest expiration of the keys that may be stored,
	// keysPruned the time of the last pruning (keys.go).
	keyLocks              keyLocks
	keysUntil, keysPruned int64
}

// New returns an engine; it does nothing until Start.
func New(cfg Config) (*Engine, error) {
	if cfg.Store == nil {
		return nil, errors.New("scheduler: Config.Store is required")
	}
	if cfg.Partitions < 0 || (cfg.Partitions > 0 && (cfg.Partition < 1 || cfg.Partition > cfg.Partitions)) ||
		(cfg.Partitions == 0 && cfg.Partition != 0) {
		return nil, fmt.Errorf("scheduler: Config.Partition %d of Config.Partitions %d: want a partition in 1..Partitions, or both zero for an engine that owns its store", cfg.Partition, cfg.Partitions)
	}
	cfg.setDefaults()
	v, err := protovalidate.New()
	if err != nil {
		return nil, fmt.Errorf("scheduler: protovalidate: %w", err)
	}
	dialer := &net.Dialer{
		Timeout:   10 * time.Second,
		KeepAlive: 30 * time.Second,
	}
	if cfg.Policy != nil {
		dialer.Control = dialControl(cfg.Policy)
	}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   cfg.MaxConcurrency,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Engine{
		cfg:            cfg,
		policy:         cfg.Policy,
		log:            cfg.Logger,
		now:            cfg.Now,
		validator:      v,
		transport:      tr,
		ctx:            ctx,
		cancel:         cancel,
		calls:          make(map[string]*call),
		endpoints:      make(map[string]*endpoint),
		timerWake:      make(chan struct{}, 1),
		slotWake:       make(chan struct{}, 1),
		finishing:      make(map[string]string),
		waiters:        make(map[string]*waiter),
		knownEndpoints: make(map[string]struct{}),
	}
	e.workers = newWorkerPool(ctx.Done(), &e.wg)
	e.signer = &signingTransport{base: tr, sign: cfg.Sign}
	e.client = &http.Client{
		Transport: e.signer,
		// A redirect is not followed: it would send the signed request
		// to a URL the endpoint policy never saw. The endpoint's 3xx
		// answer fails the call (PERMANENT_ERROR).
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return e, nil
}

// dialControl returns the Control hook of the engine's dialer: it runs
// once a host name is resolved, before connecting, and refuses the
// addresses p forbids (unspecified, link-local, multicast), so that a name
// cannot lead where an IP literal could not.
func dialControl(p *endpointpolicy.Policy) func(network, address string, _ syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("scheduler: dialing %s: %w", address, err)
		}
		return p.CheckAddr(ap.Addr())
	}
}

// Start recovers the live calls of the store and starts running them.
func (e *Engine) Start(ctx context.Context) error {
	e.mu.Lock()
	if e.starting || e.closing {
		e.mu.Unlock()
		return errors.New("scheduler: Start called twice or after Close")
	}
	e.starting = true
	e.mu.Unlock()

	n, err := e.recover(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		e.log.Info().Int("calls", n).Msg("recovered calls in flight")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closing {
		return ErrClosed
	}
	e.commit = store.NewCommitter(e.cfg.Store, store.CommitterOptions{
		RetryFor: e.cfg.CommitRetry,
		OnRetry: func(err error) {
			e.log.Warn().Err(err).Msg("storing a change failed; retrying")
		},
	})
	e.wg.Add(1)
	go e.timerLoop()
	if e.cfg.Limits != nil {
		e.wg.Add(1)
		go e.slotLoop()
	}
	e.startPruner()
	e.started = true
	e.resume()
	return nil
}

// Close stops the engine: requests in flight are cancelled (their outcome
// is not recorded, so they run again after a restart), pending writes are
// committed (held ones included), and every goroutine has returned when
// Close returns.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closing {
		e.mu.Unlock()
		return nil
	}
	e.closing = true
	e.mu.Unlock()
	e.cancel()
	e.wg.Wait()
	// The Run requests are over and their slots given back; the slots
	// granted to the engine since, and its place among the waiters of
	// shared limits, go to the other engines.
	e.mu.Lock()
	for _, ep := range e.endpoints {
		ep.lim.leave(ep)
	}
	e.mu.Unlock()
	if e.commit != nil {
		// The answers that held batches wait for were cancelled: the
		// batches are committed on their own.
		e.mu.Lock()
		e.flushAll()
		e.mu.Unlock()
		e.commit.Close()
	}
	e.transport.CloseIdleConnections()
	return nil
}

// Live returns the number of calls not done, for tests and metrics.
func (e *Engine) Live() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.calls)
}

// Suspended returns the number of suspended calls, for tests and metrics.
func (e *Engine) Suspended() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, c := range e.calls {
		if c.state == stSuspended {
			n++
		}
	}
	return n
}

// Dispatch records calls as new root calls and returns their ids in order.
// Every call must have an endpoint and be valid (the server validates the
// request, and checks each call with [Engine.CheckCall]). Either all calls are durable when Dispatch returns nil, or
// none was recorded. Once the store cannot write, Dispatch returns a
// *[StoreError].
func (e *Engine) Dispatch(ctx context.Context, calls []*sdkv1.Call) ([]string, error) {
	return e.dispatch(ctx, calls, nil)
}

// dispatch is Dispatch; a key, if not nil, is recorded with the ids of
// the calls in their batch (DispatchKey, keys.go).
func (e *Engine) dispatch(ctx context.Context, calls []*sdkv1.Call, key *store.Key) ([]string, error) {
	ids := make([]string, len(calls))
	done := make(chan error, 1)

	e.mu.Lock()
	if e.closing || !e.started {
		e.mu.Unlock()
		return nil, ErrClosed
	}
	if e.broken != nil {
		err := e.broken
		e.mu.Unlock()
		return nil, &StoreError{Err: err}
	}
	now := e.now()
	b := &store.Batch{Calls: make([]*store.Call, 0, len(calls))}
	made := make([]*call, len(calls))
	for i, pc := range calls {
		c := e.newCall(pc, nil, now)
		ids[i], made[i] = c.id, c
		b.Calls = append(b.Calls, c.row(now.UnixNano()))
	}
	if key != nil {
		b.Keys = []store.Key{e.keyRow(key, ids, now)}
	}
	err := e.commit.Submit(b, func(err error) {
		e.mu.Lock()
		if err != nil {
			e.fail(err)
		}
		for _, c := range made {
			if err != nil {
				delete(e.calls, c.id)
				continue
			}
			if c.state == stNew {
				e.makeReady(c)
			}
		}
		e.mu.Unlock()
		done <- err
	})
	if err != nil {
		for _, c := range made {
			delete(e.calls, c.id)
		}
		if !errors.Is(err, store.ErrClosed) {
			e.fail(err)
			err = &StoreError{Err: err}
		} else {
			err = ErrClosed
		}
	}
	e.mu.Unlock()
	if err != nil {
		return nil, err
	}
	// Wait for the commit even if ctx ends: the calls are recorded or not
	// as a whole and the caller learns which only by waiting.
	if err := <-done; err != nil {
		return nil, &StoreError{Err: err}
	}
	return ids, nil
}

// newCall makes the call pc asks for, made now: a root call when parent
// is nil, else a child of parent, which never outlives it. It is added to
// the live calls, in state stNew. Called with e.mu held.
func (e *Engine) newCall(pc *sdkv1.Call, parent *call, now time.Time) *call {
	// Every id, a child's too, is drawn in the engine's partition, which
	// is its tree's: a replica that gets only the id (the Result or the
	// Cancel of a child started early, whose row is not stored yet) can
	// tell which replica runs it. The cost is the draws of nextIn.
	id := e.ids.nextIn(now, e.cfg.Partition, e.cfg.Partitions)
	exp := e.cfg.DefaultExpiration
	if d, ok := expiration(pc); ok {
		exp = d
	}
	c := &call{
		id:       id,
		rootID:   id,
		ep:       e.endpoint(pc.GetEndpoint()),
		function: pc.GetFunction(),
		version:  pc.GetVersion(),
		input:    pc.GetInput(),
		created:  now.UnixNano(),
		expires:  expiresAt(now, exp, parent),
	}
	if parent != nil {
		c.parentID, c.rootID, c.parentGen, c.corrID = parent.id, parent.rootID, parent.gen, pc.GetCorrelationId()
	}
	e.calls[id] = c
	return c
}

// expiration is the expiration pc sets, if it sets one.
func expiration(pc *sdkv1.Call) (time.Duration, bool) {
	d := pc.GetExpiration()
	if d == nil || d.AsDuration() <= 0 {
		return 0, false
	}
	return d.AsDuration(), true
}

// expiresAt is when a call made now to last d expires: capped at its
// parent's expiration, when it has one (a child that outlives its parent
// is of no use).
func expiresAt(now time.Time, d time.Duration, parent *call) int64 {
	at := after(now, d)
	if parent != nil {
		at = min(at, parent.expires)
	}
	return at
}

// endpoint returns the endpoint of url, made on first use. Called with
// e.mu held.
func (e *Engine) endpoint(url string) *endpoint {
	ep := e.endpoints[url]
	if ep == nil {
		base, query := splitQuery(url)
		var client connect.HTTPClient = e.client
		if query != "" {
			client = &queryClient{client: e.client, query: query}
		}
		ep = &endpoint{
			url:   url,
			local: e.cfg.Local != nil && e.cfg.Local.URL == url,
			client: sdkv1connect.NewFunctionServiceClient(client, base,
				connect.WithReadMaxBytes(e.cfg.MaxResponseBytes),
				// No gzip: on loopback and LANs compressing every message
				// costs more than it saves.
				connect.WithAcceptCompression("gzip", nil, nil)),
			roots:    make(map[string]*rootQueue),
			slotWake: e.slotWake,
		}
		if e.cfg.Limits != nil {
			ep.lim = e.cfg.Limits.get(url, e.cfg.InitialConcurrency, e.cfg.MaxConcurrency)
		} else {
			ep.lim = newLimiter(e.cfg.InitialConcurrency, e.cfg.MaxConcurrency, 1)
		}
		if ep.local {
			ep.client = &inprocClient{run: e.cfg.Local.Run, pool: newWorkerPool(e.ctx.Done(), nil)}
		}
		e.endpoints[url] = ep
	}
	return ep
}

// splitQuery splits an endpoint URL into the base of its Run requests and
// its query (without "?"). A fragment, which the endpoint policy refuses
// and a store made before it could hold, is dropped: it is never sent.
func splitQuery(url string) (base, query string) {
	url, _, _ = strings.Cut(url, "#")
	base, query, _ = strings.Cut(url, "?")
	return base, query
}

// queryClient sets the query of an endpoint URL on its Run requests. The
// connect client appends the procedure to the URL it is given, so given
// http://h/admin?x=1 it would POST to /admin with the service path in the
// query; it is given http://h/admin instead, and queryClient makes the
// request POST /admin/dispatch.sdk.v1.FunctionService/Run?x=1. The query
// is not covered by the request signature (PROTOCOL.md).
type queryClient struct {
	client *http.Client
	query  string
}

func (q *queryClient) Do(r *http.Request) (*http.Response, error) {
	u := *r.URL
	u.RawQuery = q.query
	r2 := r.WithContext(r.Context()) // a shallow copy
	r2.URL = &u
	return q.client.Do(r2)
}

// makeReady queues c on its endpoint and starts what the limit allows.
// Called with e.mu held.
//
// A call left queued behind a saturated endpoint keeps a timer at its
// expiration, so that it fails with TIMEOUT then rather than when a slot
// frees, which may be as late as the attempt timeout of the requests in
// flight.
func (e *Engine) makeReady(c *call) {
	e.disarm(c)
	c.state = stQueued
	c.ep.push(c)
	e.pump(c.ep)
	if c.state == stQueued {
		e.arm(c, c.expires)
	}
}

// pump starts Run requests for ready calls of ep up to its limit. Called
// with e.mu held.
//
// A slot is taken before a call is popped, and kept for the next one when
// the popped call turns out not to run (cancelled, or expired); one left
// unused is given back. When no slot is free, ep waits for one among the
// waiters of its limiter, which wakes the engine to pump again (limiter.go;
// an engine-private limit grants only to ep, whose engine pumps it after
// every release). An engine that cannot run anything (closing, its store
// broken) or has nothing ready gives back what was granted to it.
func (e *Engine) pump(ep *endpoint) {
	if e.closing || e.commit == nil || e.broken != nil {
		ep.lim.leave(ep)
		return
	}
	slot := false
	for ep.ready > 0 {
		if !slot && !ep.lim.acquire(ep) {
			return // waiting for a slot
		}
		slot = true
		c := ep.pop()
		if c.state != stQueued {
			continue
		}
		now := e.now()
		if now.UnixNano() >= c.expires {
			e.expire(c, now.UnixNano())
			continue
		}
		slot = false
		e.disarm(c) // the expiration timer of a queued call
		req, n := e.runRequest(c)
		c.state = stRunning
		e.running++
		deadline := min(after(now, e.cfg.AttemptTimeout), c.expires)
		ctx, stop := context.WithCancel(e.ctx)
		c.stop = stop // a cancel of the call ends the request (cancel.go)
		e.spawn(func() { e.attempt(ctx, stop, c, ep, req, n, now, time.Unix(0, deadline)) })
	}
	if slot {
		ep.lim.release(ep)
	}
	ep.lim.leave(ep)
}

// slotLoop pumps the endpoints when a shared limit granted the engine a
// slot: under the engine's own lock, never under the releasing engine's
// (limiter.go). Each pump uses the slots granted to its endpoint, or gives
// them back.
func (e *Engine) slotLoop() {
	defer e.wg.Done()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-e.slotWake:
		}
		e.mu.Lock()
		for _, ep := range e.endpoints {
			e.pump(ep)
		}
		e.mu.Unlock()
	}
}

// runRequest builds the next Run request of c and the number of inbox
// results it carries. Called with e.mu held.
func (e *Engine) runRequest(c *call) (*sdkv1.RunRequest, int) {
	return e.runRequestFrom(c, c.inbox)
}

// runRequestFrom is runRequest with the inbox results taken from inbox.
func (e *Engine) runRequestFrom(c *call, inbox []*sdkv1.CallResult) (*sdkv1.RunRequest, int) {
	req := &sdkv1.RunRequest{
		Function:         c.function,
		DispatchId:       c.id,
		ParentDispatchId: c.parentID,
		RootDispatchId:   c.rootID,
		CreationTime:     timestamp(c.created),
		ExpirationTime:   timestamp(c.expires),
	}
	if !c.polled {
		req.Directive = &sdkv1.RunRequest_Input{Input: c.input}
		return req, 0
	}
	pr := &sdkv1.PollResult{Error: c.pollErr}
	if c.stateAny != nil {
		pr.State = &sdkv1.PollResult_TypedCoroutineState{TypedCoroutineState: c.stateAny}
	} else {
		pr.State = &sdkv1.PollResult_CoroutineState{CoroutineState: c.stateRaw}
	}
	n := 0
	if c.pollErr == nil {
		n = fitting(inbox[:min(len(inbox), int(c.maxResults))], maxResumeResultBytes)
		pr.Results = inbox[:n:n]
	}
	req.Directive = &sdkv1.RunRequest_PollResult{PollResult: pr}
	return req, n
}

// submit hands b to the committer; fn runs with e.mu held once b is
// durable, and never if b could not be stored. Called with e.mu held.
func (e *Engine) submit(b *store.Batch, fn func()) {
	e.submitted(e.commit.Submit(b, e.callback(fn)))
}

// fail marks the store broken after a commit failed for good: no attempt
// starts any more and Dispatch fails, so that nothing acts on a change
// that is not durable. What is durable stays as it is and resumes after a
// restart. Called with e.mu held.
func (e *Engine) fail(err error) {
	if e.broken != nil {
		return
	}
	e.broken = err
	e.wakeAll(&StoreError{Err: err})
	switch {
	case e.cfg.Partitions > 0 && errors.Is(err, store.ErrFenced):
		// Expected in a failover: not the operator's to fix.
		e.log.Warn().Err(err).Msg("the partition was taken by another replica: this engine stops, and its calls resume at the new owner")
		return
	case e.cfg.Partitions > 0:
		e.log.Error().Err(err).Msg("the store cannot write: this partition's engine stops; its calls are kept and resume when a replica takes the partition again")
		return
	}
	e.log.Error().Err(err).Msg("the store cannot write: no call is accepted or run until the server restarts; calls already accepted are kept and resume on restart")
}

// maxResumeResultBytes bounds the encoded results one resume carries, well
// under the 16 MB request limit of SDK endpoints (and leaving room for the
// state): a resume over an endpoint's limit would be refused with
// resource_exhausted, read as THROTTLED, and retried until it expired.
const maxResumeResultBytes = 8 << 20

// fitting returns how many of rs fit in limit bytes; at least one, so that
// a single large result still goes (the endpoint decides). The others wait
// for the next poll: a resume may carry fewer than min_results, and the
// coroutine polls again for the rest.
func fitting(rs []*sdkv1.CallResult, limit int) int {
	size := 0
	for i, r := range rs {
		size += proto.Size(r)
		if size > limit && i > 0 {
			return i
		}
	}
	return len(rs)
}
