package scheduler

import (
	"container/heap"
	"time"
)

// timerHeap holds the calls with a pending wake-up, earliest first. A call
// is in it at most once: c.timerIdx is its index plus one (0: not armed),
// so that re-arming moves its entry and disarming removes it at once,
// rather than leaving a stale entry that would keep a finished call in
// memory until its max_wait or expiration passed.
type timerHeap []*call

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].timerAt < h[j].timerAt }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].timerIdx, h[j].timerIdx = int32(i+1), int32(j+1)
}
func (h *timerHeap) Push(x any) {
	c := x.(*call)
	c.timerIdx = int32(len(*h) + 1)
	*h = append(*h, c)
}
func (h *timerHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	c.timerIdx = 0
	return c
}

// arm schedules a wake-up of c at `at`, replacing any earlier one. Called
// with e.mu held.
//
// The timer goroutine is woken only when at comes before the wake-up it
// has planned: timers armed and disarmed at a high rate (the MaxHold of
// each await step) then cost it no wake-up each, and it finds them in the
// heap when it wakes.
func (e *Engine) arm(c *call, at int64) {
	c.timerAt = at
	if c.timerIdx > 0 {
		heap.Fix(&e.timers, int(c.timerIdx-1))
	} else {
		heap.Push(&e.timers, c)
	}
	if at < e.timerDue {
		select {
		case e.timerWake <- struct{}{}:
		default:
		}
	}
}

// disarm cancels c's pending wake-up. Called with e.mu held.
func (e *Engine) disarm(c *call) {
	if c.timerIdx > 0 {
		heap.Remove(&e.timers, int(c.timerIdx-1))
	}
}

func (e *Engine) timerLoop() {
	defer e.wg.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		e.mu.Lock()
		now := e.now().UnixNano()
		for len(e.timers) > 0 && e.timers[0].timerAt <= now {
			e.wake(heap.Pop(&e.timers).(*call), now)
		}
		wait := time.Hour
		if len(e.timers) > 0 {
			wait = min(time.Duration(e.timers[0].timerAt-now), time.Hour)
		}
		if len(e.timers) == 0 && cap(e.timers) > 1024 {
			e.timers = nil
		}
		e.timerDue = now + int64(wait)
		e.mu.Unlock()
		t.Reset(wait)
		select {
		case <-t.C:
		case <-e.timerWake:
		case <-e.ctx.Done():
			return
		}
	}
}

// wake handles a timer of c: expiration, end of a poll's max_wait, the
// end of a retry back-off, or, for a running call, the end of MaxHold.
// Called with e.mu held.
func (e *Engine) wake(c *call, now int64) {
	if c.state == stRunning {
		e.flush(c) // the answer is late: the held batch goes on its own
		return
	}
	switch c.state {
	case stSuspended, stWaiting, stQueued:
	default:
		return
	}
	if now >= c.expires {
		// A queued call stays in its endpoint's queue, which skips it
		// once it is done.
		e.expire(c, now)
		return
	}
	switch c.state {
	case stQueued:
		e.arm(c, c.expires)
	case stSuspended:
		if now >= c.deadline {
			e.makeReady(c)
			return
		}
		e.arm(c, min(c.deadline, c.expires))
	case stWaiting:
		if now >= c.retryAt {
			e.makeReady(c)
			return
		}
		e.arm(c, min(c.retryAt, c.expires))
	}
}

// Timers returns the number of wake-ups held, for tests and metrics.
func (e *Engine) Timers() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.timers)
}
