package scheduler

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/matryer/is"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/dispatchkit/dispatch/internal/store"
	"github.com/dispatchkit/dispatch/internal/store/memstore"
)

// gateStore wraps a store and, when the test says, blocks its Applies
// until released ("block"), fails them ("fail"; "fence": refused as by
// another replica's fence, which the committer does not retry), or
// reports success and writes nothing ("drop": the store as a process
// killed before its next commit leaves it). It logs the call rows it writes, in order.
type gateStore struct {
	store.Store
	mu      sync.Mutex
	mode    string
	gate    chan struct{} // closed by release
	blocked chan struct{} // gets a value when an Apply starts to wait
	rows    []string      // "id state" of each call row written
}

func newGateStore() *gateStore {
	return &gateStore{Store: memstore.New(), gate: make(chan struct{}), blocked: make(chan struct{}, 1)}
}

func (g *gateStore) set(mode string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.mode = mode
}

// release lets the blocked Applies, and every later one, through.
func (g *gateStore) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.mode == "block" {
		g.mode = ""
		close(g.gate)
	}
}

func (g *gateStore) Apply(ctx context.Context, batches ...*store.Batch) error {
	g.mu.Lock()
	mode, gate := g.mode, g.gate
	g.mu.Unlock()
	switch mode {
	case "block":
		select {
		case g.blocked <- struct{}{}:
		default:
		}
		<-gate
	case "fail":
		return errors.New("gatestore: disk full")
	case "fence":
		return fmt.Errorf("gatestore: another replica took the partition: %w", store.ErrFenced)
	case "drop":
		return nil
	}
	g.mu.Lock()
	for _, b := range batches {
		for _, c := range b.Calls {
			g.rows = append(g.rows, c.ID+" "+c.State.String())
		}
	}
	g.mu.Unlock()
	return g.Store.Apply(ctx, batches...)
}

// index is the position of the first row "id state" written, or -1.
func (g *gateStore) index(id string, s store.CallState) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, r := range g.rows {
		if r == id+" "+s.String() {
			return i
		}
	}
	return -1
}

const earlyURL = "http://in.process"

// runs is a Local endpoint's Run of two functions: "wf" polls one child
// "echo" with its input plus ".0", then exits with the child's output;
// "echo" exits with its input. Each calls its hook (if any) first; a hook
// that returns an error fails the request with it.
type runs struct {
	wf, echo   func(ctx context.Context, req *sdkv1.RunRequest) error
	nWF, nEcho atomic.Int32
	mu         sync.Mutex
	echoIDs    []string // dispatch ids of the echo requests
}

func (r *runs) run(ctx context.Context, req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
	switch req.GetFunction() {
	case "echo":
		r.nEcho.Add(1)
		r.mu.Lock()
		r.echoIDs = append(r.echoIDs, req.GetDispatchId())
		r.mu.Unlock()
		if r.echo != nil {
			if err := r.echo(ctx, req); err != nil {
				return nil, err
			}
		}
		return exitWith(req.GetInput()), nil
	default:
		r.nWF.Add(1)
		if r.wf != nil {
			if err := r.wf(ctx, req); err != nil {
				return nil, err
			}
		}
		if pr := req.GetPollResult(); pr != nil {
			return exitWith(pr.GetResults()[0].GetOutput()), nil
		}
		in := strOfAny(req.GetInput())
		return &sdkv1.RunResponse{Status: sdkv1.Status_STATUS_OK, Directive: &sdkv1.RunResponse_Poll{Poll: &sdkv1.Poll{
			State:      &sdkv1.Poll_CoroutineState{CoroutineState: []byte(in)},
			MinResults: 1, MaxResults: 1, MaxWait: durationpb.New(time.Hour),
			Calls: []*sdkv1.Call{{Function: "echo", Endpoint: earlyURL, Input: str(in + ".0")}},
		}}}, nil
	}
}

func (r *runs) echoID(i int) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.echoIDs[i]
}

func exitWith(out *anypb.Any) *sdkv1.RunResponse {
	return &sdkv1.RunResponse{Status: sdkv1.Status_STATUS_OK, Directive: &sdkv1.RunResponse_Exit{Exit: &sdkv1.Exit{
		Result: &sdkv1.CallResult{Output: out}}}}
}

func strOfAny(a *anypb.Any) string {
	var s wrapperspb.StringValue
	if a == nil || a.UnmarshalTo(&s) != nil {
		return ""
	}
	return s.GetValue()
}

// outputOf is the string output of a stored final row.
func outputOf(row *store.Call) string {
	var a anypb.Any
	if proto.Unmarshal(row.Output, &a) != nil {
		return ""
	}
	return strOfAny(&a)
}

// started makes and starts an engine of cfg, closed when the test ends
// (after its deferred calls, so a test's deferred release of a gateStore
// still comes before Close).
func started(t *testing.T, cfg Config) *Engine {
	t.Helper()
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func earlyEngine(t *testing.T, st store.Store, r *runs, late bool) *Engine {
	t.Helper()
	return started(t, Config{
		Store: st, Local: &LocalEndpoint{URL: earlyURL, Run: r.run},
		MaxHold: time.Minute, NoEarlyStart: late, CommitRetry: -1,
		MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond,
	})
}

// wait receives from ch, failing the test after 10 s.
func wait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
	var zero T
	return zero
}

// cancelAsync cancels call id from another goroutine, for a Cancel that
// waits on what the test does next; the channel gets the number of calls
// it cancelled (a failed Cancel fails the test).
func cancelAsync(t *testing.T, e *Engine, id string) <-chan int {
	n := make(chan int, 1)
	go func() {
		k, err := e.Cancel(context.Background(), id, "test")
		if err != nil {
			t.Errorf("Cancel: %v", err)
		}
		n <- k
	}()
	return n
}

// finalRow waits for the durable final row of call id.
func finalRow(t *testing.T, e *Engine, id string) *store.Call {
	t.Helper()
	w, err := e.Watch(id)
	if err != nil {
		t.Fatal(err)
	}
	if w != nil {
		defer w.Stop()
		wait(t, w.Done(), "the outcome of "+id)
		row, err := w.Outcome()
		if err != nil {
			t.Fatal(err)
		}
		return row
	}
	row, err := e.cfg.Store.GetCall(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return row
}

// startModes are the cases of the tests that run with early start and
// without it (Config.NoEarlyStart: late).
var startModes = []struct {
	name string
	late bool
}{
	{"early start", false},
	{"no early start", true},
}

// TestEarlyStart blocks the commit of the root's first answer (its Poll
// and the child it makes). With early start the child runs while that
// commit waits, its outcome resumes the root, and the root exits, all in
// memory: nothing is visible to Watch or in the store until the commits
// go through. Without it, the child runs only after the commit.
func TestEarlyStart(t *testing.T) {
	for _, tt := range startModes {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			st := newGateStore()
			r := &runs{}
			r.wf = func(_ context.Context, req *sdkv1.RunRequest) error {
				if req.GetPollResult() == nil {
					st.set("block") // the commit of this answer waits
				}
				return nil
			}
			echoed := make(chan struct{}, 1)
			resumed := make(chan struct{}, 1)
			r.echo = func(context.Context, *sdkv1.RunRequest) error { echoed <- struct{}{}; return nil }
			wf := r.wf
			r.wf = func(ctx context.Context, req *sdkv1.RunRequest) error {
				if req.GetPollResult() != nil {
					resumed <- struct{}{}
				}
				return wf(ctx, req)
			}
			e := earlyEngine(t, st, r, tt.late)
			ids, err := e.Dispatch(context.Background(), []*sdkv1.Call{{Function: "wf", Endpoint: earlyURL, Input: str("x")}})
			is.NoErr(err)
			root := ids[0]
			w, err := e.Watch(root)
			is.NoErr(err)
			defer w.Stop()
			wait(t, st.blocked, "the commit of the root's answer")
			if !tt.late {
				wait(t, echoed, "the child's run before the commit")
				wait(t, resumed, "the root's resume before the commit")
				child := r.echoID(0)
				_, err := st.Store.GetCall(context.Background(), child)
				is.True(errors.Is(err, store.ErrNotFound)) // not durable yet
				row, err := st.Store.GetCall(context.Background(), root)
				is.NoErr(err)
				is.True(row.State != store.Done)
				select {
				case <-w.Done():
					t.Fatal("the root's outcome was visible before it was durable")
				default:
				}
				is.Equal(e.Stats().Early, int64(1))
			} else {
				is.Equal(r.nEcho.Load(), int32(0)) // waits for the commit
			}
			st.release()
			wait(t, w.Done(), "the root's outcome")
			row, err := w.Outcome()
			is.NoErr(err)
			is.Equal(outputOf(row), "x.0")
			is.Equal(r.nEcho.Load(), int32(1))
			is.Equal(r.nWF.Load(), int32(2))
			child := r.echoID(0)
			created, done := st.index(child, store.Pending), st.index(child, store.Done)
			is.True(created >= 0 && created < done) // the child's outcome after its creation
			if tt.late {
				is.Equal(e.Stats().Early, int64(0))
			}
			is.Equal(e.Stats().Held, int64(1)) // one commit per step either way
		})
	}
}

// TestEarlyStartCrash loses the commit that creates an early-started
// child: the store fails it, another replica fences the partition (the
// new owner then recovers it from the same store), or the process dies
// before it (the store drops it). The child's run was an orphan, outside the durable history;
// after a restart on the same store the root runs again from its input,
// a new child runs, and the workflow ends with the right result.
func TestEarlyStartCrash(t *testing.T) {
	tests := []struct{ mode string }{{"fail"}, {"fence"}, {"drop"}}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			is := is.New(t)
			st := newGateStore()
			r := &runs{}
			echoed := make(chan struct{}, 1)
			var first atomic.Bool
			first.Store(true)
			r.wf = func(_ context.Context, req *sdkv1.RunRequest) error {
				if req.GetPollResult() == nil && first.CompareAndSwap(true, false) {
					st.set(tt.mode) // this answer's commit is lost
				}
				return nil
			}
			r.echo = func(context.Context, *sdkv1.RunRequest) error {
				select {
				case echoed <- struct{}{}:
				default:
				}
				return nil
			}
			e1 := earlyEngine(t, st, r, false)
			ids, err := e1.Dispatch(context.Background(), []*sdkv1.Call{{Function: "wf", Endpoint: earlyURL, Input: str("x")}})
			is.NoErr(err)
			wait(t, echoed, "the orphan child's run")
			if tt.mode != "drop" {
				deadline := time.Now().Add(10 * time.Second)
				for e1.Err() == nil && time.Now().Before(deadline) {
					time.Sleep(time.Millisecond)
				}
				var se *StoreError
				is.True(errors.As(e1.Err(), &se)) // broken by the failed commit
				is.Equal(errors.Is(se, store.ErrFenced), tt.mode == "fence")
			}
			is.NoErr(e1.Close())
			orphan := r.echoID(0)
			_, err = st.Store.GetCall(context.Background(), orphan)
			is.True(errors.Is(err, store.ErrNotFound)) // it never existed durably

			st.set("")
			e2 := earlyEngine(t, st, r, false)
			row := finalRow(t, e2, ids[0])
			is.Equal(outputOf(row), "x.0")
			is.Equal(r.nEcho.Load(), int32(2)) // the orphan, then the durable child: at least once
			child := r.echoID(1)
			is.True(child != orphan)
			c, err := st.Store.GetCall(context.Background(), child)
			is.NoErr(err)
			is.Equal(c.State, store.Done)
		})
	}
}

// TestEarlyChild covers an early-started child whose creation commit is
// still in flight (blocked) when something happens to it: its outcome
// arrives, its parent is cancelled, or the engine closes.
func TestEarlyChild(t *testing.T) {
	tests := []struct {
		name string
		what string
	}{
		{"the child finishes before its creation commit", "finish"},
		{"a cancel of the parent cancels the child in flight", "cancel"},
		{"Close with the child in flight", "close"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			st := newGateStore()
			r := &runs{}
			var first atomic.Bool
			first.Store(true)
			r.wf = func(_ context.Context, req *sdkv1.RunRequest) error {
				if req.GetPollResult() == nil && first.CompareAndSwap(true, false) {
					st.set("block")
				}
				return nil
			}
			started := make(chan struct{}, 1)
			ended := make(chan error, 1)
			finished := make(chan struct{}, 1)
			var echoes atomic.Int32
			r.echo = func(ctx context.Context, _ *sdkv1.RunRequest) error {
				if echoes.Add(1) > 1 || tt.what == "finish" {
					defer func() { finished <- struct{}{} }()
					return nil
				}
				started <- struct{}{}
				<-ctx.Done() // until cancelled
				ended <- ctx.Err()
				return ctx.Err()
			}
			e := earlyEngine(t, st, r, false)
			ids, err := e.Dispatch(context.Background(), []*sdkv1.Call{{Function: "wf", Endpoint: earlyURL, Input: str("x")}})
			is.NoErr(err)
			root := ids[0]
			wait(t, st.blocked, "the creation commit")

			switch tt.what {
			case "finish":
				wait(t, finished, "the child's outcome")
				st.release()
				row := finalRow(t, e, root)
				is.Equal(outputOf(row), "x.0")
				child := r.echoID(0)
				created, done := st.index(child, store.Pending), st.index(child, store.Done)
				is.True(created >= 0 && created < done) // the child's outcome after its creation

			case "cancel":
				wait(t, started, "the child's run")
				n := cancelAsync(t, e, root)
				is.True(errors.Is(wait(t, ended, "the child's request to end"), context.Canceled))
				st.release()                          // the cancel's batch goes after the creation's
				is.Equal(wait(t, n, "the cancel"), 2) // the root and its child
				row := finalRow(t, e, root)
				is.Equal(row.Status, int32(sdkv1.Status_STATUS_PERMANENT_ERROR))
				child := r.echoID(0)
				c, err := st.Store.GetCall(context.Background(), child)
				is.NoErr(err)
				is.Equal(c.State, store.Done)
				created, done := st.index(child, store.Pending), st.index(child, store.Done)
				is.True(created >= 0 && created < done) // the child's outcome after its creation
				is.Equal(e.Live(), 0)

			case "close":
				wait(t, started, "the child's run")
				closed := make(chan error, 1)
				go func() { closed <- e.Close() }()
				is.True(errors.Is(wait(t, ended, "the child's request to end"), context.Canceled))
				st.release() // Close commits what was submitted
				is.NoErr(wait(t, closed, "Close"))
				// The creation commit went through: after a restart the
				// child runs again (its cancelled run is lost) and the
				// root resumes with its result.
				e2 := earlyEngine(t, st, r, false)
				row := finalRow(t, e2, root)
				is.Equal(outputOf(row), "x.0")
				wait(t, finished, "the child's second run")
				is.Equal(echoes.Load(), int32(2))
				is.Equal(r.nWF.Load(), int32(2)) // the root ran once, resumed once
			}
		})
	}
}
