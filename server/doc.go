// Package server is a local Dispatch server: the same component that
// `dispatch test <endpoint-url>` runs, embeddable in programs and tests.
//
// # Start it
//
//	srv, err := server.New(server.Config{
//		Endpoint: "http://127.0.0.1:8000", // where calls go by default
//		Memory:   true,                    // or StateDir: dir, to survive restarts
//	})
//	if err != nil { ... }
//	if err := srv.Start(ctx); err != nil { ... }
//	defer srv.Close()
//	// DISPATCH_API_URL=srv.URL(), DISPATCH_API_KEY=srv.APIKey(),
//	// DISPATCH_VERIFICATION_KEY=srv.VerificationKey()
//
// [Serve] does the same and blocks until its context ends.
//
// # What it does
//
// DispatchService.Dispatch is served over Connect, gRPC (HTTP/2 over
// cleartext) and gRPC-Web, behind "Authorization: Bearer <key>". Requests
// are validated against the protovalidate rules of the protos; the calls of
// one request are recorded all or none, durably, before the answer.
//
// Each call runs on its endpoint's FunctionService.Run, signed with the
// server's Ed25519 key (RFC 9421, as PROTOCOL.md says), and the server
// follows the answer: a Poll makes child calls and resumes the caller when
// min_results are ready or max_wait has passed (a Poll without calls is a
// durable sleep); an Exit hands the result to the parent; a tail call
// replaces the call under the same dispatch id. Retryable statuses and
// transport failures are retried with exponential back-off and jitter until
// the call expires (then it fails with TIMEOUT); INCOMPATIBLE_STATE
// restarts the call from its input a bounded number of times.
//
// Each endpoint has a concurrency limit that adapts (additive increase,
// multiplicative decrease on THROTTLED, timeouts, 429 and 503), and its
// ready calls are served round-robin across root calls, so one huge
// fan-out does not starve small workflows.
//
// # Durability
//
// With a StateDir, calls live in a SQLite database (WAL mode) written by
// one goroutine that groups the changes of concurrent steps into one
// transaction; a second connection checkpoints the log in the background.
// A database made by an older version is upgraded in place, in one
// transaction, when the server opens it; one made by a newer version is
// refused. Every change is committed before the server acts on it, so
// after a crash (even kill -9) and a restart every call in flight
// completes and results are delivered at least once; the log says how
// many calls were recovered. The signing key is made on first start and
// kept in the state directory, so DISPATCH_VERIFICATION_KEY stays valid.
//
// # Results
//
// [Server.Result] blocks until a call (root or child) is final (done,
// failed for good, or expired) and returns its [Outcome]; it answers at
// once for a final call. The engine wakes waiters when the outcome is
// durable, handing them the stored row. If the store fails for good,
// waiters are woken at once with that error: the outcome cannot be stored
// before a restart. Programs that
// use a server started by `dispatch test` get the same over HTTP with
// [FetchResult] (see Inspection).
//
// # The default endpoint across restarts
//
// The store remembers Config.Endpoint. When a server starts on a store last
// used with another default, the calls in flight bound to the previous
// default move to the new one, durably, before any runs ("moved N calls
// from the previous endpoint OLD to NEW" in the log). A program in local
// mode listens on a new random port at each run, so without this its
// recovered calls would go on calling a port nobody listens on. Calls that
// named another endpoint stay with it; one that named the previous default
// explicitly cannot be told apart and moves too.
//
// # Decisions where the protocol is silent
//
//   - A call without an endpoint goes to Config.Endpoint (Dispatch) or to
//     its parent's endpoint (Poll). Without Config.Endpoint, Dispatch
//     rejects such calls as invalid.
//   - A child call never outlives its parent's expiration.
//   - Errors made by the server carry the status name as Error.type
//     ("TIMEOUT", "INVALID_RESPONSE", "INVALID_ARGUMENT", ...); a function's
//     own error reaches the parent unchanged.
//   - A 200 answer that is not a RunResponse is INVALID_RESPONSE and is not
//     retried; no answer at all, 5xx, 408 and 429 are retried.
//   - An invalid Poll resumes the caller at once with PollResult.error of
//     type "INVALID_ARGUMENT"; no child is made.
//   - A tail call or a restart drops the results of the children of the
//     previous run; children of a call that exited run on, their results
//     are dropped.
//
// # Health
//
// [Server.Health] and GET /dispatch.local.v1/health (no key needed) say
// whether the server runs calls: 200 {"status":"ok"}, or 503 with the
// reason once the store cannot write (nothing is accepted or run until a
// restart; what was stored resumes then) or while the server stops.
//
// # Inspection
//
// Beside DispatchService, with the same bearer key, the server answers
// GET /dispatch.local.v1/calls and GET /dispatch.local.v1/calls/{id} with
// JSON, which `dispatch calls` and `dispatch call ID` read (they also read
// a state directory directly), and
// GET /dispatch.local.v1/calls/{id}/result?wait=30s, which answers a final
// call's outcome ({"status":"STATUS_OK","result":{CallResult in
// protojson},"result_proto":"<base64>"}) or, once wait (at most 60 s;
// default 0) has passed, 202 {"status":"pending"}. [FetchResult] is its
// client. The CallResult's output is left out of "result" when its type is
// not linked into the server (the Go SDK's CBOR values): "result_proto",
// the binary CallResult, is always exact.
package server
