package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/matryer/is"
	"github.com/rs/zerolog"

	"github.com/dispatchkit/dispatch/internal/pgtest"
	"github.com/dispatchkit/dispatch/internal/store"
	"github.com/dispatchkit/dispatch/server"
)

// countingStore counts the transactions (Applies) of the store it wraps,
// and the inbox writes (results added and removed); the stores of the
// partitions of a replica share one count.
type countingStore struct {
	store.Store
	*counts
}

type counts struct{ applies, inbox atomic.Int64 }

func (c *countingStore) Apply(ctx context.Context, batches ...*store.Batch) error {
	c.applies.Add(1)
	for _, b := range batches {
		c.inbox.Add(int64(len(b.Results) + len(b.Delivered)))
	}
	return c.Store.Apply(ctx, batches...)
}

// TestOneCommitPerAwaitStep counts the transactions of a sequential
// workflow: the Dispatch, the first poll, then one per await step (the
// child's outcome with the parent's answer), on every store; two per step
// when nothing is held. A held result is never written to the inbox: the
// parent's answer consumed it in the same transaction. With early start
// (the default) a step does not wait for the commit of the one before, so
// the committer may group several steps in one transaction: at most that
// many then; exactly that many without early start.
func TestOneCommitPerAwaitStep(t *testing.T) {
	const steps = 5
	tests := []struct {
		name    string
		store   string
		maxHold time.Duration
		late    bool  // no early start
		want    int64 // transactions from the Dispatch to the final outcome
		inbox   int64 // inbox writes
	}{
		{"memory", "memory", time.Minute, false, steps + 2, 0},
		{"sqlite", "sqlite", time.Minute, false, steps + 2, 0},
		{"postgres", "postgres", time.Minute, false, steps + 2, 0},
		{"sqlite, no early start", "sqlite", time.Minute, true, steps + 2, 0},
		{"postgres, no early start", "postgres", time.Minute, true, steps + 2, 0},
		{"sqlite, never held", "sqlite", -1, true, 2*steps + 2, 2 * steps}, // each result added, then removed
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			cs := &counts{}
			b := setup(t, func(c *server.Config) {
				switch tt.store {
				case "sqlite":
					c.Memory, c.StateDir = false, t.TempDir()
				case "postgres":
					c.Memory, c.Postgres = false, pgtest.URL(t)
				}
				server.WithStore(c, func(st store.Store) store.Store {
					return &countingStore{Store: st, counts: cs}
				}, 0)
				// Never reached: a loaded machine must not make a step
				// take two commits.
				server.WithMaxHold(c, tt.maxHold)
				if tt.late {
					server.WithNoEarlyStart(c)
				}
			})
			b.ep.handle("echo", echo)
			b.ep.handle("wf", chain("echo", steps))
			before := cs.applies.Load()
			ids := b.dispatch(t, call("wf", "x"))
			o := result(t, b.srv, ids[0]) // woken once the last commit is durable
			is.Equal(strOf(o.Result.GetOutput()), "x.0,x.1,x.2,x.3,x.4")
			if n := cs.applies.Load() - before; tt.late {
				is.Equal(n, tt.want)
			} else {
				is.True(n >= 2 && n <= tt.want) // the Dispatch's, then grouped steps
			}
			is.Equal(cs.inbox.Load(), tt.inbox)
			st := b.srv.Stats()
			if tt.late {
				is.Equal(st.Early, int64(0))
			} else {
				is.Equal(st.Early, int64(steps)) // every child
			}
			if tt.maxHold > 0 {
				is.Equal(st.Held, int64(steps)) // every step held
			} else {
				is.Equal(st.Held, int64(0))
			}
			is.Equal(st.HeldAlone, int64(0))
		})
	}
}

// crashStore stops writing to the store it wraps when the test says, as a
// process that dies there: from then on every Apply fails ("fail"), or
// reports success and writes nothing ("drop": the store as a process
// killed before its next commit leaves it, while the engine carries on in
// memory); "fail once" fails the next Apply only.
type crashStore struct {
	store.Store
	mu   sync.Mutex
	mode string
}

func (c *crashStore) set(mode string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mode = mode
}

func (c *crashStore) Apply(ctx context.Context, batches ...*store.Batch) error {
	c.mu.Lock()
	mode := c.mode
	if mode == "fail once" {
		c.mode = ""
	}
	c.mu.Unlock()
	switch mode {
	case "fail", "fail once":
		return errDiskFull
	case "drop":
		return nil
	}
	return c.Store.Apply(ctx, batches...)
}

// runs counts the requests of function name by input.
func runs(ep *testEndpoint, name string) map[string]int {
	n := map[string]int{}
	for _, r := range ep.requests(name) {
		n[strOf(r.GetInput())]++
	}
	return n
}

// TestAwaitStepCrash loses the joint commit of a step (the child's
// outcome with the parent's answer): the process dies while the parent's
// resume, which carries the child's result from memory, is in flight, or
// the store fails the commit. Nothing is lost: after a restart the child
// runs again, the parent resumes again from its stored state, and the
// workflow ends with the right result. A commit that fails once is
// retried and costs nothing.
func TestAwaitStepCrash(t *testing.T) {
	const steps = 3
	tests := []struct {
		name string
		at   int    // the resume during which the store stops writing
		mode string // crashStore's
	}{
		{"crash before the joint commit of a poll", 1, "drop"},
		{"crash before the joint commit of the exit", steps, "drop"},
		{"the joint commit of a poll fails", 1, "fail"},
		{"the joint commit of the exit fails", steps, "fail"},
		{"the joint commit fails once", 2, "fail once"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			dir := t.TempDir()
			ep := newTestEndpoint(t, "")
			var cs *crashStore
			start := func(wrap bool) *bundle {
				cfg := server.Config{
					Endpoint:   ep.URL(),
					StateDir:   dir,
					MinBackoff: time.Millisecond,
					MaxBackoff: 10 * time.Millisecond,
					Logger:     zerolog.Nop(),
				}
				server.WithMaxHold(&cfg, time.Minute) // only the answer commits the child's outcome
				if wrap {
					retry := -time.Nanosecond // no retry: the engine is broken at once
					if tt.mode == "fail once" {
						retry = time.Minute
					}
					server.WithStore(&cfg, func(st store.Store) store.Store {
						cs = &crashStore{Store: st}
						return cs
					}, retry)
				}
				return startServer(t, ep, cfg)
			}
			crashed := make(chan struct{})
			release := make(chan struct{})
			var once sync.Once
			defer once.Do(func() { close(release) })
			wf := chain("echo", steps)
			var resumes atomic.Int32
			ep.handle("echo", echo)
			ep.handle("wf", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
				if pr := req.GetPollResult(); pr != nil && resumes.Add(1) == int32(tt.at) {
					// The child whose result this resume carries was
					// started before the commit that made it (early
					// start): the store stops writing only once that
					// commit, and so all before it, is durable.
					id := pr.GetResults()[0].GetDispatchId()
					if !eventually(func() bool {
						_, err := cs.Store.GetCall(context.Background(), id)
						return err == nil
					}) {
						t.Errorf("the commit that made child %s is not durable", id)
					}
					cs.set(tt.mode)
					if tt.mode == "drop" {
						close(crashed)
						<-release // the answer never comes back
					}
				}
				return wf(req)
			})

			b1 := start(true)
			ids := b1.dispatch(t, call("wf", "x"))
			const want = "x.0,x.1,x.2"
			if tt.mode == "fail once" {
				o := result(t, b1.srv, ids[0])
				is.Equal(strOf(o.Result.GetOutput()), want)
				is.Equal(runs(ep, "echo"), map[string]int{"x.0": 1, "x.1": 1, "x.2": 1})
				is.Equal(ep.count("wf"), steps+1)
				return
			}
			if tt.mode == "drop" {
				recv(t, crashed)
			} else {
				waitFor(t, "the engine to stop on the failure", func() bool { return b1.srv.Health() != nil })
			}
			is.NoErr(b1.srv.Close())
			once.Do(func() { close(release) })

			b2 := start(false)
			o := result(t, b2.srv, ids[0])
			is.Equal(strOf(o.Result.GetOutput()), want)
			again := fmt.Sprintf("x.%d", tt.at-1) // the child whose result the lost resume carried
			wantRuns := map[string]int{"x.0": 1, "x.1": 1, "x.2": 1}
			wantRuns[again] = 2 // ran again
			got := runs(ep, "echo")
			if orphan := fmt.Sprintf("x.%d", tt.at); tt.mode == "fail" && tt.at < steps {
				// The child made by the answer whose commit failed was
				// started early, while that commit was in flight: it
				// may have run once more, outside the durable history.
				is.True(got[orphan] == 1 || got[orphan] == 2)
				got[orphan] = 1
			}
			is.Equal(got, wantRuns)
			is.Equal(ep.count("wf"), steps+2) // the lost resume came again
			waitFor(t, "all done", func() bool { return b2.srv.Live() == 0 })
		})
	}
}

// The helpers below may run in a test endpoint's handlers, off the test's
// goroutine: they report with t.Errorf and never stop the test.

// eventually polls cond until it holds, for at most 10 s, and reports
// whether it did.
func eventually(cond func() bool) bool {
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}

// getResult asks the result route of srv for call id, without waiting,
// and returns the HTTP status and the answer's status field.
func getResult(t *testing.T, srv *server.Server, id string) (int, string) {
	req, err := http.NewRequest("GET", srv.URL()+"/dispatch.local.v1/calls/"+id+"/result", nil)
	if err != nil {
		t.Errorf("result of %s: %v", id, err)
		return 0, ""
	}
	req.Header.Set("Authorization", "Bearer "+srv.APIKey())
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("result of %s: %v", id, err)
		return 0, ""
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	var body struct{ Status string }
	if err == nil {
		err = json.Unmarshal(data, &body)
	}
	if err != nil {
		t.Errorf("result of %s: %v: %s", id, err, data)
	}
	return res.StatusCode, body.Status
}

// storedState returns the state of call id in the store of srv; 0 when
// the store has no row for it yet (a child started before the commit that
// creates it: see "Early start" in the scheduler's documentation).
func storedState(t *testing.T, srv *server.Server, id string) store.CallState {
	c, err := srv.Store().GetCall(context.Background(), id)
	if errors.Is(err, store.ErrNotFound) {
		return 0
	}
	if err != nil {
		t.Errorf("reading call %s: %v", id, err)
		return 0
	}
	return c.State
}

// TestHeldResultNotVisible checks that while a parent's resume carries a
// child's result that is not stored yet, nothing else sees it: the
// child's row is not final, its result route answers pending, and a
// Result waiter that came meanwhile is woken once the commit is durable,
// with the outcome.
func TestHeldResultNotVisible(t *testing.T) {
	is := is.New(t)
	b := setup(t, func(c *server.Config) {
		c.Memory, c.StateDir = false, t.TempDir()
		server.WithMaxHold(c, time.Minute)
	})
	type seen struct {
		code    int
		status  string
		state   store.CallState
		watched bool
	}
	atResume := make(chan seen, 1)
	waited := make(chan *server.Outcome, 1)
	wf := chain("echo", 1)
	b.ep.handle("echo", echo)
	b.ep.handle("wf", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
		if pr := req.GetPollResult(); pr != nil {
			id := pr.GetResults()[0].GetDispatchId()
			var s seen
			s.code, s.status = getResult(t, b.srv, id)
			s.state = storedState(t, b.srv, id)
			if s.code == http.StatusAccepted {
				go func() {
					o, err := b.srv.Result(context.Background(), id)
					if err != nil {
						t.Errorf("Result(%s): %v", id, err)
					}
					waited <- o
				}()
				s.watched = eventually(func() bool { return b.srv.Watched() == 1 })
			}
			atResume <- s
		}
		return wf(req)
	})
	ids := b.dispatch(t, call("wf", "x"))
	s := recv(t, atResume)
	is.Equal(s.code, http.StatusAccepted) // pending while the resume was in flight
	is.Equal(s.status, "pending")
	is.True(s.state != store.Done) // not final in the store either
	is.True(s.watched)
	o := result(t, b.srv, ids[0])
	is.Equal(strOf(o.Result.GetOutput()), "x.0")
	co := recv(t, waited) // the waiter got the durable outcome
	is.True(co != nil)
	is.Equal(strOf(co.Result.GetOutput()), "x.0")
	child := b.ep.requests("echo")[0].GetDispatchId()
	is.Equal(co.Result.GetDispatchId(), child)
	is.Equal(storedState(t, b.srv, child), store.Done)
}

// TestGatherHeld runs a parent polling two children, a fast and a slow
// one. Gathering any one result (min_results 1, max_results 1), the fast
// child resumes the parent, and the slow one finishes while that resume is
// in flight: its result is stored after the held one, never before, and
// the next resume carries it. Gathering both (min_results 2), the slow
// child's result resumes the parent with both.
func TestGatherHeld(t *testing.T) {
	tests := []struct {
		name     string
		min, max int32
		resumes  [][]string // the outputs each resume carries
	}{
		{"any one, the other while the resume is in flight", 1, 1, [][]string{{"a"}, {"b"}}},
		{"both", 2, 2, [][]string{{"a", "b"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			b := setup(t, func(c *server.Config) {
				c.Memory, c.StateDir = false, t.TempDir()
				server.WithMaxHold(c, time.Minute)
			})
			g := newGate(t)
			b.ep.handle("fast", echo)
			b.ep.handle("slow", g.gated(echo))
			// What the first resume found in the store.
			type seen struct{ fast, slow store.CallState }
			var mu sync.Mutex
			var got [][]string
			var first, afterSlow seen
			b.ep.handle("parent", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
				pr := req.GetPollResult()
				if pr == nil {
					return poll("", tt.min, tt.max, time.Hour, child(1, "fast", "a"), child(2, "slow", "b")), nil
				}
				var outs []string
				ids := map[uint64]string{}
				for _, r := range pr.GetResults() {
					outs = append(outs, strOf(r.GetOutput()))
					ids[r.GetCorrelationId()] = r.GetDispatchId()
				}
				mu.Lock()
				got = append(got, outs)
				n := len(got)
				mu.Unlock()
				if n == 1 {
					first.fast = storedState(t, b.srv, ids[1])
					if id, ok := ids[2]; ok {
						first.slow = storedState(t, b.srv, id)
					}
				}
				if tt.min == 1 && n == 1 {
					// The slow child ends while this resume is in
					// flight.
					g.open()
					var slow string
					if !eventually(func() bool {
						rs := b.ep.requests("slow")
						if len(rs) == 0 {
							return false
						}
						slow = rs[0].GetDispatchId()
						return storedState(t, b.srv, slow) == store.Done
					}) {
						t.Errorf("the slow child's outcome was not stored")
					}
					afterSlow.fast, afterSlow.slow = storedState(t, b.srv, ids[1]), store.Done
				}
				if len(outs) == 2 || n == 2 {
					return output("done"), nil
				}
				return poll("", 1, tt.max, time.Hour), nil
			})
			ids := b.dispatch(t, call("parent", ""))
			if tt.min == 2 {
				// The slow child ends once the fast one's result is in
				// the parent's inbox (its waiters are woken after that):
				// the last result resumes the parent.
				waitFor(t, "the fast child", func() bool { return b.ep.count("fast") == 1 })
				result(t, b.srv, b.ep.requests("fast")[0].GetDispatchId())
				g.open()
			}
			o := result(t, b.srv, ids[0])
			is.Equal(strOf(o.Result.GetOutput()), "done")
			mu.Lock()
			defer mu.Unlock()
			is.Equal(got, tt.resumes)
			if tt.min == 1 {
				is.True(first.fast != store.Done)    // the resume carried it held
				is.Equal(afterSlow.fast, store.Done) // stored before the slow one, not overtaken
			} else {
				is.Equal(first.fast, store.Done)  // stored before the resume
				is.True(first.slow != store.Done) // held: the last result resumed the parent
			}
			is.Equal(b.ep.count("fast"), 1)
			is.Equal(b.ep.count("slow"), 1)
		})
	}
}

// TestHeldFlushed checks that a held outcome does not wait for an answer
// that is late or will not come: past MaxHold it is committed on its own
// while the parent's resume is still in flight, and a server closed
// meanwhile commits it before it stops, so that the child does not run
// again after the restart.
func TestHeldFlushed(t *testing.T) {
	tests := []struct {
		name    string
		maxHold time.Duration
		close   bool // close the server during the resume
	}{
		{"MaxHold passes", time.Millisecond, false},
		{"the server closes", time.Minute, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			dir := t.TempDir()
			ep := newTestEndpoint(t, "")
			start := func() *bundle {
				cfg := server.Config{Endpoint: ep.URL(), StateDir: dir, Logger: zerolog.Nop()}
				server.WithMaxHold(&cfg, tt.maxHold)
				return startServer(t, ep, cfg)
			}
			var srv atomic.Pointer[server.Server]
			inResume := make(chan struct{})
			release := make(chan struct{})
			var once sync.Once
			defer once.Do(func() { close(release) })
			var storedAlone atomic.Bool
			wf := chain("echo", 1)
			var resumes atomic.Int32
			ep.handle("echo", echo)
			ep.handle("wf", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
				if pr := req.GetPollResult(); pr != nil && resumes.Add(1) == 1 {
					if tt.close {
						close(inResume)
						<-release
					} else {
						id := pr.GetResults()[0].GetDispatchId()
						storedAlone.Store(eventually(func() bool {
							return storedState(t, srv.Load(), id) == store.Done
						}))
					}
				}
				return wf(req)
			})
			b := start()
			srv.Store(b.srv)
			ids := b.dispatch(t, call("wf", "x"))
			if tt.close {
				recv(t, inResume)
				is.NoErr(b.srv.Close())
				once.Do(func() { close(release) })
				b = start()
			}
			o := result(t, b.srv, ids[0])
			is.Equal(strOf(o.Result.GetOutput()), "x.0")
			is.Equal(ep.count("echo"), 1) // the child's outcome was kept
			if !tt.close {
				is.True(storedAlone.Load()) // before the answer
				st := b.srv.Stats()
				is.Equal(st.Held, int64(1))
				is.Equal(st.HeldAlone, int64(1))
			}
		})
	}
}
