package scheduler

import (
	"math"
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
//
// A Limits may hold a share of limits that several processes split
// ([Limits.SetShare]): the replicas of a cluster each run their engines
// under a Limits of share R, R being the live replicas, so that what the
// cluster sends an endpoint is bounded by MaxConcurrency (rounded up, by
// at most R-1), not R times it. Each limit's minimum, initial value and
// maximum are then divided by R, rounded up and at least 1. The split is
// even and static (no coordination between the replicas beyond counting
// them): a replica whose share is idle does not lend it to the others.
type Limits struct {
	mu    sync.Mutex
	byURL map[string]*limiter
	share int // the divisor of every limit, >= 1
}

// NewLimits returns an empty set of shared limits, of share 1.
func NewLimits() *Limits {
	return &Limits{byURL: make(map[string]*limiter), share: 1}
}

// SetShare makes the limits of ls, those of the endpoints used so far and
// those of endpoints used later, the r-th part of the engines' (r < 1 is
// 1): the maximum of each is ceil(MaxConcurrency / r) and a new limit
// starts at ceil(InitialConcurrency / r), both at least 1.
//
// A lower share (r grew: a replica joined) clamps each limit to its new
// maximum at once: the requests in flight above it finish, the slots
// granted to waiting engines and not used yet are taken back, and no slot
// is granted until fewer than the new limit are in flight. A higher share
// (r fell: a replica died) only raises the maximum: the limits grow to it
// by the usual additive increase, one per round trip of a full window,
// rather than jump, so that an endpoint that was at its limit is probed
// as after any decrease. Safe for concurrent use with the engines: it
// takes each limiter's lock, never an engine's.
func (ls *Limits) SetShare(r int) {
	r = max(r, 1)
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if r == ls.share {
		return
	}
	ls.share = r
	for _, l := range ls.byURL {
		l.setShare(r)
	}
}

// get returns the limiter of url, made on first use with the initial
// limit and the maximum hi of the engine asking, divided by the share.
func (ls *Limits) get(url string, initial, hi int) *limiter {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	l := ls.byURL[url]
	if l == nil {
		l = newLimiter(initial, hi, ls.share)
		ls.byURL[url] = l
	}
	return l
}

// newLimiter returns a limiter of share share (see [Limits.SetShare])
// starting at the share of initial, its maximum the share of hi.
func newLimiter(initial, hi, share int) *limiter {
	share = max(share, 1)
	return &limiter{limit: shareOf(float64(initial), share), hi: float64(hi), share: share}
}

// shareOf returns ceil(v / share), at least 1: the part of a limit v one
// of share processes has. Rounded up, so that a small limit split between
// many replicas still lets each send requests (the cluster's total is then
// above v by less than share).
func shareOf(v float64, share int) float64 {
	return max(1, math.Ceil(v/float64(share)))
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
	limit    float64
	inflight int // slots taken, granted but unused ones included
	// share is the divisor of the bounds (Limits.SetShare), >= 1; hi is
	// the maximum of the engine that made the limiter, undivided, to
	// clamp the limit to when the share grows.
	share        int
	hi           float64
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
// hi, the engine's MinConcurrency and MaxConcurrency, divided by the
// share) before the slot goes to the waiters.
func (l *limiter) answered(ep *endpoint, throttled bool, now time.Time, lo, hi float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inflight--
	share := max(l.share, 1) // a limiter's zero value has share 0: whole
	hi = shareOf(hi, share)
	l.adaptLocked(throttled, now, min(shareOf(lo, share), hi), hi)
	l.grantLocked(ep)
}

// setShare sets the divisor of the bounds to share and clamps the limit
// to its new maximum (see Limits.SetShare). The slots granted to waiters
// and not used yet count as in flight: those above the new limit are
// taken back, last waiters first, so that a lower limit holds for the
// requests not started yet; the waiters stay waiting (an engine woken for
// a grant taken back finds none, and waits on).
func (l *limiter) setShare(share int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.share = share
	if hi := shareOf(l.hi, share); l.limit > hi {
		l.limit = hi
	}
	for i := len(l.waiters) - 1; i >= l.head && l.inflight > int(l.limit); i-- {
		w := l.waiters[i]
		n := min(w.granted, l.inflight-int(l.limit))
		w.granted -= n
		l.inflight -= n
	}
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
