package server_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/matryer/is"

	"github.com/dispatchkit/dispatch/internal/pgtest"
	"github.com/dispatchkit/dispatch/internal/store"
	"github.com/dispatchkit/dispatch/server"
)

// Tests of early start (see "Early start" in the scheduler's
// documentation) on real replicas of one PostgreSQL database: a poll's
// children run while the commit that creates them is in flight, and may
// be orphaned when that commit is fenced.

// applyGate holds the Applies of the stores it wraps while it is shut,
// so that a test can keep the commit that creates early-started children
// in flight for as long as it needs, and counts the Applies that
// succeeded and failed.
type applyGate struct {
	mu      sync.Mutex
	shut    chan struct{} // nil while open
	waiting atomic.Int32  // Applies held
	w       writes
}

// hold shuts the gate: Applies from now on wait for release.
func (g *applyGate) hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.shut == nil {
		g.shut = make(chan struct{})
	}
}

// release opens the gate and lets the held Applies through.
func (g *applyGate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.shut != nil {
		close(g.shut)
		g.shut = nil
	}
}

// wrap is the store wrapper of server.WithStore.
func (g *applyGate) wrap(st store.Store) store.Store {
	return &gatedStore{writeCounter: writeCounter{Store: st, w: &g.w}, g: g}
}

// gatedStore is a writeCounter whose Applies wait at its gate.
type gatedStore struct {
	writeCounter
	g *applyGate
}

func (s *gatedStore) Apply(ctx context.Context, batches ...*store.Batch) error {
	s.g.mu.Lock()
	ch := s.g.shut
	s.g.mu.Unlock()
	if ch != nil {
		s.g.waiting.Add(1)
		<-ch
		s.g.waiting.Add(-1)
	}
	return s.writeCounter.Apply(ctx, batches...)
}

// startGated starts two replicas of one new database, sending calls to
// ep, the Applies of both through gate, and waits until the partitions
// are spread over them. It returns their configurations too, to start
// them again.
func startGated(t *testing.T, ep *ctxEndpoint, gate *applyGate) ([]server.Config, []*cancelBundle) {
	t.Helper()
	url := pgtest.URL(t)
	cfgs := make([]server.Config, 2)
	bs := make([]*cancelBundle, 2)
	for i := range cfgs {
		cfgs[i] = replicaConfig(t, url, i, nil, nil, func(_ int, c *server.Config) {
			server.WithStore(c, gate.wrap, 0)
		})
		bs[i] = startCancel(t, ep, cfgs[i])
	}
	waitFor(t, "the partitions spread", func() bool {
		return spread([]*bundle{bs[0].b, bs[1].b}, testPartitions)
	})
	return cfgs, bs
}

// ownerOf returns the one of the two gated replicas bs that owns the
// partition of call id, and the other one.
func ownerOf(bs []*cancelBundle, id string) (own, other *cancelBundle) {
	_, o := owner([]*bundle{bs[0].b, bs[1].b}, store.PartitionOf(id, testPartitions))
	return bs[o], bs[1-o]
}

// idSet is a set of dispatch ids that handlers add to.
type idSet struct {
	mu  sync.Mutex
	ids map[string]bool
}

func (s *idSet) add(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ids == nil {
		s.ids = map[string]bool{}
	}
	s.ids[id] = true
}

func (s *idSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ids)
}

func (s *idSet) snapshot() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]bool, len(s.ids))
	for id := range s.ids {
		out[id] = true
	}
	return out
}

// par is a workflow that gathers n calls of leaf (inputs "<in>.<k>") and
// returns their outputs, sorted and joined with commas.
func par(leaf string, n int) fn {
	return func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
		if pr := req.GetPollResult(); pr != nil {
			var outs []string
			for _, r := range pr.GetResults() {
				outs = append(outs, strOf(r.GetOutput()))
			}
			slices.Sort(outs)
			return output(strings.Join(outs, ",")), nil
		}
		in := strOf(req.GetInput())
		var calls []*sdkv1.Call
		for k := range n {
			calls = append(calls, child(uint64(k), leaf, fmt.Sprintf("%s.%d", in, k)))
		}
		return poll("par", int32(n), int32(n), time.Hour, calls...), nil
	}
}

// wrapper is a workflow that calls fn once with its input and returns
// the child's output.
func wrapper(function string) fn {
	return func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
		if pr := req.GetPollResult(); pr != nil {
			return output(strOf(pr.GetResults()[0].GetOutput())), nil
		}
		return poll("wrapper", 1, 1, time.Hour, child(1, function, strOf(req.GetInput()))), nil
	}
}

// A replica is frozen (its lease manager paused) while the commit that
// creates the children of its workflows' polls is in flight, those
// children already running (started early). The other replica takes its
// partitions, the commit is then refused (fenced), and the new owner runs
// the workflows again from what was durable: every one completes once,
// with the right result, at the new owner; the frozen replica writes
// nothing after the takeover; and the orphan runs (children started
// early whose creation was fenced, which never exist in the store) are
// among the calls the frozen replica had started before the takeover.
func TestReplicasEarlyStartFenced(t *testing.T) {
	const leaves = 3
	tests := []struct {
		name   string
		root   string // the function dispatched
		nested bool   // the leaves' parent is itself an early-started child
	}{
		{"a gather of leaves", "par", false},
		{"a nested workflow's gather", "outer", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			ep := newTestEndpoint(t, "")
			rootGo, openRoots := opener()
			leafGo, openLeaves := opener()
			defer openLeaves()
			defer openRoots()
			var rootsWaiting atomic.Int32
			early := &idSet{} // children run, all by the zombie until it is paused
			inner := par("leaf", leaves)
			ep.handle("par", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
				if !tt.nested && req.GetInput() != nil {
					rootsWaiting.Add(1)
					<-rootGo
				}
				if tt.nested {
					early.add(req.GetDispatchId())
				}
				return inner(req)
			})
			outer := wrapper("par")
			ep.handle("outer", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
				if req.GetInput() != nil {
					rootsWaiting.Add(1)
					<-rootGo
				}
				return outer(req)
			})
			var leavesWaiting idSet
			ep.handle("leaf", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
				early.add(req.GetDispatchId())
				leavesWaiting.add(req.GetDispatchId())
				<-leafGo
				return echo(req)
			})
			gate := &applyGate{}
			defer gate.release()
			// Up to 120 Run requests (nested: 24 roots, 24 workflows, 72
			// leaves) wait at the zombie at once. The endpoint limit is the
			// cluster's, split between the two replicas: an initial 256
			// leaves each the 128 of the default, as before the split.
			bs := startReplicas(t, 2, ep, nil, func(i int, c *server.Config) {
				c.InitialConcurrency = 2 * 128
				if i == 0 {
					server.WithStore(c, gate.wrap, 0)
				}
			})
			zombie, other := bs[0], bs[1]
			const n = 24 // four in each of the zombie's partitions
			var ids []string
			for i := range n { // round-robin over the zombie's partitions
				ids = append(ids, zombie.dispatch(t, call(tt.root, fmt.Sprintf("w%d", i)))...)
			}
			waitFor(t, "every root's first run", func() bool { return rootsWaiting.Load() == n })
			gate.hold() // the commits of the roots' polls stay in flight
			openRoots()
			waitFor(t, "every leaf started early", func() bool { return leavesWaiting.len() == n*leaves })
			waitFor(t, "the creating commits held", func() bool { return gate.waiting.Load() > 0 })

			// The zombie starts nothing more: its roots wait for their held
			// commits, and its leaves for the test.
			inFlight := early.snapshot()
			zombie.srv.Pause(true)
			waitFor(t, "the other replica to own every partition", func() bool { return spread([]*bundle{other}, testPartitions) })
			before := gate.w.ok.Load()
			gate.release() // the creating commits reach the database: fenced
			waitFor(t, "the zombie's engines stopped by the fence", func() bool { return zombie.srv.Health() != nil })
			openLeaves() // the early children answer, to an engine that drops them

			for i, id := range ids {
				o := result(t, other.srv, id)
				is.Equal(o.Status, sdkv1.Status_STATUS_OK)
				is.Equal(strOf(o.Result.GetOutput()), fmt.Sprintf("w%d.0,w%d.1,w%d.2", i, i, i))
			}
			is.Equal(gate.w.ok.Load(), before) // not one write after the takeover
			is.True(gate.w.failed.Load() > 0)  // though it tried: the creating commits

			orphans := 0
			for _, name := range []string{"par", "leaf"} {
				for _, r := range ep.requests(name) {
					id := r.GetDispatchId()
					if storedState(t, other.srv, id) != 0 {
						continue
					}
					orphans++
					if !inFlight[id] {
						t.Errorf("orphan run of %s %s, which the zombie had not started before the takeover", name, id)
					}
				}
			}
			t.Logf("%d orphan runs of %d calls the zombie started early before the takeover", orphans, len(inFlight))
			is.True(orphans > 0)
			is.True(orphans <= len(inFlight))
			for in, k := range runs(ep, "leaf") {
				if k != 2 { // the orphan, then the new owner's
					t.Errorf("leaf %s ran %d times, want 2", in, k)
				}
			}
			waitFor(t, "nothing live at the new owner", func() bool { return other.srv.Live() == 0 })
			zombie.srv.Pause(false)
			waitFor(t, "the partitions spread again", func() bool { return spread(bs, testPartitions) })
		})
	}
}

// A keyed Dispatch sent to a replica that does not own the key's
// partition is forwarded to the owner, whose workflow's steps start
// early (every child of every poll, counted by the owner's
// Stats.Early, none by the other replica's); the result is waited for at
// the replica that got the request, and the key returns the same id,
// replayed, at both replicas once the workflow is done. The workflow
// starts once.
func TestReplicasEarlyStartKeyed(t *testing.T) {
	tests := []struct {
		name, key, function, input, want string
		// early is how many children the workflow's polls make, all of
		// which start early: the store does not fail here, so the
		// committer is never behind (see "Early start" in the
		// scheduler's documentation), and children live in their
		// root's partition, at the owner.
		early int64
	}{
		{"a chain of three steps", "chain-key-1", "chain", "c1", "c1.0,c1.1,c1.2", 3},
		{"another chain", "chain-key-2", "chain", "c2", "c2.0,c2.1,c2.2", 3},
		{"a gather", "par-key-1", "par", "g1", "g1.0,g1.1,g1.2", 3},
		{"a nested gather", "outer-key-1", "outer", "o1", "o1.0,o1.1,o1.2", 4}, // par, then its 3 leaves
	}
	ep := newTestEndpoint(t, "")
	// early counts the steps whose row was not stored yet when they ran,
	// of steps: whether a child's request overtakes its creating commit
	// is a race, so it is logged; what is asserted is that the children
	// were started early (Stats.Early), not how the race went.
	var early, steps atomic.Int32
	var bs []*bundle
	var ready atomic.Bool
	countEarly := func(f fn) fn {
		return func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
			if ready.Load() && req.GetParentDispatchId() != "" && req.GetInput() != nil {
				steps.Add(1)
				if storedState(t, bs[0].srv, req.GetDispatchId()) == 0 {
					early.Add(1)
				}
			}
			return f(req)
		}
	}
	ep.handle("step", countEarly(echo))
	ep.handle("chain", chain("step", 3))
	ep.handle("leaf", countEarly(echo))
	ep.handle("par", countEarly(par("leaf", 3)))
	ep.handle("outer", wrapper("par"))
	bs = startReplicas(t, 2, ep, nil, nil)
	ready.Store(true)
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			own, i := owner(bs, store.PartitionOf(tt.key, testPartitions))
			is.True(own != nil)
			other := bs[1-i]
			ownEarly, otherEarly := own.srv.Stats().Early, other.srv.Stats().Early
			first, replayed, err := keyed(ctx, other.srv, other.client, []string{tt.key}, call(tt.function, tt.input))
			is.NoErr(err)
			is.Equal(replayed, "false") // the owner started it
			is.Equal(len(first), 1)
			is.Equal(store.PartitionOf(first[0], testPartitions), store.PartitionOf(tt.key, testPartitions))
			o := result(t, other.srv, first[0]) // waited for at the non-owner
			is.Equal(o.Status, sdkv1.Status_STATUS_OK)
			is.Equal(strOf(o.Result.GetOutput()), tt.want)
			// Every poll answered before the result was stored, and its
			// children were counted as they started.
			is.Equal(own.srv.Stats().Early-ownEarly, tt.early)     // every child started early, at the owner
			is.Equal(other.srv.Stats().Early-otherEarly, int64(0)) // the non-owner started nothing early
			for _, b := range []*bundle{other, own, other} {
				again, replayed, err := keyed(ctx, b.srv, b.client, []string{tt.key}, call(tt.function, tt.input))
				is.NoErr(err)
				is.Equal(replayed, "true")
				is.Equal(again, first)
			}
			started := 0
			for _, r := range ep.requests(tt.function) {
				if r.GetDispatchId() == first[0] && r.GetInput() != nil {
					started++
				}
			}
			is.Equal(started, 1) // started once
		})
	}
	t.Logf("%d steps of %d ran before their row was stored (started early)", early.Load(), steps.Load())
}

// A Cancel sent to a replica that does not own a workflow, while the
// workflow's early-started children (leaves, and a nested workflow's
// leaves) are in flight, is forwarded to the owner, which cancels the
// whole tree: every descendant is done with the CANCELLED error, whether
// the commit that created them was durable when the cancel came or still
// in flight. After a restart of both replicas nothing resumes.
func TestReplicasEarlyStartCancel(t *testing.T) {
	tests := []struct {
		name     string
		inFlight bool // the creating commits are still in flight when the cancel comes
	}{
		{"children stored", false},
		{"creation in flight", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			ep := newCtxEndpoint(t)
			running, cancelled := make(chan string, 10), make(chan string, 10)
			ep.handle("block", blocking(running, cancelled))
			subs := make(chan string, 1)
			sub := parentOf(make(chan *sdkv1.RunRequest, 1), child(1, "block", ""), child(2, "block", ""))
			ep.handle("sub", func(ctx context.Context, req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
				subs <- req.GetDispatchId()
				return sub(ctx, req)
			})
			rootGo, openRoot := opener()
			defer openRoot()
			rootRunning := make(chan string, 1)
			top := parentOf(make(chan *sdkv1.RunRequest, 1),
				child(1, "block", ""), child(2, "block", ""), child(3, "block", ""), child(4, "sub", ""))
			ep.handle("top", func(ctx context.Context, req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
				if req.GetInput() != nil {
					rootRunning <- req.GetDispatchId()
					<-rootGo
				}
				return top(ctx, req)
			})
			gate := &applyGate{}
			defer gate.release()
			cfgs, bs := startGated(t, ep, gate)
			root := bs[0].b.dispatch(t, call("top", ""))[0]
			is.Equal(recv(t, rootRunning), root)
			_, o := owner([]*bundle{bs[0].b, bs[1].b}, store.PartitionOf(root, testPartitions))
			other := bs[1-o]
			if tt.inFlight {
				gate.hold()
			}
			openRoot()
			var tree []string // the root's live descendants
			for range 5 {
				tree = append(tree, recv(t, running))
			}
			tree = append(tree, recv(t, subs))
			if tt.inFlight {
				waitFor(t, "the creating commit held", func() bool { return gate.waiting.Load() > 0 })
			} else {
				waitFor(t, "every descendant stored", func() bool {
					for _, id := range tree {
						if storedState(t, other.srv, id) == 0 {
							return false
						}
					}
					return true
				})
			}

			type answer struct {
				res server.CancelResult
				err error
			}
			done := make(chan answer, 1)
			go func() {
				res, err := other.srv.Cancel(context.Background(), root, "the test")
				done <- answer{res, err}
			}()
			for range 5 {
				recv(t, cancelled) // each leaf's request stopped
			}
			gate.release()
			a := recv(t, done)
			is.NoErr(a.err)
			is.Equal(a.res.Calls, 1+len(tree))
			isCancelled(is, outcome(t, other.srv, root), root)
			for _, id := range tree {
				o := outcome(t, other.srv, id)
				isCancelled(is, o, id)
				is.True(strings.Contains(o.Result.GetError().GetMessage(), "with its ancestor "+root))
			}
			runsBefore := map[string]int{}
			for _, name := range []string{"top", "sub", "block"} {
				runsBefore[name] = ep.count(name)
			}
			is.Equal(runsBefore, map[string]int{"top": 1, "sub": 1, "block": 5})

			for _, b := range bs { // both replicas restart
				is.NoErr(b.srv.Close())
			}
			for i := range cfgs {
				bs[i] = startCancel(t, ep, cfgs[i])
			}
			waitFor(t, "the partitions spread after the restart", func() bool {
				return spread([]*bundle{bs[0].b, bs[1].b}, testPartitions)
			})
			for _, b := range bs {
				is.Equal(b.srv.Live(), 0) // nothing recovered: every call of the tree is done
			}
			isCancelled(is, outcome(t, bs[o].srv, root), root) // at the restarted owner
			for _, id := range tree {
				is.Equal(storedState(t, bs[o].srv, id), store.Done)
			}
			for name, k := range runsBefore {
				is.Equal(ep.count(name), k) // nothing ran again
			}
		})
	}
}

// A Cancel of an early-started child whose creating commit is still in
// flight, sent to the replica that runs it, cancels the child as a server
// on its own store does (the engine knows the call, though the store does
// not yet): the child is done with the CANCELLED error and its parent
// resumes with it. (Sent to the other replica, it is forwarded here:
// replicas_route_test.go.)
func TestReplicasEarlyStartCancelChild(t *testing.T) {
	is := is.New(t)
	ep := newCtxEndpoint(t)
	running, cancelled := make(chan string, 10), make(chan string, 10)
	ep.handle("block", blocking(running, cancelled))
	rootGo, openRoot := opener()
	defer openRoot()
	resumed := make(chan *sdkv1.RunRequest, 1)
	top := parentOf(resumed, child(1, "block", ""))
	ep.handle("top", func(ctx context.Context, req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
		if req.GetInput() != nil {
			<-rootGo
		}
		return top(ctx, req)
	})
	gate := &applyGate{}
	defer gate.release()
	_, bs := startGated(t, ep, gate)
	root := bs[0].b.dispatch(t, call("top", ""))[0]
	own, other := ownerOf(bs, root)
	gate.hold()
	openRoot()
	kid := recv(t, running)
	waitFor(t, "the creating commit held", func() bool { return gate.waiting.Load() > 0 })
	is.Equal(storedState(t, own.srv, kid), store.CallState(0)) // not stored yet

	done := make(chan error, 1)
	go func() {
		res, err := own.srv.Cancel(context.Background(), kid, "the test")
		if err == nil && res.Calls != 1 {
			err = fmt.Errorf("cancelled %d calls, want 1", res.Calls)
		}
		done <- err
	}()
	is.Equal(recv(t, cancelled), kid) // its request stopped
	gate.release()
	is.NoErr(recv(t, done))
	isCancelled(is, outcome(t, other.srv, kid), kid)
	is.Equal(strOf(outcome(t, other.srv, root).Result.GetOutput()), "handled: error CANCELLED")
}
