package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"buf.build/gen/go/stealthrocket/dispatch-proto/connectrpc/go/dispatch/sdk/v1/sdkv1connect"
	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"connectrpc.com/connect"
	"github.com/matryer/is"
	"github.com/rs/zerolog"

	"github.com/dispatchkit/dispatch/internal/store"
	"github.com/dispatchkit/dispatch/server"
)

// ctxFn is a test function that sees its request's context.
type ctxFn func(ctx context.Context, req *sdkv1.RunRequest) (*sdkv1.RunResponse, error)

// ctxEndpoint is a FunctionService whose functions see the context of
// their Run request, which the server cancels with the call.
type ctxEndpoint struct {
	srv  *httptest.Server
	mu   sync.Mutex
	fns  map[string]ctxFn
	runs map[string]int
}

func newCtxEndpoint(t *testing.T) *ctxEndpoint {
	ep := &ctxEndpoint{fns: map[string]ctxFn{}, runs: map[string]int{}}
	path, h := sdkv1connect.NewFunctionServiceHandler(ep)
	mux := http.NewServeMux()
	mux.Handle(path, h)
	ep.srv = httptest.NewServer(mux)
	t.Cleanup(ep.srv.Close)
	return ep
}

func (ep *ctxEndpoint) URL() string { return ep.srv.URL }

func (ep *ctxEndpoint) handle(name string, f ctxFn) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	ep.fns[name] = f
}

func (ep *ctxEndpoint) count(name string) int {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return ep.runs[name]
}

func (ep *ctxEndpoint) Run(ctx context.Context, req *connect.Request[sdkv1.RunRequest]) (*connect.Response[sdkv1.RunResponse], error) {
	ep.mu.Lock()
	f := ep.fns[req.Msg.GetFunction()]
	ep.runs[req.Msg.GetFunction()]++
	ep.mu.Unlock()
	if f == nil {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("function %q not registered", req.Msg.GetFunction()))
	}
	res, err := f(ctx, req.Msg)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(res), nil
}

// cancelBundle is a server whose calls go to a ctxEndpoint.
type cancelBundle struct {
	srv *server.Server
	ep  *ctxEndpoint
	b   *bundle
}

func startCancel(t *testing.T, ep *ctxEndpoint, cfg server.Config) *cancelBundle {
	t.Helper()
	cfg.Endpoint = ep.URL()
	cfg.MinBackoff, cfg.MaxBackoff = time.Millisecond, 10*time.Millisecond
	if cfg.StateDir == "" && cfg.Postgres == "" {
		cfg.Memory = true
	}
	if cfg.Logger.GetLevel() == zerolog.DebugLevel { // the zero Logger
		cfg.Logger = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return &cancelBundle{srv: srv, ep: ep, b: &bundle{srv: srv, client: newDispatchClient(srv)}}
}

// blocking is a function that signals running and returns once its
// request's context ends, signalling cancelled.
func blocking(running, cancelled chan<- string) ctxFn {
	return func(ctx context.Context, req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
		running <- req.GetDispatchId()
		<-ctx.Done()
		cancelled <- req.GetDispatchId()
		return nil, ctx.Err()
	}
}

// sleeper suspends for an hour, at every run.
func sleeper(ctx context.Context, req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
	return poll("z", 1, 1, time.Hour), nil
}

// parentOf returns a function that polls calls (all results wanted) and
// hands its resume to out, then exits with the outputs, or the errors'
// types, of the results.
func parentOf(out chan<- *sdkv1.RunRequest, calls ...*sdkv1.Call) ctxFn {
	return func(ctx context.Context, req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
		if req.GetInput() != nil {
			return poll("p", int32(len(calls)), int32(len(calls)), time.Hour, cloneCalls(calls)...), nil
		}
		out <- req
		var got []string
		for _, r := range req.GetPollResult().GetResults() {
			if e := r.GetError(); e != nil {
				got = append(got, "error "+e.GetType())
			} else {
				got = append(got, strOf(r.GetOutput()))
			}
		}
		return output("handled: " + strings.Join(got, ",")), nil
	}
}

func outcome(t *testing.T, srv *server.Server, id string) *server.Outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o, err := srv.Result(ctx, id)
	if err != nil {
		t.Fatalf("Result(%s): %v", id, err)
	}
	return o
}

// isCancelled checks that o is the outcome of a cancelled call.
func isCancelled(is *is.I, o *server.Outcome, id string) {
	is.Helper()
	is.Equal(o.Status, sdkv1.Status_STATUS_PERMANENT_ERROR)
	is.Equal(o.Result.GetError().GetType(), "CANCELLED")
	is.Equal(o.Result.GetDispatchId(), id)
	is.True(strings.Contains(o.Result.GetError().GetMessage(), "was cancelled"))
}

// storedChildren returns the children of id in the store.
func storedChildren(t *testing.T, srv *server.Server, id string) []*store.Call {
	t.Helper()
	kids, err := srv.Store().Children(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return kids
}

func TestCancelRunning(t *testing.T) {
	is := is.New(t)
	ep := newCtxEndpoint(t)
	running, cancelled := make(chan string, 1), make(chan string, 1)
	ep.handle("block", blocking(running, cancelled))
	cb := startCancel(t, ep, server.Config{})
	ids := cb.b.dispatch(t, call("block", "x"))
	is.Equal(recv(t, running), ids[0])

	res, err := cb.srv.Cancel(context.Background(), ids[0], "the test")
	is.NoErr(err)
	is.Equal(res.Calls, 1)
	is.Equal(recv(t, cancelled), ids[0]) // the function saw ctx.Done()
	o := outcome(t, cb.srv, ids[0])
	isCancelled(is, o, ids[0])
	is.Equal(o.Result.GetError().GetMessage(), "dispatch: call "+ids[0]+" was cancelled by the test")
	is.Equal(cb.srv.Live(), 0)
	waitFor(t, "the request dropped", func() bool { return cb.srv.Stats().Live == 0 })
	is.Equal(ep.count("block"), 1) // not retried
}

// A suspended workflow with a gather of children is cancelled: none of
// the children runs again, and the workflow's parent resumes with the
// error and handles it.
func TestCancelSuspendedTree(t *testing.T) {
	is := is.New(t)
	ep := newCtxEndpoint(t)
	running, cancelled := make(chan string, 10), make(chan string, 10)
	ep.handle("block", blocking(running, cancelled))
	ep.handle("sleeper", sleeper)
	ep.handle("echo", func(ctx context.Context, req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) { return echo(req) })
	gathered := make(chan *sdkv1.RunRequest, 1)
	ep.handle("gather", parentOf(make(chan *sdkv1.RunRequest, 1),
		child(1, "block", ""), child(2, "block", ""), child(3, "sleeper", ""), child(4, "echo", "done")))
	ep.handle("top", parentOf(gathered, child(7, "gather", ""), child(8, "echo", "sibling")))
	cb := startCancel(t, ep, server.Config{})
	top := cb.b.dispatch(t, call("top", ""))[0]
	recv(t, running)
	recv(t, running)
	var gather string
	waitFor(t, "the tree suspended", func() bool {
		for _, k := range storedChildren(t, cb.srv, top) {
			if k.Function == "gather" {
				gather = k.ID
			}
		}
		return gather != "" && len(storedChildren(t, cb.srv, gather)) == 4 && cb.srv.Suspended() == 3 && ep.count("echo") == 2
	})
	waitFor(t, "the echo child done", func() bool { return cb.srv.Live() == 5 }) // top, gather, 2 blocks, sleeper

	res, err := cb.srv.Cancel(context.Background(), gather, "")
	is.NoErr(err)
	is.Equal(res.Calls, 4) // gather, the two blocks, the sleeper; the echo was done
	recv(t, cancelled)
	recv(t, cancelled)

	// The parent of the cancelled call handles its error.
	resume := recv(t, gathered)
	is.Equal(len(resume.GetPollResult().GetResults()), 2)
	o := outcome(t, cb.srv, top)
	is.Equal(o.Status, sdkv1.Status_STATUS_OK)
	is.Equal(strOf(o.Result.GetOutput()), "handled: sibling,error CANCELLED")
	isCancelled(is, outcome(t, cb.srv, gather), gather)
	for _, k := range storedChildren(t, cb.srv, gather) {
		is.Equal(k.State, store.Done)
		if k.Function == "echo" {
			is.Equal(k.Status, int32(sdkv1.Status_STATUS_OK))
			continue
		}
		o := outcome(t, cb.srv, k.ID)
		isCancelled(is, o, k.ID)
		is.True(strings.Contains(o.Result.GetError().GetMessage(), "with its ancestor "+gather+", by a request to the server's cancel route"))
	}
	is.Equal(cb.srv.Live(), 0)
	is.Equal(cb.srv.Timers(), 0) // the sleeper's wake-up disarmed
	is.Equal(ep.count("block"), 2)
	is.Equal(ep.count("sleeper"), 1)
	is.Equal(ep.count("gather"), 1) // never resumed
}

func TestCancelOutcomes(t *testing.T) {
	tests := []struct {
		name      string
		fn        ctxFn
		ready     func(t *testing.T, cb *cancelBundle, id string) // waits for the state to cancel in
		wantCalls int
		wantErr   error
		wantOK    bool // the call's outcome stays a success
	}{
		{
			name: "a sleeping workflow",
			fn:   sleeper,
			ready: func(t *testing.T, cb *cancelBundle, id string) {
				waitFor(t, "asleep", func() bool { return cb.srv.Suspended() == 1 })
			},
			wantCalls: 1,
		},
		{
			name: "a call waiting for its retry",
			fn: func(ctx context.Context, req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
				return failure(sdkv1.Status_STATUS_TEMPORARY_ERROR, "later"), nil
			},
			ready: func(t *testing.T, cb *cancelBundle, id string) {
				waitFor(t, "an attempt", func() bool { return cb.ep.count("fn") >= 1 })
			},
			wantCalls: 1,
		},
		{
			name: "a finished call",
			fn:   func(ctx context.Context, req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) { return echo(req) },
			ready: func(t *testing.T, cb *cancelBundle, id string) {
				outcome(t, cb.srv, id)
			},
			wantOK: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			ep := newCtxEndpoint(t)
			ep.handle("fn", tt.fn)
			cb := startCancel(t, ep, server.Config{MinBackoff: time.Hour})
			id := cb.b.dispatch(t, call("fn", "x"))[0]
			tt.ready(t, cb, id)
			res, err := cb.srv.Cancel(context.Background(), id, "")
			is.NoErr(err)
			is.Equal(res.Calls, tt.wantCalls)
			o := outcome(t, cb.srv, id)
			if tt.wantOK {
				is.Equal(o.Status, sdkv1.Status_STATUS_OK)
			} else {
				isCancelled(is, o, id)
			}
			again, err := cb.srv.Cancel(context.Background(), id, "")
			is.NoErr(err)
			is.Equal(again.Calls, 0) // done now: a no-op
			is.Equal(cb.srv.Live(), 0)
			is.Equal(cb.srv.Timers(), 0)
		})
	}
	t.Run("an unknown id", func(t *testing.T) {
		is := is.New(t)
		cb := startCancel(t, newCtxEndpoint(t), server.Config{})
		_, err := cb.srv.Cancel(context.Background(), "nope", "")
		is.True(errors.Is(err, server.ErrUnknownCall))
		is.True(strings.Contains(err.Error(), `no call "nope"`))
	})
}

// postCancel posts to the cancel route of srv, and returns the answer's
// code, its JSON, and its text.
func postCancel(t *testing.T, srv *server.Server, key, id, body string) (int, map[string]any, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL()+"/dispatch.local.v1/calls/"+id+"/cancel", bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	json.Unmarshal(raw, &out)
	return res.StatusCode, out, string(raw)
}

func TestCancelRoute(t *testing.T) {
	is := is.New(t)
	ep := newCtxEndpoint(t)
	ep.handle("sleeper", sleeper)
	ep.handle("echo", func(ctx context.Context, req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) { return echo(req) })
	cb := startCancel(t, ep, server.Config{})
	ids := cb.b.dispatch(t, call("sleeper", ""), call("echo", "x"))
	waitFor(t, "asleep", func() bool { return cb.srv.Suspended() == 1 })
	outcome(t, cb.srv, ids[1])

	code, _, _ := postCancel(t, cb.srv, "wrong", ids[0], "")
	is.Equal(code, http.StatusUnauthorized)
	code, _, text := postCancel(t, cb.srv, "test", ids[0], `{"reason":"`+strings.Repeat("r", 1025)+`"}`)
	is.Equal(code, http.StatusBadRequest)
	is.True(strings.Contains(text, "the reason of a cancel is at most 1024 bytes"))
	code, _, text = postCancel(t, cb.srv, "test", ids[0], `not json`)
	is.Equal(code, http.StatusBadRequest)
	is.True(strings.Contains(text, `{"reason":"..."}`))
	is.Equal(cb.srv.Suspended(), 1) // refused requests cancel nothing

	code, body, _ := postCancel(t, cb.srv, "test", ids[0], `{"reason":"ops, ticket 7"}`)
	is.Equal(code, http.StatusOK)
	is.Equal(body["status"], "cancelled")
	is.Equal(body["calls"], 1.0)
	is.Equal(outcome(t, cb.srv, ids[0]).Result.GetError().GetMessage(), "dispatch: call "+ids[0]+" was cancelled by ops, ticket 7")
	code, body, _ = postCancel(t, cb.srv, "test", ids[1], "")
	is.Equal(code, http.StatusOK)
	is.Equal(body["status"], "done")
	code, body, _ = postCancel(t, cb.srv, "test", "nope", "")
	is.Equal(code, http.StatusNotFound)
	is.Equal(body["status"], "unknown")
	req, _ := http.NewRequest(http.MethodGet, cb.srv.URL()+"/dispatch.local.v1/calls/"+ids[0]+"/cancel", nil)
	req.Header.Set("Authorization", "Bearer test")
	res, err := http.DefaultClient.Do(req)
	is.NoErr(err)
	res.Body.Close()
	is.Equal(res.StatusCode, http.StatusMethodNotAllowed) // POST only
}

// A cancelled tree stays cancelled across a restart: nothing of it runs
// again.
func TestCancelDurable(t *testing.T) {
	is := is.New(t)
	dir := t.TempDir()
	ep := newCtxEndpoint(t)
	ep.handle("sleeper", sleeper)
	ep.handle("gather", parentOf(make(chan *sdkv1.RunRequest, 1), child(1, "sleeper", ""), child(2, "sleeper", "")))
	cb := startCancel(t, ep, server.Config{StateDir: dir})
	root := cb.b.dispatch(t, call("gather", ""))[0]
	waitFor(t, "the tree asleep", func() bool { return cb.srv.Suspended() == 3 })
	res, err := cb.srv.Cancel(context.Background(), root, "")
	is.NoErr(err)
	is.Equal(res.Calls, 3)
	is.NoErr(cb.srv.Close())

	cb2 := startCancel(t, ep, server.Config{StateDir: dir})
	is.Equal(cb2.srv.Live(), 0) // nothing recovered
	isCancelled(is, outcome(t, cb2.srv, root), root)
	for _, k := range storedChildren(t, cb2.srv, root) {
		isCancelled(is, outcome(t, cb2.srv, k.ID), k.ID)
	}
	is.Equal(ep.count("sleeper"), 2)
	is.Equal(ep.count("gather"), 1)
}

// batchSizes wraps a store and records the number of done calls each
// Apply stores.
type batchSizes struct {
	store.Store
	mu   sync.Mutex
	done []int
}

func (s *batchSizes) Apply(ctx context.Context, batches ...*store.Batch) error {
	n := 0
	for _, b := range batches {
		for _, c := range b.Calls {
			if c.State == store.Done {
				n++
			}
		}
	}
	s.mu.Lock()
	s.done = append(s.done, n)
	s.mu.Unlock()
	return s.Store.Apply(ctx, batches...)
}

// A tree of thousands of calls is cancelled in one transaction.
func TestCancelLargeTree(t *testing.T) {
	is := is.New(t)
	ep := newCtxEndpoint(t)
	ep.handle("sleeper", sleeper)
	var kids []*sdkv1.Call
	for i := range 1000 {
		kids = append(kids, child(uint64(i), "sleeper", ""))
	}
	ep.handle("mid", parentOf(make(chan *sdkv1.RunRequest, 1), kids...))
	var mids []*sdkv1.Call
	for i := range 5 {
		mids = append(mids, child(uint64(i), "mid", ""))
	}
	ep.handle("root", parentOf(make(chan *sdkv1.RunRequest, 1), mids...))
	sizes := &batchSizes{}
	cfg := server.Config{}
	server.WithStore(&cfg, func(st store.Store) store.Store { sizes.Store = st; return sizes }, 0)
	cb := startCancel(t, ep, cfg)
	root := cb.b.dispatch(t, call("root", ""))[0]
	const total = 1 + 5 + 5000
	waitFor(t, "the tree asleep", func() bool { return cb.srv.Suspended() == total })

	res, err := cb.srv.Cancel(context.Background(), root, "")
	is.NoErr(err)
	is.Equal(res.Calls, total)
	sizes.mu.Lock()
	is.Equal(sizes.done[len(sizes.done)-1], total) // the last transaction, all of them
	sizes.mu.Unlock()
	is.Equal(cb.srv.Live(), 0)
	is.Equal(cb.srv.Timers(), 0)
	isCancelled(is, outcome(t, cb.srv, root), root)
}

// Cancelling while children complete: every child's result reaches its
// parent once, or the parent is cancelled; the tree ends consistent, with
// nothing left running.
func TestCancelRace(t *testing.T) {
	for round := range 20 {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			is := is.New(t)
			ep := newCtxEndpoint(t)
			ep.handle("echo", func(ctx context.Context, req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) { return echo(req) })
			var kids []*sdkv1.Call
			for i := range 20 {
				kids = append(kids, child(uint64(i), "echo", fmt.Sprint(i)))
			}
			resumes := make(chan *sdkv1.RunRequest, 1)
			ep.handle("gather", parentOf(resumes, kids...))
			top := make(chan *sdkv1.RunRequest, 1)
			ep.handle("top", parentOf(top, child(1, "gather", "")))
			cb := startCancel(t, ep, server.Config{})
			root := cb.b.dispatch(t, call("top", ""))[0]
			var gather string
			waitFor(t, "the gather", func() bool {
				if kids := storedChildren(t, cb.srv, root); len(kids) == 1 {
					gather = kids[0].ID
				}
				return gather != "" && ep.count("echo") >= round%20
			})
			res, err := cb.srv.Cancel(context.Background(), gather, "")
			is.NoErr(err)
			o := outcome(t, cb.srv, root)
			is.Equal(o.Status, sdkv1.Status_STATUS_OK)
			got := strOf(o.Result.GetOutput())
			if res.Calls == 0 {
				// The gather finished first: its parent got its result.
				is.True(strings.HasPrefix(got, "handled: handled: "))
				is.Equal(len((<-resumes).GetPollResult().GetResults()), 20)
			} else {
				is.Equal(got, "handled: error CANCELLED")
				isCancelled(is, outcome(t, cb.srv, gather), gather)
			}
			waitFor(t, "nothing left", func() bool { return cb.srv.Live() == 0 })
			is.Equal(cb.srv.Timers(), 0)
			for _, k := range storedChildren(t, cb.srv, gather) {
				is.Equal(k.State, store.Done)
			}
		})
	}
}

// TestCancelHeldStep cancels a workflow while its resume is in flight with
// a child's result that is not stored yet (one commit per await step,
// hold.go): the held batch must reach the store before the cancel, so the
// child's outcome is stored and its waiters woken, and the store is left
// with the workflow cancelled and no result in its inbox.
func TestCancelHeldStep(t *testing.T) {
	is := is.New(t)
	b := setup(t, func(c *server.Config) {
		c.Memory, c.StateDir = false, t.TempDir()
		server.WithMaxHold(c, time.Minute) // only the answer would commit the child's outcome
	})
	resumed := make(chan string, 1) // the child's id
	release := make(chan struct{})
	wf := chain("echo", 2)
	b.ep.handle("echo", echo)
	b.ep.handle("wf", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
		if pr := req.GetPollResult(); pr != nil {
			resumed <- pr.GetResults()[0].GetDispatchId()
			<-release // the resume stays in flight until the cancel is done
		}
		return wf(req)
	})
	ids := b.dispatch(t, call("wf", "x"))
	child := recv(t, resumed)
	is.True(storedState(t, b.srv, child) != store.Done) // held: not stored yet

	res, err := b.srv.Cancel(context.Background(), ids[0], "TestCancelHeldStep")
	is.NoErr(err)
	is.Equal(res.Calls, 1) // the workflow; its child is done
	close(release)

	o := result(t, b.srv, child) // stored, and its waiters woken
	is.Equal(o.Status, sdkv1.Status_STATUS_OK)
	is.Equal(strOf(o.Result.GetOutput()), "x.0")
	is.Equal(storedState(t, b.srv, child), store.Done)
	o = result(t, b.srv, ids[0])
	is.Equal(o.Result.GetError().GetType(), "CANCELLED")
	is.Equal(b.ep.count("echo"), 1) // the second step never started
}
