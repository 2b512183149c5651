package scheduler

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/matryer/is"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/dispatchkit/dispatch/internal/store"
	"github.com/dispatchkit/dispatch/internal/store/memstore"
)

// clock is a clock tests move by hand.
type clock struct{ ns atomic.Int64 }

func (c *clock) now() time.Time        { return time.Unix(0, c.ns.Load()) }
func (c *clock) add(d time.Duration)   { c.ns.Add(int64(d)) }
func newClock(t time.Time) *clock      { c := &clock{}; c.ns.Store(t.UnixNano()); return c }
func anyOf(m proto.Message) *anypb.Any { a, _ := anypb.New(m); return a }
func str(s string) *anypb.Any          { return anyOf(wrapperspb.String(s)) }
func keyCall(fn, in string) *sdkv1.Call {
	return &sdkv1.Call{Function: fn, Input: str(in), Endpoint: "http://127.0.0.1:1"}
}
func keyCalls(ins ...string) []*sdkv1.Call {
	out := make([]*sdkv1.Call, len(ins))
	for i, in := range ins {
		out[i] = keyCall("fn", in)
	}
	return out
}

// startEngine starts an engine on st whose calls go nowhere (they wait
// for their retries, which the fake clock never reaches), with clock c.
func startEngine(t *testing.T, st store.Store, c *clock, retention time.Duration) *Engine {
	t.Helper()
	return started(t, Config{Store: st, Now: c.now, KeyRetention: retention, MinBackoff: time.Hour, MaxBackoff: time.Hour})
}

func TestDispatchKeyRetention(t *testing.T) {
	is := is.New(t)
	ctx := context.Background()
	st := memstore.New()
	c := newClock(time.Unix(1_700_000_000, 0))
	e := startEngine(t, st, c, time.Hour)

	ids, replayed, err := e.DispatchKey(ctx, "k", keyCalls("a", "b"))
	is.NoErr(err)
	is.True(!replayed)
	is.Equal(len(ids), 2)

	c.add(time.Hour - time.Nanosecond) // within the retention
	again, replayed, err := e.DispatchKey(ctx, "k", keyCalls("a", "b"))
	is.NoErr(err)
	is.True(replayed)
	is.Equal(again, ids)
	_, _, err = e.DispatchKey(ctx, "k", keyCalls("a", "other"))
	var conflict *KeyConflictError
	is.True(errors.As(err, &conflict))
	is.Equal(conflict.IDs, ids)

	c.add(time.Nanosecond) // expired, not pruned yet: absent
	k, err := st.Key(ctx, "k")
	is.NoErr(err)
	is.True(!c.now().Before(k.ExpiresAt))
	fresh, replayed, err := e.DispatchKey(ctx, "k", keyCalls("a", "other"))
	is.NoErr(err)
	is.True(!replayed)
	is.True(fresh[0] != ids[0]) // new calls, the key replaced
	k, err = st.Key(ctx, "k")
	is.NoErr(err)
	is.Equal(k.IDs, fresh)
	is.True(k.ExpiresAt.Equal(c.now().Add(time.Hour)))
}

func TestPruneKeys(t *testing.T) {
	is := is.New(t)
	ctx := context.Background()
	st := memstore.New()
	c := newClock(time.Unix(1_700_000_000, 0))
	e := startEngine(t, st, c, time.Hour)
	_, _, err := e.DispatchKey(ctx, "old", keyCalls("a"))
	is.NoErr(err)
	c.add(30 * time.Minute)
	_, _, err = e.DispatchKey(ctx, "new", keyCalls("b"))
	is.NoErr(err)
	c.add(30 * time.Minute) // "old" expires now

	e.mu.Lock()
	e.pruneNow()
	e.mu.Unlock()
	// A batch after the prune's is durable once the prune is.
	_, err = e.Dispatch(ctx, keyCalls("sync"))
	is.NoErr(err)
	_, err = st.Key(ctx, "old")
	is.Equal(err, store.ErrNoKey)
	_, err = st.Key(ctx, "new")
	is.NoErr(err)

	c.add(30 * time.Minute) // "new" expires now: pruned by the next pruning
	e.mu.Lock()
	e.pruneNow()
	e.mu.Unlock()
	_, err = e.Dispatch(ctx, keyCalls("sync"))
	is.NoErr(err)
	_, err = st.Key(ctx, "new")
	is.Equal(err, store.ErrNoKey)

	e.mu.Lock()
	due := e.keysPruned < e.keysUntil
	e.mu.Unlock()
	is.True(!due) // every key known expired and pruned: the next tick does nothing
}

func TestPruneEvery(t *testing.T) {
	is := is.New(t)
	is.Equal(pruneEvery(24*time.Hour), time.Hour)
	is.Equal(pruneEvery(time.Hour), 30*time.Minute)
	is.Equal(pruneEvery(time.Millisecond), 10*time.Millisecond)
}

func TestCallsDigest(t *testing.T) {
	st1, _ := structpb.NewStruct(map[string]any{"a": 1, "b": "x", "c": true, "d": []any{1, 2}})
	st2, _ := structpb.NewStruct(map[string]any{"d": []any{1, 2}, "c": true, "b": "x", "a": 1})
	base := func() *sdkv1.Call { return keyCall("fn", "x") }
	with := func(f func(c *sdkv1.Call)) *sdkv1.Call { c := base(); f(c); return c }
	tests := []struct {
		name string
		a, b []*sdkv1.Call
		same bool
	}{
		{"same", []*sdkv1.Call{base()}, []*sdkv1.Call{base()}, true},
		{"another endpoint", []*sdkv1.Call{base()}, []*sdkv1.Call{with(func(c *sdkv1.Call) { c.Endpoint = "http://127.0.0.1:2" })}, true},
		{"another correlation id", []*sdkv1.Call{base()}, []*sdkv1.Call{with(func(c *sdkv1.Call) { c.CorrelationId = 7 })}, true},
		{"maps in another order", []*sdkv1.Call{{Function: "fn", Input: anyOf(st1)}}, []*sdkv1.Call{{Function: "fn", Input: anyOf(st2)}}, true},
		{"another function", []*sdkv1.Call{base()}, []*sdkv1.Call{keyCall("other", "x")}, false},
		{"another input", []*sdkv1.Call{base()}, []*sdkv1.Call{keyCall("fn", "y")}, false},
		{"no input", []*sdkv1.Call{base()}, []*sdkv1.Call{{Function: "fn"}}, false},
		{"another expiration", []*sdkv1.Call{base()}, []*sdkv1.Call{with(func(c *sdkv1.Call) { c.Expiration = durationpb.New(time.Minute) })}, false},
		{"another version", []*sdkv1.Call{base()}, []*sdkv1.Call{with(func(c *sdkv1.Call) { c.Version = "v2" })}, false},
		{"another order", keyCalls("a", "b"), keyCalls("b", "a"), false},
		{"one call more", keyCalls("a"), keyCalls("a", "a"), false},
		{"fields not run together", []*sdkv1.Call{keyCall("ab", "c")}, []*sdkv1.Call{keyCall("a", "bc")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			is.Equal(string(callsDigest(tt.a)) == string(callsDigest(tt.b)), tt.same)
		})
	}
}

// Requests with the same key run one at a time; other keys do not wait.
func TestKeyLocks(t *testing.T) {
	is := is.New(t)
	var l keyLocks
	ctx := context.Background()
	unlock, err := l.lock(ctx, "a")
	is.NoErr(err)
	other, err := l.lock(ctx, "b") // another key: not held up
	is.NoErr(err)
	other()

	waiting, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := l.lock(waiting, "a")
		errc <- err
	}()
	cancel()
	is.Equal(<-errc, context.Canceled) // gave up while a was held

	got := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		u, err := l.lock(ctx, "a")
		if err != nil {
			t.Error(err)
			return
		}
		close(got)
		u()
	})
	select {
	case <-got:
		t.Fatal("a was locked twice")
	default:
	}
	unlock()
	<-got
	wg.Wait()
	l.mu.Lock()
	is.Equal(len(l.m), 0) // nothing left behind
	l.mu.Unlock()
}
