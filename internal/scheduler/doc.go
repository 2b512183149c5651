// Package scheduler is the engine of the local Dispatch server: it accepts
// calls, runs them on their endpoints through FunctionService.Run, follows
// their Poll and Exit directives, retries them, and keeps every change
// durable through a [store.Committer] before acting on it.
//
// # Memory
//
// Every live call is one small struct in a map (about 300 bytes plus its
// ids, input, coroutine state and latest attempts). Suspended calls have no
// goroutine: a single timer goroutine wakes them (poll max_wait, retry
// back-off, expiration, and the expiration of calls queued behind a
// saturated endpoint). Run requests in flight run on reused worker
// goroutines (workers.go), as many as requests in flight, which each
// endpoint's concurrency limit bounds. Done calls leave memory; the store
// keeps them for inspection.
//
// # Speed
//
// Besides group commit (see [store.Committer]), three things keep a step
// short: an await step is one commit, not two (below); a poll's children
// start without waiting for that commit (early start, below); and a call's
// attempts are kept in its row and moved to the attempts table 16 at a
// time (call.record), so that most steps write fewer pages.
//
// Run requests are signed as they are sent, not ahead. The engine used to
// sign a call's next request while the commit that made it ready ran; with
// held batches and early start, a step's requests go out before any
// commit, so only a root call's first request still followed one: 53 of
// the about 8,100 requests of `dispatch bench` (a) over HTTP were sent
// with a signature made ahead, 136 of the 42,000 of (b), and every request
// paid for the look-up (a hash of its body, two locks). Without it, (a)
// and (b) measured the same, within their noise.
//
// # Ordering and durability
//
// A change is applied to memory under the engine lock and its batch is
// submitted to the committer under the same lock, so batches reach the
// store in the order of the changes. Anything that acts on a change (answer
// a Dispatch, hand a result to a parent, wake a watcher) happens in the
// commit callback, once the batch is durable. There are three
// exceptions: a retry timer, which only delays work already durable, the
// resume of an await step, and the start of a poll's children (both
// below), which send Run requests ahead of the commit and nothing else.
//
// # One commit per await step
//
// An await step is a child's final outcome (its row, its result in its
// parent's inbox), then the parent's resume and its answer (its next Poll
// and children, its exit, its retry). Committed in turn, that is two
// commits in sequence per step, each a disk sync on PostgreSQL. Instead,
// when a child's final outcome makes its suspended parent ready, the
// child's batch is held rather than submitted, the parent's Run request
// goes out at once with the result from memory, and the held batch is
// committed in the same transaction as the parent's answer, before it
// ([store.Committer.SubmitPair]), whatever the answer is: a poll, an
// exit, a retried failure, a restart, a tail call, or the parent's
// expiration as it starts. When the answer consumed the result (the
// usual case), the result's insertion into the inbox and its removal
// cancel out and neither is written (hold.go, elide).
//
// This relaxes "act only on durable changes" in exactly one place: a Run
// request of the parent carries a result that is not durable yet. The
// protocol's guarantees hold:
//
//   - If the process dies before the joint commit, the child's outcome and
//     the parent's answer are lost together (one transaction: the store
//     never has one without the other). The store still has the child
//     live and the parent suspended on its previous state, with its inbox
//     as it was; recovery runs the child again (at least once, like any
//     attempt whose outcome was not stored) and the parent resumes again
//     from its stored state, as after a crash between any resume and the
//     commit of its answer. A store that fails the joint commit is the
//     same: the committer retries the transaction, then marks the engine
//     broken as for any batch, and the restart recovers from there.
//   - Nothing durable depends on the lost result: whatever follows from
//     it (the parent's next state, its children, its exit, what its
//     watchers and its own parent get) is in the parent's answer, which
//     is in the same transaction and acts only in its commit callback.
//     A child that answers differently when run again gives the repeated
//     resume another result than the lost one: what the lost resume did
//     outside the protocol is at least once like any attempt's work, and
//     the durable history has only the second result.
//   - Nothing else acts on the held result before the commit: the child's
//     watchers ([Engine.Watch], the server's Result) are woken in the held
//     batch's callback (the child stays in e.finishing until then, and its
//     stored row is not final), the child is not a root, and the result
//     goes to no other call.
//   - Batches still reach the store in the order of the changes. The held
//     batch changes the child, which is done and has no later change, and
//     the parent's inbox; every later change of the parent (its answer,
//     another child's result for it) submits the held batch first.
//
// A held batch never waits long and is never lost while the process
// lives: it is committed with the parent's answer, or on its own as soon
// as something else comes first: another result for the parent must be
// committed, [Config.MaxHold] (20 ms) passes without the answer (the
// parent's attempt may be long; the child's outcome must not wait with
// it), or the engine closes (Close commits the held batches, whose
// answers it cancelled, before the committer's last commit).
//
// The fast path is only taken for the common step: one child's result
// making a suspended parent ready, the last one of a Gather included.
// These cases keep the two commits of before:
//
//   - the parent's endpoint has calls queued or no free slot: the parent
//     would wait in the queue, and the held batch with it;
//   - another result for the parent is on its way to the store: the
//     resume would overtake it, and a result would reach the parent out
//     of its order of arrival;
//   - the child's own batch is joined to a held one (a nested workflow
//     whose exit resumes its parent): one pair per transaction, no chains;
//   - the engine is closing or its store broken, or MaxHold is negative.
//
// # Early start
//
// Held batches take one commit per await step; early start takes it off
// the step's critical path. When a parent answers a valid Poll, its
// batch (its suspended row and its children's rows) is submitted and, at
// once, without waiting for the commit, the parent is suspended in memory
// and its children are made ready: their Run requests go out while the
// commit is in flight. A child's outcome that arrives before that commit
// finds its parent suspended and is held for the parent's answer as
// above, so that a sequential workflow's step costs its two runs, and the
// commits follow behind, the committer grouping what accumulated
// meanwhile (one transaction may carry several steps). Roots still start
// in the Dispatch's commit callback (the Dispatch's answer waits for it
// anyway), and so do the calls of a tail call, a restart or an invalid
// poll (rare). [Config.NoEarlyStart] turns it off.
//
// What runs ahead of the store is bounded: a poll's children start early
// only while the committer keeps up ([store.Committer.Behind]: no failed
// transaction being retried, at most a full group of 4,096 batches
// waiting). During a store outage, then, nothing starts that the failure
// would orphan, and a store slower than the work makes the steps wait
// for their commits as without early start, rather than let workflows
// run ever further ahead of what is durable.
//
// The parent is suspended at submission rather than in the callback
// because a child that finishes before the commit, which in process is
// every child, could otherwise not resume it: its result would go to the
// store on its own and resume the parent only in its callback, two
// commits per step again. Nothing outside the process sees the
// difference: a suspended call is woken by a result, its max_wait or its
// expiration, and each of those is a change submitted after the batch
// that suspended it.
//
// Why it is safe:
//
//   - The store is always a prefix of the engine's submitted batches.
//     The committer applies them one transaction at a time, in submission
//     order; when one fails for good it refuses every later batch
//     without applying it (its failure is sticky, set before any
//     callback runs), and the engine is broken ([Engine.fail]). On
//     PostgreSQL a partition's store is written by its engine's one
//     committer, whose Applies run one at a time: an Apply of the
//     cluster's writer that fails (fenced or not) fails that Apply only,
//     and the committer retries it or gives up before it hands over a
//     later one; a fenced store refuses every later Apply (its fence
//     error is sticky). A later batch of a partition therefore never
//     commits after an earlier one of the same partition failed.
//   - Every change that depends on an early-started child is submitted
//     after the batch that creates it: the child starts after that
//     Submit, under the same lock, so its outcome (on its own, or held
//     and paired with the parent's next answer), its own children, a
//     cancel, its expiration, its retries and its timeouts all come
//     later. With the prefix, none can be durable without the child's
//     row, nor the parent's next answer without its previous one.
//   - Nothing externally visible acts on a change that is not durable:
//     watchers ([Engine.Watch], the server's Result) are woken in commit
//     callbacks, a root's Dispatch answers after its commit, Cancel
//     returns after its commit, and keyed dispatch (keys.go) is
//     unchanged. What goes out early is Run requests: the child's (with
//     its dispatch id, which a Result or Cancel may name before its row
//     is stored; the engine knows the call, and answers as for any live
//     call) and, through the hold, the parent's resume.
//   - If the process dies before the creating commit (or the store fails
//     it, or another replica fences it), that commit and every later
//     one are lost together. The store has the parent as it was before
//     its answer (running its previous attempt, or suspended on its
//     previous poll) and no child: recovery runs the parent's attempt
//     again, which makes the children again with new ids. The early
//     child's run was an orphan: its work happened outside the durable
//     history, like the work of a parent attempt whose answer was lost,
//     which PROTOCOL.md already allows (at least once). Its id never
//     exists in the store: a Result of it after the restart is not found.
//   - Cancel, expiration, attempt timeouts, MaxHold and Close need
//     nothing new: the child is a live call in memory like any other.
//     A cancel of the parent finds it in the parent's tree, stops its
//     request and makes it done in a batch submitted after the creating
//     one (the tree is walked through the done calls whose final rows,
//     and perhaps creations, are not stored yet from memory, not from the
//     store, which may not know them); an expiration or an attempt timeout is an outcome, submitted
//     after; a held outcome waits at most MaxHold as any; Close cancels
//     its request (its outcome is dropped, it runs again after a
//     restart) and commits the batches submitted, the creating one
//     first. A broken engine starts nothing more, and drops the outcomes
//     of the early children in flight, like any requests in flight.
//
// # Store failures
//
// A batch whose commit fails (disk full, I/O error) is never acted on: its
// callback does not run. The committer first retries the failed
// transaction with back-off for a few seconds ([Config.CommitRetry], 5 s;
// the store promises that a failed Apply left nothing behind), so a
// passing failure costs a delay and nothing else. If it still fails, the
// store is deemed broken until the process restarts:
//
//   - the committer refuses every later batch without applying it, so the
//     store holds a prefix of the changes, never a change without the
//     ones it follows from;
//   - no Run request starts any more (requests in flight finish, but
//     their outcomes are not stored and not acted on);
//   - Dispatch fails with a [*StoreError], the Dispatch whose own batch
//     failed included: it gets no ids (the server answers `unavailable`,
//     "server: the store cannot write: <err>; calls already accepted are
//     kept and resume on restart");
//   - the engine logs the error once.
//
// Everything durable before the failure is intact; after a restart with a
// working store, Start recovers it and the calls resume from there (a Run
// whose outcome was lost runs again). Readers of the store (results,
// inspection) keep working; a caller waiting for a result that will not
// come before a restart waits until its own deadline or the shutdown.
//
// # Decisions where PROTOCOL.md is silent
//
//   - A call without an endpoint takes the configured default endpoint
//     (Dispatch) or its parent's endpoint (Poll), before validation.
//   - A child's expiration is its own (or the default), capped at its
//     parent's expiration: a child that outlives its parent is of no use.
//     A tail call keeps the call's expiration unless it sets its own,
//     which is capped at the parent's expiration the same way. Durations
//     too long for unix nanoseconds (past the year 2262) saturate there.
//   - A tail call or an INCOMPATIBLE_STATE restart starts a new generation
//     of the call: the inbox is dropped, and results of children made by
//     the previous generation are dropped as if the parent had exited.
//     A restart starts from the input of the current generation (the tail
//     call's input after a tail call).
//   - The results sent in a resume are consumed by any answer other than a
//     retried failure, even an invalid Poll: the function has seen them.
//   - A Poll may leave its limits out, as dispatch-py does: a missing
//     min_results (0) is 1; a missing max_results (0) is 1000, every
//     ready result up to the protocol's limit; a missing max_wait is no
//     time limit: the call resumes when min_results results are in, and
//     its expiration still bounds the wait (it then fails with TIMEOUT).
//     So a Poll with no calls and no max_wait resumes only if earlier
//     children's results are in its inbox, and otherwise waits until the
//     call expires. Such a call's row stores the limits as applied and a
//     PollDeadline of the year 2262 (noDeadline), which a restart reads
//     back with the same meaning. Only values present and out of range
//     are refused.
//   - Results not carried by a resume stay in the inbox across polls: a
//     later Poll (with or without calls) gets them first.
//   - A resume carries at most max_results results and at most 8 MB of
//     them (always at least one), so that it fits the 16 MB request limit
//     of SDK endpoints; it may then carry fewer than min_results, and the
//     coroutine polls again for the rest, which are ready at once.
//   - An invalid Poll (limits present and out of range, min_results above
//     max_results, an invalid call, more than 1000 calls, which the
//     protovalidate rules do not bound) resumes the call at once with
//     PollResult.error (type "INVALID_ARGUMENT"), its state, and no
//     results; no child is made.
//   - Beside the protovalidate rules, a call of a Poll or a tail call must
//     have a function name of at most 256 bytes ([MaxFunctionName]) and
//     an endpoint the endpoint policy ([Config.Policy]) allows. An
//     invalid tail call fails the call with INVALID_ARGUMENT ("dispatch:
//     invalid tail call: ..."); a recovered call whose endpoint the
//     policy no longer allows (a restart with a stricter one) fails the
//     same way rather than being sent.
//   - The dialer refuses the unspecified, link-local and multicast
//     addresses the policy forbids, whatever name led there; such a call
//     fails at once with INVALID_ARGUMENT (not retried: the name would
//     lead there again). Redirects are not followed: an endpoint's 3xx
//     answer fails the call with PERMANENT_ERROR, so that a signed
//     request never goes to a URL the policy did not see.
//   - An endpoint URL's query is kept: http://h/admin?x=1 is sent
//     POST /admin/dispatch.sdk.v1.FunctionService/Run?x=1. The request
//     signature does not cover it. A fragment is never sent.
//   - Transport failures: no answer at all is TCP_ERROR (DNS_ERROR,
//     TLS_ERROR, TIMEOUT when recognisable) and retried. An HTTP error maps
//     like the SDK's helper: 400 INVALID_ARGUMENT, 401 UNAUTHENTICATED,
//     403 PERMISSION_DENIED, 404 NOT_FOUND, 408 TIMEOUT, 429 THROTTLED,
//     other 4xx PERMANENT_ERROR; but every 5xx, 501 included, is
//     TEMPORARY_ERROR: the endpoint could not be reached, which PROTOCOL.md
//     retries (the helper's 501 PERMANENT_ERROR is for remote APIs).
//     A 200 answer that is not a RunResponse (garbage), or a RunResponse
//     without a directive, is INVALID_RESPONSE and is not retried.
//   - Errors made by the server (timeouts, invalid responses, exhausted
//     restarts) carry the status name as Error.type ("TIMEOUT", ...); a
//     function's own error is passed to the parent unchanged. A non-OK
//     exit without an error gets one of that form. Status UNSPECIFIED in
//     a RunResponse is read as OK.
//   - A retryable status wins over the directive beside it, except a tail
//     call, which is followed whatever the status.
//   - Children keep running after their parent exits; their results are
//     dropped.
//   - Results are delivered at least once: a crash between a resume and
//     the commit of its answer delivers the same results again (after
//     running again the child whose result the resume carried from memory,
//     see "One commit per await step").
//   - The default endpoint is kept in the store ([store.MetaDefaultEndpoint]).
//     When Start finds another one there, live calls whose endpoint is the
//     previous default move to the new one in one transaction with the new
//     value, before any runs; a call that named the previous default
//     explicitly cannot be told apart and moves too.
//   - Watch wakes a waiter in the commit callback of the call's final
//     change, with the row just stored, so the outcome it gets is durable;
//     a store failure wakes every waiter with the error.
//   - Cancel (cancel.go) makes a call and its live descendants done in
//     one batch, with PERMANENT_ERROR and Error.type "CANCELLED"; the
//     requests in flight are cancelled and their outcomes dropped, and
//     only the cancelled call's parent gets a result. A Cancel of a call
//     final in memory whose final row is not stored yet (an outcome held
//     for its parent's answer) answers once that row is durable.
//   - DispatchKey (keys.go) records an idempotency key in the batch of
//     the calls it names; the requests of one key are serialised by a
//     lock of this process, from the lookup to the commit.
//
// # One partition of a shared store
//
// With [Config.Partitions] set, the engine owns one partition of a store
// that other engines share (the server's replicas on PostgreSQL; the
// store recovers and fences the partition, see pgstore): every call it
// makes, root or child, gets an id of [Config.Partition] (store.PartitionOf
// of the id), its random part counted up from a draw until it falls in it. A tree's partition is its
// root's (children are stored and recovered with their root through
// their root id), and is also that of each of its ids, so that a replica
// given only an id, of a child started early whose row is not stored
// yet, knows which partition runs it. The tries cost about 1 µs an id
// for 12 partitions, against 0.2 µs for one without a partition
// (BenchmarkIDNextIn; 3 µs when each try was a new draw of crypto/rand). Ids made by builds before this rule (children
// drawn in no partition) still say nothing of their partition; their
// rows do. Nothing else changes: the engine runs the calls
// of its partition as it would a whole store's. When the store refuses a
// batch for good (another owner took the partition: store.ErrFenced,
// which the committer does not retry), the engine is broken as after any
// store failure ([Engine.Err]), and its owner closes it; the new owner
// recovers the partition from what was durable.
//
// # Shared endpoint limits
//
// An endpoint's adaptive concurrency limit (AIMD: +1/limit per answer,
// halved on a throttling signal at most once per 100 ms) lives in a
// limiter (limiter.go) with its own mutex, the engine's own or, with
// [Config.Limits], shared by the engines given the same [Limits] (the
// partitions of one server), so that their requests in flight to an
// endpoint add up to one limit and a throttling answer to any of them
// lowers it for all. An engine takes a slot before it starts a Run
// request and gives it back when the attempt ends, adapting the limit
// with the outcome. A slot freed while engines wait is granted to them
// round-robin; the limiter never takes an engine's lock (a release runs
// under the releasing engine's lock: taking another's could deadlock two
// engines releasing to each other), it wakes a waiting engine through a
// channel, and that engine's slot loop pumps its endpoints under its own
// lock. Close gives back the slots of the engine's requests (cancelled)
// and those granted to it. Without Config.Limits an engine behaves as
// before limits were shared: its one endpoint per URL is the only waiter,
// granted the slots it frees itself and pumped right after.
//
// A Limits may be one process's share of limits split between several
// ([Limits.SetShare], the replicas of a cluster): every limit's bounds are
// then divided by the share, rounded up and at least 1. A lower share
// clamps the limits at once (and takes back the slots granted and not
// used above them); a higher one lets them grow by additive increase.
// SetShare takes the limiters' locks only, so the lock order holds.
package scheduler
