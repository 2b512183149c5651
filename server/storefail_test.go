package server_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"connectrpc.com/connect"
	"github.com/matryer/is"
	"github.com/rs/zerolog"

	"github.com/dispatchkit/dispatch/internal/store"
	"github.com/dispatchkit/dispatch/server"
)

var errDiskFull = errors.New("test: disk full")

// failingStore wraps a store and fails Apply on demand: the next n times,
// or always once broken.
type failingStore struct {
	store.Store

	mu     sync.Mutex
	next   int  // Applies still to fail
	always bool // fail every Apply
	fails  int  // Applies failed so far
}

func (f *failingStore) Apply(ctx context.Context, batches ...*store.Batch) error {
	f.mu.Lock()
	fail := f.always || f.next > 0
	if f.next > 0 {
		f.next--
	}
	if fail {
		f.fails++
	}
	f.mu.Unlock()
	if fail {
		return errDiskFull
	}
	return f.Store.Apply(ctx, batches...)
}

// failFrom makes the next n Applies fail, or every Apply from now on
// when n is 0.
func (f *failingStore) failFrom(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n == 0 {
		f.always = true
		return
	}
	f.next = n
}

func (f *failingStore) failed() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fails
}

// TestStoreFailure runs a parent that polls two children and exits on its
// resume, with the store failing at one step: a transient failure costs
// nothing; a persistent one stops the server from acting on anything not
// stored, and a restart with a working store completes what was stored.
func TestStoreFailure(t *testing.T) {
	const wantMsg = "server: the store cannot write: test: disk full; calls already accepted are kept and resume on restart"
	tests := []struct {
		name string
		at   string // step at which the store starts failing: dispatch, poll, child
		n    int    // failures; 0: every Apply from then on
	}{
		{"transient at dispatch", "dispatch", 1},
		{"transient at poll", "poll", 1},
		{"transient at child exit", "child", 2},
		{"persistent at dispatch", "dispatch", 0},
		{"persistent at poll", "poll", 0},
		{"persistent at child exit", "child", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			dir := t.TempDir()
			ep := newTestEndpoint(t, "")
			logs := &syncBuffer{}
			var fs *failingStore
			// How long a failed commit is retried. A persistent failure
			// is waited out, so briefly; a transient one must never
			// outlast it, however slowly the retries come on a loaded
			// machine (two failures took more than 100 ms there).
			retry := 100 * time.Millisecond
			if tt.n > 0 {
				retry = time.Minute
			}
			start := func(failing bool) *bundle {
				cfg := server.Config{
					Endpoint:   ep.URL(),
					StateDir:   dir,
					MinBackoff: time.Millisecond,
					MaxBackoff: 10 * time.Millisecond,
					Logger:     zerolog.New(logs),
				}
				if failing {
					server.WithStore(&cfg, func(st store.Store) store.Store {
						fs = &failingStore{Store: st}
						return fs
					}, retry)
				}
				return startServer(t, ep, cfg)
			}

			var arm sync.Once
			fail := func(step string) {
				if step == tt.at {
					arm.Do(func() { fs.failFrom(tt.n) })
				}
			}
			resumed := make(chan *sdkv1.RunRequest, 10)
			ep.handle("parent", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
				if req.GetInput() != nil {
					fail("poll")
					return poll("0", 2, 2, time.Hour, child(1, "echo", "a"), child(2, "echo", "b")), nil
				}
				resumed <- req
				return output("done"), nil
			})
			ep.handle("echo", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
				fail("child")
				return echo(req)
			})

			b1 := start(true)
			srv1 := b1.srv
			fail("dispatch")
			ids, err := b1.send(call("parent", ""))

			if tt.n > 0 {
				// Transient: nothing is lost, the workflow completes.
				is.NoErr(err)
				is.Equal(len(ids), 1)
				r := recv(t, resumed)
				is.Equal(len(r.GetPollResult().GetResults()), 2) // both results delivered
				outcome := result(t, srv1, ids[0])
				is.Equal(strOf(outcome.Result.GetOutput()), "done")
				is.Equal(fs.failed(), tt.n)     // the failures happened
				is.Equal(ep.count("parent"), 2) // run and resume, no more
				is.Equal(ep.count("echo"), 2)
				_, err := b1.send(call("echo", "after"))
				is.NoErr(err) // still accepting
				waitFor(t, "all done", func() bool { return srv1.Live() == 0 })
				is.NoErr(srv1.Health()) // healthy after a passing failure
				is.NoErr(srv1.Close())
				is.True(!strings.Contains(logs.String(), "the store cannot write"))
				return
			}

			// Persistent.
			var root string
			if tt.at == "dispatch" {
				is.Equal(connect.CodeOf(err), connect.CodeUnavailable) // the Dispatch that hit it fails
				is.True(strings.Contains(err.Error(), wantMsg))
				is.Equal(len(ids), 0) // no ids
			} else {
				is.NoErr(err)
				is.Equal(len(ids), 1)
				root = ids[0]
			}
			// A caller waiting for the root's outcome is told that it
			// cannot come before a restart, instead of waiting until its
			// deadline.
			waited := make(chan error, 1)
			if root != "" {
				go func() {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					_, err := srv1.Result(ctx, root)
					waited <- err
				}()
			}
			waitFor(t, "the failure", func() bool { return fs.failed() > 0 })
			// Past the retries (100 ms), with room for a wrong Run request.
			time.Sleep(300 * time.Millisecond)
			want := map[string][2]int{ // parent, echo requests
				"dispatch": {0, 0}, // the call was never stored: never run
				"poll":     {1, 2}, // children not stored, yet started early: orphans, their outcomes dropped
				"child":    {1, 2}, // results not stored: no resume
			}[tt.at]
			is.Equal(ep.count("parent"), want[0])
			is.Equal(ep.count("echo"), want[1])
			is.Equal(len(resumed), 0)
			// Later Dispatch requests are refused, naming the cause.
			ids, err = b1.send(call("echo", "late"))
			is.Equal(connect.CodeOf(err), connect.CodeUnavailable)
			is.True(strings.Contains(err.Error(), wantMsg))
			is.Equal(len(ids), 0)
			_, err = b1.send(call("echo", "later"))
			is.Equal(connect.CodeOf(err), connect.CodeUnavailable) // and stays so
			is.Equal(ep.count("echo"), want[1])
			if root != "" {
				c, err := srv1.Store().GetCall(context.Background(), root)
				is.NoErr(err)
				is.True(c.State != store.Done)
				err = <-waited
				is.True(err != nil && !errors.Is(err, context.DeadlineExceeded)) // the waiter was woken, not timed out
				is.True(strings.Contains(err.Error(), "the store cannot write"))
				is.True(strings.Contains(err.Error(), "after the server restarts, the call resumes from what was stored"))
				_, err = srv1.Result(context.Background(), root) // and a new one is told at once
				is.True(err != nil && strings.Contains(err.Error(), "the store cannot write"))
			}
			// The health route says so, without a key.
			health := srv1.Health()
			is.True(health != nil && strings.Contains(health.Error(), wantMsg))
			res, err := http.Get(srv1.URL() + "/dispatch.local.v1/health")
			is.NoErr(err)
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			is.Equal(res.StatusCode, http.StatusServiceUnavailable)
			is.True(strings.Contains(string(body), `"status":"unavailable"`))
			is.True(strings.Contains(string(body), "test: disk full"))
			is.NoErr(srv1.Close())
			is.Equal(strings.Count(logs.String(), "no call is accepted or run until the server restarts"), 1) // logged once

			// Restart on the same state with a working store.
			b2 := start(false)
			srv2 := b2.srv
			if root == "" {
				calls, err := srv2.Store().ListCalls(context.Background(), store.ListOptions{})
				is.NoErr(err)
				is.Equal(len(calls), 0) // nothing was stored, nothing runs
				is.Equal(srv2.Live(), 0)
			} else {
				r := recv(t, resumed)
				is.Equal(len(r.GetPollResult().GetResults()), 2)
				outcome := result(t, srv2, root)
				is.Equal(strOf(outcome.Result.GetOutput()), "done")
			}
			ids, err = b2.send(call("echo", "again"))
			is.NoErr(err)
			is.Equal(len(ids), 1)
			waitFor(t, "all done", func() bool { return srv2.Live() == 0 })
		})
	}
}

func result(t *testing.T, srv *server.Server, id string) *server.Outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	o, err := srv.Result(ctx, id)
	if err != nil {
		t.Fatalf("Result(%s): %v", id, err)
	}
	return o
}
