package scheduler

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/matryer/is"

	"github.com/dispatchkit/dispatch/internal/store/memstore"
)

// gatedEndpoint is an in-process endpoint whose Run requests each wait for
// a token on gate (or their cancel), counting the requests in flight and
// their peak. A request whose function is "throttle" answers THROTTLED
// the first time.
type gatedEndpoint struct {
	url       string
	gate      chan struct{}
	inflight  atomic.Int64
	peak      atomic.Int64
	throttled atomic.Bool
}

func newGatedEndpoint() *gatedEndpoint {
	return &gatedEndpoint{url: "http://shared.limit", gate: make(chan struct{})}
}

func (g *gatedEndpoint) run(ctx context.Context, req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
	n := g.inflight.Add(1)
	defer g.inflight.Add(-1)
	for {
		p := g.peak.Load()
		if n <= p || g.peak.CompareAndSwap(p, n) {
			break
		}
	}
	if req.GetFunction() == "throttle" && g.throttled.CompareAndSwap(false, true) {
		return &sdkv1.RunResponse{Status: sdkv1.Status_STATUS_THROTTLED}, nil
	}
	select {
	case <-g.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return &sdkv1.RunResponse{Status: sdkv1.Status_STATUS_OK, Directive: &sdkv1.RunResponse_Exit{Exit: &sdkv1.Exit{
		Result: &sdkv1.CallResult{Output: str("ok")}}}}, nil
}

// engine starts an engine on its own store that runs g's calls under the
// limits ls, with a fixed limit of limit (initial and maximum).
func (g *gatedEndpoint) engine(t *testing.T, ls *Limits, limit int) *Engine {
	t.Helper()
	return started(t, Config{Store: memstore.New(), Limits: ls, InitialConcurrency: limit, MaxConcurrency: limit,
		MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond, Local: &LocalEndpoint{URL: g.url, Run: g.run}})
}

// enginePair starts two engines, a and b, that run the calls of one
// gated endpoint g under the limits ls (nil: each its own), with a fixed
// limit of limit.
func enginePair(t *testing.T, ls *Limits, limit int) (g *gatedEndpoint, a, b *Engine) {
	t.Helper()
	g = newGatedEndpoint()
	return g, g.engine(t, ls, limit), g.engine(t, ls, limit)
}

func (g *gatedEndpoint) dispatch(t *testing.T, e *Engine, function string, n int) {
	t.Helper()
	calls := make([]*sdkv1.Call, n)
	for i := range calls {
		calls[i] = &sdkv1.Call{Function: function, Endpoint: g.url}
	}
	if _, err := e.Dispatch(context.Background(), calls); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds, failing the test after a deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("scheduler test: gave up waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// feed lets the requests at the endpoint answer, one token each, until
// done holds.
func (g *gatedEndpoint) feed(t *testing.T, what string, done func() bool) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !done() {
		select {
		case g.gate <- struct{}{}:
		case <-tick.C: // check done again
		case <-deadline:
			t.Fatalf("scheduler test: gave up waiting until %s", what)
		}
	}
}

func (e *Engine) limiterOf(url string) *limiter {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.endpoints[url].lim
}

// Two engines sharing Limits never have more than the limit in flight to
// an endpoint between them, and the freed slots go to both: an engine
// with a few calls queued behind another's long queue gets every other
// slot, not the slots left after the other's whole queue.
func TestSharedLimitBoundsAndFairness(t *testing.T) {
	tests := []struct {
		name        string
		limit       int
		long, short int
	}{
		{"limit 1", 1, 100, 5},
		{"limit 4", 4, 200, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			g, a, b := enginePair(t, NewLimits(), tt.limit)
			g.dispatch(t, a, "f", tt.long)
			waitFor(t, "a fills the limit", func() bool { return g.inflight.Load() == int64(tt.limit) })
			g.dispatch(t, b, "f", tt.short)
			g.feed(t, "b's calls are done", func() bool { return b.Live() == 0 })
			// b's calls took about one slot in two: a has most of its queue left.
			is.True(a.Live() > tt.long-3*tt.short)
			g.feed(t, "a's calls are done", func() bool { return a.Live() == 0 })
			is.True(g.peak.Load() <= int64(tt.limit)) // never more than the limit in flight in total
			is.True(a.limiterOf(g.url) == b.limiterOf(g.url))
			waitFor(t, "every slot is given back", func() bool { _, n := a.limiterOf(g.url).current(); return n == 0 })
		})
	}
}

// A throttling answer to one engine lowers the limit the other runs under.
func TestSharedLimitThrottle(t *testing.T) {
	is := is.New(t)
	g, a, b := enginePair(t, NewLimits(), 16)
	g.dispatch(t, a, "throttle", 1)
	waitFor(t, "the throttled call is retried", func() bool { return g.throttled.Load() && g.inflight.Load() == 1 })
	limit, _ := a.limiterOf(g.url).current()
	is.Equal(limit, 8.0) // halved
	g.dispatch(t, b, "f", 30)
	// a's retry holds one slot: b gets the 7 others and no more, since none
	// is given back before the gate opens.
	waitFor(t, "b fills the limit", func() bool { return g.inflight.Load() == 8 })
	is.True(b.limiterOf(g.url) == a.limiterOf(g.url)) // one limiter, shared (not two alike)
	is.Equal(g.peak.Load(), int64(8))
	g.feed(t, "every call is done", func() bool { return a.Live() == 0 && b.Live() == 0 })
}

// Close of an engine gives back its slots, those of its requests in
// flight and those granted to it: the other engine's waiting calls run.
func TestSharedLimitClose(t *testing.T) {
	is := is.New(t)
	g, a, b := enginePair(t, NewLimits(), 3)
	g.dispatch(t, a, "f", 10)
	waitFor(t, "a fills the limit", func() bool { return g.inflight.Load() == 3 })
	g.dispatch(t, b, "f", 6)
	is.NoErr(a.Close())
	waitFor(t, "b takes the freed slots", func() bool { return g.inflight.Load() == 3 })
	g.feed(t, "b's calls are done", func() bool { return b.Live() == 0 })
	is.True(g.peak.Load() <= 3)
	waitFor(t, "every slot is given back", func() bool { _, n := b.limiterOf(g.url).current(); return n == 0 })
}

// An engine without Limits keeps its own limit per endpoint.
func TestPrivateLimits(t *testing.T) {
	is := is.New(t)
	g, a, b := enginePair(t, nil, 2)
	g.dispatch(t, a, "f", 5)
	g.dispatch(t, b, "f", 5)
	waitFor(t, "both fill their limits", func() bool { return g.inflight.Load() == 4 })
	is.True(a.limiterOf(g.url) != b.limiterOf(g.url))
	g.feed(t, "every call is done", func() bool { return a.Live() == 0 && b.Live() == 0 })
	is.True(g.peak.Load() <= 4)
}
