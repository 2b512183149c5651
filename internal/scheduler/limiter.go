package scheduler

import (
	"sync"
	"time"
)

// Limits is a set of endpoint concurrency limits, one per endpoint URL,
// that engines share (see "Shared endpoint limits" in the package
// documentation): a server running several partitions gives the same
// Limits to each partition's engine ([Config.Limits]), so that what the
// server sends an endpoint is bounded by one adaptive limit, and a
// throttling endpoint brings that one limit down, whatever the number of
// partitions. The zero value is not usable: make one with [NewLimits].
//
// The engines sharing a Limits should have the same InitialConcurrency,
// MinConcurrency and MaxConcurrency: a limit starts at the initial value
// of the engine that first uses its endpoint, and each engine bounds the
// adaptations it makes by its own minimum and maximum.
type Limits struct {
	mu    sync.Mutex
	byURL map[string]*limiter
}

// NewLimits returns an empty set of shared limits.
func NewLimits() *Limits {
	return &Limits{byURL: make(map[string]*limiter)}
}

// get returns the limiter of url, made with the initial limit on first
// use.
func (ls *Limits) get(url string, initial int) *limiter {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	l := ls.byURL[url]
	if l == nil {
		l = &limiter{limit: float64(initial)}
		ls.byURL[url] = l
	}
	return l
}

// limiter is the AIMD concurrency limit of one endpoint URL and the slots
// taken from it, for the endpoints (one per engine) that use it: private to
// one engine's endpoint without [Config.Limits], shared by the engines of a
// server with it.
//
// Its own mutex guards it, so that engines use it without each other's
// locks. An engine calls it with its e.mu held, so the lock order is e.mu,
// then l.mu, and the limiter never takes an e.mu: an engine waiting for a
// slot is woken by a non-blocking send on its slotWake channel, and takes
// the slot under its own lock in its slot loop (Engine.slotLoop). Taking
// the waiter's e.mu from within a release, which runs under the
// releaser's e.mu, could deadlock two engines releasing to each other.
//
// Fairness: a slot that frees while engines wait is not left for whoever
// asks first (the releasing engine, which pumps its own queue next, would
// then always win it): it is granted to the first waiter, counted in
// flight from then on, and the waiter goes to the tail of the waiters; it
// uses its grants when it wakes, and gives back those left once it has
// nothing ready (leave). The engines with ready calls thus take the freed
// slots round-robin, whatever the time each takes to wake: one granted a
// slot is not out of the turn until it wakes (it was, at first, and a
// slow waker lost half of its share under -race on two cores).
type limiter struct {
	mu sync.Mutex
	// AIMD concurrency limit: +1/limit per answered request (about +1 per
	// round trip of a full window), halved on a throttling signal at most
	// once per decreaseWindow.
	limit        float64
	inflight     int // slots taken, granted but unused ones included
	lastDecrease time.Time
	waiters      []*endpoint // endpoints waiting for slots, granted from head
	head         int
}

// acquire takes a slot for ep: one granted to it, or a free one. Without
// one, ep waits (once) for a grant. Called with e.mu of ep's engine held.
func (l *limiter) acquire(ep *endpoint) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ep.granted > 0 {
		ep.granted--
		return true
	}
	// Free slots while others wait are granted at once (grantLocked), so
	// a free slot here has no waiter in front of ep.
	if l.inflight < int(l.limit) && !ep.waiting {
		l.inflight++
		return true
	}
	if !ep.waiting {
		ep.waiting = true
		l.waiters = append(l.waiters, ep)
	}
	return false
}

// canStart reports whether ep would get a slot now. Called with e.mu of
// ep's engine held.
func (l *limiter) canStart(ep *endpoint) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return ep.granted > 0 || (l.inflight < int(l.limit) && !ep.waiting)
}

// release gives back a slot of ep without adapting the limit: a slot
// taken and not used, or the slot of an outcome dropped (at Close, or no
// longer the call's). Freed slots go to the waiters; ep itself is not
// woken: its engine pumps ep after a release. Called with e.mu of ep's
// engine held.
func (l *limiter) release(ep *endpoint) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inflight--
	l.grantLocked(ep)
}

// answered is release for a Run request of ep that ended with an
// outcome, which adapts the limit (throttled or not, bounded by lo and
// hi) before the slot goes to the waiters.
func (l *limiter) answered(ep *endpoint, throttled bool, now time.Time, lo, hi float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inflight--
	l.adaptLocked(throttled, now, lo, hi)
	l.grantLocked(ep)
}

// leave takes ep out of the waiters and gives back the slots granted to
// it and not used: its engine has nothing ready for the endpoint, or
// cannot run it (closing, or its store broken). Called with e.mu of ep's
// engine held.
func (l *limiter) leave(ep *endpoint) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !ep.waiting && ep.granted == 0 {
		return
	}
	if ep.waiting {
		ep.waiting = false
		for i := l.head; i < len(l.waiters); i++ {
			if l.waiters[i] == ep {
				copy(l.waiters[i:], l.waiters[i+1:])
				l.waiters[len(l.waiters)-1] = nil
				l.waiters = l.waiters[:len(l.waiters)-1]
				break
			}
		}
	}
	l.inflight -= ep.granted
	ep.granted = 0
	l.grantLocked(ep)
}

// grantLocked grants the free slots to the waiters round-robin and wakes
// them, all but self (the caller's, which its engine pumps next). Called
// with l.mu held.
func (l *limiter) grantLocked(self *endpoint) {
	for l.head < len(l.waiters) && l.inflight < int(l.limit) {
		w := l.waiters[l.head]
		l.waiters[l.head] = nil
		l.head++
		l.waiters = append(l.waiters, w) // still waiting, at the tail
		w.granted++
		l.inflight++
		if w != self {
			select {
			case w.slotWake <- struct{}{}:
			default: // a wake is pending already
			}
		}
	}
	if l.head == len(l.waiters) {
		l.waiters, l.head = l.waiters[:0], 0
	} else if l.head > 64 && l.head*2 > len(l.waiters) {
		n := copy(l.waiters, l.waiters[l.head:])
		clear(l.waiters[n:])
		l.waiters, l.head = l.waiters[:n], 0
	}
}

// decreaseWindow spaces multiplicative decreases, so that one burst of
// throttled answers halves the limit once rather than down to one.
const decreaseWindow = 100 * time.Millisecond

// adaptLocked applies one outcome to the limit, bounded by lo and hi.
// Called with l.mu held.
func (l *limiter) adaptLocked(throttled bool, now time.Time, lo, hi float64) {
	if throttled {
		if now.Sub(l.lastDecrease) >= decreaseWindow {
			l.limit = max(lo, l.limit/2)
			l.lastDecrease = now
		}
		return
	}
	l.limit = min(hi, l.limit+1/l.limit)
}

// current returns the limit and the slots taken, for tests.
func (l *limiter) current() (limit float64, inflight int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.limit, l.inflight
}
