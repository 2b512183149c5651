// Package pgstore is the PostgreSQL [store.Store] of the Dispatch server
// (pgx v5, a bounded pgxpool), for a server whose calls must outlive its
// machine. PostgreSQL 15 is what it is tested with; 13 or later is needed.
//
// # Transactions
//
// Each [Store.Apply] is one READ COMMITTED transaction sent as one
// pgx.Batch: one round trip. The batch's statements run in the implicit
// transaction that PostgreSQL's extended protocol gives the messages
// before a Sync (one Sync ends a pgx.Batch), committed at the Sync and
// rolled back whole if any statement fails. Sessions set
// default_transaction_isolation to read committed, whatever the
// database's default. Nothing on this path reads before it writes, so no
// transaction can fail on a serialization conflict: there is no
// REPEATABLE READ or SERIALIZABLE, and no retry loop, on the hot path
// (the [store.Committer] retries a failed Apply as it does for every
// store; every statement is idempotent, so a retry after a commit whose
// answer was lost is harmless).
//
// The net effect of the batches, in their order, is computed first (the
// last row of each call, the results still there at the end, the inbox
// entries removed, the last value of each attempt and meta key), and
// written with one statement per row for a few rows of a kind, or one
// statement for all the rows of a kind, passed as arrays (INSERT ...
// SELECT FROM unnest(...)), from a dozen on (see arrayRows): however many
// batches the committer groups into one Apply, the transaction has at
// most six statements then. Rows are whole-row upserts (INSERT ... ON CONFLICT DO UPDATE), as the store
// interface is designed for, and calls are written in the order of their
// ids, so that two transactions that touch the same calls lock them in the
// same order. Statements are prepared once per connection (pgx's
// statement cache). Durability is the database's: with PostgreSQL's
// defaults (fsync and synchronous_commit on), Apply returns once the
// commit is flushed to the write-ahead log. An Apply that takes more than
// 30 seconds fails (and is retried by the committer).
//
// The stores of a cluster's partitions ([Cluster.Store]) share one
// writer, the cluster's (writer.go): a partition's Apply hands its
// batches to it and waits, and its one goroutine writes every Apply
// waiting, from any partitions (at most 64, or 1,024 batches), in one
// such transaction: the fence of each partition involved first, in
// ascending order (see Fencing), then the net rows of all their batches,
// each call with its own partition. While a transaction is in flight the
// next Applies queue, so the load makes the groups (no timer): a replica
// leasing 12 partitions runs one transaction, one round trip and one WAL
// flush where its 12 engines would have run 12 smaller ones (on a loaded
// 2-core machine, load 5 to 7, medians of 3 rounds, three runs of each
// build alternating: 3-step workflows/s of bench (b) on one replica went
// from 170-210 to 230-340, and the CPU per workflow from 3.5-3.6 to
// 2.9-3.1 ms). Each Apply keeps its meaning: all or nothing (a failed
// transaction fails all its Applies, which their committers retry), in
// order per partition (an engine's committer applies one at a time), its
// ctx honoured while it waits in the queue (once sent, it waits for the
// outcome: the transaction may commit). A fence that fails names its
// partition by its statement's index: that partition's Applies fail with
// a [*FencedError], and the rest are sent again at once without them.
// [Cluster.Close] fails the Applies waiting with store.ErrClosed, after
// the transaction in flight.
//
// Reads that need one snapshot across statements (Recover, which reads
// the inboxes and then the live calls) run in a READ ONLY REPEATABLE READ
// transaction, which never fails on a conflict; [Store.Attempts] is one
// statement.
//
// # Tables and vacuum
//
// calls, results, attempts, meta, keys (the server's signing key),
// idempotency_keys (those of Dispatch requests), partitions, replicas
// and schema_version; see schema.go for their storage
// parameters and why. Updates of a call stay HOT: no index names a column
// that changes while the call is live (calls_live is on created_at where
// not done, done being a generated column that changes once;
// calls_part_live adds part, written once), and
// fillfactor 70 leaves room on the page for the new version. Done calls,
// their results and attempts are kept: nothing prunes them yet (see
// "Retention" in the server's documentation).
//
// # Connections
//
// A store holds at most [Options.MaxConns] connections in its pool (8 by
// default: one writer at a time, the rest for recovery and inspection)
// plus one for its lock. A replica of a cluster holds as many
// ([ClusterOptions.MaxConns]), shared by the stores of all its
// partitions: one writer for all the partitions it holds, the rest for
// recovery, leases and reads. It does not use LISTEN/NOTIFY.
//
// # One owner
//
// A writable store opened with [Open] is the only owner of its database
// (of its schema, for a URL that sets search_path): it takes a
// session-level advisory lock, pg_try_advisory_lock, on a connection of
// its own, and fails with a [*LockedError] naming the holder when another
// store holds it, or saying how many replicas of a cluster use the
// database. The lock is PostgreSQL's: it goes when the session ends, so a
// server killed with kill -9 leaves it free at once, and one whose machine
// vanished leaves it free once PostgreSQL's TCP keepalives find the
// connection dead (set on the lock's connection to about 25 seconds).
// Each owner also bumps the epoch of row 0 of partitions, and records who
// it is there; and it bumps the epoch of every partition of a cluster
// (rows 1..N), so that a replica whose lock was lost unnoticed writes
// nothing more (see Fencing).
//
// The store checks its lock connection every 2 seconds. If that
// connection fails it stops writing (Apply fails) until it has
// reconnected, taken the lock back and found the epoch of row 0
// unchanged; if another server took the database meanwhile (the lock is
// held, or the epoch moved), Apply fails for good. Between the loss of
// the lock and its check, no write of a deposed owner goes through
// either: each Apply checks the epoch of row 0 first, as a cluster's
// stores check their partition's (see Fencing below), and fails with a
// [*FencedError] once another owner opened the database.
//
// # A cluster of replicas
//
// [OpenCluster] opens the database as one replica of a cluster (cluster.go):
// N replicas share it. It takes the same lock in its shared form
// (pg_try_advisory_lock_shared), so that replicas share the database while
// a single owner and replicas exclude each other, and watches it as a
// single owner does. The calls are split into a fixed number of
// partitions by a hash of their root id ([store.PartitionOf]; the part
// column of calls, 0 for a single owner's), each with its row in
// partitions (owner, epoch, lease_until). A replica takes a partition
// with [Cluster.Acquire], one UPDATE ... SET epoch = epoch + 1 where the
// lease is free or expired by the database's clock (the replicas' clocks
// may differ), keeps it with [Cluster.Renew] and hands it over with
// [Cluster.Release], which moves the epoch on too (the released stores
// write nothing more); a replica that dies loses its leases when they
// expire. The number of partitions is fixed when the first replica makes
// them (kept in meta): a replica asking for another number is refused. Heartbeats ([Cluster.Heartbeat], the replicas table) tell the
// replicas who is alive, for rebalancing; nothing depends on
// LISTEN/NOTIFY.
//
// # Fencing
//
// The store of a partition ([Cluster.Store]), and a single owner's for
// row 0, write with one more statement at the head of each Apply's batch
// (of the writer's transaction, one per partition it carries), in the
// same transaction and round trip: dispatch_fence(partition, epoch), a
// plpgsql function that locks the partition's row FOR SHARE if its epoch
// is still the lease's and raises SQLSTATE DP001 if not, which Apply
// returns as a [*FencedError] (errors.Is(err, store.ErrFenced)), for good;
// the [store.Committer] does not retry it. The row lock lasts until the
// commit, so a takeover's UPDATE waits for the old owner's transactions
// in flight (what they committed is there for the new owner's recovery),
// and each later transaction of the old owner, whose FOR SHARE waited on
// that UPDATE or comes after it, finds the new epoch (READ COMMITTED
// re-checks the WHERE on the row's new version) and aborts before it
// writes anything: a deposed owner writes nothing. The fence costs no
// round trip, and 30 to 45 µs of the server's time per transaction
// (EXPLAIN ANALYZE, on a loaded 2-core machine; one call's upsert is 55
// µs there), against about 1 ms per transaction alone with fsync on.
// (BenchmarkWorkflowBatches against BenchmarkWorkflowBatchesFenced does
// not isolate it: both fence, the second through a cluster's writer.)
//
// Recover of a partition's store reads that partition's live calls
// (calls_part_live) and their inboxes; every other read is global, as is
// [Cluster.Reader], which reads and does not write or recover. A
// partition's calls are all written by its owner: children share their
// root's partition, so a child's result goes to a parent of the same
// partition.
package pgstore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dispatchkit/dispatch/internal/store"
)

// DefaultMaxConns is the default of [Options.MaxConns].
const DefaultMaxConns = 8

// applyTimeout bounds one Apply.
const applyTimeout = 30 * time.Second

// Options tune [Open].
type Options struct {
	// MaxConns bounds the connections of the store's pool;
	// [DefaultMaxConns] when zero. The lock takes one more.
	MaxConns int
	// Owner describes this process in the database (row 0 of
	// partitions), for the error a second server gets; "pid N on HOST"
	// when empty.
	Owner string
}

// Store is a PostgreSQL [store.Store]: the single owner of its database
// ([Open]), a reader ([OpenReadOnly], [Cluster.Reader]), or the store of
// one partition of a cluster ([Cluster.Store]).
type Store struct {
	pool  *pgxpool.Pool
	where string // the URL without its password, for messages
	kind  storeKind
	// lock is a single owner's, nil for the others: a partition's
	// store leaves the check of its cluster's lock to the writer.
	lock *ownerLock
	sc   scope
	// w is the cluster's writer, for a partition's store: its Apply hands
	// its batches to w.
	w *writer
	// hook, set by tests only, makes Apply run its batch in an explicit
	// transaction and call hook before the commit, the fence's row lock
	// held.
	hook func()

	mu     sync.Mutex // one Apply at a time; guards buf, closed and fenced
	closed bool
	fenced error    // the *FencedError of a fenced Apply: sticky
	buf    applyBuf // a single owner's; a partition's store uses w's
}

// storeKind is what a [Store] was opened as.
type storeKind uint8

const (
	kindOwner         storeKind = iota // Open: owns its pool and lock
	kindReadOnly                       // OpenReadOnly: owns its pool
	kindPartition                      // Cluster.Store: shares the cluster's pool
	kindClusterReader                  // Cluster.Reader: shares the cluster's pool
)

// reads reports whether s only reads.
func (s *Store) reads() bool { return s.kind == kindReadOnly || s.kind == kindClusterReader }

var _ store.Store = (*Store)(nil)

// LockedError is the error of [Open] when another store owns the
// database or replicas of a cluster use it, and of [OpenCluster] when a
// single-owner store owns it.
type LockedError struct {
	Where string // the database, as a URL without password
	Owner string // the single owner as it described itself, or ""
	// Replicas is the number of replicas of a cluster that use the
	// database (0: a single owner has it).
	Replicas int

	replica bool  // the refused one is a replica of a cluster
	epoch0  int64 // the epoch of row 0 of partitions then, -1 if unknown
}

func (e *LockedError) Error() string {
	if e.Replicas > 0 {
		return fmt.Sprintf("pgstore: %d replicas of a Dispatch cluster use the database %s: "+
			"a single-owner server cannot open it beside them; stop them first, or run this one as a replica too", e.Replicas, e.Where)
	}
	who := "another Dispatch server"
	if e.Owner != "" {
		who += " (" + e.Owner + ")"
	}
	if e.replica {
		return fmt.Sprintf("pgstore: %s uses the database %s as its single owner: "+
			"a replica of a cluster cannot open it beside it; stop that server first", who, e.Where)
	}
	return fmt.Sprintf("pgstore: %s uses the database %s", who, e.Where)
}

// parse parses a connection URL (or key=value string) and sets what every
// session of the store needs.
func parse(dsn string) (*pgxpool.Config, string, error) {
	where := redact(dsn)
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's message repeats the string, its password hidden at best
		// effort: keep only what is wrong.
		msg := err.Error()
		if i := strings.Index(msg, "`: "); strings.HasPrefix(msg, "cannot parse `") && i > 0 {
			msg = msg[i+3:]
		}
		return nil, where, fmt.Errorf("pgstore: %s is not a PostgreSQL connection URL (like postgres://user:password@host:5432/db): %s", where, msg)
	}
	rp := cfg.ConnConfig.RuntimeParams
	rp["default_transaction_isolation"] = "read committed"
	if rp["application_name"] == "" {
		rp["application_name"] = "dispatch"
	}
	return cfg, where, nil
}

// CheckURL checks that dsn is a connection URL Open can use, without
// connecting; the error hides its password.
func CheckURL(dsn string) error {
	_, _, err := parse(dsn)
	return err
}

// redact hides the password of a URL.
func redact(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" {
		return u.Redacted()
	}
	if strings.Contains(dsn, "password") {
		return "(a connection string with a password)"
	}
	return dsn
}

// Open connects to the database at dsn (a postgres:// URL), takes its
// lock (see the package documentation: a [*LockedError] when another store
// has it), makes or migrates the tables and returns the store. ctx bounds
// the connection and the migration.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	cfg, where, err := parse(dsn)
	if err != nil {
		return nil, err
	}
	if opts.MaxConns < 0 {
		return nil, fmt.Errorf("pgstore: Options.MaxConns is negative (%d); use 0 for the default, %d", opts.MaxConns, DefaultMaxConns)
	}
	cfg.MaxConns = int32(cmp.Or(opts.MaxConns, DefaultMaxConns))
	if opts.Owner == "" {
		host, _ := os.Hostname()
		opts.Owner = fmt.Sprintf("pid %d on %s", os.Getpid(), host)
	}
	lock, err := takeLock(ctx, cfg.ConnConfig, where, opts.Owner, false, nil)
	if err != nil {
		return nil, err
	}
	pool, err := openPool(ctx, cfg, where, lock)
	if err != nil {
		return nil, err
	}
	s := &Store{pool: pool, where: where, lock: lock, sc: scope{epoch: lock.epoch}}
	lock.watch()
	return s, nil
}

// openPool makes the pool of a store or cluster whose lock was just
// taken; on failure it releases the lock.
func openPool(ctx context.Context, cfg *pgxpool.Config, where string, lock *ownerLock) (*pgxpool.Pool, error) {
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		lock.close()
		return nil, fmt.Errorf("pgstore: connecting to %s: %w", where, err)
	}
	return pool, nil
}

// OpenReadOnly opens the database at dsn for reading only, beside the
// server that may be writing it (the `dispatch calls` command): it takes
// no lock, does not migrate, and its sessions are read-only. Apply fails.
func OpenReadOnly(ctx context.Context, dsn string) (*Store, error) {
	cfg, where, err := parse(dsn)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = 2
	cfg.ConnConfig.RuntimeParams["default_transaction_read_only"] = "on"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgstore: connecting to %s: %w", where, err)
	}
	v, err := readVersion(ctx, pool)
	switch {
	case err != nil:
		err = fmt.Errorf("pgstore: reading the schema version of %s: %w", where, err)
	case v == 0:
		err = fmt.Errorf("pgstore: %s is not a dispatch database (%w): pass the --postgres URL the server was given", where, errNoSchema)
	case v > schemaVersion:
		err = fmt.Errorf("pgstore: %s was made by a newer version of dispatch (schema version %d, this one knows up to %d): read it with that version", where, v, schemaVersion)
	}
	if err != nil {
		pool.Close()
		return nil, err
	}
	return &Store{pool: pool, where: where, kind: kindReadOnly}, nil
}

// Epoch returns the epoch of row 0 of partitions that this store's open
// set (each owner bumps it), the epoch of the lease of a partition's
// store, or 0 for a reader: the epoch of its scope, which its fence
// checks.
func (s *Store) Epoch() int64 { return s.sc.epoch }

// Apply implements [store.Store]: all batches in one transaction, in one
// round trip (see the package documentation); for a partition's store,
// the transaction of the cluster's writer, shared with the Applies of
// other partitions waiting at the same time.
func (s *Store) Apply(ctx context.Context, batches ...*store.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	switch s.kind {
	case kindReadOnly:
		return errors.New("pgstore: opened read-only")
	case kindClusterReader:
		return errors.New("pgstore: the reader of a cluster (Cluster.Reader) writes nothing: write through the store of a partition's lease (Cluster.Store)")
	}
	if s.fenced != nil {
		return s.fenced
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.w != nil {
		if !slices.ContainsFunc(batches, func(b *store.Batch) bool { return !b.Empty() }) {
			return nil // nothing to write: no fence either, as below
		}
		err := s.w.apply(ctx, s, batches) // which checks the lock
		var fe *FencedError
		if errors.As(err, &fe) {
			s.fenced = err
		}
		return err
	}
	if err := s.lock.err(); err != nil {
		return err
	}
	b := s.buf.build(batches, s.sc)
	if b.Len() == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, applyTimeout)
	defer cancel()
	var hooks []func()
	if s.hook != nil {
		hooks = []func(){s.hook}
	}
	if failed, err := sendTx(ctx, s.pool, b, 1, hooks); failed == 0 {
		s.fenced = &FencedError{Partition: s.sc.part, Epoch: s.sc.epoch}
		return s.fenced
	} else if err != nil {
		return fmt.Errorf("pgstore: applying %d batches to %s: %w", len(batches), s.where, err)
	}
	return nil
}

// The columns of calls, in scanCall's order.
const callColumns = `id, parent_id, root_id, parent_gen, gen, correlation_id, endpoint, function,
	version, input_type, input, created_at, expires_at, updated_at, state, attempts, restarts,
	state_type, coroutine_state, min_results, max_results, poll_deadline, poll_error, status,
	output, error, recent_attempts`

const selectCalls = `SELECT ` + callColumns + ` FROM calls`

func scanCall(row pgx.Row) (*store.Call, error) {
	var c store.Call
	var parentGen, gen, corr, created, expires, updated, deadline int64
	var state int32
	err := row.Scan(&c.ID, &c.ParentID, &c.RootID, &parentGen, &gen, &corr, &c.Endpoint, &c.Function,
		&c.Version, &c.InputType, &c.Input, &created, &expires, &updated, &state, &c.Attempts, &c.Restarts,
		&c.StateType, &c.CoroutineState, &c.MinResults, &c.MaxResults, &deadline, &c.PollError, &c.Status,
		&c.Output, &c.Error, &c.RecentAttempts)
	if err != nil {
		return nil, err
	}
	c.ParentGen, c.Gen, c.CorrelationID = uint32(parentGen), uint32(gen), uint64(corr)
	c.CreatedAt, c.ExpiresAt, c.UpdatedAt = fromNS(created), fromNS(expires), fromNS(updated)
	c.State = store.CallState(state)
	c.PollDeadline = fromNS(deadline)
	return &c, nil
}

// Recover implements [store.Store]: the inboxes, then the live calls, in
// one snapshot. The store of a partition recovers that partition's live
// calls and their inboxes only; the reader of a cluster recovers nothing
// (no replica resumes the calls of every partition).
func (s *Store) Recover(ctx context.Context, fn func(*store.Call, []store.Result) error) error {
	if s.kind == kindClusterReader {
		return errors.New("pgstore: the reader of a cluster (Cluster.Reader) recovers no call: recover a partition through the store of its lease (Cluster.Store)")
	}
	qResults := `SELECT parent_id, child_id, parent_gen, seq, data FROM results ORDER BY parent_id, seq`
	qCalls := selectCalls + ` WHERE NOT done ORDER BY created_at, id`
	var args []any
	if s.kind == kindPartition {
		qResults = `SELECT r.parent_id, r.child_id, r.parent_gen, r.seq, r.data FROM results r
			JOIN calls c ON c.id = r.parent_id WHERE c.part = $1 AND NOT c.done ORDER BY r.parent_id, r.seq`
		qCalls = selectCalls + ` WHERE part = $1 AND NOT done ORDER BY created_at, id`
		args = []any{int32(s.sc.part)}
	}
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("pgstore: recovering from %s: %w", s.where, err)
	}
	defer tx.Rollback(context.Background())
	inboxes := map[string][]store.Result{}
	rows, err := tx.Query(ctx, qResults, args...)
	if err != nil {
		return fmt.Errorf("pgstore: reading results: %w", err)
	}
	for rows.Next() {
		var r store.Result
		var gen int64
		if err := rows.Scan(&r.ParentID, &r.ChildID, &gen, &r.Seq, &r.Data); err != nil {
			rows.Close()
			return fmt.Errorf("pgstore: reading results: %w", err)
		}
		r.ParentGen = uint32(gen)
		inboxes[r.ParentID] = append(inboxes[r.ParentID], r)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("pgstore: reading results: %w", err)
	}
	rows, err = tx.Query(ctx, qCalls, args...)
	if err != nil {
		return fmt.Errorf("pgstore: reading live calls: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		c, err := scanCall(rows)
		if err != nil {
			return fmt.Errorf("pgstore: reading live calls: %w", err)
		}
		if err := fn(c, inboxes[c.ID]); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("pgstore: reading live calls: %w", err)
	}
	return nil
}

func (s *Store) query(ctx context.Context, q string, args ...any) ([]*store.Call, error) {
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	defer rows.Close()
	var out []*store.Call
	for rows.Next() {
		c, err := scanCall(rows)
		if err != nil {
			return nil, fmt.Errorf("pgstore: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	return out, nil
}

// GetCall implements [store.Store].
func (s *Store) GetCall(ctx context.Context, id string) (*store.Call, error) {
	c, err := scanCall(s.pool.QueryRow(ctx, selectCalls+` WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("pgstore: reading call %s: %w", id, err)
	}
	return c, nil
}

// ListCalls implements [store.Store].
func (s *Store) ListCalls(ctx context.Context, opts store.ListOptions) ([]*store.Call, error) {
	limit := opts.Limit
	if limit <= 0 {
		limit = 100
	}
	var where []string
	var args []any
	if opts.RootOnly {
		where = append(where, `parent_id = ''`)
	}
	if !opts.Before.IsZero() {
		args = append(args, ns(opts.Before))
		where = append(where, fmt.Sprintf(`created_at < $%d`, len(args)))
	}
	q := selectCalls
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	args = append(args, limit)
	q += fmt.Sprintf(` ORDER BY created_at DESC, id DESC LIMIT $%d`, len(args))
	return s.query(ctx, q, args...)
}

// Children implements [store.Store].
func (s *Store) Children(ctx context.Context, id string) ([]*store.Call, error) {
	return s.query(ctx, selectCalls+` WHERE parent_id = $1 AND parent_id <> '' ORDER BY created_at, id`, id)
}

// Attempts implements [store.Store]. The table and the row are read by one
// statement, so in one snapshot: attempts moving from one to the other
// meanwhile are neither missed nor repeated.
func (s *Store) Attempts(ctx context.Context, id string) ([]store.Attempt, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT false, n, start, duration, status, outcome, NULL::bytea FROM attempts WHERE call_id = $1
		UNION ALL
		SELECT true, 0, 0, 0, 0, '', recent_attempts FROM calls WHERE id = $1`, id)
	if err != nil {
		return nil, fmt.Errorf("pgstore: reading the attempts of call %s: %w", id, err)
	}
	defer rows.Close()
	var table []store.Attempt
	var recent []byte
	for rows.Next() {
		var row bool
		var a store.Attempt
		var start, dur int64
		var r []byte
		if err := rows.Scan(&row, &a.N, &start, &dur, &a.Status, &a.Outcome, &r); err != nil {
			return nil, fmt.Errorf("pgstore: reading the attempts of call %s: %w", id, err)
		}
		if row {
			recent = r
			continue
		}
		a.CallID, a.Start, a.Duration = id, fromNS(start), time.Duration(dur)
		table = append(table, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pgstore: reading the attempts of call %s: %w", id, err)
	}
	slices.SortFunc(table, func(a, b store.Attempt) int { return cmp.Compare(a.N, b.N) })
	return store.MergeAttempts(table, id, recent)
}

// Meta implements [store.Store].
func (s *Store) Meta(ctx context.Context, key string) (string, error) {
	var v string
	err := s.pool.QueryRow(ctx, `SELECT value FROM meta WHERE key = $1`, key).Scan(&v)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("pgstore: reading %s: %w", key, err)
	}
	return v, nil
}

// Key implements [store.Store]. A database of schema version 1, read by
// a read-only store beside an older server, has no keys.
func (s *Store) Key(ctx context.Context, key string) (*store.Key, error) {
	k := store.Key{Key: key}
	var ids string
	var created, expires int64
	err := s.pool.QueryRow(ctx, `SELECT digest, ids, created_at, expires_at FROM idempotency_keys WHERE key = $1`, key).
		Scan(&k.Digest, &ids, &created, &expires)
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, store.ErrNoKey
	case errors.As(err, &pgErr) && pgErr.Code == "42P01": // undefined_table
		return nil, store.ErrNoKey
	case err != nil:
		return nil, fmt.Errorf("pgstore: reading idempotency key %q: %w", key, err)
	}
	if err := json.Unmarshal([]byte(ids), &k.IDs); err != nil {
		return nil, fmt.Errorf("pgstore: reading idempotency key %q: its ids: %w", key, err)
	}
	k.CreatedAt, k.ExpiresAt = fromNS(created), fromNS(expires)
	return &k, nil
}

// SigningKey returns the server's signing key as stored (its text
// encoding), making it with generate on first use; made reports whether
// this call stored it. Servers that start at once agree on one key: each
// inserts its own only if there is none (ON CONFLICT DO NOTHING), then
// reads the one that was kept.
func (s *Store) SigningKey(ctx context.Context, generate func() (string, error)) (key string, made bool, err error) {
	return signingKey(ctx, s.pool, s.where, !s.reads(), generate)
}

// signingKey is [Store.SigningKey] on pool; a reader (canMake false)
// does not make the key.
func signingKey(ctx context.Context, pool *pgxpool.Pool, where string, canMake bool, generate func() (string, error)) (key string, made bool, err error) {
	const name = "signing"
	read := func() (string, error) {
		var v string
		err := pool.QueryRow(ctx, `SELECT value FROM keys WHERE name = $1`, name).Scan(&v)
		return v, err
	}
	key, err = read()
	if err == nil {
		return key, false, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return "", false, fmt.Errorf("pgstore: reading the signing key in %s: %w", where, err)
	}
	if !canMake {
		return "", false, fmt.Errorf("pgstore: %s has no signing key yet", where)
	}
	mine, err := generate()
	if err != nil {
		return "", false, err
	}
	tag, err := pool.Exec(ctx, `INSERT INTO keys (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`, name, mine)
	if err != nil {
		return "", false, fmt.Errorf("pgstore: storing the signing key in %s: %w", where, err)
	}
	if key, err = read(); err != nil {
		return "", false, fmt.Errorf("pgstore: reading the signing key in %s: %w", where, err)
	}
	return key, tag.RowsAffected() == 1, nil
}

// Close implements [store.Store]: it closes the pool and releases the
// lock. The store of a partition, or the reader, of a cluster only stops:
// the pool and the lock are the cluster's, closed by [Cluster.Close].
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.kind == kindPartition || s.kind == kindClusterReader {
		return nil
	}
	s.pool.Close()
	if s.lock != nil {
		return s.lock.close()
	}
	return nil
}

func ns(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNS(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}
