package flow

import (
	"fmt"
	"time"
)

// Step is what a flow or a continuation returns: the next thing to do. It is
// a description, not an action; the engine interprets it. Build one with
// [Done], [Fail], [Await], [Gather], [Any], [Race], [Sleep], [TailCall] or
// [Bind]. T is the type of the value the step finally produces.
//
// The zero Step is invalid: returning it fails the call with an error naming
// the continuation that returned it.
type Step[T any] struct{ n node }

// node is the untyped form of a step. The set of nodes is closed: the engine
// switches over them.
type node interface{ isNode() }

// doneNode produces a value.
type doneNode struct{ v value }

// failNode fails with an error; frames that handle errors may recover.
type failNode struct{ err error }

// bindNode runs inner, then feeds what it produces to k.
type bindNode struct {
	inner node
	k     frame
}

// waitNode suspends the call until its calls complete (or a timer fires) and
// produces their results according to mode.
type waitNode struct {
	mode    mode
	calls   []callSpec
	timeout time.Duration // 0: none
}

// tailNode replaces the current call with another one.
type tailNode struct{ call callSpec }

func (doneNode) isNode() {}
func (failNode) isNode() {}
func (bindNode) isNode() {}
func (waitNode) isNode() {}
func (tailNode) isNode() {}

// Done returns a step that produces v: the flow (or sub-flow) returns it.
func Done[T any](v T) Step[T] { return Step[T]{doneNode{value{v: v, set: true}}} }

// Fail returns a step that fails with err. The error goes to the nearest
// continuation that handles errors (see [Handle]), or ends the call; its
// status comes from err (see the markers of package dispatch, such as
// dispatch.Temporary).
func Fail[T any](err error) Step[T] {
	if err == nil {
		err = fmt.Errorf("flow: Fail called with a nil error")
	}
	return Step[T]{failNode{err}}
}

// TailCall returns a step that hands the current call over to c: the same
// dispatch id continues with c's function and input, keeping its parent and
// root, and c's result becomes this call's result. Nothing of the current
// flow is kept, so TailCall must be the last step: returning it while
// continuations are still waiting (inside [Bind]) fails the call.
func TailCall[T any](c Call[T]) Step[T] { return Step[T]{tailNode{c.spec}} }

// Bind runs the sub-flow s and feeds the value it produces to k. It is how
// flows compose locally: s may await calls and suspend, in which case k is
// kept as a frame of the state (the state is a stack of frames) and runs
// when s is done, possibly on another instance.
//
// An error from s skips k (unless k handles errors, see [Handle]).
func Bind[A, T any](s Step[A], k Cont[A, T]) Step[T] {
	return Step[T]{bindNode{inner: s.n, k: k.frame()}}
}

// Option configures a waiting combinator ([Await], [Gather], [Any], [Race]).
type Option interface{ apply(*waitNode) }

type optionFunc func(*waitNode)

func (f optionFunc) apply(w *waitNode) { f(w) }

// Timeout bounds how long a combinator waits. When d passes before the
// combinator is satisfied, its continuation receives an error that matches
// [dispatcherr.ErrTimeout] (dispatch.ErrTimeout) with errors.Is and has
// status TIMEOUT; calls still running keep running and their results are
// dropped. d is rounded up to one second, the protocol's smallest wait.
func Timeout(d time.Duration) Option {
	return optionFunc(func(w *waitNode) { w.timeout = d })
}
