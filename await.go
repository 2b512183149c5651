package dispatch

import "github.com/dispatchkit/dispatch/flow"

// Await calls fn with in from a workflow and continues with k when the
// result is ready: a shorthand for flow.Await(fn.Call(in), k). Read it as a
// receive from a call that may run on another machine and outlive this
// process.
//
//	return dispatch.Await(Charge, order, charged.With(order))
func Await[I, O, T any](fn *Function[I, O], in I, k flow.Cont[O, T], opts ...flow.Option) flow.Step[T] {
	return flow.Await(fn.Call(in), k, opts...)
}
