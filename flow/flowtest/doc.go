// Package flowtest runs workflows in a test, as the Dispatch server runs
// them, without a server: it plays Dispatch's part in-process, making the
// calls a workflow awaits with mocks (or with the functions registered in
// the program), retrying them as the server does, delivering their results
// in an order the test chooses, on a virtual clock. Every suspension goes
// through the real state encoding, so a workflow that passes here also
// serializes.
//
//	var Pipeline = dispatch.Flow("pipeline", func(ctx *flow.Ctx, msg string) flow.Step[string] { ... })
//
//	out, rep, err := flowtest.Run(ctx, Pipeline, "hello",
//		flowtest.Mock("transform1", func(s string) (string, error) { return strings.ToUpper(s), nil }),
//		flowtest.Mock("transform2", func(s string) (string, error) { return s + "!", nil }),
//	)
//
// [Run] takes what dispatch.Flow returns; [RunFunc] takes a flow function
// that is not registered. [CrashEverywhere] runs a workflow once more per
// await point, crashing the process there.
//
// # The server's rules
//
// flowtest follows the rules of the local server (package server; see
// "Status: who retries what" in the protocol):
//
//   - A call whose attempt fails with a status the server retries (TIMEOUT,
//     THROTTLED, TEMPORARY_ERROR, DNS_ERROR, TCP_ERROR, TLS_ERROR,
//     HTTP_ERROR: dispatch.Temporary, a context.DeadlineExceeded, a
//     network error...) is attempted again after a back-off, from
//     [MinBackoff] doubling to [MaxBackoff], until an attempt succeeds or
//     fails for good; only that outcome reaches the workflow. A mock that
//     fails temporarily then succeeds delivers the success. When the next
//     attempt would come after the call's expiration (flow.Call's
//     WithExpiration, else [DefaultExpiration], never past the workflow's
//     own), the call fails with TIMEOUT at its expiration.
//   - The workflow's own attempts are retried alike: a step that fails with
//     a temporary error runs again from the same state.
//   - A state the workflow cannot resume (INCOMPATIBLE_STATE) restarts it
//     from its input, at most [MaxRestarts] times ([IncompatibleState]
//     injects one).
//   - The workflow itself expires: after [DefaultExpiration] (1 hour, the
//     server's default for a call dispatched without an expiration) it
//     fails with TIMEOUT; [Expiration] sets another, as dispatching it with
//     flow.Call.WithExpiration does.
//   - A call goes to its mock ([Mock], [MockAttempt]); without one, to the
//     function registered in the program under its name, as the endpoint
//     would serve it (a child workflow runs as a call of its own, with its
//     own retries and clock); with neither, it fails with NOT_FOUND, naming
//     the mock to add.
//
// [RawOutcomes] turns the retries and restarts off, and delivers each
// first attempt's outcome as it is, as flowtest did before it followed the
// server.
//
// # The virtual clock
//
// Time is virtual: it starts at [Clock] (2026-01-01T00:00:00Z by default)
// and moves only when the run waits: a poll is answered when its
// min_results results are ready or its max_wait has passed, whichever
// comes first, and the clock jumps there. Sleeps (flow.Sleep), timeouts
// (flow.Timeout), back-offs, the latency of calls ([Latency]) and
// expirations all pass on it, so a test of a one-hour timeout runs in
// milliseconds; flow.Ctx.Now follows it, and [Report] says how much passed
// (Slept).
//
// # Crash at every await
//
// [CrashEverywhere] runs the workflow once uninterrupted, then once per
// await point k, stopping the process there: the state is saved, and the
// run goes on in a new process (the test binary run again for the same
// test) that has nothing of the first but the bytes Dispatch keeps. Each
// crashed run must make the same calls and reach the same outcome as the
// uninterrupted one; when it does not, the test fails with the await point
// of the crash, the frame it was suspended in, the first await that
// differs and what each run did there:
//
//	func TestOrder(t *testing.T) {
//		out, _, err := flowtest.CrashEverywhere(t, Order, Cart{...}, mocks...)
//		...
//	}
//
// It finds state kept outside the environments of continuations (a
// package variable written in one step and read in a later one), and work
// done between awaits that is not idempotent and shows in the outcome.
//
// # Faults
//
// [Hang] makes calls never complete; [RefusePoll] makes Dispatch refuse a
// poll's calls (PollResult.error); [IncompatibleState] gives a resume a
// state this build cannot read; [Duplicates] delivers every result twice;
// [Deliver] chooses the order in which results arrive.
package flowtest
