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
// channels or funcs.
//
// The environment's type is checked when the continuation is registered,
// so that a mistake shows at start-up: [ThenWith] and [HandleWith] panic
// with an [*EnvError] ([ThenWithSafely] and [HandleWithSafely] return it)
// that names the continuation and lists every field CBOR cannot encode
// (channels, funcs, unsafe pointers) and every unexported field, which CBOR
// would drop without a word, so that the continuation would see its zero
// value after a resume:
//
//	flow: continuation "order.charged": its environment main.Order would not survive a suspension (it is saved with CBOR):
//		Items[*].Done (chan bool): CBOR cannot encode this type
//		total (int): unexported, so CBOR drops it: it reads back as its zero value
//	remove these fields or tag them `cbor:"-"`, and export the fields the continuation needs; ...
//
// A field tagged `cbor:"-"` is left out on purpose and is not reported.
// What a field of interface type holds is known only at run time: a value
// that cannot be encoded there fails the call when the state is saved,
// with an error naming the frame and the field path, such as
//
//	flow: frame 0 "order.charged": cannot save its environment main.Order:
//	serde: cbor cannot encode Items[2].Done (type chan bool): drop the field,
//	or tag it `cbor:"-"` so the encoder skips it
//
// A continuation that refers to itself (a loop) is assigned in an init
// function, since Go rejects a package-level variable whose initializer
// refers to itself (see Loops below).
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
// frame; Dispatch then restarts the call from its input (the local server
// at most 3 times). The program that hit the state logs a warning with the
// frame and the reason (to the logger of dispatch.WithLogger).
//
// A restart runs the flow again from the start: every call it made before,
// and every side effect of its continuations, happens again. A flow whose
// steps are not idempotent (one that charges a card) is registered with
// dispatch.FailOnIncompatible: it then fails with PERMANENT_ERROR instead,
// and is not restarted. The files in testdata/ are states of earlier
// builds that every later build must resume.
//
// # Tracing
//
// With DISPATCH_TRACE=1 (see package trace) the engine prints every frame to
// standard output at each suspension, as Go values: the function, the
// dispatch id, each frame's name and environment, and the calls sent. When
// the state cannot be saved, the dump says so, and lists the calls as not
// sent.
//
// # Loops
//
// A durable loop is a continuation that awaits itself, with what it
// carries from one iteration to the next in its environment, and a bound,
// so that a loop that never ends does not run until its expiration. The
// state does not grow with the iterations: it holds the one frame and its
// environment. ExampleThenWith_loop sums the items of a paginated API:
//
//	var pageFetched flow.ContWith[Tally, Page, int]
//
//	func init() {
//		pageFetched = flow.ThenWith("loop.page_fetched", func(ctx *flow.Ctx, t Tally, p Page) flow.Step[int] {
//			for _, n := range p.Items {
//				t.Total += n
//			}
//			t.Left--
//			switch {
//			case p.Next == 0:
//				return flow.Done(t.Total)
//			case t.Left == 0:
//				return flow.Fail[int](dispatch.Permanent(errors.New("more pages than allowed")))
//			}
//			return flow.Await(FetchPage.Call(p.Next), pageFetched.With(t))
//		})
//	}
//
// A loop that polls waits between iterations with [Sleep], whose
// continuation awaits the next check with the loop's continuation.
//
// # Sagas
//
// A saga undoes what it did when a later step fails for good: a [Handle]
// (or [HandleWith]) continuation receives each step's error, and, with
// what is done so far in its environment, runs the compensating calls.
// ExampleHandleWith_saga books a flight, a hotel and a car, one after the
// other, and cancels the bookings made when one fails:
//
//	sagaBooked = flow.HandleWith("saga.booked", func(ctx *flow.Ctx, b Booking, id string, err error) flow.Step[[]Booked] {
//		step := sagaSteps[len(b.Booked)]
//		if err != nil {
//			return compensate(b, fmt.Sprintf("booking the %s failed: %v", step, err))
//		}
//		b.Booked = append(b.Booked, Booked{Kind: step, ID: id})
//		if len(b.Booked) == len(sagaSteps) {
//			return flow.Done(b.Booked)
//		}
//		next := sagaSteps[len(b.Booked)]
//		return flow.Await(flow.NewCall[string]("book_"+next, b.Trip.request(next)), sagaBooked.With(b))
//	})
//
// where compensate gathers the cancel calls of b.Booked and then fails with
// the cause. The error a Handle continuation receives is final: a step that
// failed with a temporary error was retried by Dispatch, and is not
// compensated. The compensating calls must be idempotent, as every call is
// run at least once.
//
// # Testing
//
// Package flowtest runs a flow in-process as the server would run it (with
// its retries, on a virtual clock) with mocked calls, so workflows get
// table-driven tests without a server; flowtest.CrashEverywhere runs a
// flow once more per await, crashing the process there, and checks that it
// reaches the same outcome.
package flow
