package flowtest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/dispatchkit/dispatch"
	"github.com/dispatchkit/dispatch/flow"
	"github.com/dispatchkit/dispatch/flow/flowtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Outcome is what the workflows below end with: the value or the error
// their continuation received, and when.
type Outcome struct {
	Value  string
	Err    string
	Status string
	At     time.Time
}

var outcome = flow.Handle("flowtest_test.outcome", func(ctx *flow.Ctx, v string, err error) flow.Step[Outcome] {
	o := Outcome{Value: v, At: ctx.Now()}
	if err != nil {
		o.Err, o.Status = err.Error(), dispatch.StatusOf(err).String()
	}
	return flow.Done(o)
})

// awaitBook awaits one call of "book" with the expiration of its input in
// seconds (0: none) and reports what its continuation received.
var awaitBook = dispatch.Flow("flowtest_test.await_book", func(ctx *flow.Ctx, expiration int) flow.Step[Outcome] {
	c := flow.NewCall[string]("book", "trip")
	if expiration > 0 {
		c = c.WithExpiration(time.Duration(expiration) * time.Second)
	}
	return flow.Await(c, outcome)
})

// failing returns a mock of "book" that fails its first n attempts with
// err (every attempt with n < 0), then succeeds.
func failing(n int, err error) flowtest.Option {
	return flowtest.MockAttempt("book", func(s string, attempt int) (string, error) {
		if n < 0 || attempt <= n {
			return "", err
		}
		return "booked " + s, nil
	})
}

// TestRetriesAsTheServer checks that a call failing with a status the
// server retries is attempted again, and that only its final outcome
// reaches the workflow; RawOutcomes delivers the first attempt's.
func TestRetriesAsTheServer(t *testing.T) {
	temporary := dispatch.Temporary(errors.New("busy"))
	tests := []struct {
		name       string
		expiration int // of the call, in seconds
		opts       []flowtest.Option
		want       Outcome // At is checked with atLeast/atMost
		errHas     []string
		retries    int
		atLeast    time.Duration // after start
		atMost     time.Duration
	}{
		{"temporary twice, then a success", 0, []flowtest.Option{failing(2, temporary)},
			Outcome{Value: "booked trip"}, nil, 2, 300 * time.Millisecond, 300 * time.Millisecond},
		{"throttled, then a success", 0, []flowtest.Option{failing(1, dispatch.Throttled(errors.New("slow down")))},
			Outcome{Value: "booked trip"}, nil, 1, 100 * time.Millisecond, 100 * time.Millisecond},
		{"a DNS error, then a success", 0, []flowtest.Option{failing(3, &net.DNSError{Err: "no such host", Name: "api"})},
			Outcome{Value: "booked trip"}, nil, 3, 700 * time.Millisecond, 700 * time.Millisecond},
		{"a timeout, then a success", 0, []flowtest.Option{failing(1, context.DeadlineExceeded)},
			Outcome{Value: "booked trip"}, nil, 1, 100 * time.Millisecond, 100 * time.Millisecond},
		{"always temporary: TIMEOUT at the call's expiration", 600, []flowtest.Option{failing(-1, temporary)},
			Outcome{Status: "TIMEOUT"}, []string{`call to "book" expired at 2026-01-01T00:10:00Z after `, "attempts; last error: busy"},
			-1, 10*time.Minute - flowtest.MaxBackoff, 10 * time.Minute},
		{"always temporary, no expiration: the default one", 0, []flowtest.Option{failing(-1, temporary), flowtest.Expiration(2 * time.Hour)},
			Outcome{Status: "TIMEOUT"}, []string{"expired at 2026-01-01T01:00:00Z"},
			-1, time.Hour - flowtest.MaxBackoff, time.Hour},
		{"a permanent error is not retried", 0, []flowtest.Option{failing(1, dispatch.Permanent(errors.New("no rooms")))},
			Outcome{Status: "PERMANENT_ERROR"}, []string{"no rooms"}, 0, 0, 0},
		{"no mock, no function: NOT_FOUND", 0, nil,
			Outcome{Status: "NOT_FOUND"}, []string{`no mock for function "book"`, `flowtest.Mock("book", ...)`}, 0, 0, 0},
		{"raw outcomes: the first attempt's", 0, []flowtest.Option{failing(2, temporary), flowtest.RawOutcomes()},
			Outcome{Status: "TEMPORARY_ERROR"}, []string{"busy"}, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			out, rep, err := flowtest.Run(context.Background(), awaitBook, tt.expiration, tt.opts...)
			is.NoErr(err)
			is.Equal(out.Value, tt.want.Value)
			is.Equal(out.Status, tt.want.Status)
			for _, s := range tt.errHas {
				if !strings.Contains(out.Err, s) {
					t.Errorf("error %q lacks %q", out.Err, s)
				}
			}
			if tt.retries >= 0 {
				is.Equal(rep.Retries, tt.retries)
			} else {
				is.True(rep.Retries > 10)
			}
			at := out.At.Sub(start)
			if at < tt.atLeast || at > tt.atMost {
				t.Errorf("the outcome came %s after the start, want %s to %s", at, tt.atLeast, tt.atMost)
			}
		})
	}
}

// flaky fails its attempts with a temporary error until a quarter of a
// second has passed on the virtual clock: the server retries the workflow's
// own attempt, from the same state.
var flaky = dispatch.Flow("flowtest_test.flaky", func(ctx *flow.Ctx, _ int) flow.Step[string] {
	if ctx.Now().Before(start.Add(250 * time.Millisecond)) {
		return flow.Fail[string](dispatch.Temporary(errors.New("not yet")))
	}
	return flow.Done("done at " + ctx.Now().Sub(start).String())
})

var stuck = dispatch.Flow("flowtest_test.stuck", func(ctx *flow.Ctx, _ int) flow.Step[string] {
	return flow.Fail[string](dispatch.Temporary(errors.New("never")))
})

func TestWorkflowRetried(t *testing.T) {
	tests := []struct {
		name    string
		fn      *dispatch.Function[int, string]
		opts    []flowtest.Option
		want    string
		errHas  string
		status  dispatch.Status
		retries int
	}{
		{"a temporary failure of the workflow is retried", flaky, nil, "done at 300ms", "", 0, 2},
		{"until it expires", stuck, []flowtest.Option{flowtest.Expiration(time.Minute)}, "", "after 10 attempts; last error: never", dispatch.StatusTimeout, 9},
		{"raw outcomes end the run", stuck, []flowtest.Option{flowtest.RawOutcomes()}, "", "never", dispatch.StatusTemporaryError, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			out, rep, err := flowtest.Run(context.Background(), tt.fn, 0, tt.opts...)
			is.Equal(rep.Retries, tt.retries)
			if tt.errHas == "" {
				is.NoErr(err)
				is.Equal(out, tt.want)
				return
			}
			is.True(err != nil)
			is.True(strings.Contains(err.Error(), tt.errHas))
			is.Equal(dispatch.StatusOf(err), tt.status)
		})
	}
}

// slow awaits "slow" with a timeout of an hour.
var slow = dispatch.Flow("flowtest_test.slow", func(ctx *flow.Ctx, _ int) flow.Step[Outcome] {
	return flow.Await(flow.NewCall[string]("slow", "x").WithExpiration(5*time.Hour), outcome, flow.Timeout(time.Hour))
})

var nap = dispatch.Flow("flowtest_test.nap", func(ctx *flow.Ctx, hours int) flow.Step[Outcome] {
	return flow.Sleep(time.Duration(hours)*time.Hour, woke)
})

var woke = flow.Then("flowtest_test.woke", func(ctx *flow.Ctx, _ struct{}) flow.Step[Outcome] {
	return flow.Done(Outcome{Value: "awake", At: ctx.Now()})
})

// TestVirtualClock checks that sleeps, timeouts, latencies and
// expirations pass on the virtual clock, which flow.Ctx.Now follows.
func TestVirtualClock(t *testing.T) {
	answer := flowtest.Mock("slow", func(s string) (string, error) { return "answer", nil })
	tests := []struct {
		name    string
		fn      *dispatch.Function[int, Outcome]
		in      int
		opts    []flowtest.Option
		want    Outcome
		errHas  string
		elapsed time.Duration
	}{
		{"a one-hour timeout passes", slow, 0,
			[]flowtest.Option{answer, flowtest.Latency("slow", func(string) time.Duration { return 2 * time.Hour }), flowtest.Expiration(3 * time.Hour)},
			Outcome{Status: "TIMEOUT", At: start.Add(time.Hour)}, "", time.Hour},
		{"a call within the timeout", slow, 0,
			[]flowtest.Option{answer, flowtest.Latency("slow", func(string) time.Duration { return 30 * time.Minute })},
			Outcome{Value: "answer", At: start.Add(30 * time.Minute)}, "", 30 * time.Minute},
		{"a call that hangs", slow, 0,
			[]flowtest.Option{flowtest.Hang("slow"), flowtest.Expiration(2 * time.Hour)},
			Outcome{Status: "TIMEOUT", At: start.Add(time.Hour)}, "", time.Hour},
		{"a day's sleep", nap, 24, []flowtest.Option{flowtest.Expiration(48 * time.Hour)},
			Outcome{Value: "awake", At: start.Add(24 * time.Hour)}, "", 24 * time.Hour},
		{"a sleep past the workflow's expiration", nap, 2, nil,
			Outcome{}, `call to "flowtest_test.nap" expired at 2026-01-01T01:00:00Z`, time.Hour},
		{"another start", nap, 1, []flowtest.Option{flowtest.Clock(start.Add(time.Minute)), flowtest.Expiration(2 * time.Hour)},
			Outcome{Value: "awake", At: start.Add(time.Minute + time.Hour)}, "", time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			out, rep, err := flowtest.Run(context.Background(), tt.fn, tt.in, tt.opts...)
			is.Equal(rep.Slept, tt.elapsed)
			if tt.errHas != "" {
				is.True(err != nil)
				is.True(strings.Contains(err.Error(), tt.errHas))
				is.Equal(dispatch.StatusOf(err), dispatch.StatusTimeout)
				return
			}
			is.NoErr(err)
			is.Equal(out.Value, tt.want.Value)
			is.Equal(out.Status, tt.want.Status)
			is.True(out.At.Equal(tt.want.At)) // ctx.Now() followed the virtual clock
		})
	}
}

// The functions below are registered in the program: flowtest runs them
// when no mock replaces them, and a child workflow as a call of its own.
var (
	double = dispatch.Func("flowtest_test.double", func(ctx context.Context, n int) (int, error) { return 2 * n, nil })
	twice  = dispatch.Flow("flowtest_test.twice", func(ctx *flow.Ctx, n int) flow.Step[int] {
		return dispatch.Await(double, n, doubledOnce)
	})
	doubledOnce = flow.Then("flowtest_test.doubled_once", func(ctx *flow.Ctx, n int) flow.Step[int] {
		return dispatch.Await(double, n, flow.Return[int]())
	})
	parent = dispatch.Flow("flowtest_test.parent", func(ctx *flow.Ctx, n int) flow.Step[[]int] {
		return dispatch.Gather(twice, []int{n, n + 1}, flow.Return[[]int]())
	})
	notReady = dispatch.Func("flowtest_test.not_ready", func(ctx context.Context, n int) (int, error) {
		return 0, dispatch.Temporary(errors.New("not ready"))
	})
)

func TestRunRegisteredFunctions(t *testing.T) {
	tests := []struct {
		name   string
		run    func() (any, flowtest.Report, error)
		want   any
		calls  int
		errHas string
	}{
		{"a workflow calling a registered function", func() (any, flowtest.Report, error) {
			return flowtest.Run(context.Background(), twice, 3)
		}, 12, 2, ""},
		{"a mock replaces the function", func() (any, flowtest.Report, error) {
			return flowtest.Run(context.Background(), twice, 3, flowtest.Mock("flowtest_test.double", func(n int) (int, error) { return n + 1, nil }))
		}, 5, 2, ""},
		{"child workflows", func() (any, flowtest.Report, error) {
			return flowtest.Run(context.Background(), parent, 1)
		}, []int{4, 8}, 2, ""},
		{"a plain function, retried", func() (any, flowtest.Report, error) {
			return flowtest.Run(context.Background(), notReady, 1, flowtest.Expiration(time.Second))
		}, 0, 0, "after 4 attempts; last error: not ready"},
		{"a nil function", func() (any, flowtest.Report, error) {
			return flowtest.Run(context.Background(), (*dispatch.Function[int, int])(nil), 1)
		}, 0, 0, "the function is nil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			out, rep, err := tt.run()
			if tt.errHas != "" {
				is.True(err != nil)
				if !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("error %q lacks %q", err, tt.errHas)
				}
				return
			}
			is.NoErr(err)
			is.Equal(fmt.Sprint(out), fmt.Sprint(tt.want))
			is.Equal(rep.Calls, tt.calls)
		})
	}
}

// charge and chargeOnce charge an amount: the test counts the calls of
// "charge", to show what the restart after an incompatible state runs again.
var charge = dispatch.Flow("flowtest_test.charge", func(ctx *flow.Ctx, amount int) flow.Step[string] {
	return flow.Await(flow.NewCall[string]("charge", amount), charged)
})

var chargeOnce = dispatch.Flow("flowtest_test.charge_once", func(ctx *flow.Ctx, amount int) flow.Step[string] {
	return flow.Await(flow.NewCall[string]("charge", amount), charged)
}, dispatch.FailOnIncompatible())

var charged = flow.Then("flowtest_test.charged", func(ctx *flow.Ctx, receipt string) flow.Step[string] {
	return flow.Done(receipt)
})

func TestIncompatibleState(t *testing.T) {
	tests := []struct {
		name     string
		fn       *dispatch.Function[int, string]
		charges  int
		restarts int
		status   dispatch.Status
		errHas   []string
		logHas   []string
	}{
		{"restarts from its input: the charge runs again", charge, 2, 1, dispatch.StatusOK, nil,
			[]string{`"level":"warn"`, "restarts the call from its input, so what the flow did before runs again", "state format version 2 is not supported"}},
		{"FailOnIncompatible fails the call instead", chargeOnce, 1, 0, dispatch.StatusPermanentError,
			[]string{"incompatible state", "dispatch.FailOnIncompatible: the call fails rather than restart from its input"},
			[]string{`"level":"warn"`, "the call fails, and is not restarted", "state format version 2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			charges := 0
			var log bytes.Buffer
			_, rep, err := flowtest.Run(context.Background(), tt.fn, 10,
				flowtest.Mock("charge", func(n int) (string, error) { charges++; return "r-1", nil }),
				flowtest.IncompatibleState(1),
				flowtest.Logger(zerolog.New(&log)),
			)
			is.Equal(charges, tt.charges)
			is.Equal(rep.Restarts, tt.restarts)
			is.Equal(dispatch.StatusOf(err), tt.status)
			for _, s := range tt.errHas {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
			for _, s := range tt.logHas {
				if !strings.Contains(log.String(), s) {
					t.Errorf("log %q lacks %q", log.String(), s)
				}
			}
		})
	}
}
