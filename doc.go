// Package dispatch writes durable, distributed programs in Go on the
// Dispatch protocol.
//
// Register functions by name; call them with Dispatch, which schedules each
// call on any instance of the service, retries it on temporary errors (even
// across restarts and deployments) and keeps its progress durable.
//
//	var Publish = dispatch.Func("publish", func(ctx context.Context, msg Message) (Receipt, error) {
//		...
//	})
//
//	id, err := Publish.Dispatch(ctx, Message{...})
//
// # Workflows
//
// A workflow ([Flow]) is written with explicit combinators from package
// flow: [flow.Await] one call, [flow.Gather] many (fan-out, fan-in),
// [flow.Any], [flow.Race], [flow.Sleep], [flow.TailCall]. What follows an
// await is a continuation registered by a stable name, and what it captures
// is an explicit, CBOR-encoded environment, so a suspended workflow resumes
// on any instance, in this build or the next. No code generator, no replay,
// no determinism rules.
//
//	var Pipeline = dispatch.Flow("pipeline", func(ctx *flow.Ctx, msg string) flow.Step[string] {
//		return dispatch.Await(Transform1, msg, transformed)
//	})
//
//	var transformed = flow.Then("pipeline.transformed", func(ctx *flow.Ctx, msg string) flow.Step[string] {
//		return dispatch.Await(Transform2, msg, flow.Return[string]())
//	})
//
// [Await] and [Gather] in this package are the combinators of package flow
// applied to a registered [Function]; fn.Call(in) builds the call for any
// other combinator, and [flow.NewCall] calls a function by name, on this
// endpoint or another.
//
// A state that a later build cannot resume (a continuation renamed or
// removed) restarts the workflow from its input, so what it did before
// runs again; the program logs a warning naming the frame and the reason.
// A workflow registered with [FailOnIncompatible] fails instead.
//
// Package flowtest runs a workflow in a test as the server runs it (mocked
// calls, the server's retries, a virtual clock), and
// flowtest.CrashEverywhere runs it once more per await, crashing the
// process there and resuming in a new one from the saved state:
//
//	func TestPipeline(t *testing.T) {
//		out, _, err := flowtest.CrashEverywhere(t, Pipeline, "hello", flowtest.Mock("transform1", ...))
//		...
//	}
//
// # Serving
//
// [New] configures an instance from options and the environment;
// [Dispatch.Handler] is the endpoint Dispatch calls (mount it on any mux,
// under any prefix), and [Dispatch.ListenAndServe] serves it. Requests are
// verified with HTTP Message Signatures (RFC 9421, Ed25519) against
// DISPATCH_VERIFICATION_KEY, and each signed request is served once (see
// Replays below).
//
// The endpoint speaks Connect, gRPC and gRPC-Web, and bare protobuf for
// peers that send the RunRequest without framing: dispatch-py v0.5.1's
// mock server (python -m dispatch.test) posts application/grpc+proto
// without the gRPC message prefix, its later test server
// application/octet-stream. Such requests are answered in kind (see
// [Dispatch.Handler]). A request body must arrive within 30 s
// ([WithBodyTimeout]); a run takes as long as it takes.
//
// The client speaks Connect to Dispatch; [WithProtocol] switches it to
// gRPC (HTTP/2), for servers that speak only gRPC such as that mock, or
// to gRPC-Web.
//
// # Local mode
//
// A program that imports package local runs a Dispatch server in its own
// process when no Dispatch server is configured (neither DISPATCH_API_URL
// nor DISPATCH_API_KEY, nor WithAPIURL, WithAPIKey), so that `go run`
// works end to end on a fresh machine:
//
//	import _ "github.com/dispatchkit/dispatch/local"
//
// The server keeps its calls in SQLite in the program's state directory
// ([StateDir]); [WithLocalServer] runs one whatever the environment says.
// The import is what links the server (its scheduler, stores, SQLite,
// protovalidate) into the program, as a database/sql driver is linked: the
// SDK alone does not depend on it, so a program that only serves functions
// to a separate server (one started with `dispatch test`, or the hosted
// platform) builds without it. A function-only program (one [Func],
// served by [Dispatch.Handler]) depends on 272 packages instead of 340,
// and its first build with an empty build cache (go build, a fresh
// GOCACHE, the module cache warm) takes 25 to 36 s instead of 64 to 66 s
// on the development machine (2 shared CPUs), 40 s of CPU instead of 87.
// Without the import and with no server configured, [New] fails and says
// to set DISPATCH_API_URL and DISPATCH_API_KEY or to add the import.
//
// The embedded server calls the program's functions in process: each
// RunRequest to the program's endpoint is handed to the code that the
// endpoint's HTTP handler runs after decoding, and its RunResponse comes
// back as a value; no HTTP, no signature (nothing leaves the process).
// Retries, the attempt timeout (the context's deadline), panics (turned
// into errors by the same code), the endpoint's concurrency limit and
// fairness, and the CBOR coroutine state in the RunResponse are those of
// HTTP; a request error (no such function) has the status its HTTP
// answer would have. Runs wait until the program serves its endpoint
// (Start, ListenAndServe, Serve or Handler), as requests to a listener
// not yet served would, so calls recovered from the state directory do
// not run first. The program's own Dispatch requests reach the embedded
// server in process too (copied, and checked as its HTTP handler checks
// them: the API key, the size limit, validation, the endpoint policy,
// idempotency keys), so nothing of a workflow's path goes through HTTP;
// WithHTTPClient and WithProtocol then do not apply. Other endpoints, and
// `dispatch test`, keep signed HTTP. DISPATCH_LOCAL_TRANSPORT=http
// ([EnvLocalTransport]) makes local mode use HTTP both ways: signed
// loopback HTTP to the program's endpoint, and Dispatch requests over HTTP
// to the embedded server, as to a separate one.
//
// # Configuration
//
//	variable                    option                 default
//	DISPATCH_API_KEY            WithAPIKey             none. With no URL either: local mode, if the program imports package local (else New fails, saying what to set); with a URL: Dispatch fails with ErrNoAPIKey
//	DISPATCH_API_URL            WithAPIURL             with no API key either: local mode, as above; with a key: https://api.dispatch.run (DefaultAPIURL, the former hosted platform); set but empty is an error
//	DISPATCH_ENDPOINT_URL       WithEndpointURL        none (local mode picks a loopback port); a full URL with scheme and host
//	DISPATCH_VERIFICATION_KEY   WithVerificationKey    none: requests accepted unverified, with a warning at start and at most once a minute while serving
//	DISPATCH_TRACE              WithTrace              off; any value but "", "0", "false" turns it on
//	DISPATCH_STATE_DIR          WithLocalServer(dir)   $XDG_STATE_HOME/dispatch/<program> or ~/.local/state/dispatch/<program>
//
// Options win over the environment. A wrong value fails [New] with a
// message naming the option or variable and what a right value looks like.
// Without a verification key, New logs a warning, and the endpoint logs it
// again while it serves requests unverified, at most once a minute.
//
// Options without a variable, which belong to the code rather than the
// deployment:
//
//	option                 default
//	WithLogger             warnings and errors to standard error; takes a *slog.Logger (WithZerolog: a zerolog.Logger)
//	WithProtocol           ProtocolConnect (also ProtocolGRPC, ProtocolGRPCWeb)
//	WithHTTPClient         a client of this package, 1 min timeout; HTTP/2 only for ProtocolGRPC
//	WithReplayCache        1<<20 signatures (DefaultReplayCacheSize)
//	WithBodyTimeout        30 s (DefaultBodyTimeout)
//	WithMaxRequestBytes    16 MiB (DefaultMaxRequestBytes)
//
// # Replays
//
// A signed request is served once. The endpoint remembers a digest of the
// signature base of every request it verified (the base covers the method,
// the path, the authority, the Content-Type, the Content-Digest of the
// body and the signature parameters, created and nonce among them) until
// it is too old to verify, 5 minutes after it was signed, and answers a
// request with the same base permission_denied (403) with a message that
// says it is a replay; the function does not run again. Only requests
// that verify are remembered, so a forged one cannot make the endpoint
// refuse the genuine one.
//
// What is protected: a request captured on its way (in a log, by a proxy,
// on a network without TLS) and sent again to the same process while its
// signature is fresh. Older ones are refused as too old anyway.
//
// What is not: the cache is in the memory of one process. Replicas of an
// endpoint each have their own, so a captured request could be played once
// against each of them, and a restart forgets it; TLS between Dispatch and
// the endpoint is what prevents the capture in the first place. Signatures
// made without a nonce are deterministic: the local server puts a random
// nonce in each, so that two attempts of one call in the same second differ,
// but a signer without one (dispatch-py's mock server) that sends the same
// body twice within a second gets the second refused; that mock retries it,
// and the retry of a later second is served.
//
// Memory is bounded by [WithReplayCache]: 20 to 40 bytes a signature, at
// most 40 MiB by default, enough for 3,400 requests a second over the
// whole window. Beyond it, the signatures of the oldest second are
// dropped and the requests signed before it are refused as too old, never
// accepted; the window shrinks, and the endpoint logs it once.
//
// # Errors and retries
//
// A function's error becomes the status of its call, which tells Dispatch
// what to do:
//
//	status               retried?
//	TIMEOUT              yes
//	THROTTLED            yes, and Dispatch slows down the endpoint
//	TEMPORARY_ERROR      yes
//	DNS, TCP, TLS, HTTP  yes
//	INCOMPATIBLE_STATE   the call restarts from its input (bounded)
//	INVALID_ARGUMENT, INVALID_RESPONSE, PERMANENT_ERROR,
//	UNAUTHENTICATED, PERMISSION_DENIED, NOT_FOUND   no
//
// Markers say it explicitly: [Temporary], [Permanent], [Throttled],
// [Incompatible], [WithStatus]. Otherwise Go errors are classified:
// context.DeadlineExceeded and net.Error timeouts are TIMEOUT;
// *net.DNSError is DNS_ERROR; TLS and x509 errors are TLS_ERROR; refused or
// reset connections and other *net.OpError are TCP_ERROR; an
// [HTTPStatusError] (from [HTTPResponseError]) follows its code (400
// INVALID_ARGUMENT, 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404
// NOT_FOUND, 408 TIMEOUT, 429 THROTTLED, 501 PERMANENT_ERROR, other 5xx
// TEMPORARY_ERROR, other codes PERMANENT_ERROR); a panic is PERMANENT_ERROR
// with its stack as the traceback, and the process lives on; anything else
// is PERMANENT_ERROR.
//
// A failed call reaches a workflow's continuation as an [*Error] that keeps
// the status, type and message; errors.Is matches the status sentinels
// ([ErrTimeout], ...) and errors.As finds error types registered with
// [RegisterError]. These types live in package dispatcherr, where they are
// documented, so that package flow shares them; [Error], [Status],
// [ErrTimeout] and the others here are aliases of dispatcherr's.
//
// # Start once, wait typed, cancel
//
// The local server (embedded in local mode, or `dispatch test`) does three
// things beyond the protocol, in an API of its own: the hosted protocol
// has no field for them, and other servers do not.
//
// [Dispatch.DispatchKey] and [Function.DispatchKey] start calls once per
// key: a request with a key already used within its retention (24 h)
// gets the first request's ids and starts nothing, so a program that
// dispatches again after a crash starts nothing twice. Against a server
// that ignores keys they fail with [ErrKeysUnsupported]; a key used for
// other calls fails with [ErrKeyConflict].
//
// [Function.Wait] waits for a call by id and decodes its result;
// [Function.WaitAll] waits for a batch ([Function.DispatchAll]) and
// returns a [Result] per call.
//
// [Dispatch.Cancel] stops a call and its whole tree of children, durably:
// each fails with PERMANENT_ERROR and an error of type "CANCELLED", which
// errors.Is matches with [ErrCanceled]; the cancelled call's parent
// receives it like any failure of a child.
//
// # Values on the wire
//
// Inputs and results are google.protobuf.Any, with well-known types for
// plain values so that functions in Go, Python and TypeScript can call each
// other: nil is Empty; bool BoolValue; signed integers Int64Value; unsigned
// UInt64Value; floats DoubleValue; string StringValue; []byte BytesValue;
// time.Time Timestamp; time.Duration Duration; a proto.Message itself;
// map[string]any and []any of JSON-like values google.protobuf.Value; other
// types (structs) CBOR under the type URL serde.CBORTypeURL. Decoding never
// truncates silently: 1.5 into an int is an error. See package serde.
//
// # Tracing
//
// DISPATCH_TRACE=1 prints every frame of a suspending workflow to standard
// output, as Go values: the function, the dispatch id, each frame's
// continuation name and environment, the calls sent, or that none was
// because the state could not be saved. See package trace.
//
// # Packages
//
// What a program imports, in github.com/dispatchkit/dispatch:
//
//	dispatch          this package: register functions and workflows, serve the endpoint, dispatch calls, wait for results
//	flow              the DSL of workflows: Step, Await, Gather, Any, Race, Sleep, Timeout, Then, Handle, Bind, TailCall
//	flow/flowtest     runs a workflow in a test as the server runs it (mocked calls, retries, a virtual clock), and crashes it at every await
//	dispatcherr       the error types users handle: Status, Error, PanicError, HTTPStatusError, ErrTimeout and the other sentinels, ErrCanceled
//	serde             the values on the wire: Go values to google.protobuf.Any and back, CBOR for the rest
//	trace             the frame dumps of DISPATCH_TRACE
//	local             local mode, by a blank import: a Dispatch server embedded in the program (links the server)
//	server            the local Dispatch server: DispatchService, the scheduler, the stores, the inspection API
//	cmd/dispatch      the dispatch command (test, calls, call, cancel, bench); a few lines over internal/cli
//	examples/...      programs to run and copy, each folder on its own
//
// Machinery, in internal/ (not importable outside the module). The SDK's:
//
//	internal/flowrun         the bridge to flow's interpreter, for this package and flowtest
//	internal/status          the machinery of errors: classification, markers, panics, registered types, wire conversion
//	internal/errbridge       what internal/status reaches of dispatcherr's unexported fields
//	internal/registry        names registered by a stable name (functions, continuations) and their rules
//	internal/signature       HTTP Message Signatures (RFC 9421, Ed25519): signing, verifying, the replay cache
//	internal/callresult      the client of the local server's result route, for Wait without linking the server
//	internal/localapi        the rest of the local server's own API the SDK uses: idempotency keys, the cancel route
//	internal/localmode       the bridge to local mode: what package local registers, what this package asks of it
//	internal/localserver     the server of local mode as package local starts it, shared with the SDK's tests
//	internal/slogbridge      zerolog events as log/slog records, for WithLogger and server.Config.Slog
//
// The server's and the command's:
//
//	internal/scheduler       the engine of the server: runs calls on their endpoints, retries, timers, durability
//	internal/store           the storage interface of the scheduler, and its committer
//	internal/store/memstore, internal/store/sqlitestore, internal/store/pgstore
//	                         the stores: in memory, SQLite (WAL) on disk, and PostgreSQL
//	internal/store/storetest the conformance suite every store passes
//	internal/endpointpolicy  which endpoint URLs the server may call (AllowEndpoints)
//	internal/inspect         stored calls rendered for people and JSON (dispatch calls, dispatch call)
//	internal/cli             the dispatch command, one file per subcommand, run in-process by its tests
//	internal/bench           the workloads of dispatch bench
//
// And the tests': internal/testsync (waiting for other goroutines, a
// buffer safe for concurrent writes), internal/vectors (the signature
// vectors shared with the other SDKs) and internal/pgtest (a fresh
// PostgreSQL database per test, from a throwaway server it starts).
//
// The SDK (this package, flow, flowtest, dispatcherr, serde, trace) does not
// depend on the server: TestSDKDoesNotLinkTheServer checks it, and only
// package local, imported by the program, links it in.
package dispatch
