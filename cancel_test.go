package dispatch_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/dispatchkit/dispatch"
	"github.com/dispatchkit/dispatch/flow"
	"github.com/dispatchkit/dispatch/internal/testsync"
)

// ctIn is the input of the functions of the cancel tests: the test that
// runs them (their signals go to it) and a number of children.
type ctIn struct {
	Test string
	N    int
}

// ctSig are the signals of one test's functions.
type ctSig struct {
	started, stopped chan string // a block started, saw its context end
	inner            chan string // the dispatch id of an inner workflow
}

var (
	ctSignals sync.Map
	ctRuns    atomic.Int64
)

// runName names one run of a test for its signals: with -count=N, each
// run has its own.
func runName(t *testing.T) string { return fmt.Sprintf("%s#%d", t.Name(), ctRuns.Add(1)) }

func sigOf(test string) *ctSig {
	v, _ := ctSignals.LoadOrStore(test, &ctSig{
		started: make(chan string, 10000),
		stopped: make(chan string, 10000),
		inner:   make(chan string, 10),
	})
	return v.(*ctSig)
}

var (
	// ctBlock runs until its context ends.
	ctBlock = dispatch.Func("roottest.cancel.block", func(ctx context.Context, in ctIn) (string, error) {
		s := sigOf(in.Test)
		s.started <- fmt.Sprint(in.N)
		<-ctx.Done()
		s.stopped <- fmt.Sprint(in.N)
		return "", ctx.Err()
	})
	// ctInner gathers in.N blocks.
	ctInner = dispatch.Flow("roottest.cancel.inner", func(ctx *flow.Ctx, in ctIn) flow.Step[[]string] {
		sigOf(in.Test).inner <- ctx.Info().DispatchID
		ins := make([]ctIn, in.N)
		for i := range ins {
			ins[i] = ctIn{Test: in.Test, N: i}
		}
		return dispatch.Gather(ctBlock, ins, flow.Return[[]string]())
	})
	// ctOuter awaits an inner workflow, and handles its cancel.
	ctOuter = dispatch.Flow("roottest.cancel.outer", func(ctx *flow.Ctx, in ctIn) flow.Step[string] {
		return dispatch.Await(ctInner, in, ctHandled)
	})
	ctHandled = flow.Handle("roottest.cancel.outer.handled", func(ctx *flow.Ctx, v []string, err error) flow.Step[string] {
		if errors.Is(err, dispatch.ErrCanceled) {
			return flow.Done("handled: " + err.Error())
		}
		if err != nil {
			return flow.Fail[string](err)
		}
		return flow.Done("finished")
	})
	// ctSleep sleeps for an hour.
	ctSleep = dispatch.Flow("roottest.cancel.sleep", func(ctx *flow.Ctx, in ctIn) flow.Step[string] {
		return flow.Sleep(time.Hour, ctWoke)
	})
	ctWoke = flow.Then("roottest.cancel.woke", func(ctx *flow.Ctx, _ struct{}) flow.Step[string] {
		return flow.Done("woke")
	})
)

// isCanceled checks that err is the error of a cancelled call.
func isCanceled(is *is.I, err error) {
	is.Helper()
	is.True(errors.Is(err, dispatch.ErrCanceled))
	is.True(errors.Is(err, dispatch.ErrPermanent)) // its status: not retried
	var e *dispatch.Error
	is.True(errors.As(err, &e))
	is.Equal(e.Type, "CANCELLED")
	is.True(strings.Contains(e.Message, "was cancelled"))
}

func TestCancel(t *testing.T) {
	for _, m := range sdkModes {
		t.Run(m.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()

			t.Run("a running call", func(t *testing.T) {
				is := is.New(t)
				d, srv := m.start(t)
				run := runName(t)
				s := sigOf(run)
				id, err := ctBlock.Dispatch(ctx, ctIn{Test: run})
				is.NoErr(err)
				<-s.started
				stopped, err := d.Cancel(ctx, id)
				is.NoErr(err)
				is.True(stopped)
				<-s.stopped // the function saw ctx.Done()
				_, err = ctBlock.Wait(ctx, id)
				isCanceled(is, err)
				is.True(strings.Contains(err.Error(), "was cancelled by Dispatch.Cancel in ")) // who
				testsync.WaitFor(t, "nothing left", func() bool { return srv.Stats().Live == 0 })
			})

			t.Run("a workflow's gather; its parent handles it", func(t *testing.T) {
				is := is.New(t)
				d, srv := m.start(t)
				run := runName(t)
				s := sigOf(run)
				outer, err := ctOuter.Dispatch(ctx, ctIn{Test: run, N: 3})
				is.NoErr(err)
				inner := <-s.inner
				for range 3 {
					<-s.started
				}
				stopped, err := d.Cancel(ctx, inner)
				is.NoErr(err)
				is.True(stopped)
				for range 3 {
					<-s.stopped
				}
				got, err := ctOuter.Wait(ctx, outer)
				is.NoErr(err)
				is.True(strings.HasPrefix(got, "handled: "))
				is.True(strings.Contains(got, "CANCELLED"))
				_, err = ctInner.Wait(ctx, inner)
				isCanceled(is, err)
				testsync.WaitFor(t, "nothing left", func() bool { return srv.Stats().Live == 0 })

				// Cancelling again, or a finished call, is a no-op.
				stopped, err = d.Cancel(ctx, inner)
				is.NoErr(err)
				is.True(!stopped)
				stopped, err = d.Cancel(ctx, outer)
				is.NoErr(err)
				is.True(!stopped)
				got, err = ctOuter.Wait(ctx, outer)
				is.NoErr(err)
				is.True(strings.HasPrefix(got, "handled: ")) // unchanged
			})

			t.Run("a sleeping workflow", func(t *testing.T) {
				is := is.New(t)
				d, srv := m.start(t)
				id, err := ctSleep.Dispatch(ctx, ctIn{Test: t.Name()})
				is.NoErr(err)
				testsync.WaitFor(t, "asleep", func() bool { return srv.Stats().Suspended == 1 })
				stopped, err := d.Cancel(ctx, id)
				is.NoErr(err)
				is.True(stopped)
				_, err = ctSleep.Wait(ctx, id)
				isCanceled(is, err)
				is.Equal(srv.Stats().Live, 0)
			})

			t.Run("an unknown id", func(t *testing.T) {
				is := is.New(t)
				d, _ := m.start(t)
				_, err := d.Cancel(ctx, "nope")
				is.True(errors.Is(err, dispatch.ErrUnknownCall))
				is.True(strings.HasPrefix(err.Error(), "dispatch: cancelling call nope: "))
			})
		})
	}
}

// A gather of 5,000 calls (1,000 in flight at most, the rest not yet
// dispatched) is cancelled with its workflow: the calls running see their
// context end, the others never start.
func TestCancelGather5000(t *testing.T) {
	is := is.New(t)
	d, srv := startLocal(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	run := runName(t)
	s := sigOf(run)
	outer, err := ctOuter.Dispatch(ctx, ctIn{Test: run, N: 5000})
	is.NoErr(err)
	inner := <-s.inner
	testsync.WaitFor(t, "a thousand children", func() bool { return srv.Stats().Live >= 1002 })
	<-s.started
	stopped, err := d.Cancel(ctx, inner)
	is.NoErr(err)
	is.True(stopped)
	got, err := ctOuter.Wait(ctx, outer)
	is.NoErr(err)
	is.True(strings.HasPrefix(got, "handled: "))
	testsync.WaitFor(t, "nothing left", func() bool { return srv.Stats().Live == 0 })
	// Each that ran saw its context end (the ends reach the endpoint a
	// moment after the cancel), and most never ran.
	testsync.WaitFor(t, "the runs stopped", func() bool { return len(s.stopped) == len(s.started)+1 })
	is.True(len(s.started) < 1000)
}

// A cancelled workflow stays cancelled when the program runs again on its
// state directory.
func TestCancelAcrossRuns(t *testing.T) {
	is := is.New(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d1, srv1 := startLocal(t, dir)
	id, err := ctSleep.Dispatch(ctx, ctIn{Test: t.Name()})
	is.NoErr(err)
	testsync.WaitFor(t, "asleep", func() bool { return srv1.Stats().Suspended == 1 })
	stopped, err := d1.Cancel(ctx, id)
	is.NoErr(err)
	is.True(stopped)
	is.NoErr(d1.Close())

	_, srv2 := startLocal(t, dir)
	is.Equal(srv2.Stats().Live, 0) // nothing recovered
	_, err = ctSleep.Wait(ctx, id)
	isCanceled(is, err)
}
