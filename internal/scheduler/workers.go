package scheduler

import "time"

// Run requests go to reused goroutines rather than one new goroutine each.
// A Run request goes deep (connect, net/http, protobuf marshaling), and a
// new goroutine's stack grows, copied at each doubling, all the way there
// every time: 4.6% of the CPU of `dispatch bench` (b) went to growing
// stacks. A worker keeps its grown stack from one request to the next.
// Workers are made when none is idle, so they never hold a request back
// (their number follows the requests in flight, which the endpoints'
// limits bound), and leave after workerIdle without work.

// workerIdle is how long a worker waits for another request before it
// leaves.
const workerIdle = 10 * time.Second

// spawn runs fn on an idle worker, or on a new one if none is idle.
func (e *Engine) spawn(fn func()) {
	select {
	case e.work <- fn:
	default:
		e.wg.Add(1)
		go e.worker(fn)
	}
}

func (e *Engine) worker(fn func()) {
	defer e.wg.Done()
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		fn()
		idle.Reset(workerIdle)
		select {
		case fn = <-e.work:
		case <-idle.C:
			return
		case <-e.ctx.Done():
			return
		}
	}
}
