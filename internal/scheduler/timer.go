package scheduler

import (
	"container/heap"
	"time"
)

// timerEntry wakes c at `at` unless c.timerSeq moved on since (lazy
// deletion: re-arming or queueing a call bumps its timerSeq).
type timerEntry struct {
	at  int64
	c   *call
	seq uint32
}

type timerHeap []timerEntry

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h timerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)        { *h = append(*h, x.(timerEntry)) }
func (h *timerHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = timerEntry{}
	*h = old[:len(old)-1]
	return e
}

// arm schedules a wake-up of c at `at`, replacing any earlier one. Called
// with e.mu held.
func (e *Engine) arm(c *call, at int64) {
	c.timerSeq++
	first := len(e.timers) == 0 || at < e.timers[0].at
	heap.Push(&e.timers, timerEntry{at: at, c: c, seq: c.timerSeq})
	if first {
		select {
		case e.timerWake <- struct{}{}:
		default:
		}
	}
}

// disarm cancels c's pending wake-up. Called with e.mu held.
func (e *Engine) disarm(c *call) { c.timerSeq++ }

func (e *Engine) timerLoop() {
	defer e.wg.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		e.mu.Lock()
		now := e.now().UnixNano()
		for len(e.timers) > 0 && e.timers[0].at <= now {
			te := heap.Pop(&e.timers).(timerEntry)
			if te.seq == te.c.timerSeq {
				e.wake(te.c, now)
			}
		}
		wait := time.Hour
		if len(e.timers) > 0 {
			wait = time.Duration(e.timers[0].at - now)
		}
		if len(e.timers) == 0 && cap(e.timers) > 1024 {
			e.timers = nil
		}
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

// wake handles a timer of c: expiration, end of a poll's max_wait, or the
// end of a retry back-off. Called with e.mu held.
func (e *Engine) wake(c *call, now int64) {
	switch c.state {
	case stSuspended, stWaiting:
	default:
		return
	}
	if now >= c.expires {
		e.expire(c, now)
		return
	}
	switch c.state {
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
