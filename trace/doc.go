// Package trace shows what a Dispatch function is doing, for the people
// who debug it: a dump of a coroutine's frames at the moment it suspends or
// exits.
//
// # DISPATCH_TRACE
//
// When the environment variable DISPATCH_TRACE is set to anything but "",
// "0" or "false" (in any case), the SDK calls [Dump] each time a workflow
// suspends, once its state is saved (or failed to be), and writes the
// result to standard output (dispatch.WithTrace chooses another writer). Each dump
// shows the function and its dispatch id, the frames from the top of the
// stack down with the environment each continuation captured and what the
// top one waits on, the calls being sent, and how many more are queued
// behind them:
//
//	dispatch trace: suspend pipeline (id 7f3a9c2e)
//	  frames, top of stack first:
//	    0  pipeline.transformed
//	       env:    Order{ID: "o-1", Items: ["a", "b"]}
//	       detail: await all: 3 of 5 results
//	    1  pipeline
//	       env:    Input{N: 3}
//	  pending calls: 2
//	    #1  transform2("hello")
//	    #2  notify(Order{ID: "o-1", Items: nil})  endpoint: https://other.example.com
//	  queued calls (sent as results come in): 3
//
// Values are shown as Go values, by [Format], not as they were serialized: a
// dump still works when the state holds a value that cannot be serialized
// (a channel, a function), which is often the bug being looked for, and
// then says that the state could not be saved and that its calls were not
// sent ([Snapshot.Failure]). Tracing
// costs a formatted dump per suspension, so leave it off in production.
//
// Logs are not this package's: give the SDK a *slog.Logger with
// dispatch.WithLogger (or a zerolog.Logger with dispatch.WithZerolog).
package trace
