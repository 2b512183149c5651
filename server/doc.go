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
// transaction. Every change is committed before the server acts on it, so
// after a crash (even kill -9) and a restart every call in flight
// completes and results are delivered at least once; the log says how
// many calls were recovered. The signing key is made on first start and
// kept in the state directory, so DISPATCH_VERIFICATION_KEY stays valid.
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
// # Inspection
//
// Beside DispatchService, with the same bearer key, the server answers
// GET /dispatch.local.v1/calls and GET /dispatch.local.v1/calls/{id} with
// JSON, which `dispatch calls` and `dispatch call ID` read (they also read
// a state directory directly).
package server
