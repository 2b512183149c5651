package flowtest_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/dispatchkit/dispatch"
	"github.com/dispatchkit/dispatch/flow"
	"github.com/dispatchkit/dispatch/flow/flowtest"
)

// Order is what the workflows below carry from step to step.
type Order struct {
	ID      string
	Receipt string
}

// checkout keeps what it needs in the environments of its continuations:
// it resumes the same after a crash at any await.
var checkout = dispatch.Flow("crash_test.checkout", func(ctx *flow.Ctx, id string) flow.Step[string] {
	return flow.Await(flow.NewCall[string]("charge", id), checkoutCharged.With(Order{ID: id}))
})

var checkoutCharged = flow.ThenWith("crash_test.checkout_charged", func(ctx *flow.Ctx, o Order, receipt string) flow.Step[string] {
	o.Receipt = receipt
	return flow.Sleep(time.Minute, checkoutWaited.With(o))
})

var checkoutWaited = flow.ThenWith("crash_test.checkout_waited", func(ctx *flow.Ctx, o Order, _ struct{}) flow.Step[string] {
	calls := []flow.Call[string]{flow.NewCall[string]("ship", o.Receipt), flow.NewCall[string]("notify", o.ID)}
	return flow.Gather(calls, checkoutDone.With(o))
})

var checkoutDone = flow.ThenWith("crash_test.checkout_done", func(ctx *flow.Ctx, o Order, res []string) flow.Step[string] {
	return flow.Done(fmt.Sprintf("%s: %s", o.ID, strings.Join(res, ", ")))
})

// lastReceipt is where forgetful keeps the receipt between two steps: in
// the memory of the process, which a crash loses.
var lastReceipt string

var forgetful = dispatch.Flow("crash_test.forgetful", func(ctx *flow.Ctx, id string) flow.Step[string] {
	return flow.Await(flow.NewCall[string]("charge", id), forgetfulCharged.With(id))
})

var forgetfulCharged = flow.ThenWith("crash_test.forgetful_charged", func(ctx *flow.Ctx, id, receipt string) flow.Step[string] {
	lastReceipt = receipt
	return flow.Sleep(time.Minute, forgetfulWaited.With(id))
})

var forgetfulWaited = flow.ThenWith("crash_test.forgetful_waited", func(ctx *flow.Ctx, id string, _ struct{}) flow.Step[string] {
	return flow.Await(flow.NewCall[string]("ship", lastReceipt), flow.Return[string]())
})

// steps counts the steps of counting in the memory of the process, and
// returns the count: the calls are the same after a crash, the outcome is
// not.
var steps int

var counting = dispatch.Flow("crash_test.counting", func(ctx *flow.Ctx, n int) flow.Step[int] {
	steps++
	return flow.Sleep(time.Second, countingSlept)
})

var countingSlept = flow.Then("crash_test.counting_slept", func(ctx *flow.Ctx, _ struct{}) flow.Step[int] {
	steps++
	return flow.Done(steps)
})

var crashMocks = []flowtest.Option{
	flowtest.MockAttempt("charge", func(id string, attempt int) (string, error) {
		if attempt == 1 {
			return "", dispatch.Temporary(fmt.Errorf("card network busy"))
		}
		return "r-" + id, nil
	}),
	flowtest.Mock("ship", func(receipt string) (string, error) { return "shipped " + receipt, nil }),
	flowtest.Mock("notify", func(id string) (string, error) { return "notified " + id, nil }),
}

// recorder is a test that keeps its errors instead of failing, so that a
// test can check what CrashEverywhere reports. The new processes of the
// crashes run the same test, with a recorder too.
type recorder struct {
	*testing.T
	mu   sync.Mutex
	errs []string
}

func (r *recorder) Error(args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprint(args...))
}

func (r *recorder) Errorf(format string, args ...any) { r.Error(fmt.Sprintf(format, args...)) }

func TestCrashEverywhere(t *testing.T) {
	tests := []struct {
		name string
		run  func(t testing.TB) (any, error)
		want any
		errs [][]string // each a reported difference, its parts in order
	}{
		{"state kept in environments resumes the same", func(t testing.TB) (any, error) {
			out, _, err := flowtest.CrashEverywhere(t, checkout, "o-1", crashMocks...)
			return out, err
		}, "o-1: shipped r-o-1, notified o-1", nil},
		{"state kept in a package variable is lost", func(t testing.TB) (any, error) {
			out, _, err := flowtest.CrashEverywhere(t, forgetful, "o-2", crashMocks...)
			return out, err
		}, "shipped r-o-2", [][]string{{
			`flowtest: CrashEverywhere "crash_test.forgetful": a crash at await 2 of 3 (suspended in frame "crash_test.forgetful_waited")`,
			"changed the run, resumed in a new process from the saved state:",
			`first difference at await 3, after frame "crash_test.forgetful_waited" received its results:`,
			`without the crash: suspended in frame "flow.return", calling ship("r-o-2")`,
			`after the crash:   suspended in frame "flow.return", calling ship("")`,
			`outcome without the crash: OK, "shipped r-o-2"`,
			`outcome after the crash:   OK, "shipped "`,
			"package variables, caches and mocks start afresh",
		}}},
		{"an outcome computed in memory differs", func(t testing.TB) (any, error) {
			steps = 0
			out, _, err := flowtest.CrashEverywhere(t, counting, 0)
			return out, err
		}, 2, [][]string{{
			"a crash at await 1 of 1",
			"outcome without the crash: OK, 2",
			"outcome after the crash:   OK, 1",
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			rec := &recorder{T: t}
			out, err := tt.run(rec)
			is.NoErr(err)
			is.Equal(fmt.Sprint(out), fmt.Sprint(tt.want))
			if len(rec.errs) != len(tt.errs) {
				t.Fatalf("CrashEverywhere reported %d differences, want %d:\n%s", len(rec.errs), len(tt.errs), strings.Join(rec.errs, "\n"))
			}
			for i, parts := range tt.errs {
				msg, at := rec.errs[i], 0
				for _, p := range parts {
					j := strings.Index(msg[at:], p)
					if j < 0 {
						t.Fatalf("report:\n%s\nwant %q after position %d", msg, p, at)
					}
					at += j
				}
			}
		})
	}
}

// TestCrashEverywhereNeedsATest checks that a testing.TB that cannot be run
// again for its test (a benchmark) is refused with a clear message.
func TestCrashEverywhereNeedsATest(t *testing.T) {
	is := is.New(t)
	rec := &benchRecorder{TB: t}
	out, _, err := flowtest.CrashEverywhere(rec, checkout, "o-3", crashMocks...)
	is.NoErr(err) // the uninterrupted run
	is.Equal(out, "o-3: shipped r-o-3, notified o-3")
	is.Equal(len(rec.errs), 1)
	is.True(strings.Contains(rec.errs[0], "call it from a test (a *testing.T)"))
}

// benchRecorder is a testing.TB without the Run method of a *testing.T.
type benchRecorder struct {
	testing.TB
	errs []string
}

func (r *benchRecorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *benchRecorder) Context() context.Context { return r.TB.Context() }
