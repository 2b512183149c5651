// Package server is a Dispatch server: the same component that
// `dispatch test <endpoint-url>` (development) and `dispatch serve`
// (production) run, embeddable in programs and tests.
//
// # Start it
//
//	srv, err := server.New(server.Config{
//		Endpoint:       "http://127.0.0.1:8000", // where calls go by default
//		AllowEndpoints: []string{"loopback"},    // other endpoints calls may name
//		Memory:         true,                    // or StateDir: dir, or Postgres: url, to survive restarts
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
// are validated against the protovalidate rules of the protos (requests
// whose calls are plainly valid, with endpoints accepted before, are
// checked by hand: protovalidate's CEL programs were 8% of the CPU of a
// busy local server; see scheduler.Engine.SurelyValidDispatch; a replica
// on PostgreSQL asks one of its partitions' engines); the calls of
// one request are recorded all or none, durably, before the answer. A
// request with an Idempotency-Key header starts its calls once per key
// (see Idempotency keys); a call and its tree of children can be
// cancelled (see Cancel). Both are this server's own: the protocol has
// neither. A client in the same process (local mode, see package local)
// may call [Server.DispatchInProcess] instead: the same checks and errors,
// without HTTP; with Config.EndpointRun the engine calls that endpoint's
// functions in process too.
//
// Each call runs on its endpoint's FunctionService.Run, signed with the
// server's Ed25519 key (RFC 9421, as PROTOCOL.md says), and the server
// follows the answer: a Poll makes child calls and resumes the caller when
// min_results are ready or max_wait has passed (a Poll without calls is a
// durable sleep); an Exit hands the result to the parent; a tail call
// replaces the call under the same dispatch id.
//
// A Poll may leave its limits out, as dispatch-py does (it never sets
// max_wait): a missing min_results is 1, a missing max_results is 1000
// (every ready result, within the 8 MB a resume carries at most), and a
// missing max_wait is no time limit: the caller resumes when min_results
// results are in, or fails with TIMEOUT when it expires first. A Poll with
// no calls and no max_wait thus resumes with results of earlier children
// still in its inbox, and otherwise waits until the call expires. Only
// values present and out of range are refused (max_wait under 1 s,
// limits outside 1..1000), and so are min_results above max_results and
// more than 1000 calls in one Poll. Retryable statuses and
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
// refused. Every change is committed before the server acts on it, but
// for two Run requests that go out early: a parent resumed by a child's
// result gets it at once, and the child's outcome is committed with the
// parent's answer, or the child runs again after a crash; and the
// children of a poll start while the poll is committed, so that after a
// crash before that commit the parent runs its attempt again and makes
// them again, with new dispatch ids (the first run of each was an orphan,
// under an id the store never had: see "Early start" in
// internal/scheduler). So after a crash (even kill -9) and a restart
// every call in flight completes and results are delivered at least once;
// the log says how many calls were recovered. The signing key is made on first start and
// kept in the state directory, so DISPATCH_VERIFICATION_KEY stays valid.
//
// # dispatch serve
//
// `dispatch serve` runs this server for production. It differs from
// `dispatch test` only in its command line, not in the server: the API key
// comes from DISPATCH_API_KEY and is required (at least 16 characters,
// not "test"); Config.Addr is --listen, ":4450" by default (every
// interface: the port of `dispatch test`, which listens on loopback only);
// Config.Endpoint is the first --endpoint and the others are
// Config.AllowEndpoints patterns (with those of --allow-endpoint), with no
// "loopback" pattern unless --allow-endpoint loopback; Config.SigningKey is
// DISPATCH_SIGNING_KEY when set, else the key of the state directory or
// database as with `dispatch test`; logs are JSON lines (zerolog) on
// stderr unless --log-format console; and it prints one start line (URL,
// default endpoint, verification key), not the banner of PROTOCOL.md,
// which is the contract of `dispatch test` only. SIGTERM and SIGINT end
// the context of [Serve], which stops accepting requests and gives those
// in progress 5 seconds. One serve per state directory: a second one is
// refused while the first runs. Several serves may share one PostgreSQL
// database, as replicas (see Several replicas); --advertise is
// Config.Advertise.
//
// # PostgreSQL
//
// With Config.Postgres (`dispatch test --postgres postgres://...`), calls
// live in a PostgreSQL database (13 or later; tested on 15) instead of
// SQLite, for a server whose calls must outlive its machine. The tables
// are made on first start, in the URL's schema; the signing key is kept in
// the database (table keys), made by the first server and read by every
// later one, so DISPATCH_VERIFICATION_KEY stays valid across machines.
// Each group commit is one READ COMMITTED transaction in one round trip;
// a commit is acknowledged once PostgreSQL has it durable (with its
// defaults, fsync and synchronous_commit on, flushed to its write-ahead
// log). A server holds at most 9 connections: a pool of 8, which its
// partitions share, and one for its lock. It needs a direct connection or
// a session-mode pooler (its lock is a session's, and it prepares
// statements), and no LISTEN/NOTIFY. Every server on PostgreSQL is a
// replica, alone or not: see Several replicas.
//
// Retention: no call is pruned yet (expired idempotency keys are, see
// Idempotency keys), on PostgreSQL as on SQLite. Every
// call stays in calls once done (its input, output, error and attempts),
// and its attempts in attempts; inboxes (results) are emptied as parents
// resume. To delete the done calls older than a week, with their
// attempts, while the server runs:
//
//	DELETE FROM attempts a USING calls c WHERE a.call_id = c.id AND c.done
//	  AND c.updated_at < (extract(epoch FROM now() - interval '7 days') * 1e9)::bigint;
//	DELETE FROM calls WHERE done
//	  AND updated_at < (extract(epoch FROM now() - interval '7 days') * 1e9)::bigint;
//
// (times are Unix nanoseconds). Autovacuum then reuses the space; the
// tables' settings are chosen for their churn (internal/store/pgstore).
//
// Speed, measured with `dispatch bench --postgres URL --replicas 3` on the
// shared 2-CPU development machine with PostgreSQL 15 beside the server,
// fsync and synchronous_commit on (medians of 3 rounds, load 0.8-2.8): an
// await step of a sequential workflow takes 0.77 ms at p50 over signed
// HTTP (1, 2 or 3 replicas alike), and 0.04 ms in local mode on the
// database (dispatch.WithLocalPostgres, the functions called in process);
// 32 clients run 578 three-step workflows/s over HTTP and 1,827 in
// process on one replica. A step is two Run requests, and its commit
// follows behind it (early start, in the scheduler's package
// documentation): a commit on PostgreSQL takes about 0.7 ms (a WAL flush,
// the statements, a round trip), and is no longer on a step's path. Over
// HTTP the bound is the CPU of the signed requests (2.5 ms per workflow),
// which also sets the SQLite figures over HTTP; the README's Performance
// section has the whole table.
//
// A replica runs one engine per partition (see Several replicas), each
// with its own committer, but all its partitions' stores share one
// writer (internal/store/pgstore): the Applies waiting, from any
// partitions, go in one transaction, one fence per partition: a lone
// replica of 12 partitions runs one transaction where it ran up to 12.
// With a writer per partition, measured on the same machine, loaded
// (load average 5 to 10; medians of 3 rounds, alternating builds, two
// runs each), the await step's p50 was about the same (1.9 ms against
// 1.7-1.8 ms before: the fence costs a little), but 32 clients ran
// 130-260 workflows/s against 300-440 for the single owner, with 20-30%
// more CPU per workflow, and a database of one partition 380-530. With
// the one writer, against a writer per partition on the same machine
// (load average 5 to 7; medians of 3 rounds, three runs of each build,
// alternating): 230-340 workflows/s against 170-210 on one replica, and
// 2.9-3.1 ms of CPU per workflow against 3.5-3.6 ms (both before early
// start).
//
// # Several replicas
//
// Any number of servers given one PostgreSQL database (one schema) are
// replicas of one Dispatch server: `dispatch serve --postgres URL` on
// several machines, behind one load balancer or not. Any replica takes
// any request, with the same answers; the signing key is the database's,
// made by the first. Give them all the same API key and endpoint
// configuration (Endpoint, AllowEndpoints, KeyRetention): a partition
// runs with the configuration of whichever replica owns it.
//
//   - Partitions. The calls are split into a fixed number of partitions
//     (12, set when the first replica sets the database up; 12 divides
//     evenly among 1, 2, 3, 4 and 6 replicas), by a hash of the root
//     call's id (store.PartitionOf): a workflow's whole tree, parent and
//     children, is in one partition, and its steps never leave the
//     replica that runs it. Every id, a child's too, is drawn so that its
//     own hash names its tree's partition: any id tells which partition,
//     so which replica, runs its call.
//   - Leases. Each partition is run by one replica at a time, under a
//     lease row with an epoch: Config.LeaseTTL (`--lease-ttl`, 10 s by
//     default), renewed five times per lease time (every 2 s), on the
//     database's clock (the replicas' clocks may differ). The replica
//     runs the partition as a single server runs its store: the calls'
//     hot state in memory, timers, fairness and the concurrency limit of
//     each endpoint, group commit. Every transaction of the partition
//     checks the lease's epoch first, in the same transaction (the
//     fence): a replica that lost its lease (paused, cut off from the
//     database) writes nothing more, and stops running the partition at
//     its next write or renewal. Each replica also heartbeats as often
//     (table replicas, with its URL).
//   - Shares and rebalancing. A replica's share is ceil(partitions / live
//     replicas). Under it, it acquires free partitions (4 a round, at
//     every renewal; all it needs at Start), recovering each from the
//     database before it runs it; over it, as when a replica joins, it gives back
//     its extra partitions: it stops their engines and releases the
//     leases, which the others acquire at their next round. The log says
//     "acquired partition", "gave back partition" and "dropped partition"
//     (a lease lost), with the partition and the epoch.
//   - Dispatch. A request without an Idempotency-Key is stored in one of
//     the partitions of the replica that receives it (round-robin): one
//     commit, no hop, whatever the replica. A replica that owns no
//     partition yet waits up to 5 s for one, and then answers
//     unavailable, which clients retry. A request with a key goes to the
//     key's partition (store.PartitionOf of the key), whose engine
//     serialises the requests of the key (a lock in memory, from the
//     lookup of the key to the commit of its calls): two replicas
//     running one key's requests at once could both start its calls. A
//     replica that does not own it forwards the request to the owner's
//     URL (Config.Advertise), with its headers, marked forwarded; a
//     forwarded request is never forwarded again: a replica that no
//     longer owns the partition answers unavailable, and the client
//     retries once the partition has moved.
//   - Results and cancels. [Server.Result], the result route and `Wait`
//     work at any replica: the one that runs the call wakes the wait when
//     the outcome is durable; another reads the call's row, again every
//     10 ms to 250 ms (doubling) until it is final. A cancel goes to the
//     owner of the call's partition (forwarded, as keyed requests are).
//     A child started early whose creating commit is not durable yet has
//     no row: the replica that runs it finds it in its engines, and
//     answers its Result and its cancel as for any live call; another
//     replica, which finds neither its row nor its call, forwards the
//     request once to the owner of the id's partition, which answers it
//     (a wait with its watch of the call, or the row once stored; a
//     forwarded request is never forwarded again, and the owner answers
//     unknown for an id it does not know either). Ids made by builds
//     before every id was drawn in its partition (children's were drawn
//     in none) name no partition: such a child, unstored, is still
//     unknown at a replica that does not run it, until its row is stored.
//     Inspection (`dispatch calls`, the calls routes) reads the whole
//     database from any replica.
//   - Health. A replica is healthy while it runs a partition, or while it
//     runs none because the others own them all (a spare); the health
//     route adds its name and its partitions.
//   - Failover. A replica that dies (kill -9, its machine lost) keeps its
//     leases until they expire: its partitions stop for the lease time
//     at most (Config.LeaseTTL, 10 s), then the others take them, recover
//     their live calls and resume them. The lease time is thus the
//     failover time; the price of a shorter one is renewals (one
//     transaction per partition held, five per lease time: 12 partitions
//     at 1 s make 60 a second) and leases lost to pauses of the process
//     or of the database longer than it. At least 1 s; give every replica
//     the same.
//     What it had committed is kept; its Run requests in flight run again
//     (at least once, as after a restart), and results are delivered at
//     least once. One that shuts down (SIGTERM, [Server.Shutdown],
//     [Server.Close]) releases its leases and leaves at once, so that a
//     rolling restart costs only the Run requests in flight, run again
//     by the next owner. A replica that loses the database stops running
//     its partitions once their leases expire, and takes its share again
//     once it is back.
//   - Endpoint limits. The engines of the partitions a replica runs share
//     one adaptive concurrency limit per endpoint URL
//     (Config.InitialConcurrency up to Config.MaxConcurrency; see
//     scheduler.Limits): whatever the partitions it holds, a replica
//     sends an endpoint at most that limit of requests at once, and an
//     endpoint that throttles (429, 503, THROTTLED, timeouts) brings the
//     replica's one limit down. The freed slots go to the partitions with
//     calls waiting round-robin, so a busy partition does not starve the
//     others. The limit is the cluster's: each replica's is its share,
//     ceil(limit / R) for R live replicas (at least 1; the initial value
//     likewise), so that R replicas send an endpoint at most the limit,
//     rounded up by less than R, not R times it. R is the replica's view
//     of the live replicas (the heartbeats it reads at start and at every
//     rebalance, itself counted): a replica that joins lowers the others'
//     limits at once (scheduler.Limits.SetShare: the requests in flight
//     above the share finish, no new one starts until below it); one that
//     dies raises their shares once its heartbeat expires, and their
//     limits grow to them additively. The replicas do not coordinate per
//     request through the database: the split is even and static, and a
//     replica idle for an endpoint does not lend its share. A partition
//     that moves to another replica leaves its slots behind; the limit
//     itself stays with the replica.
//   - Connections: at most 9 per replica, whatever its partitions.
//   - Config.Advertise is the URL the others reach a replica at (the
//     listener's address by default, with the machine's name for an
//     unspecified host such as ":4450"); Config.Replica its name (unique
//     per process by default).
//   - A single-owner store of the database (an older server) and the
//     replicas exclude each other: the later one is refused with a
//     message that names the holder.
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
// # Idempotency keys
//
// A Dispatch request with the header "Idempotency-Key: <key>" (the name
// of the IETF httpapi draft; the protocol's DispatchRequest has no field
// for it, so the hosted platform and other servers cannot carry one)
// starts its calls once per key. The first request with the key records
// it with the ids of its calls, in the transaction that records the
// calls, in every store; a request with the key within the retention
// (Config.KeyRetention, `dispatch test --key-retention`, 24 h by default)
// gets the same ids, in order, and starts nothing, even if the first one's
// answer was lost, the server restarted since, or many such requests
// arrive at once (they wait for one another, and one starts the calls).
// The answer carries "Idempotent-Replayed: false" (the calls were
// started) or "true" (the ids are an earlier request's), so that a client
// can tell a server that honoured the key from one that ignored it.
//
//   - One key per request (a second header is refused), naming the
//     request's whole list of calls. A key is 1 to 255 bytes of
//     printable ASCII without spaces (0x21 to 0x7E); others are refused
//     with invalid_argument naming the header.
//   - Scope: one server, that is one store (a state directory, or a
//     PostgreSQL database, whichever replica the requests reach); there
//     is one API key.
//   - A key reused within its retention for other calls (other functions,
//     inputs, versions, expirations or number of calls, in order) is
//     refused with already_exists (HTTP 409): `dispatch: idempotency key
//     "order-42" was used at ... for other calls (ids): ...`, and nothing
//     is started. The calls' endpoints are not compared: a program in
//     local mode listens on a new port at each run, and its retry after a
//     crash names another.
//   - After the retention the key is forgotten: a request with it starts
//     its calls again, whatever they are. Expired keys are deleted in the
//     background, within half the retention (at most an hour) of their
//     expiration.
//   - A request with a key and no calls starts and records nothing.
//
// # Cancel
//
// POST /dispatch.local.v1/calls/{id}/cancel (with the API key; body
// optional, {"reason":"..."}), [Server.Cancel], `dispatch cancel ID` and
// the SDK's Dispatch.Cancel stop a call and its whole tree of live
// descendants, in one transaction: every call of the tree becomes final
// with status PERMANENT_ERROR (the protocol has no CANCELLED status, and
// PERMANENT_ERROR is final and never retried) and an error of type
// "CANCELLED" whose message says who cancelled ("dispatch: call ID was
// cancelled by REASON"; "... cancelled with its ancestor ID, by REASON"
// below it). A Run request in flight has its context cancelled (the
// connection to the endpoint is closed, so the function's context ends)
// and its answer is dropped; calls waiting to run, for a retry, for
// results or for the end of a sleep never run again, and their timers
// are disarmed. The parent of the cancelled call, when it has one that
// still waits for it, receives the error in its inbox, in the same
// transaction, and resumes with it as with any failed child. A restart
// does not bring the tree back.
//
// Cancelling a call that is final already (done, failed, expired, or
// cancelled before) changes nothing and is not an error: the route answers
// 200 {"status":"done"}; a cancel answers {"status":"cancelled","calls":N}
// with the number of calls it stopped, and an unknown id 404
// {"status":"unknown"}. Finding the tree visits every live call of the
// server once (calls do not list their children); a tree of thousands of
// calls is cancelled in one transaction.
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
//     type "INVALID_ARGUMENT"; no child is made. An invalid tail call
//     fails the call with INVALID_ARGUMENT.
//   - Function names are at most 256 bytes, in DispatchRequest, Poll and
//     tail calls ("dispatch: call 0: function name is 300 bytes, at most
//     256").
//   - An endpoint URL keeps its path prefix and its query:
//     http://h/admin?x=1 is sent POST
//     /admin/dispatch.sdk.v1.FunctionService/Run?x=1 (function URLs that
//     carry a key in the query, such as Azure Functions' ?code=, work).
//     The query is not covered by the request signature.
//   - A tail call or a restart drops the results of the children of the
//     previous run; children of a call that exited run on, their results
//     are dropped.
//   - A cancelled call fails with PERMANENT_ERROR and Error.type
//     "CANCELLED" (see Cancel); the SDK's dispatch.ErrCanceled matches it.
//   - Idempotency keys travel in the Idempotency-Key header (see
//     Idempotency keys): the protocol has no field for them.
//
// # Security
//
// The server is meant to be reachable by the programs that dispatch calls
// and to reach their endpoints; what it guards, and what it does not:
//
//   - The endpoint policy. A call names its endpoint, and the server sends
//     signed requests there and retries until the call expires, so an
//     open server would relay requests into any network it reaches. It
//     sends them only to Config.Endpoint (and URLs below its path) and to
//     the patterns of Config.AllowEndpoints ("loopback", "*", or URLs
//     such as https://*.example.com:8443/app; see the field). `dispatch
//     test` and local mode allow "loopback" besides their endpoint. A
//     DispatchRequest naming another endpoint is refused with
//     INVALID_ARGUMENT ("dispatch: call 1: endpoint ... is not allowed
//     ...: allow it with --allow-endpoint (dispatch test) or
//     server.Config.AllowEndpoints") and nothing is recorded; a Poll
//     naming one gets PollResult.error and no child; a tail call naming
//     one fails the call. URLs with credentials (user:password@, even
//     user@) or a fragment are refused whatever the patterns say. The
//     server does not connect to unspecified (0.0.0.0, ::), link-local
//     (169.254.0.0/16, where cloud metadata services answer; fe80::/10)
//     or multicast addresses, even when a host name resolves there,
//     unless a pattern names that IP literal or is "*". It does not
//     follow redirects.
//   - Authentication. DispatchService and the inspection API require
//     "Authorization: Bearer <key>" (Config.APIKey), compared in constant
//     time and checked before a request's body is read, so a caller
//     without the key cannot make the server read 16 MB; the answer is
//     the unauthenticated error of the request's protocol (Connect, gRPC,
//     gRPC-Web). The health route needs no key and says only whether the
//     server runs.
//   - Timeouts. Headers must come within 10 s, a request's body within
//     Config.BodyReadTimeout (30 s) of its headers, and an idle keep-alive
//     connection is closed after Config.IdleTimeout (2 minutes). A client
//     that sends its body slower, or stops, gets an error and its
//     connection closed. Answers are not bounded by these: a wait for a
//     result lasts up to 60 s.
//   - Requests to endpoints are signed (Ed25519, RFC 9421) over the
//     method, path, authority, Content-Type and body digest; not the
//     query nor the scheme. Replays within the signature's window are
//     the endpoint's to refuse. The signing key is kept in the state
//     directory, mode 0600, or in the database of Config.Postgres (table
//     keys: grant it to the server's role only); the API key is a shared
//     secret sent in clear over plain HTTP.
//   - Not protected: the server speaks plain HTTP (put TLS in front of
//     it beyond a trusted network); there is one API key, which grants
//     everything (dispatching to any allowed endpoint, reading every
//     call's input and output, cancelling any call); calls and results are stored unencrypted
//     in the state directory or the database; there is no rate limit beyond the
//     concurrency limit of each endpoint. "*" turns the endpoint policy
//     off.
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
// POST /dispatch.local.v1/calls/{id}/cancel (see Cancel), and
// GET /dispatch.local.v1/calls/{id}/result?wait=30s, which answers a final
// call's outcome ({"status":"STATUS_OK","result":{CallResult in
// protojson},"result_proto":"<base64>"}) or, once wait (at most 60 s;
// default 0) has passed, 202 {"status":"pending"}. [FetchResult] is its
// client. The CallResult's output is left out of "result" when its type is
// not linked into the server (the Go SDK's CBOR values): "result_proto",
// the binary CallResult, is always exact.
package server
