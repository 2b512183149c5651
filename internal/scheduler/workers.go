package scheduler

import (
	"sync"
	"time"
)

// Run requests go to reused goroutines rather than one new goroutine each.
// A Run request goes deep (connect, net/http, protobuf marshaling; in
// process, the flow engine and CBOR decoding of the coroutine state), and a
// new goroutine's stack grows, copied at each doubling, all the way there
// every time: 4.6% of the CPU of `dispatch bench` (b) went to growing
// stacks over HTTP, 5% in process. A worker keeps its grown stack from one
// request to the next. Workers are made when none is idle, so they never
// hold a request back (their number follows the requests in flight, which
// the endpoints' limits bound), and leave after workerIdle without work.

// workerIdle is how long a worker waits for another request before it
// leaves.
const workerIdle = 10 * time.Second

// workerPool runs functions on reused goroutines. A worker leaves after
// workerIdle without work, or once quit is closed and its function has
// returned. When wg is set, it counts the workers (the engine waits for its
// Run requests at Close); the in-process runs of a LocalEndpoint leave it
// nil: a stuck function must not hold up Close, as a stuck HTTP handler
// does not.
type workerPool struct {
	work chan func()
	quit <-chan struct{}
	wg   *sync.WaitGroup
}

func newWorkerPool(quit <-chan struct{}, wg *sync.WaitGroup) workerPool {
	return workerPool{work: make(chan func()), quit: quit, wg: wg}
}

// spawn runs fn on an idle worker, or on a new one if none is idle.
func (p *workerPool) spawn(fn func()) {
	select {
	case p.work <- fn:
	default:
		if p.wg != nil {
			p.wg.Add(1)
		}
		go p.loop(fn)
	}
}

func (p *workerPool) loop(fn func()) {
	if p.wg != nil {
		defer p.wg.Done()
	}
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		fn()
		idle.Reset(workerIdle)
		select {
		case fn = <-p.work:
		case <-idle.C:
			return
		case <-p.quit:
			return
		}
	}
}

// spawn runs fn on one of the engine's workers.
func (e *Engine) spawn(fn func()) { e.workers.spawn(fn) }
