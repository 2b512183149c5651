package flow_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dispatchkit/dispatch/dispatcherr"
	"github.com/dispatchkit/dispatch/flow"
	"github.com/dispatchkit/dispatch/flow/flowtest"
	"github.com/dispatchkit/dispatch/internal/status"
	"github.com/matryer/is"
)

// The flows under test, declared at package level as users do.

var upper = flowtest.Mock("upper", func(s string) (string, error) { return strings.ToUpper(s), nil })
var exclaim = flowtest.Mock("exclaim", func(s string) (string, error) { return s + "!", nil })
var square = flowtest.Mock("square", func(n int) (int, error) { return n * n, nil })
var failOdd = flowtest.Mock("failOdd", func(n int) (int, error) {
	if n%2 == 1 {
		return 0, status.MarkTemporary(fmt.Errorf("odd %d", n))
	}
	return n, nil
})

func pipeline(ctx *flow.Ctx, s string) flow.Step[string] {
	return flow.Await(flow.NewCall[string]("upper", s), pipelineUpper)
}

var pipelineUpper = flow.Then("test.pipeline.upper", func(ctx *flow.Ctx, s string) flow.Step[string] {
	return flow.Await(flow.NewCall[string]("exclaim", s), flow.Return[string]())
})

func squares(n int) flow.Step[[]int] {
	calls := make([]flow.Call[int], n)
	for i := range calls {
		calls[i] = flow.NewCall[int]("square", i)
	}
	return flow.Gather(calls, flow.Return[[]int]())
}

var sumInts = flow.Then("test.sum", func(ctx *flow.Ctx, xs []int) flow.Step[int] {
	s := 0
	for _, x := range xs {
		s += x
	}
	return flow.Done(s)
})

func TestAwaitAndGather(t *testing.T) {
	orders := []struct {
		name  string
		order flowtest.Order
	}{{"all at once", flowtest.AllAtOnce}, {"one at a time", flowtest.OneAtATime}, {"reversed", flowtest.Reversed}}
	for _, o := range orders {
		t.Run(o.name, func(t *testing.T) {
			t.Run("await chain", func(t *testing.T) {
				is := is.New(t)
				out, rep, err := flowtest.RunFunc(context.Background(), pipeline, "hi", upper, exclaim, flowtest.Deliver(o.order))
				is.NoErr(err)
				is.Equal(out, "HI!")
				is.Equal(rep.Resumes, 2)
				is.Equal(rep.Calls, 2)
			})
			t.Run("gather in argument order", func(t *testing.T) {
				is := is.New(t)
				out, rep, err := flowtest.RunFunc(context.Background(), func(_ *flow.Ctx, n int) flow.Step[[]int] { return squares(n) }, 7, square, flowtest.Deliver(o.order))
				is.NoErr(err)
				is.Equal(out, []int{0, 1, 4, 9, 16, 25, 36})
				is.Equal(rep.Calls, 7)
			})
			t.Run("gather then reduce, duplicates ignored", func(t *testing.T) {
				is := is.New(t)
				f := func(_ *flow.Ctx, n int) flow.Step[int] { return flow.Bind(squares(n), sumInts) }
				out, _, err := flowtest.RunFunc(context.Background(), f, 10, square, flowtest.Deliver(o.order), flowtest.Duplicates())
				is.NoErr(err)
				is.Equal(out, 285)
			})
			t.Run("gather fails with the error and keeps its status", func(t *testing.T) {
				is := is.New(t)
				f := func(_ *flow.Ctx, n int) flow.Step[[]int] {
					calls := []flow.Call[int]{flow.NewCall[int]("failOdd", 0), flow.NewCall[int]("failOdd", 1), flow.NewCall[int]("failOdd", 2)}
					return flow.Gather(calls, flow.Return[[]int]())
				}
				_, _, err := flowtest.RunFunc(context.Background(), f, 0, failOdd, flowtest.Deliver(o.order), flowtest.RawOutcomes())
				is.True(err != nil)
				is.Equal(status.Of(err), status.TemporaryError)
				is.True(strings.Contains(err.Error(), "odd 1"))
				is.True(strings.Contains(err.Error(), "call 1 of 3"))
			})
		})
	}
}

func TestGatherEmpty(t *testing.T) {
	is := is.New(t)
	out, rep, err := flowtest.RunFunc(context.Background(), func(_ *flow.Ctx, n int) flow.Step[[]int] { return squares(n) }, 0)
	is.NoErr(err)
	is.Equal(len(out), 0)
	is.Equal(rep.Resumes, 0) // no suspension at all
}

func TestGatherOverThousandSplitsPolls(t *testing.T) {
	is := is.New(t)
	const n = 2500
	out, rep, err := flowtest.RunFunc(context.Background(), func(_ *flow.Ctx, n int) flow.Step[[]int] { return squares(n) }, n, square)
	is.NoErr(err)
	is.Equal(len(out), n)
	for i, v := range out {
		if v != i*i {
			t.Fatalf("out[%d] = %d, want %d", i, v, i*i)
		}
	}
	is.Equal(rep.Calls, n)
	is.True(rep.MaxPending <= flow.MaxInFlight) // never more than 1000 in flight
	is.True(rep.Resumes >= 3)
	t.Logf("largest state of a %d-call gather: %d bytes (%.1f bytes per call)", n, rep.MaxState, float64(rep.MaxState)/n)
}

// A Gather of more calls than may be in flight sends them over several
// polls; if Dispatch cannot make the calls of a later poll, the Gather
// fails as a whole with that error (its status kept), rather than waiting
// forever for calls that were never made.
func TestGatherLaterPollError(t *testing.T) {
	is := is.New(t)
	_, rep, err := flowtest.RunFunc(context.Background(), func(_ *flow.Ctx, n int) flow.Step[[]int] { return squares(n) }, 1500, square,
		flowtest.RefusePoll(2, status.MarkThrottled(errors.New("quota of calls exceeded"))), flowtest.RawOutcomes())
	is.True(err != nil)
	is.True(strings.Contains(err.Error(), "quota of calls exceeded"))
	is.Equal(status.Of(err), status.Throttled)
	is.Equal(rep.Calls, 1000) // the first poll's calls only
}

var (
	replicaA = flowtest.Mock("replicaA", func(string) (string, error) { return "", errors.New("a is down") })
	replicaB = flowtest.Mock("replicaB", func(string) (string, error) { return "b", nil })
	replicaC = flowtest.Mock("replicaC", func(string) (string, error) { return "", status.MarkThrottled(errors.New("c is busy")) })
)

func replicas(names ...string) []flow.Call[string] {
	calls := make([]flow.Call[string], len(names))
	for i, n := range names {
		calls[i] = flow.NewCall[string](n, "q")
	}
	return calls
}

func TestAnyRace(t *testing.T) {
	tests := []struct {
		name    string
		flow    func(*flow.Ctx, int) flow.Step[string]
		opts    []flowtest.Option
		want    string
		wantErr []string // substrings, in order
		status  status.Status
	}{
		{
			name: "any: first success",
			flow: func(*flow.Ctx, int) flow.Step[string] {
				return flow.Any(replicas("replicaA", "replicaB", "replicaC"), flow.Return[string]())
			},
			want: "b",
		},
		{
			name: "any: first success, one at a time reversed",
			flow: func(*flow.Ctx, int) flow.Step[string] {
				return flow.Any(replicas("replicaA", "replicaB", "replicaC"), flow.Return[string]())
			},
			opts: []flowtest.Option{flowtest.Deliver(flowtest.Reversed)},
			want: "b",
		},
		{
			name: "any: all fail, errors joined in argument order",
			flow: func(*flow.Ctx, int) flow.Step[string] {
				return flow.Any(replicas("replicaC", "replicaA"), flow.Return[string]())
			},
			opts:    []flowtest.Option{flowtest.Deliver(flowtest.Reversed), flowtest.RawOutcomes()},
			wantErr: []string{"every call failed", "call 0", "c is busy", "call 1", "a is down"},
			status:  status.Throttled,
		},
		{
			name: "race: first completion is an error",
			flow: func(*flow.Ctx, int) flow.Step[string] {
				return flow.Race(replicas("replicaA", "replicaB"), flow.Return[string]())
			},
			opts:    []flowtest.Option{flowtest.Deliver(flowtest.OneAtATime)},
			wantErr: []string{"a is down"},
			status:  status.PermanentError,
		},
		{
			name: "race: first completion is a value",
			flow: func(*flow.Ctx, int) flow.Step[string] {
				return flow.Race(replicas("replicaA", "replicaB"), flow.Return[string]())
			},
			opts: []flowtest.Option{flowtest.Deliver(flowtest.Reversed)},
			want: "b",
		},
		{
			name: "any: timeout while calls hang",
			flow: func(*flow.Ctx, int) flow.Step[string] {
				return flow.Any(replicas("slow", "replicaA"), flow.Return[string](), flow.Timeout(3*time.Second))
			},
			opts:    []flowtest.Option{flowtest.Hang("slow")},
			wantErr: []string{"timed out", "1 of 2 results", "a is down"},
			status:  status.Timeout,
		},
		{
			name: "any of no calls fails",
			flow: func(*flow.Ctx, int) flow.Step[string] {
				return flow.Any(nil, flow.Return[string]())
			},
			wantErr: []string{"any of no calls"},
			status:  status.PermanentError,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			opts := append([]flowtest.Option{replicaA, replicaB, replicaC}, tt.opts...)
			out, _, err := flowtest.RunFunc(context.Background(), tt.flow, 0, opts...)
			if tt.wantErr == nil {
				is.NoErr(err)
				is.Equal(out, tt.want)
				return
			}
			is.True(err != nil)
			msg, at := err.Error(), 0
			for _, s := range tt.wantErr {
				i := strings.Index(msg[at:], s)
				if i < 0 {
					t.Fatalf("error %q: want %q after position %d", msg, s, at)
				}
				at += i
			}
			is.Equal(status.Of(err), tt.status)
		})
	}
}

var timedOut = flow.Handle("test.timedOut", func(ctx *flow.Ctx, s string, err error) flow.Step[string] {
	if errors.Is(err, dispatcherr.ErrTimeout) {
		return flow.Done("fallback")
	}
	if err != nil {
		return flow.Fail[string](err)
	}
	return flow.Done(s)
})

var woke = flow.Then("test.woke", func(ctx *flow.Ctx, _ struct{}) flow.Step[time.Time] {
	return flow.Done(ctx.Now())
})

func TestSleepAndTimeout(t *testing.T) {
	t.Run("sleep is durable and lasts at least d", func(t *testing.T) {
		is := is.New(t)
		start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		out, rep, err := flowtest.RunFunc(context.Background(), func(*flow.Ctx, int) flow.Step[time.Time] {
			return flow.Sleep(90*time.Second, woke)
		}, 0, flowtest.Clock(start))
		is.NoErr(err)
		is.True(!out.Before(start.Add(90 * time.Second)))
		is.Equal(rep.Resumes, 1)
		is.Equal(rep.Calls, 0)
	})
	t.Run("sleep after a race ignores the loser's late result", func(t *testing.T) {
		is := is.New(t)
		start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		f := func(*flow.Ctx, int) flow.Step[time.Time] {
			return flow.Race(replicas("replicaB", "replicaA"), raceThenSleep)
		}
		out, _, err := flowtest.RunFunc(context.Background(), f, 0, replicaA, replicaB, flowtest.Clock(start), flowtest.Deliver(flowtest.OneAtATime))
		is.NoErr(err)
		is.True(!out.Before(start.Add(time.Minute)))
	})
	t.Run("a timeout reaches a handling continuation", func(t *testing.T) {
		is := is.New(t)
		f := func(*flow.Ctx, int) flow.Step[string] {
			return flow.Await(flow.NewCall[string]("slow", "x"), timedOut, flow.Timeout(10*time.Second))
		}
		out, rep, err := flowtest.RunFunc(context.Background(), f, 0, flowtest.Hang("slow"))
		is.NoErr(err)
		is.Equal(out, "fallback")
		is.True(rep.Slept >= 10*time.Second)
	})
	t.Run("a call that failed with TIMEOUT matches the same sentinel", func(t *testing.T) {
		is := is.New(t)
		f := func(*flow.Ctx, int) flow.Step[string] {
			return flow.Await(flow.NewCall[string]("late", "x"), timedOut)
		}
		late := flowtest.Mock("late", func(string) (string, error) { return "", context.DeadlineExceeded })
		out, _, err := flowtest.RunFunc(context.Background(), f, 0, late)
		is.NoErr(err)
		is.Equal(out, "fallback")
	})
}

var raceThenSleep = flow.Then("test.raceThenSleep", func(ctx *flow.Ctx, s string) flow.Step[time.Time] {
	return flow.Sleep(time.Minute, woke)
})

func TestErrorsAndHandlers(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name    string
		flow    func(*flow.Ctx, int) flow.Step[string]
		opts    []flowtest.Option
		want    string
		wantErr string
		status  status.Status
	}{
		{
			name: "Then is skipped by an error, Handle receives it",
			flow: func(*flow.Ctx, int) flow.Step[string] {
				return flow.Bind(flow.Await(flow.NewCall[string]("replicaA", "x"), neverCalled), recovered)
			},
			want: "recovered: dispatch: PERMANENT_ERROR",
		},
		{
			name: "poll error reaches the continuation",
			flow: func(*flow.Ctx, int) flow.Step[string] {
				return flow.Await(flow.NewCall[string]("replicaB", "x"), recovered)
			},
			opts: []flowtest.Option{flowtest.RefusePoll(1, status.MarkThrottled(boom))},
			want: "recovered: dispatch: THROTTLED",
		},
		{
			name: "panic in a continuation is a permanent error with a traceback",
			flow: func(*flow.Ctx, int) flow.Step[string] {
				return flow.Await(flow.NewCall[string]("replicaB", "x"), panics)
			},
			wantErr: "panic: continuation panicked",
			status:  status.PermanentError,
		},
		{
			name: "panic in the flow function itself",
			flow: func(*flow.Ctx, int) flow.Step[string] {
				panic("at the start")
			},
			wantErr: "panic: at the start",
			status:  status.PermanentError,
		},
		{
			name: "a zero Step names who returned it",
			flow: func(*flow.Ctx, int) flow.Step[string] {
				return flow.Await(flow.NewCall[string]("replicaB", "x"), zeroStep)
			},
			wantErr: `"test.zeroStep" returned a zero Step`,
			status:  status.PermanentError,
		},
		{
			name: "Fail keeps the marker's status",
			flow: func(*flow.Ctx, int) flow.Step[string] {
				return flow.Fail[string](status.MarkTemporary(boom))
			},
			opts:    []flowtest.Option{flowtest.RawOutcomes()},
			wantErr: "boom",
			status:  status.TemporaryError,
		},
		{
			name: "tail call inside a sub-flow is refused",
			flow: func(*flow.Ctx, int) flow.Step[string] {
				return flow.Bind(flow.TailCall(flow.NewCall[string]("replicaB", "x")), flow.Return[string]())
			},
			wantErr: "TailCall",
			status:  status.PermanentError,
		},
		{
			name: "wrong result type is an error naming the continuation",
			flow: func(*flow.Ctx, int) flow.Step[string] {
				return flow.Await(flow.NewCall[int]("replicaB", "x"), intToString)
			},
			wantErr: `"test.intToString"`,
			status:  status.PermanentError,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			opts := append([]flowtest.Option{replicaA, replicaB}, tt.opts...)
			out, _, err := flowtest.RunFunc(context.Background(), tt.flow, 0, opts...)
			if tt.wantErr == "" {
				is.NoErr(err)
				is.True(strings.HasPrefix(out, tt.want))
				return
			}
			is.True(err != nil)
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %q does not contain %q", err, tt.wantErr)
			}
			is.Equal(status.Of(err), tt.status)
		})
	}
}

var neverCalled = flow.Then("test.neverCalled", func(ctx *flow.Ctx, s string) flow.Step[string] {
	panic("a Then continuation must not receive an error")
})

var recovered = flow.Handle("test.recovered", func(ctx *flow.Ctx, s string, err error) flow.Step[string] {
	if err != nil {
		return flow.Done(fmt.Sprintf("recovered: dispatch: %s", status.Of(err)))
	}
	return flow.Done(s)
})

var panics = flow.Then("test.panics", func(ctx *flow.Ctx, s string) flow.Step[string] {
	panic("continuation panicked")
})

var zeroStep = flow.Then("test.zeroStep", func(ctx *flow.Ctx, s string) flow.Step[string] {
	return flow.Step[string]{}
})

var intToString = flow.Then("test.intToString", func(ctx *flow.Ctx, n int) flow.Step[string] {
	return flow.Done(fmt.Sprint(n))
})

func TestTailCall(t *testing.T) {
	is := is.New(t)
	_, rep, err := flowtest.RunFunc(context.Background(), func(*flow.Ctx, int) flow.Step[string] {
		return flow.TailCall(flow.NewCall[string]("next", "input").At("https://other.example.com"))
	}, 0)
	is.NoErr(err)
	is.True(rep.TailCall != nil)
	is.Equal(rep.TailCall.GetFunction(), "next")
	is.Equal(rep.TailCall.GetEndpoint(), "https://other.example.com")
}

// Order is the environment of the frames below: small, like most.
type Order struct {
	ID    string
	Items int
}

var (
	step3 = flow.ThenWith("test.o3", func(ctx *flow.Ctx, o Order, r string) flow.Step[string] {
		return flow.Done(o.ID + ":" + r)
	})
	step2 = flow.ThenWith("test.o2", func(ctx *flow.Ctx, o Order, r string) flow.Step[string] {
		return flow.Done(r)
	})
)

func nested(ctx *flow.Ctx, o Order) flow.Step[string] {
	inner := flow.Await(flow.NewCall[string]("upper", o.ID), step3.With(o))
	return flow.Bind(flow.Bind(inner, step2.With(o)), flow.Return[string]())
}

func TestStateSize(t *testing.T) {
	t.Run("three frames with small environments fit in 200 bytes", func(t *testing.T) {
		is := is.New(t)
		out, rep, err := flowtest.RunFunc(context.Background(), nested, Order{ID: "o-17", Items: 3}, upper)
		is.NoErr(err)
		is.Equal(out, "o-17:O-17")
		is.Equal(len(rep.States), 1)
		t.Logf("state of 3 frames: %d bytes", rep.MaxState)
		is.True(rep.MaxState < 200)
	})
	t.Run("state does not grow with the number of steps taken", func(t *testing.T) {
		is := is.New(t)
		out, rep, err := flowtest.RunFunc(context.Background(), countdown, 40, upper)
		is.NoErr(err)
		is.Equal(out, 0)
		is.Equal(len(rep.States), 41)
		first, last := rep.States[0], rep.States[len(rep.States)-1]
		t.Logf("state after 1 step: %d bytes, after 41: %d bytes", first, last)
		is.True(last <= first+1) // only the correlation counter's varint may grow
	})
}

func countdown(ctx *flow.Ctx, n int) flow.Step[int] {
	return flow.Await(flow.NewCall[string]("upper", "x"), countdownStep.With(n))
}

// countdownStep awaits itself: a loop. A continuation that refers to itself
// is assigned in init, since Go refuses a package-level variable whose
// initializer refers to it.
var countdownStep flow.ContWith[int, string, int]

func init() {
	countdownStep = flow.ThenWith("test.countdown", func(ctx *flow.Ctx, n int, _ string) flow.Step[int] {
		if n == 0 {
			return flow.Done(0)
		}
		return countdown(ctx, n-1)
	})
}

// withAny holds, in a field of interface type, what only the value tells:
// its type passes the check at registration, and a channel in it fails
// when the state is saved.
type withAny struct {
	Name  string
	Inner struct{ Events any }
}

var anyEnv = flow.ThenWith("test.anyEnv", func(ctx *flow.Ctx, e withAny, s string) flow.Step[string] {
	return flow.Done(s)
})

func TestUnencodableEnvironment(t *testing.T) {
	is := is.New(t)
	var trace bytes.Buffer
	_, rep, err := flowtest.RunFunc(context.Background(), func(*flow.Ctx, int) flow.Step[string] {
		return flow.Await(flow.NewCall[string]("upper", "x"), anyEnv.With(withAny{Name: "n", Inner: struct{ Events any }{make(chan int)}}))
	}, 0, upper, flowtest.Trace(&trace))
	is.True(err != nil)
	msg := err.Error()
	is.True(strings.Contains(msg, `"test.anyEnv"`)) // names the frame
	is.True(strings.Contains(msg, "Inner.Events"))  // and the field path
	is.Equal(status.Of(err), status.PermanentError)
	is.Equal(rep.Calls, 0) // nothing was sent
	// The trace was printed with the Go values, and says that the call was
	// not sent because the state could not be saved.
	out := trace.String()
	t.Log("\n" + out)
	for _, want := range []string{
		"test.anyEnv",
		"failed: the state could not be saved, so the call fails and no call was sent: flow: frame 0",
		"waits on await: 1 calls, 0 sent before, 1 not sent, 0 results in",
		"calls not sent: 1",
		`upper("x")`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("trace lacks %q", want)
		}
	}
	is.True(!strings.Contains(out, "pending calls"))
	is.True(!strings.Contains(out, "1 sent"))
}

type (
	envClean struct {
		ID    string
		Items []string
		Later any    // checked at run time
		Skip  func() `cbor:"-"`
	}
	envBad struct {
		ID      string
		Done    chan bool
		Items   []envItem
		total   int
		Handler func(string)
	}
	envItem struct {
		Name  string
		price float64
	}
)

// The unexported fields above are there to be reported, never read.
var _ = envBad{total: 1, Items: []envItem{{price: 1}}}

// TestEnvironmentCheckedAtRegistration registers continuations whose
// environment would not survive a suspension: the ...Safely forms return
// one error naming the continuation and every field at fault, and the
// panicking forms panic with it.
func TestEnvironmentCheckedAtRegistration(t *testing.T) {
	noop := func(ctx *flow.Ctx, e envBad, s string) flow.Step[string] { return flow.Done(s) }
	noopErr := func(ctx *flow.Ctx, e envBad, s string, err error) flow.Step[string] { return flow.Done(s) }
	tests := []struct {
		name     string
		register func(name string) error
		want     []string // in the message, in this order
	}{
		{"a clean environment", func(name string) error {
			_, err := flow.ThenWithSafely(name, func(ctx *flow.Ctx, e envClean, s string) flow.Step[string] { return flow.Done(s) })
			return err
		}, nil},
		{"ThenWithSafely lists every field", func(name string) error {
			_, err := flow.ThenWithSafely(name, noop)
			return err
		}, []string{
			"its environment flow_test.envBad would not survive a suspension",
			"Done (chan bool): CBOR cannot encode this type",
			"Items[*].price (float64): unexported, so CBOR drops it",
			"total (int): unexported, so CBOR drops it",
			"Handler (func(string)): CBOR cannot encode this type",
			"tag them `cbor:\"-\"`",
			"fields of interface type are checked when the state is saved",
		}},
		{"HandleWithSafely too", func(name string) error {
			_, err := flow.HandleWithSafely(name, noopErr)
			return err
		}, []string{"Done (chan bool)", "Handler (func(string))"}},
		{"ThenWith panics with it", func(name string) (err error) {
			defer func() {
				if v := recover(); v != nil {
					err = v.(error)
				}
			}()
			flow.ThenWith(name, noop)
			return nil
		}, []string{"Done (chan bool)", "total (int)"}},
		{"HandleWith panics with it", func(name string) (err error) {
			defer func() {
				if v := recover(); v != nil {
					err = v.(error)
				}
			}()
			flow.HandleWith(name, noopErr)
			return nil
		}, []string{"Done (chan bool)", "total (int)"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			name := fmt.Sprintf("test.env%d", i)
			err := tt.register(name)
			if tt.want == nil {
				is.NoErr(err)
				return
			}
			is.True(err != nil)
			msg, at := err.Error(), 0
			is.True(strings.HasPrefix(msg, fmt.Sprintf("flow: continuation %q: ", name)))
			for _, w := range tt.want {
				j := strings.Index(msg[at:], w)
				if j < 0 {
					t.Fatalf("error %q: want %q after position %d", msg, w, at)
				}
				at += j
			}
			var envErr *flow.EnvError
			is.True(errors.As(err, &envErr))
			is.Equal(envErr.Name, name)
			// A refused continuation does not take its name.
			_, err = flow.ThenSafely(name, func(ctx *flow.Ctx, s string) flow.Step[string] { return flow.Done(s) })
			is.NoErr(err)
		})
	}
}

func TestTraceDump(t *testing.T) {
	is := is.New(t)
	var trace bytes.Buffer
	_, _, err := flowtest.RunFunc(context.Background(), nested, Order{ID: "o-42", Items: 2}, upper, flowtest.Trace(&trace))
	is.NoErr(err)
	out := trace.String()
	t.Log("\n" + out)
	for _, want := range []string{"flowtest", "test-1", "test.o3", "test.o2", "flow.return", `"o-42"`, "upper"} {
		if !strings.Contains(out, want) {
			t.Errorf("trace output lacks %q", want)
		}
	}
}
