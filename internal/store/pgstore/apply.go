package pgstore

import (
	"cmp"
	"encoding/json"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/dispatchkit/dispatch/internal/store"
)

// arrayRows is the number of rows from which Apply writes a kind of row
// with one statement taking arrays (INSERT ... SELECT FROM unnest) rather
// than one statement per row: a statement on 27 arrays costs more than a
// few single-row statements in the same batch. Measured here on
// PostgreSQL 15 (synchronous_commit off, to see the statements alone):
// one call upserted in 90 µs alone, 220 to 370 µs through unnest; 8 calls
// 0.36 ms one by one, 0.65 ms through unnest; 32 calls 1.6 ms one by one,
// 0.9 ms through unnest. With it, an Apply of one workflow step
// (BenchmarkWorkflowBatches, group=1) went from about 380 to 250 µs.
const arrayRows = 12

// The statements of Apply: for each kind of row, one that writes all its
// rows at once from arrays, and one that writes one row. Columns set when
// a call is made (parent, root, parent_gen, correlation_id, created_at,
// and part, the partition of the store that made it) are not updated, as
// in the SQLite store.
const (
	sqlFence = `SELECT dispatch_fence($1, $2)`

	callsUpdate = `ON CONFLICT (id) DO UPDATE SET
	endpoint = excluded.endpoint, function = excluded.function, version = excluded.version,
	gen = excluded.gen, input_type = excluded.input_type, input = excluded.input,
	expires_at = excluded.expires_at, updated_at = excluded.updated_at, state = excluded.state,
	attempts = excluded.attempts, restarts = excluded.restarts, state_type = excluded.state_type,
	coroutine_state = excluded.coroutine_state, min_results = excluded.min_results,
	max_results = excluded.max_results, poll_deadline = excluded.poll_deadline,
	poll_error = excluded.poll_error, status = excluded.status, output = excluded.output,
	error = excluded.error, recent_attempts = excluded.recent_attempts`
	sqlUpsertCall = `INSERT INTO calls (` + callColumns + `, part)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,
		$20, $21, $22, $23, $24, $25, $26, $27, $28) ` + callsUpdate
	sqlDelResult = `DELETE FROM results WHERE parent_id = $1 AND child_id = $2`
	sqlAddResult = `INSERT INTO results (parent_id, child_id, parent_gen, seq, data) VALUES ($1, $2, $3, $4, $5)
	ON CONFLICT (parent_id, child_id) DO UPDATE SET
	parent_gen = excluded.parent_gen, seq = excluded.seq, data = excluded.data`
	sqlAddAttempt = `INSERT INTO attempts (call_id, n, start, duration, status, outcome) VALUES ($1, $2, $3, $4, $5, $6)
	ON CONFLICT (call_id, n) DO UPDATE SET
	start = excluded.start, duration = excluded.duration, status = excluded.status, outcome = excluded.outcome`
	sqlSetMetaOne = `INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value`

	sqlUpsertCalls = `INSERT INTO calls (` + callColumns + `, part)
	SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[],
		$7::text[], $8::text[], $9::text[], $10::text[], $11::bytea[], $12::bigint[], $13::bigint[],
		$14::bigint[], $15::integer[], $16::integer[], $17::integer[], $18::text[], $19::bytea[],
		$20::integer[], $21::integer[], $22::bigint[], $23::bytea[], $24::integer[], $25::bytea[],
		$26::bytea[], $27::bytea[], $28::integer[]) ` + callsUpdate
	sqlClearInboxes = `DELETE FROM results WHERE parent_id = ANY($1::text[])`
	sqlDelResults   = `DELETE FROM results r USING unnest($1::text[], $2::text[]) AS d (parent_id, child_id)
	WHERE r.parent_id = d.parent_id AND r.child_id = d.child_id`
	sqlAddResults = `INSERT INTO results (parent_id, child_id, parent_gen, seq, data)
	SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bytea[])
	ON CONFLICT (parent_id, child_id) DO UPDATE SET
	parent_gen = excluded.parent_gen, seq = excluded.seq, data = excluded.data`
	sqlAddAttempts = `INSERT INTO attempts (call_id, n, start, duration, status, outcome)
	SELECT * FROM unnest($1::text[], $2::integer[], $3::bigint[], $4::bigint[], $5::integer[], $6::text[])
	ON CONFLICT (call_id, n) DO UPDATE SET
	start = excluded.start, duration = excluded.duration, status = excluded.status, outcome = excluded.outcome`
	sqlSetMeta = `INSERT INTO meta (key, value) SELECT * FROM unnest($1::text[], $2::text[])
	ON CONFLICT (key) DO UPDATE SET value = excluded.value`

	keysUpdate = `ON CONFLICT (key) DO UPDATE SET
	digest = excluded.digest, ids = excluded.ids, created_at = excluded.created_at, expires_at = excluded.expires_at`
	sqlPruneKeys = `DELETE FROM idempotency_keys WHERE expires_at <= $1`
	sqlDelKeys   = `DELETE FROM idempotency_keys WHERE key = ANY($1::text[])`
	sqlSetKey    = `INSERT INTO idempotency_keys (key, digest, ids, created_at, expires_at) VALUES ($1, $2, $3, $4, $5) ` + keysUpdate
	sqlSetKeys   = `INSERT INTO idempotency_keys (key, digest, ids, created_at, expires_at)
	SELECT * FROM unnest($1::text[], $2::bytea[], $3::text[], $4::bigint[], $5::bigint[]) ` + keysUpdate
)

// scope is what a store writes for: the partition written on the calls it
// makes (0 for a single-owner store) and the epoch of its row in
// partitions (a cluster's lease, a single owner's row 0), checked first
// by every Apply: every store that writes is fenced (a reader has no
// scope, and writes nothing).
type scope struct {
	part  int
	epoch int64
}

// applyBuf computes the net effect of the batches of one transaction
// (one Apply of a single owner; the Applies of several partitions that a
// cluster's writer groups) and builds its statements. It is reused from
// one transaction to the next (under the store's lock, or by the writer's
// goroutine) to spare allocations.
type applyBuf struct {
	calls    map[string]partCall
	results  map[store.ResultKey]resultOp
	byParent map[string][]store.ResultKey // the keys of results, by parent
	cleared  map[string]bool
	attempts map[attemptKey]store.Attempt
	meta     map[string]string
	keys     map[string]keyOp
	prune    int64 // the latest PruneKeys, unix ns; 0 if none
}

// partCall is a call and the partition of the store that wrote it: the
// Applies of several partitions share one transaction.
type partCall struct {
	c    *store.Call
	part int32
}

type keyOp struct {
	present bool // upserted last (else pruned after it was upserted)
	k       store.Key
}

type resultOp struct {
	present bool // added last (else removed last)
	r       store.Result
}

type attemptKey struct {
	id string
	n  int
}

func (a *applyBuf) reset() {
	if a.calls == nil {
		a.calls = map[string]partCall{}
		a.results = map[store.ResultKey]resultOp{}
		a.byParent = map[string][]store.ResultKey{}
		a.cleared = map[string]bool{}
		a.attempts = map[attemptKey]store.Attempt{}
		a.meta = map[string]string{}
		a.keys = map[string]keyOp{}
	}
	clear(a.calls)
	clear(a.results)
	clear(a.byParent)
	clear(a.cleared)
	clear(a.attempts)
	clear(a.meta)
	clear(a.keys)
	a.prune = 0
}

// build returns the batch of statements that applies batches, written by
// a store of scope sc. It starts with the fence (sqlFence), so that the
// check and the writes are one transaction at no extra round trip; a
// batch that writes nothing has no statement at all.
func (a *applyBuf) build(batches []*store.Batch, sc scope) *pgx.Batch {
	a.reset()
	a.add(batches, sc.part)
	out := &pgx.Batch{}
	out.Queue(sqlFence, int32(sc.part), sc.epoch)
	a.queue(out)
	if out.Len() == 1 {
		return &pgx.Batch{} // the fence alone: nothing to write
	}
	return out
}

// add adds batches, written by the store of partition part, to the net
// effect, after those added since the last reset: as the SQLite store's
// statements in order would leave it. Within a batch, as there: calls,
// cleared inboxes, removed results, added results, attempts, meta, pruned
// keys, keys. Keys are written after one DELETE of those expired at the
// latest PruneKeys; a key upserted by a batch and expired by a later
// batch's PruneKeys is deleted by name, so that a row stored before it
// does not come back.
func (a *applyBuf) add(batches []*store.Batch, part int) {
	setResult := func(k store.ResultKey, op resultOp) {
		if _, ok := a.results[k]; !ok {
			a.byParent[k.ParentID] = append(a.byParent[k.ParentID], k)
		}
		a.results[k] = op
	}
	for _, b := range batches {
		for _, c := range b.Calls {
			a.calls[c.ID] = partCall{c, int32(part)}
		}
		for _, p := range b.ClearInbox {
			// The whole inbox goes, in the database (the DELETE, which
			// runs first) and here: only results added later stay.
			a.cleared[p] = true
			for _, k := range a.byParent[p] {
				a.results[k] = resultOp{}
			}
		}
		for _, k := range b.Delivered {
			setResult(k, resultOp{})
		}
		for _, r := range b.Results {
			setResult(store.ResultKey{ParentID: r.ParentID, ChildID: r.ChildID}, resultOp{present: true, r: r})
		}
		for _, at := range b.Attempts {
			a.attempts[attemptKey{at.CallID, at.N}] = at
		}
		for k, v := range b.Meta {
			a.meta[k] = v
		}
		if !b.PruneKeys.IsZero() {
			p := ns(b.PruneKeys)
			a.prune = max(a.prune, p)
			for name, op := range a.keys {
				if op.present && ns(op.k.ExpiresAt) <= p {
					a.keys[name] = keyOp{}
				}
			}
		}
		for _, k := range b.Keys {
			a.keys[k.Key] = keyOp{present: true, k: k}
		}
	}
}

// queue queues the statements of the net effect added since the last
// reset on out.
func (a *applyBuf) queue(out *pgx.Batch) {
	if len(a.calls) > 0 {
		ids := make([]string, 0, len(a.calls))
		for id := range a.calls {
			ids = append(ids, id)
		}
		slices.Sort(ids) // one lock order for all writers
		if len(ids) < arrayRows {
			for _, id := range ids {
				pc := a.calls[id]
				out.Queue(sqlUpsertCall, append(callRow(pc.c), pc.part)...)
			}
		} else {
			out.Queue(sqlUpsertCalls, callArrays(a.calls, ids)...)
		}
	}
	if len(a.cleared) > 0 {
		ps := make([]string, 0, len(a.cleared))
		for p := range a.cleared {
			ps = append(ps, p)
		}
		slices.Sort(ps)
		out.Queue(sqlClearInboxes, ps)
	}
	var del, add []store.ResultKey
	for k, op := range a.results {
		if op.present {
			add = append(add, k)
		} else if !a.cleared[k.ParentID] { // else the clear removes it
			del = append(del, k)
		}
	}
	cmpKey := func(x, y store.ResultKey) int {
		return cmp.Or(cmp.Compare(x.ParentID, y.ParentID), cmp.Compare(x.ChildID, y.ChildID))
	}
	if len(del) > 0 && len(del) < arrayRows {
		slices.SortFunc(del, cmpKey)
		for _, k := range del {
			out.Queue(sqlDelResult, k.ParentID, k.ChildID)
		}
	} else if len(del) > 0 {
		slices.SortFunc(del, cmpKey)
		ps, cs := make([]string, len(del)), make([]string, len(del))
		for i, k := range del {
			ps[i], cs[i] = k.ParentID, k.ChildID
		}
		out.Queue(sqlDelResults, ps, cs)
	}
	if len(add) > 0 && len(add) < arrayRows {
		slices.SortFunc(add, cmpKey)
		for _, k := range add {
			r := a.results[k].r
			out.Queue(sqlAddResult, r.ParentID, r.ChildID, int64(r.ParentGen), r.Seq, nonNil(r.Data))
		}
	} else if len(add) > 0 {
		slices.SortFunc(add, cmpKey)
		n := len(add)
		ps, cs, gens, seqs, data := make([]string, n), make([]string, n), make([]int64, n), make([]int64, n), make([][]byte, n)
		for i, k := range add {
			r := a.results[k].r
			ps[i], cs[i], gens[i], seqs[i], data[i] = r.ParentID, r.ChildID, int64(r.ParentGen), r.Seq, nonNil(r.Data)
		}
		out.Queue(sqlAddResults, ps, cs, gens, seqs, data)
	}
	if len(a.attempts) > 0 {
		keys := make([]attemptKey, 0, len(a.attempts))
		for k := range a.attempts {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(x, y attemptKey) int { return cmp.Or(cmp.Compare(x.id, y.id), cmp.Compare(x.n, y.n)) })
		if n := len(keys); n < arrayRows {
			for _, k := range keys {
				at := a.attempts[k]
				out.Queue(sqlAddAttempt, at.CallID, int32(at.N), ns(at.Start), int64(at.Duration), at.Status, at.Outcome)
			}
		} else {
			ids, ns_, starts, durs, sts, outs := make([]string, n), make([]int32, n), make([]int64, n), make([]int64, n), make([]int32, n), make([]string, n)
			for i, k := range keys {
				at := a.attempts[k]
				ids[i], ns_[i], starts[i], durs[i], sts[i], outs[i] = at.CallID, int32(at.N), ns(at.Start), int64(at.Duration), at.Status, at.Outcome
			}
			out.Queue(sqlAddAttempts, ids, ns_, starts, durs, sts, outs)
		}
	}
	if len(a.meta) > 0 {
		keys := make([]string, 0, len(a.meta))
		for k := range a.meta {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if len(keys) < arrayRows {
			for _, k := range keys {
				out.Queue(sqlSetMetaOne, k, a.meta[k])
			}
		} else {
			vals := make([]string, len(keys))
			for i, k := range keys {
				vals[i] = a.meta[k]
			}
			out.Queue(sqlSetMeta, keys, vals)
		}
	}
	a.buildKeys(out)
}

// buildKeys queues the statements of the idempotency keys.
func (a *applyBuf) buildKeys(out *pgx.Batch) {
	if a.prune != 0 {
		out.Queue(sqlPruneKeys, a.prune)
	}
	if len(a.keys) == 0 {
		return
	}
	var del, set []string
	for name, op := range a.keys {
		if op.present {
			set = append(set, name)
		} else {
			del = append(del, name)
		}
	}
	if len(del) > 0 {
		slices.Sort(del)
		out.Queue(sqlDelKeys, del)
	}
	slices.Sort(set)
	if n := len(set); n > 0 && n < arrayRows {
		for _, name := range set {
			k := a.keys[name].k
			out.Queue(sqlSetKey, k.Key, nonNil(k.Digest), idsJSON(k.IDs), ns(k.CreatedAt), ns(k.ExpiresAt))
		}
	} else if n > 0 {
		names, digests, ids, created, expires := make([]string, n), make([][]byte, n), make([]string, n), make([]int64, n), make([]int64, n)
		for i, name := range set {
			k := a.keys[name].k
			names[i], digests[i], ids[i], created[i], expires[i] = k.Key, nonNil(k.Digest), idsJSON(k.IDs), ns(k.CreatedAt), ns(k.ExpiresAt)
		}
		out.Queue(sqlSetKeys, names, digests, ids, created, expires)
	}
}

// idsJSON is the ids column of a key: a JSON array.
func idsJSON(ids []string) string {
	if ids == nil {
		ids = []string{}
	}
	b, _ := json.Marshal(ids) // strings: cannot fail
	return string(b)
}

// callRow returns the arguments of sqlUpsertCall for c.
func callRow(c *store.Call) []any {
	return []any{c.ID, c.ParentID, c.RootID, int64(c.ParentGen), int64(c.Gen), int64(c.CorrelationID),
		c.Endpoint, c.Function, c.Version, c.InputType, c.Input, ns(c.CreatedAt), ns(c.ExpiresAt),
		ns(c.UpdatedAt), int32(c.State), int32(c.Attempts), int32(c.Restarts), c.StateType, c.CoroutineState,
		c.MinResults, c.MaxResults, ns(c.PollDeadline), c.PollError, c.Status, c.Output, c.Error, c.RecentAttempts}
}

// callArrays returns the arguments of sqlUpsertCalls: one array per
// column, the calls in the order of ids, and last their partitions.
func callArrays(calls map[string]partCall, ids []string) []any {
	n := len(ids)
	var (
		id, parent, root, endpoint, function, version, inputType, stateType = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		parentGen, gen, corr, created, expires, updated, deadline           = make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		state, attempts, restarts, minR, maxR, status                       = make([]int32, n), make([]int32, n), make([]int32, n), make([]int32, n), make([]int32, n), make([]int32, n)
		input, coState, pollErr, output, errs, recent                       = make([][]byte, n), make([][]byte, n), make([][]byte, n), make([][]byte, n), make([][]byte, n), make([][]byte, n)
		parts                                                               = make([]int32, n)
	)
	for i, k := range ids {
		c := calls[k].c
		parts[i] = calls[k].part
		id[i], parent[i], root[i] = c.ID, c.ParentID, c.RootID
		parentGen[i], gen[i], corr[i] = int64(c.ParentGen), int64(c.Gen), int64(c.CorrelationID)
		endpoint[i], function[i], version[i], inputType[i], input[i] = c.Endpoint, c.Function, c.Version, c.InputType, c.Input
		created[i], expires[i], updated[i] = ns(c.CreatedAt), ns(c.ExpiresAt), ns(c.UpdatedAt)
		state[i], attempts[i], restarts[i] = int32(c.State), int32(c.Attempts), int32(c.Restarts)
		stateType[i], coState[i], minR[i], maxR[i], deadline[i] = c.StateType, c.CoroutineState, c.MinResults, c.MaxResults, ns(c.PollDeadline)
		pollErr[i], status[i], output[i], errs[i], recent[i] = c.PollError, c.Status, c.Output, c.Error, c.RecentAttempts
	}
	return []any{id, parent, root, parentGen, gen, corr, endpoint, function, version, inputType, input,
		created, expires, updated, state, attempts, restarts, stateType, coState, minR, maxR, deadline,
		pollErr, status, output, errs, recent, parts}
}

// nonNil is b, or an empty slice for nil: results.data is NOT NULL.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
