package dispatch

import "github.com/dispatchkit/dispatch/flow"

// Gather calls fn once per input, concurrently, and continues with k when
// every call has succeeded, with the results in input order (fan-out,
// fan-in). It is flow.Gather(fn.Calls(inputs...), k): see [flow.Gather] for
// errors, empty inputs and large fan-outs.
//
//	return dispatch.Gather(Fetch, urls, summarize)
func Gather[I, O, T any](fn *Function[I, O], inputs []I, k flow.Cont[[]O, T], opts ...flow.Option) flow.Step[T] {
	return flow.Gather(fn.Calls(inputs...), k, opts...)
}

// Calls returns a call of fn per input, in order, for [flow.Gather],
// [flow.Any] and [flow.Race] (or a batch [Dispatch.Dispatch]).
func (f *Function[I, O]) Calls(inputs ...I) []flow.Call[O] {
	calls := make([]flow.Call[O], len(inputs))
	for i, in := range inputs {
		calls[i] = f.Call(in)
	}
	return calls
}
