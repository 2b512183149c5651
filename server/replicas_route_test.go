package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/matryer/is"

	"github.com/dispatchkit/dispatch/internal/localapi"
	"github.com/dispatchkit/dispatch/internal/store"
	"github.com/dispatchkit/dispatch/server"
)

// Tests of the routing of a child's id between replicas: every id is of
// its tree's partition, so a replica that has neither the row nor the
// call of a child started early (its creating commit in flight at the
// owner) forwards its Result and its Cancel to the owner of the id's
// partition.

// earlyKid is a workflow whose one child ("kid") runs at the owner while
// the commit that creates it is held at the gate: the child has no row
// yet, and only the owner's engine knows it.
type earlyKid struct {
	gate       *applyGate
	own, other *cancelBundle
	root, kid  string
	openKid    func()                   // lets the child exit with "k"
	cancelled  <-chan string            // the child's request stopped
	resumed    <-chan *sdkv1.RunRequest // the root's resume
}

// startEarlyKid starts two gated replicas and a workflow at the first,
// and returns once its child runs early, unstored.
func startEarlyKid(t *testing.T) *earlyKid {
	t.Helper()
	is := is.New(t)
	ep := newCtxEndpoint(t)
	running, cancelled := make(chan string, 1), make(chan string, 1)
	kidGo, openKid := opener()
	ep.handle("kid", func(ctx context.Context, req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
		running <- req.GetDispatchId()
		select {
		case <-kidGo:
			return output("k"), nil
		case <-ctx.Done():
			cancelled <- req.GetDispatchId()
			return nil, ctx.Err()
		}
	})
	rootGo, openRoot := opener()
	resumed := make(chan *sdkv1.RunRequest, 1)
	top := parentOf(resumed, child(1, "kid", ""))
	ep.handle("top", func(ctx context.Context, req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
		if req.GetInput() != nil {
			<-rootGo
		}
		return top(ctx, req)
	})
	gate := &applyGate{}
	_, bs := startGated(t, ep, gate)
	// Registered after the servers' cleanups, so run before them (last
	// first): a server closes only once its held commits are let through.
	t.Cleanup(func() {
		gate.release()
		openRoot()
		openKid()
	})
	w := &earlyKid{gate: gate, openKid: openKid, cancelled: cancelled, resumed: resumed}
	w.root = bs[0].b.dispatch(t, call("top", ""))[0]
	w.own, w.other = ownerOf(bs, w.root)
	gate.hold()
	openRoot()
	w.kid = recv(t, running)
	waitFor(t, "the creating commit held", func() bool { return gate.waiting.Load() > 0 })
	is.Equal(storedState(t, w.own.srv, w.kid), store.CallState(0)) // not stored yet
	// The child's id is of its tree's partition, the one its root names.
	is.Equal(store.PartitionOf(w.kid, testPartitions), store.PartitionOf(w.root, testPartitions))
	is.Equal(w.own.srv.Watched(), 0) // nobody waits yet
	return w
}

// The Result of an early-started child whose row is not stored yet, asked
// of the replica that does not run it, is forwarded to the owner of the
// child's partition: a wait (Server.Result, or the route's long poll as
// the SDK's Wait does) is woken by the owner's watch with the child's
// outcome, and a request that does not wait answers pending, not
// unknown.
func TestReplicasRouteChildResult(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		ask  func(t *testing.T, w *earlyKid) (*server.Outcome, error) // at w.other
		wait bool                                                     // ask waits for the outcome
	}{
		{"Server.Result", func(t *testing.T, w *earlyKid) (*server.Outcome, error) {
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			return w.other.srv.Result(ctx, w.kid)
		}, true},
		{"the route's long poll", func(t *testing.T, w *earlyKid) (*server.Outcome, error) {
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			return server.FetchResult(ctx, nil, w.other.srv.URL(), w.other.srv.APIKey(), w.kid, 20*time.Second)
		}, true},
		{"the route without a wait", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			w := startEarlyKid(t)
			type answer struct {
				o   *server.Outcome
				err error
			}
			got := make(chan answer, 1)
			if tt.wait {
				go func() {
					o, err := tt.ask(t, w)
					got <- answer{o, err}
				}()
				// The wait is at the owner, in its engine's watch of the
				// child: the row is not there to be read.
				waitFor(t, "the wait forwarded to the owner", func() bool { return w.own.srv.Watched() == 1 })
			} else {
				is.Equal(code(getResult(t, w.other.srv, w.kid)), http.StatusAccepted) // pending, not unknown
			}
			w.openKid()
			if !tt.wait {
				// Final in memory, its outcome held: not durable, so pending.
				is.Equal(code(getResult(t, w.other.srv, w.kid)), http.StatusAccepted)
			}
			w.gate.release()
			if tt.wait {
				a := recv(t, got)
				is.NoErr(a.err)
				is.Equal(a.o.Status, sdkv1.Status_STATUS_OK)
				is.Equal(a.o.Result.GetDispatchId(), w.kid)
				is.Equal(strOf(a.o.Result.GetOutput()), "k")
			}
			waitFor(t, "the child's outcome answered by the route", func() bool {
				return code(getResult(t, w.other.srv, w.kid)) == http.StatusOK
			})
			is.Equal(strOf(outcome(t, w.other.srv, w.root).Result.GetOutput()), "handled: k")
		})
	}
}

// The Cancel of an early-started child whose row is not stored yet, sent
// to the replica that does not run it, is forwarded to the owner of the
// child's partition, which cancels it as a server on its own store does:
// the child's request stops, the cancel answers once the child's final
// row is durable, and the parent resumes with the CANCELLED error. Both
// the Go API and the cancel route are forwarded.
func TestReplicasRouteChildCancel(t *testing.T) {
	tests := []struct {
		name   string
		cancel func(w *earlyKid) (int, error) // at w.other
	}{
		{"Server.Cancel", func(w *earlyKid) (int, error) {
			res, err := w.other.srv.Cancel(context.Background(), w.kid, "the test")
			return res.Calls, err
		}},
		{"the cancel route", func(w *earlyKid) (int, error) {
			req, err := http.NewRequest(http.MethodPost, w.other.srv.URL()+"/dispatch.local.v1/calls/"+w.kid+"/cancel",
				strings.NewReader(`{"reason":"the test"}`))
			if err != nil {
				return 0, err
			}
			req.Header.Set("Authorization", "Bearer "+w.other.srv.APIKey())
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				return 0, err
			}
			defer res.Body.Close()
			var body localapi.CancelBody
			if err := json.NewDecoder(res.Body).Decode(&body); err != nil || res.StatusCode != http.StatusOK || body.Status != "cancelled" {
				return 0, fmt.Errorf("the cancel route answered HTTP %d, %+v (%v)", res.StatusCode, body, err)
			}
			return body.Calls, nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			w := startEarlyKid(t)
			type answer struct {
				n   int
				err error
			}
			done := make(chan answer, 1)
			go func() {
				n, err := tt.cancel(w)
				done <- answer{n, err}
			}()
			is.Equal(recv(t, w.cancelled), w.kid) // its request stopped, at the owner
			w.gate.release()
			a := recv(t, done)
			is.NoErr(a.err)
			is.Equal(a.n, 1)
			isCancelled(is, outcome(t, w.other.srv, w.kid), w.kid)
			is.Equal(strOf(outcome(t, w.other.srv, w.root).Result.GetOutput()), "handled: error CANCELLED")
		})
	}
}

// An id that no replica has, of a partition the other replica owns, is
// forwarded once and answered unknown by the owner, for a Result (with
// and without a wait) and a Cancel alike; the owner does not forward it
// back.
func TestReplicasRouteUnknownID(t *testing.T) {
	is := is.New(t)
	w := startEarlyKid(t)
	w.gate.release()
	var id string
	for i := 0; id == ""; i++ {
		if c := fmt.Sprintf("nosuchcall%d", i); store.PartitionOf(c, testPartitions) == ownerPartition(w) {
			id = c
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, b := range []*cancelBundle{w.other, w.own} {
		_, err := b.srv.Result(ctx, id)
		is.True(errors.Is(err, server.ErrUnknownCall))
		is.Equal(code(getResult(t, b.srv, id)), http.StatusNotFound)
		_, err = server.FetchResult(ctx, nil, b.srv.URL(), b.srv.APIKey(), id, time.Second) // a long poll
		is.True(errors.Is(err, server.ErrUnknownCall))
		_, err = b.srv.Cancel(ctx, id, "the test")
		is.True(errors.Is(err, server.ErrUnknownCall))
	}
}

// ownerPartition is the partition of w's tree, which w.own runs.
func ownerPartition(w *earlyKid) int { return store.PartitionOf(w.root, testPartitions) }

// code is the HTTP status of getResult's answer.
func code(status int, _ string) int { return status }
