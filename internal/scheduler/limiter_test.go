package scheduler

import (
	"context"
	"sync"
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
	url      string
	gate     chan struct{}
	arrived  atomic.Int64 // Run requests that reached the endpoint
	inflight atomic.Int64 // requests whose function has not returned
	peak     atomic.Int64 // the most requests in flight with a live context at once

	mu        sync.Mutex
	live      map[context.Context]struct{} // the requests whose function has not returned
	throttled atomic.Bool
}

func newGatedEndpoint() *gatedEndpoint {
	return &gatedEndpoint{url: "http://shared.limit", gate: make(chan struct{}), live: make(map[context.Context]struct{})}
}

// enter counts ctx's request among those in flight and returns how many
// are: the requests whose context is live. A request the scheduler gave
// up on (its context cancelled, as a closing engine does) is no longer in
// flight for the limit, though its function may not have returned yet (an
// in-process call returns at the cancel without waiting for it, as an
// HTTP request's connection is closed): counting those would make the
// peak a race between the cancelled function and the next request.
func (g *gatedEndpoint) enter(ctx context.Context) int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	for c := range g.live {
		if c.Err() != nil {
			delete(g.live, c)
		}
	}
	g.live[ctx] = struct{}{}
	return int64(len(g.live))
}

func (g *gatedEndpoint) leave(ctx context.Context) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.live, ctx)
}

func (g *gatedEndpoint) run(ctx context.Context, req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
	g.arrived.Add(1)
	g.inflight.Add(1)
	defer g.inflight.Add(-1)
	n := g.enter(ctx)
	defer g.leave(ctx)
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

// feedInTurn is feed one token at a time: after each, it waits until the
// slot the answer frees is taken again (a new request reaches the
// endpoint) or done holds, so that no answer is still on its way when the
// next token goes, and which engine ran what depends on the limiter alone.
// With feed, an engine whose last answers are slow to be processed (its
// goroutines not scheduled for a while, under -race on two cores) holds
// those slots meanwhile, and the other engine's requests, which rightly
// get every other slot once the first has nothing queued, answer as many
// tokens as come. It needs a call ready, in one engine or the other, for
// every slot freed before done holds.
func (g *gatedEndpoint) feedInTurn(t *testing.T, what string, done func() bool) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for !done() {
		n := g.arrived.Load()
		select {
		case g.gate <- struct{}{}:
		case <-deadline:
			t.Fatalf("scheduler test: gave up waiting until %s", what)
		}
		waitFor(t, "the freed slot is taken again", func() bool { return g.arrived.Load() > n || done() })
	}
}

// idleOn reports whether e has no call queued for the endpoint url and
// no Run request running (to any endpoint: the tests using it have one):
// every answer of its requests has been processed.
func (e *Engine) idleOn(url string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	ep := e.endpoints[url]
	return ep != nil && ep.ready == 0 && e.running == 0
}

// waitsOn reports whether e's endpoint url is among the waiters of its
// limiter.
func (e *Engine) waitsOn(url string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	ep := e.endpoints[url]
	ep.lim.mu.Lock()
	defer ep.lim.mu.Unlock()
	return ep.waiting
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
			// Dispatch returns once its calls are queued: b waits for a slot.
			is.True(b.waitsOn(g.url))
			// Tokens one at a time until b's answers are all processed, then
			// none until b's calls are stored as done: a's calls that ended
			// meanwhile are those the limiter gave slots to, not those that
			// happened to run while b's last answers were on their way.
			g.feedInTurn(t, "b's requests are answered", func() bool { return b.idleOn(g.url) })
			waitFor(t, "b's calls are done", func() bool { return b.Live() == 0 })
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

// A slot freed while endpoints wait is handed to the next waiter at the
// release, round-robin, whoever asks for a slot first afterwards: the
// releaser, whose engine pumps it right after, gets its turn and no more,
// and a waiter slow to wake keeps its grants and its turn. The limiter
// alone, driven step by step: no engines, no goroutines, no timing.
func TestLimiterHandsFreedSlotsRoundRobin(t *testing.T) {
	tests := []struct {
		name string
		wake int // y uses its grants every wake releases
	}{
		{"waiter uses its grants at once", 1},
		{"waiter slow to wake", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			l := &limiter{limit: 2}
			wakeX, wakeY := make(chan struct{}, 1), make(chan struct{}, 1)
			x := &endpoint{url: "x", slotWake: wakeX}
			y := &endpoint{url: "y", slotWake: wakeY}
			var running []*endpoint // requests in flight, oldest first
			// take uses the slots granted to ep, as its engine's pump does.
			take := func(ep *endpoint) {
				for ep.granted > 0 {
					is.True(l.acquire(ep))
					running = append(running, ep)
				}
			}
			is.True(l.acquire(x))
			is.True(l.acquire(x))
			running = append(running, x, x)
			is.True(!l.acquire(x)) // x fills the limit and waits for more
			is.True(!l.acquire(y)) // y waits behind x

			var got []string
			for i := range 40 {
				ep := running[0]
				running = running[1:]
				gx, gy := x.granted, y.granted
				l.answered(ep, false, time.Time{}, 2, 2)
				// Each freed slot is granted at once, to one waiter.
				is.Equal((x.granted-gx)+(y.granted-gy), 1)
				to, wake := x, wakeX
				if y.granted > gy {
					to, wake = y, wakeY
				}
				got = append(got, to.url)
				if to != ep {
					is.Equal(len(wake), 1) // the grantee's engine is woken
				}
				// The releaser asks first: it gets only what was granted
				// to it, and a free slot is never left to be taken.
				take(ep)
				is.True(!l.acquire(ep))
				if (i+1)%tt.wake == 0 {
					for _, w := range []chan struct{}{wakeX, wakeY} {
						select {
						case <-w:
						default:
						}
					}
					take(x)
					take(y)
				}
				_, inflight := l.current()
				is.Equal(inflight, len(running)+x.granted+y.granted) // every slot accounted for
				is.True(inflight <= 2)
			}
			for i, to := range got {
				is.Equal(to, []string{"x", "y"}[i%2]) // x, y, x, y, ...
			}

			// y is granted a slot it has not woken for yet (x's turn, then
			// y's), and then has nothing ready: the slot goes to x.
			take(x)
			take(y)
			for range 2 {
				l.answered(running[0], false, time.Time{}, 2, 2)
				running = running[1:]
				take(x)
			}
			is.Equal(y.granted, 1)
			l.leave(y)
			is.Equal(y.granted, 0)
			is.True(!y.waiting)
			is.Equal(x.granted, 1)
			_, inflight := l.current()
			is.Equal(inflight, len(running)+1)
		})
	}
}

// A share divides a limit's bounds, rounded up and at least 1; a lower
// share clamps the limit at once, granted slots included, and a higher
// one lets it grow by the additive increase only. The limiter alone,
// driven step by step: no engines, no goroutines, no timing.
func TestLimitsShare(t *testing.T) {
	tests := []struct {
		name           string
		initial, hi    int
		share          int
		wantStart      float64 // the limit of an endpoint first used under share
		wantCap        float64 // the most it grows to
		lower          int     // a share set afterwards, with the limit at its cap
		wantLowerLimit float64
	}{
		{"share 1 changes nothing", 16, 64, 1, 16, 64, 1, 64},
		{"divided", 8, 16, 2, 4, 8, 4, 4},
		{"rounded up", 5, 7, 2, 3, 4, 3, 3},
		{"at least 1", 2, 3, 8, 1, 1, 16, 1},
		{"below 1 is 1", 4, 4, 0, 4, 4, -3, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			ls := NewLimits()
			ls.SetShare(tt.share)
			l := ls.get("u", tt.initial, tt.hi)
			limit, _ := l.current()
			is.Equal(limit, tt.wantStart)
			x := &endpoint{url: "x", slotWake: make(chan struct{}, 1)}
			for range 10000 { // answers until the limit is at its cap
				is.True(l.acquire(x))
				l.answered(x, false, time.Time{}, 1, float64(tt.hi))
			}
			limit, _ = l.current()
			is.Equal(limit, tt.wantCap)
			ls.SetShare(tt.lower)
			limit, _ = l.current()
			is.Equal(limit, tt.wantLowerLimit)
			is.True(ls.get("u", tt.initial, tt.hi) == l) // one limiter per URL, whatever the share
		})
	}
}

// Clamped under a lower share, a limit grants no slot until the requests
// in flight are fewer than it, takes back the grants above it, and grows
// again, one by one, once the share rises.
func TestLimitsShareClampAndGrowth(t *testing.T) {
	is := is.New(t)
	ls := NewLimits()
	l := ls.get("u", 8, 8)
	x := &endpoint{url: "x", slotWake: make(chan struct{}, 1)}
	y := &endpoint{url: "y", slotWake: make(chan struct{}, 1)}
	for range 6 {
		is.True(l.acquire(x))
	}
	is.True(l.acquire(y))
	is.True(l.acquire(y))
	is.True(!l.acquire(y)) // 8 in flight: y waits
	l.release(x)           // granted to y, not used yet
	is.Equal(y.granted, 1)

	ls.SetShare(4) // cap 2
	limit, inflight := l.current()
	is.Equal(limit, 2.0)
	is.Equal(y.granted, 0) // taken back
	is.Equal(inflight, 7)  // 5 of x and 2 of y, in flight above the cap, finish
	is.True(!l.acquire(y))
	for range 5 { // answers of x: none frees a slot under the cap
		l.answered(x, false, time.Time{}, 1, 8)
		is.Equal(y.granted, 0)
	}
	l.answered(y, false, time.Time{}, 1, 8) // 1 in flight: y is granted the other
	is.Equal(y.granted, 1)
	limit, _ = l.current()
	is.Equal(limit, 2.0) // at the cap still

	ls.SetShare(1) // cap 8: no jump
	limit, _ = l.current()
	is.Equal(limit, 2.0)
	l.answered(y, false, time.Time{}, 1, 8)
	limit, _ = l.current()
	is.Equal(limit, 2.5) // additive increase
	is.True(y.waiting)
	l.leave(y)
	_, inflight = l.current()
	is.Equal(inflight, 0)
}
