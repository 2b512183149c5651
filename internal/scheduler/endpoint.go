package scheduler

import (
	"buf.build/gen/go/stealthrocket/dispatch-proto/connectrpc/go/dispatch/sdk/v1/sdkv1connect"
)

// endpoint is one function service URL of an engine: its client, its
// adaptive concurrency limit (lim, the engine's own or shared with other
// engines, limiter.go) and its ready queue.
//
// The ready queue is fair across root calls: it holds one FIFO per root
// with ready calls and serves the roots round-robin, one call each, so a
// root with 10,000 ready children gets one slot in turn like a root with
// one ready call.
type endpoint struct {
	url    string
	client sdkv1connect.FunctionServiceClient
	local  bool // served in process (Config.Local): unsigned

	lim *limiter
	// waiting (in lim's waiters) and granted (slots lim granted to this
	// endpoint, not yet used) are guarded by lim.mu; slotWake is its
	// engine's, which a grant wakes.
	waiting  bool
	granted  int
	slotWake chan<- struct{}

	roots map[string]*rootQueue
	ring  []*rootQueue // roots with ready calls, served from ring[head]
	head  int
	ready int // total ready calls
}

type rootQueue struct {
	root  string
	calls []*call
	head  int
}

func (ep *endpoint) push(c *call) {
	q := ep.roots[c.rootID]
	if q == nil {
		q = &rootQueue{root: c.rootID}
		ep.roots[c.rootID] = q
		ep.ring = append(ep.ring, q)
	}
	q.calls = append(q.calls, c)
	ep.ready++
}

// pop returns the next ready call, round-robin across roots.
func (ep *endpoint) pop() *call {
	if ep.head == len(ep.ring) {
		return nil
	}
	q := ep.ring[ep.head]
	ep.ring[ep.head] = nil
	ep.head++
	c := q.calls[q.head]
	q.calls[q.head] = nil
	q.head++
	ep.ready--
	if q.head == len(q.calls) {
		delete(ep.roots, q.root)
	} else {
		if q.head > 1024 && q.head*2 > len(q.calls) {
			n := copy(q.calls, q.calls[q.head:])
			clear(q.calls[n:])
			q.calls, q.head = q.calls[:n], 0
		}
		ep.ring = append(ep.ring, q)
	}
	if ep.head > 64 && ep.head*2 > len(ep.ring) {
		n := copy(ep.ring, ep.ring[ep.head:])
		clear(ep.ring[n:])
		ep.ring, ep.head = ep.ring[:n], 0
	}
	return c
}
