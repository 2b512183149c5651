package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/matryer/is"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/dispatchkit/dispatch/server"
)

// gate holds the runs of a test function until it is opened.
type gate struct {
	ch   chan struct{}
	once sync.Once
}

func newGate(t *testing.T) *gate {
	g := &gate{ch: make(chan struct{})}
	t.Cleanup(g.open) // never leave a run of the test endpoint blocked
	return g
}

func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }

// gated runs f once the gate is open.
func (g *gate) gated(f fn) fn {
	return func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
		<-g.ch
		return f(req)
	}
}

// cborOutput answers an output whose type the server does not know, as
// the Go SDK's CBOR values are.
func cborOutput(*sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
	return &sdkv1.RunResponse{
		Status: sdkv1.Status_STATUS_OK,
		Directive: &sdkv1.RunResponse_Exit{Exit: &sdkv1.Exit{Result: &sdkv1.CallResult{
			Output: &anypb.Any{TypeUrl: "type.googleapis.com/dispatchkit.go.v1.CBOR", Value: []byte{0xa1, 0x61, 'k', 0x01}},
		}}},
	}, nil
}

func TestResult(t *testing.T) {
	tests := []struct {
		name       string
		fn         fn
		expiration time.Duration
		status     sdkv1.Status
		output     string // of a StringValue output
		errType    string
		errMsg     string
	}{
		{
			name:   "done",
			fn:     echo,
			status: sdkv1.Status_STATUS_OK,
			output: "in",
		},
		{
			name: "failed for good keeps status and error",
			fn: func(*sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
				return failure(sdkv1.Status_STATUS_PERMANENT_ERROR, "no way"), nil
			},
			status:  sdkv1.Status_STATUS_PERMANENT_ERROR,
			errType: "test",
			errMsg:  "no way",
		},
		{
			name: "expired",
			fn: func(*sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
				return failure(sdkv1.Status_STATUS_TEMPORARY_ERROR, "later"), nil
			},
			expiration: 200 * time.Millisecond,
			status:     sdkv1.Status_STATUS_TIMEOUT,
			errType:    "TIMEOUT",
			errMsg:     "call expired",
		},
		{
			name: "tail call finishes under the same id",
			fn: func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
				return &sdkv1.RunResponse{
					Status:    sdkv1.Status_STATUS_OK,
					Directive: &sdkv1.RunResponse_Exit{Exit: &sdkv1.Exit{TailCall: call("echo", "tail")}},
				}, nil
			},
			status: sdkv1.Status_STATUS_OK,
			output: "tail",
		},
	}
	// Each outcome is asked for once it is final (Result answers at once)
	// and while the call runs (the waiter is woken).
	for _, mode := range []string{"already final", "finishes while waiting"} {
		for _, tt := range tests {
			t.Run(mode+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				is := is.New(t)
				b := setup(t)
				g := newGate(t)
				b.ep.handle("echo", echo)
				b.ep.handle("f", g.gated(tt.fn))
				c := call("f", "in")
				if tt.expiration > 0 {
					c.Expiration = durationpb.New(tt.expiration)
				}
				id := b.dispatch(t, c)[0]

				ctx := context.Background()
				var o *server.Outcome
				var err error
				if mode == "already final" {
					g.open()
					// Once the outcome is durable, Result answers even with
					// a cancelled context. (A call leaves memory just before
					// its final commit lands, so Live() == 0 is not enough.)
					cancelled, cancel := context.WithCancel(ctx)
					cancel()
					waitFor(t, "the outcome to be final", func() bool {
						o, err = b.srv.Result(cancelled, id)
						return err == nil
					})
				} else {
					got := make(chan error, 1)
					go func() {
						var err error
						o, err = b.srv.Result(ctx, id)
						got <- err
					}()
					// An expiring call may be final before Result asks.
					waitFor(t, "Result to wait", func() bool { return b.srv.Watched() == 1 || len(got) > 0 })
					g.open()
					err = recv(t, got)
				}
				is.NoErr(err)
				is.Equal(o.Status, tt.status)
				is.Equal(o.Result.GetDispatchId(), id)
				if tt.output != "" {
					is.Equal(strOf(o.Result.GetOutput()), tt.output)
				}
				is.Equal(o.Result.GetError().GetType(), tt.errType)
				is.True(strings.Contains(o.Result.GetError().GetMessage(), tt.errMsg)) // the message
				is.Equal(b.srv.Watched(), 0)                                           // nothing left behind
			})
		}
	}
}

func TestResultErrors(t *testing.T) {
	tests := []struct {
		name  string
		ask   func(t *testing.T, b *bundle, blocked string) error
		check func(is *is.I, err error)
	}{
		{
			name: "unknown id",
			ask: func(t *testing.T, b *bundle, _ string) error {
				_, err := b.srv.Result(context.Background(), "nope")
				return err
			},
			check: func(is *is.I, err error) {
				is.True(errors.Is(err, server.ErrUnknownCall))
				is.Equal(err.Error(), `server: no call "nope"`)
			},
		},
		{
			name: "context cancelled while waiting",
			ask: func(t *testing.T, b *bundle, blocked string) error {
				ctx, cancel := context.WithCancel(context.Background())
				got := make(chan error, 1)
				go func() {
					_, err := b.srv.Result(ctx, blocked)
					got <- err
				}()
				waitFor(t, "Result to wait", func() bool { return b.srv.Watched() == 1 })
				cancel()
				return recv(t, got)
			},
			check: func(is *is.I, err error) { is.Equal(err, context.Canceled) },
		},
		{
			name: "context deadline",
			ask: func(t *testing.T, b *bundle, blocked string) error {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
				defer cancel()
				_, err := b.srv.Result(ctx, blocked)
				return err
			},
			check: func(is *is.I, err error) { is.Equal(err, context.DeadlineExceeded) },
		},
		{
			name: "server closed while waiting",
			ask: func(t *testing.T, b *bundle, blocked string) error {
				got := make(chan error, 1)
				go func() {
					_, err := b.srv.Result(context.Background(), blocked)
					got <- err
				}()
				waitFor(t, "Result to wait", func() bool { return b.srv.Watched() == 1 })
				b.srv.Close()
				return recv(t, got)
			},
			check: func(is *is.I, err error) {
				is.True(err != nil)
				is.True(strings.Contains(err.Error(), "server: not running"))
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			b := setup(t)
			g := newGate(t)
			b.ep.handle("blocked", g.gated(echo))
			blocked := b.dispatch(t, call("blocked", "x"))[0]
			tt.check(is, tt.ask(t, b, blocked))
			is.Equal(b.srv.Watched(), 0) // a waiter that gave up is dropped
		})
	}
}

func TestResultNotStarted(t *testing.T) {
	is := is.New(t)
	srv, err := server.New(server.Config{Memory: true})
	is.NoErr(err)
	defer srv.Close()
	_, err = srv.Result(context.Background(), "x")
	is.True(strings.Contains(err.Error(), "server: not running"))
}

func TestResultHTTP(t *testing.T) {
	b := setup(t)
	g := newGate(t)
	b.ep.handle("echo", echo)
	b.ep.handle("blocked", g.gated(echo))
	b.ep.handle("fail", func(*sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
		return failure(sdkv1.Status_STATUS_INVALID_ARGUMENT, "bad input"), nil
	})
	ids := b.dispatch(t, call("echo", "hi"), call("blocked", "x"), call("fail", "x"))
	done, blocked, failed := ids[0], ids[1], ids[2]
	ctx := context.Background()
	for _, id := range []string{done, failed} {
		_, err := b.srv.Result(ctx, id)
		is.New(t).NoErr(err)
	}

	tests := []struct {
		name   string
		auth   string
		path   string
		code   int
		status string
		check  func(is *is.I, body map[string]any)
	}{
		{name: "done", auth: "Bearer test", path: done + "/result", code: 200, status: "STATUS_OK",
			check: func(is *is.I, body map[string]any) {
				res := body["result"].(map[string]any)
				is.Equal(res["dispatchId"], done)
				out := res["output"].(map[string]any)
				is.Equal(out["@type"], "type.googleapis.com/google.protobuf.StringValue")
				is.Equal(out["value"], "hi")
				is.True(body["result_proto"] != nil)
			}},
		{name: "done with wait", auth: "Bearer test", path: done + "/result?wait=30s", code: 200, status: "STATUS_OK"},
		{name: "failed", auth: "Bearer test", path: failed + "/result", code: 200, status: "STATUS_INVALID_ARGUMENT",
			check: func(is *is.I, body map[string]any) {
				e := body["result"].(map[string]any)["error"].(map[string]any)
				is.Equal(e["message"], "bad input")
			}},
		{name: "pending, no wait", auth: "Bearer test", path: blocked + "/result", code: 202, status: "pending"},
		{name: "pending after wait", auth: "Bearer test", path: blocked + "/result?wait=20ms", code: 202, status: "pending"},
		{name: "unknown", auth: "Bearer test", path: "nope/result", code: 404, status: "unknown"},
		{name: "bad wait", auth: "Bearer test", path: done + "/result?wait=soon", code: 400},
		{name: "no key", path: done + "/result", code: 401},
		{name: "wrong key", auth: "Bearer nope", path: done + "/result", code: 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			req, err := http.NewRequest("GET", b.srv.URL()+"/dispatch.local.v1/calls/"+tt.path, nil)
			is.NoErr(err)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			res, err := http.DefaultClient.Do(req)
			is.NoErr(err)
			data, err := io.ReadAll(res.Body)
			res.Body.Close()
			is.NoErr(err)
			is.Equal(res.StatusCode, tt.code)
			if tt.code == 401 {
				is.True(strings.Contains(string(data), `expected header "Authorization: Bearer <key>"`))
			}
			if tt.status == "" {
				return
			}
			var body map[string]any
			is.NoErr(json.Unmarshal(data, &body))
			is.Equal(body["status"], tt.status)
			if tt.check != nil {
				tt.check(is, body)
			}
		})
	}
	g.open()
	_, err := b.srv.Result(ctx, blocked)
	is.New(t).NoErr(err)
}

func TestFetchResult(t *testing.T) {
	tests := []struct {
		name string
		key  string
		fn   string        // function called; "" fetches an unknown id
		wait time.Duration // the context's deadline, if set
		// open, if set, opens the gate once the server holds the long poll.
		open  bool
		check func(is *is.I, id string, o *server.Outcome, err error)
	}{
		{
			name: "finishes while long-polling",
			key:  "test",
			fn:   "blocked",
			open: true,
			check: func(is *is.I, id string, o *server.Outcome, err error) {
				is.NoErr(err)
				is.Equal(o.Status, sdkv1.Status_STATUS_OK)
				is.Equal(o.Result.GetDispatchId(), id)
				is.Equal(strOf(o.Result.GetOutput()), "in")
			},
		},
		{
			name: "output of a type the server does not know",
			key:  "test",
			fn:   "cbor",
			check: func(is *is.I, id string, o *server.Outcome, err error) {
				is.NoErr(err)
				want, _ := cborOutput(nil)
				is.True(proto.Equal(o.Result.GetOutput(), want.GetExit().GetResult().GetOutput())) // exact bytes
			},
		},
		{
			name: "failure",
			key:  "test",
			fn:   "fail",
			check: func(is *is.I, id string, o *server.Outcome, err error) {
				is.NoErr(err)
				is.Equal(o.Status, sdkv1.Status_STATUS_NOT_FOUND)
				is.Equal(o.Result.GetError().GetMessage(), "gone")
			},
		},
		{
			name: "unknown id",
			key:  "test",
			check: func(is *is.I, id string, o *server.Outcome, err error) {
				is.True(errors.Is(err, server.ErrUnknownCall))
				is.Equal(err.Error(), `server: no call "nope"`)
			},
		},
		{
			name: "wrong key",
			key:  "nope",
			fn:   "echo",
			check: func(is *is.I, id string, o *server.Outcome, err error) {
				is.True(err != nil)
				is.True(strings.Contains(err.Error(), "refused the API key"))
			},
		},
		{
			name: "context ends first",
			key:  "test",
			fn:   "blocked",
			wait: 30 * time.Millisecond,
			check: func(is *is.I, id string, o *server.Outcome, err error) {
				is.Equal(err, context.DeadlineExceeded)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			b := setup(t)
			g := newGate(t)
			b.ep.handle("echo", echo)
			b.ep.handle("cbor", cborOutput)
			b.ep.handle("blocked", g.gated(echo))
			b.ep.handle("fail", func(*sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
				return failure(sdkv1.Status_STATUS_NOT_FOUND, "gone"), nil
			})
			id := "nope"
			if tt.fn != "" {
				id = b.dispatch(t, call(tt.fn, "in"))[0]
			}
			ctx, cancel := context.WithCancel(context.Background())
			if tt.wait > 0 {
				ctx, cancel = context.WithTimeout(context.Background(), tt.wait)
			}
			defer cancel()
			type answer struct {
				o   *server.Outcome
				err error
			}
			got := make(chan answer, 1)
			go func() {
				o, err := server.FetchResult(ctx, nil, b.srv.URL()+"/", tt.key, id, 5*time.Second)
				got <- answer{o, err}
			}()
			if tt.open {
				waitFor(t, "the long poll", func() bool { return b.srv.Watched() == 1 })
				g.open()
			}
			a := recv(t, got)
			tt.check(is, id, a.o, a.err)
		})
	}
}
