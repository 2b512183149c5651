// Package flow is the language of durable workflows: a small
// channel-style DSL over calls that may run on other machines and outlive
// the process.
//
// A workflow is a function that returns a [Step]. [Await] reads like a
// receive from one call, [Gather] like a fan-in of many, [Any] and [Race]
// like a select; [Sleep] waits durably; [Done], [Fail] and [TailCall] end
// the flow. What comes after an await is a continuation: a function
// registered under a stable name with [Then], [Handle], [ThenWith] or
// [HandleWith]. There is no code generator and no replay: an interpreter
// runs the steps, and when a step waits, it saves the stack of
// continuations, with what each one captured, as a CBOR document that any
// instance of the service (of this build or a later one) can resume.
//
// This package is the DSL only. The interpreter is driven by package
// dispatch, which serves the flows registered with dispatch.Flow, and by
// package flowtest in tests; it is not part of the API (its entry point is
// internal to the module).
//
//	var Pipeline = dispatch.Flow("pipeline", func(ctx *flow.Ctx, msg string) flow.Step[string] {
//		return flow.Await(Transform1.Call(msg), transformed)
//	})
//
//	var transformed = flow.Then("pipeline.transformed", func(ctx *flow.Ctx, msg string) flow.Step[string] {
//		return flow.Await(Transform2.Call(msg), flow.Return[string]())
//	})
//
// # Continuations and environments
//
// A continuation is looked up by name when a flow resumes, so it must be
// registered by every build that may resume the flow: declare continuations
// as package-level variables. The name is the compatibility contract; the Go
// identifier can change freely.
//
// A continuation sees only what it is given: the value of the step it
// continues and, for [ThenWith] and [HandleWith], an environment captured
// explicitly with With. Go closures are not saved, so a continuation cannot
// silently depend on a variable of the function that awaited. The
// environment is encoded with CBOR (package serde): exported fields, no
// channels or funcs. A value that cannot be encoded fails the call with an
// error naming the frame and the field path, such as
//
//	flow: frame 0 "order.charged": cannot save its environment main.Order:
//	serde: cbor cannot encode Items[2].Done (type chan bool): drop the field,
//	or tag it `cbor:"-"` so the encoder skips it
//
// A continuation that refers to itself (a loop) is assigned in an init
// function, since Go rejects a package-level variable whose initializer
// refers to itself:
//
//	var poll flow.ContWith[int, Status, Status]
//
//	func init() {
//		poll = flow.ThenWith("job.poll", func(ctx *flow.Ctx, n int, s Status) flow.Step[Status] {
//			if s.Done || n == 0 {
//				return flow.Done(s)
//			}
//			return flow.Await(Check.Call(s.ID), poll.With(n-1))
//		})
//	}
//
// # Errors
//
// A failed call, a [Fail] step or a panic in a continuation goes to the
// nearest continuation that handles errors ([Handle], [HandleWith]),
// skipping those that do not ([Then], [ThenWith]); with none, the call
// fails. A child's error reaches the continuation with its status, type and
// message (a [dispatcherr.Error]); a panic is a
// PERMANENT_ERROR whose traceback is the stack.
//
// # Composition
//
// [Bind] runs a sub-flow and continues with its value: the continuation is
// pushed as a frame, so the state is a stack of frames, and a sub-flow is an
// ordinary function returning a Step. Waiting combinators accept a
// [Timeout]; when it passes first, the continuation receives an error that
// matches [dispatcherr.ErrTimeout] (dispatch.ErrTimeout) with errors.Is and
// has status TIMEOUT, as a call that failed with TIMEOUT does: there is one
// sentinel for the status.
//
// # State
//
// The state is a versioned CBOR document ([StateVersion], carried in
// Poll.typed_coroutine_state with type URL [StateTypeURL]): the frames
// (continuation name and environment), the calls still pending, identified
// by correlation ids, and the results already in. A suspended flow with
// three frames and small environments takes under 200 bytes, and nothing in
// it grows with the number of steps taken. A state this build cannot resume
// (an unknown continuation, an environment that no longer decodes, a newer
// format) is answered with INCOMPATIBLE_STATE and a message naming the
// frame; Dispatch then restarts the call from its input. The files in
// testdata/ are states of earlier builds that every later build must resume.
//
// # Tracing
//
// With DISPATCH_TRACE=1 (see package trace) the engine prints every frame to
// standard output before the state is serialized: the function, the
// dispatch id, each frame's name and environment, and the calls pending.
//
// # Testing
//
// Package flowtest runs a flow in-process with mocked calls, so workflows
// get table-driven tests without a server.
package flow
