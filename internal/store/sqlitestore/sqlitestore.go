// Package sqlitestore is the file [store.Store] of the local Dispatch
// server: one SQLite database (modernc.org/sqlite, pure Go) in WAL mode.
//
// Writes go through one connection (SQLite has one writer anyway), each
// Apply in one IMMEDIATE transaction. By default synchronous=NORMAL: a
// committed batch is in the write-ahead log before Apply returns, so it
// survives a crash of the process (kill -9), and the log is synced at
// checkpoints; [Options.FullSync] syncs every commit, to survive a crash
// of the machine too, at the price of one disk sync per group commit.
// Reads (recovery
// and inspection) use a separate pool, which WAL lets run beside the
// writer; another process (the `dispatch calls` command) can read the
// database of a running server the same way.
//
// A call's row is written whole the first time (an upsert), and then,
// when the row says it is a rewrite ([store.Call.Rewrite]: same identity),
// by an UPDATE of the columns that change only, which binds ten fewer
// arguments (the driver copies every text and blob into C memory); a
// rewrite that finds no row falls back to the whole row, so the hint can
// never lose a column. The rows of a transaction are written up to 16 per
// statement, each call's last row only: a transaction of 8 batches of
// 3-step workflows runs half the statements it ran one row at a time
// (TestWriteCost).
package sqlitestore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/dispatchkit/dispatch/internal/store"
)

// schema makes whatever is missing of the current schema (version
// [schemaVersion]): all of it in a new database; in an older one, the
// tables and indexes added since, but not the columns added to existing
// tables, which migrate adds.
const schema = `
CREATE TABLE IF NOT EXISTS calls (
	id              TEXT PRIMARY KEY,
	parent_id       TEXT NOT NULL,
	root_id         TEXT NOT NULL,
	parent_gen      INTEGER NOT NULL,
	gen             INTEGER NOT NULL,
	correlation_id  INTEGER NOT NULL,
	endpoint        TEXT NOT NULL,
	function        TEXT NOT NULL,
	version         TEXT NOT NULL,
	input_type      TEXT NOT NULL,
	input           BLOB,
	created_at      INTEGER NOT NULL,
	expires_at      INTEGER NOT NULL,
	updated_at      INTEGER NOT NULL,
	state           INTEGER NOT NULL,
	attempts        INTEGER NOT NULL,
	restarts        INTEGER NOT NULL,
	state_type      TEXT NOT NULL,
	coroutine_state BLOB,
	min_results     INTEGER NOT NULL,
	max_results     INTEGER NOT NULL,
	poll_deadline   INTEGER NOT NULL,
	poll_error      BLOB,
	status          INTEGER NOT NULL,
	output          BLOB,
	error           BLOB,
	recent_attempts BLOB
);
CREATE INDEX IF NOT EXISTS calls_live ON calls (created_at) WHERE state != 3;
CREATE INDEX IF NOT EXISTS calls_parent ON calls (parent_id, created_at) WHERE parent_id != '';
CREATE INDEX IF NOT EXISTS calls_created ON calls (created_at);
CREATE TABLE IF NOT EXISTS results (
	parent_id  TEXT NOT NULL,
	child_id   TEXT NOT NULL,
	parent_gen INTEGER NOT NULL,
	seq        INTEGER NOT NULL,
	data       BLOB NOT NULL,
	PRIMARY KEY (parent_id, child_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS attempts (
	call_id  TEXT NOT NULL,
	n        INTEGER NOT NULL,
	start    INTEGER NOT NULL,
	duration INTEGER NOT NULL,
	status   INTEGER NOT NULL,
	outcome  TEXT NOT NULL,
	PRIMARY KEY (call_id, n)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS idempotency_keys (
	key        TEXT PRIMARY KEY,
	digest     BLOB NOT NULL,
	ids        TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idempotency_keys_expires ON idempotency_keys (expires_at);
`

// v1Columns are the columns of calls in version 1, in scanCall's order.
const v1Columns = `id, parent_id, root_id, parent_gen, gen, correlation_id, endpoint, function,
	version, input_type, input, created_at, expires_at, updated_at, state, attempts, restarts,
	state_type, coroutine_state, min_results, max_results, poll_deadline, poll_error, status,
	output, error`

// callColumns are the columns of calls, in scanCall's order.
const callColumns = v1Columns + `, recent_attempts`

const (
	sqlDelInbox   = `DELETE FROM results WHERE parent_id = ?`
	sqlDelResult  = `DELETE FROM results WHERE parent_id = ? AND child_id = ?`
	sqlAddResult  = `INSERT OR REPLACE INTO results (parent_id, child_id, parent_gen, seq, data) VALUES (?, ?, ?, ?, ?)`
	sqlAddAttempt = `INSERT OR REPLACE INTO attempts (call_id, n, start, duration, status, outcome) VALUES (?, ?, ?, ?, ?, ?)`
	sqlSetMeta    = `INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)`
	sqlPruneKeys  = `DELETE FROM idempotency_keys WHERE expires_at <= ?`
	sqlSetKey     = `INSERT OR REPLACE INTO idempotency_keys (key, digest, ids, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`
)

// maxRows is the most calls one statement writes: a transaction's rows
// are written by one statement per maxRows (see writer.putCalls), which
// needs one prepared statement per count of rows up to maxRows of each
// kind. (16 whole rows bind 432 arguments, far below SQLite's limit of
// 32,766.)
const maxRows = 16

// upsertCalls writes the whole rows of n calls: each is inserted, or
// replaces the columns but the identity of the row already there.
func upsertCalls(n int) string {
	row := "(" + strings.Repeat("?, ", 26) + "?)"
	return `INSERT INTO calls (` + callColumns + `) VALUES ` + strings.Repeat(row+", ", n-1) + row + `
	ON CONFLICT (id) DO UPDATE SET
	endpoint = excluded.endpoint, function = excluded.function, version = excluded.version,
	gen = excluded.gen, input_type = excluded.input_type, input = excluded.input,
	expires_at = excluded.expires_at, updated_at = excluded.updated_at, state = excluded.state,
	attempts = excluded.attempts, restarts = excluded.restarts, state_type = excluded.state_type,
	coroutine_state = excluded.coroutine_state, min_results = excluded.min_results,
	max_results = excluded.max_results, poll_deadline = excluded.poll_deadline,
	poll_error = excluded.poll_error, status = excluded.status, output = excluded.output,
	error = excluded.error, recent_attempts = excluded.recent_attempts`
}

// rewriteCalls writes the columns of n calls that change from one row to
// the next (store.Call.Rewrite): the columns of upsertCalls's DO UPDATE
// but the identity (endpoint, function, version, input_type, input).
// Each text and blob argument is copied into C memory by the driver, and
// a row write was a third of the CPU of `dispatch bench` (b) in process:
// a rewrite binds 17 arguments instead of 27 (1 text instead of 8, the
// input not at all), and skips the insert that upsertCalls tries first.
// The rows of several come in a VALUES list joined to calls by id (SQLite
// looks each up by the primary key), their columns in rewriteArgs's
// order, the id last; one row is a plain UPDATE, cheaper than that join.
func rewriteCalls(n int) string {
	if n == 1 {
		return `UPDATE calls SET
	gen = ?, expires_at = ?, updated_at = ?, state = ?, attempts = ?, restarts = ?,
	state_type = ?, coroutine_state = ?, min_results = ?, max_results = ?, poll_deadline = ?,
	poll_error = ?, status = ?, output = ?, error = ?, recent_attempts = ?
	WHERE id = ?`
	}
	row := "(" + strings.Repeat("?, ", 16) + "?)"
	return `UPDATE calls SET
	gen = v.column1, expires_at = v.column2, updated_at = v.column3, state = v.column4,
	attempts = v.column5, restarts = v.column6, state_type = v.column7, coroutine_state = v.column8,
	min_results = v.column9, max_results = v.column10, poll_deadline = v.column11,
	poll_error = v.column12, status = v.column13, output = v.column14, error = v.column15,
	recent_attempts = v.column16
	FROM (VALUES ` + strings.Repeat(row+", ", n-1) + row + `) AS v WHERE calls.id = v.column17`
}

// Store is a SQLite [store.Store].
type Store struct {
	w, r *sql.DB // writer (one connection) and readers

	mu       sync.Mutex
	closed   bool
	readOnly bool
	wc       *sql.Conn // the writer's one connection, held open
	wr       *writer   // its prepared statements, used inside wc.Raw
	ck       *checkpointer

	// recent is the expression that reads calls.recent_attempts: "NULL"
	// when a read-only store finds a version-1 table without it.
	recent      string
	selectCalls string // SELECT the callColumns (with recent) FROM calls
}

// writer holds the statements Apply runs, prepared once on the writer's
// connection and run through the driver directly: database/sql would
// convert every argument by reflection, and BeginTx and Commit would
// parse "BEGIN IMMEDIATE" and "COMMIT" at every transaction.
type writer struct {
	begin, commit, rollback                             driver.Stmt
	delInbox, delResult, addResult, addAttempt, setMeta driver.Stmt
	pruneKeys, setKey                                   driver.Stmt
	// upserts[n-1] and rewrites[n-1] write n rows (upsertCalls,
	// rewriteCalls), prepared on the first transaction that needs them,
	// with pc: the driver's connection, which the writer uses only inside
	// the writer connection's Raw.
	upserts, rewrites [maxRows]driver.Stmt
	pc                driver.ConnPrepareContext

	args []driver.NamedValue
	vals []driver.Value

	// The calls of the transaction being applied, one per id (putCalls).
	calls          []putCall
	at             map[string]int // index in calls by id, when many (find)
	whole, rewrite []*store.Call

	// nstmts and nrows count the statements run (begin and commit
	// included) and the rows they changed, for the tests that hold the
	// write path to its cost per workflow (TestWriteCost).
	nstmts, nrows int64
}

// putCall is a call's last row in a transaction, and whether some row of
// it there was marked whole (not a rewrite).
type putCall struct {
	c     *store.Call
	whole bool
}

func (w *writer) stmts() []*driver.Stmt {
	sts := []*driver.Stmt{&w.begin, &w.commit, &w.rollback, &w.delInbox,
		&w.delResult, &w.addResult, &w.addAttempt, &w.setMeta, &w.pruneKeys, &w.setKey}
	for i := range maxRows {
		sts = append(sts, &w.upserts[i], &w.rewrites[i])
	}
	return sts
}

func (w *writer) prepare(dc any) error {
	pc, ok := dc.(driver.ConnPrepareContext)
	if !ok {
		return errors.New("driver does not prepare statements with a context")
	}
	w.pc = pc
	queries := []string{"BEGIN IMMEDIATE", "COMMIT", "ROLLBACK", sqlDelInbox,
		sqlDelResult, sqlAddResult, sqlAddAttempt, sqlSetMeta, sqlPruneKeys, sqlSetKey}
	for i, st := range w.stmts()[:len(queries)] {
		if err := w.prepareOne(st, queries[i]); err != nil {
			w.close()
			return err
		}
	}
	// The one-row statements now, so that a database whose calls table
	// does not match them fails Open rather than its first Apply.
	if err := w.prepareOne(&w.upserts[0], upsertCalls(1)); err != nil {
		w.close()
		return err
	}
	if err := w.prepareOne(&w.rewrites[0], rewriteCalls(1)); err != nil {
		w.close()
		return err
	}
	return nil
}

// prepareOne prepares q into *st, setting *st only on success: a failed
// prepare may return a nil *stmt in a non-nil driver.Stmt, which close
// would call.
func (w *writer) prepareOne(st *driver.Stmt, q string) error {
	prepared, err := w.pc.PrepareContext(context.Background(), q)
	if err != nil {
		return err
	}
	*st = prepared
	return nil
}

// stmtFor returns the statement of sts (upserts or rewrites) for n rows,
// preparing it with query(n) if this is its first use.
func (w *writer) stmtFor(sts *[maxRows]driver.Stmt, n int, query func(int) string) (driver.Stmt, error) {
	if sts[n-1] == nil {
		if err := w.prepareOne(&sts[n-1], query(n)); err != nil {
			return nil, fmt.Errorf("preparing the statement for %d rows: %w", n, err)
		}
	}
	return sts[n-1], nil
}

func (w *writer) close() error {
	var errs []error
	for _, st := range w.stmts() {
		if *st != nil {
			errs = append(errs, (*st).Close())
			*st = nil
		}
	}
	return errors.Join(errs...)
}

// exec runs st with vals, which must be driver values (int64, string,
// []byte, nil).
func (w *writer) exec(st driver.Stmt, vals ...driver.Value) error {
	_, err := w.execResult(st, vals...)
	return err
}

// execResult is exec, returning the statement's result.
func (w *writer) execResult(st driver.Stmt, vals ...driver.Value) (driver.Result, error) {
	args := w.args[:0]
	for i, v := range vals {
		args = append(args, driver.NamedValue{Ordinal: i + 1, Value: v})
	}
	w.args = args
	w.nstmts++
	res, err := st.(driver.StmtExecContext).ExecContext(context.Background(), args)
	clear(args)
	if err == nil && st != w.begin && st != w.commit && st != w.rollback {
		// (SQLite's count of changes is the last INSERT, UPDATE or
		// DELETE's: COMMIT would count that statement's rows again.)
		if n, err := res.RowsAffected(); err == nil {
			w.nrows += n
		}
	}
	return res, err
}

// putCalls writes the rows of the calls of a transaction's batches, with
// one statement per maxRows rows of a kind (rewrites, whole rows) instead
// of one per row: in `dispatch bench` (b) a transaction holds about six
// batches, which write about eight rows. Only a call's last row in the
// transaction is written (the calls table is written by nothing else, so
// the rows of different calls can be written in any order, and a row is
// the whole call); it is a rewrite only if every row of the call in the
// transaction was.
//
// A rewrite finds the row in the table or writes nothing: when a
// statement's rewrites change fewer rows than it has (a row marked
// Rewrite whose earlier row was never committed), its rows are written
// again whole, so the hint can cost statements but never a column.
func (w *writer) putCalls(batches []*store.Batch) error {
	calls := w.calls[:0]
	for _, b := range batches {
		for _, c := range b.Calls {
			if i := w.find(calls, c.ID); i >= 0 {
				calls[i] = putCall{c, calls[i].whole || !c.Rewrite}
				continue
			}
			if w.at != nil {
				w.at[c.ID] = len(calls)
			}
			calls = append(calls, putCall{c, !c.Rewrite})
		}
	}
	w.at = nil
	whole, rewrite := w.whole[:0], w.rewrite[:0]
	for _, p := range calls {
		if p.whole {
			whole = append(whole, p.c)
		} else {
			rewrite = append(rewrite, p.c)
		}
	}
	clear(calls)
	w.calls = calls[:0]
	defer func() {
		clear(whole)
		clear(rewrite)
		w.whole, w.rewrite = whole[:0], rewrite[:0]
	}()
	for chunk := range slices.Chunk(rewrite, maxRows) {
		res, err := w.putChunk(&w.rewrites, rewriteCalls, rewriteArgs, chunk)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != int64(len(chunk)) {
			whole = append(whole, chunk...)
		}
	}
	for chunk := range slices.Chunk(whole, maxRows) {
		if _, err := w.putChunk(&w.upserts, upsertCalls, upsertArgs, chunk); err != nil {
			return err
		}
	}
	return nil
}

// putChunk writes the rows of chunk (at most maxRows) with one statement
// of sts, made by query, each row's values appended by args: the one way
// both kinds of row are written, rewrites and whole rows. Its error is
// the statement's preparation's as it is, or the statement's naming the
// calls of chunk.
func (w *writer) putChunk(sts *[maxRows]driver.Stmt, query func(int) string,
	args func([]driver.Value, *store.Call) []driver.Value, chunk []*store.Call) (driver.Result, error) {
	st, err := w.stmtFor(sts, len(chunk), query)
	if err != nil {
		return nil, err
	}
	vals := w.vals[:0]
	for _, c := range chunk {
		vals = args(vals, c)
	}
	w.vals = vals
	res, err := w.execResult(st, vals...)
	clear(vals)
	if err != nil {
		return nil, callsErr(chunk, err)
	}
	return res, nil
}

// find returns the index of id in calls, or -1: by a look through calls
// while they are few (a transaction of a few batches writes a few rows),
// then in w.at, made for this transaction once they are more. (A map
// kept from one transaction to the next would keep the size of the
// largest, and clearing it would cost that at every transaction.)
func (w *writer) find(calls []putCall, id string) int {
	const few = 32
	if w.at == nil {
		if len(calls) < few {
			for i := range calls {
				if calls[i].c.ID == id {
					return i
				}
			}
			return -1
		}
		w.at = make(map[string]int, 2*few)
		for i := range calls {
			w.at[calls[i].c.ID] = i
		}
	}
	if i, ok := w.at[id]; ok {
		return i
	}
	return -1
}

func callsErr(chunk []*store.Call, err error) error {
	if len(chunk) == 1 {
		return fmt.Errorf("storing call %s: %w", chunk[0].ID, err)
	}
	return fmt.Errorf("storing calls %s to %s: %w", chunk[0].ID, chunk[len(chunk)-1].ID, err)
}

// rewriteArgs appends the arguments of c's row in rewriteCalls.
func rewriteArgs(vals []driver.Value, c *store.Call) []driver.Value {
	return append(vals,
		int64(c.Gen), ns(c.ExpiresAt), ns(c.UpdatedAt), int64(c.State), int64(c.Attempts), int64(c.Restarts),
		c.StateType, c.CoroutineState, int64(c.MinResults), int64(c.MaxResults), ns(c.PollDeadline),
		c.PollError, int64(c.Status), c.Output, c.Error, c.RecentAttempts, c.ID,
	)
}

// upsertArgs appends the arguments of c's row in upsertCalls.
func upsertArgs(vals []driver.Value, c *store.Call) []driver.Value {
	return append(vals,
		c.ID, c.ParentID, c.RootID, int64(c.ParentGen), int64(c.Gen), int64(c.CorrelationID),
		c.Endpoint, c.Function, c.Version, c.InputType, c.Input,
		ns(c.CreatedAt), ns(c.ExpiresAt), ns(c.UpdatedAt), int64(c.State), int64(c.Attempts), int64(c.Restarts),
		c.StateType, c.CoroutineState, int64(c.MinResults), int64(c.MaxResults), ns(c.PollDeadline),
		c.PollError, int64(c.Status), c.Output, c.Error, c.RecentAttempts,
	)
}

var _ store.Store = (*Store)(nil)

func dsn(path string, pragmas ...string) string {
	q := url.Values{}
	for _, p := range pragmas {
		q.Add("_pragma", p)
	}
	return "file:" + path + "?" + q.Encode()
}

// Options tune [Open].
type Options struct {
	// FullSync syncs the disk at every commit (synchronous=FULL).
	FullSync bool

	// checkpointHook replaces each background checkpoint (checkpoint.go):
	// tests set it (export_test.go) to hold the checkpointer or to run its
	// checkpoints between two commits rather than beside them.
	checkpointHook func(checkpoint func() error)
}

// Open opens (making it if needed, mode 0600: it holds inputs and
// results) the database at path.
func Open(path string, opts Options) (*Store, error) {
	syncMode := "synchronous(NORMAL)"
	if opts.FullSync {
		syncMode = "synchronous(FULL)"
	}
	if f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o600); err == nil {
		f.Close()
	}
	w, err := sql.Open("sqlite", dsn(path, "busy_timeout(10000)", "journal_mode(WAL)", syncMode, "foreign_keys(OFF)",
		fmt.Sprintf("wal_autocheckpoint(%d)", walBackstop))+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	// Each part is set on s once open, so that Close releases those that
	// are if a later one fails.
	s := &Store{w: w, wr: &writer{}}
	fail := func(err error) (*Store, error) {
		s.Close()
		return nil, err
	}
	if err := migrate(w, path); err != nil {
		return fail(err)
	}
	if s.wc, err = w.Conn(context.Background()); err != nil {
		return fail(fmt.Errorf("sqlitestore: %w", err))
	}
	if err := s.wc.Raw(s.wr.prepare); err != nil {
		return fail(fmt.Errorf("sqlitestore: preparing statements: %w", err))
	}
	if s.r, err = openReader(path); err != nil {
		return fail(err)
	}
	if s.ck, err = newCheckpointer(path, opts.checkpointHook); err != nil {
		return fail(err)
	}
	return newStore(s, "recent_attempts"), nil
}

func newStore(s *Store, recent string) *Store {
	s.recent = recent
	s.selectCalls = `SELECT ` + v1Columns + `, ` + recent + ` FROM calls`
	return s
}

// OpenReadOnly opens the database at path for reading only, beside the
// server that may be writing it. Apply fails. It does not migrate: a
// database of schema version 1 (a server of an older build) reads as one
// whose calls have no RecentAttempts.
func OpenReadOnly(path string) (*Store, error) {
	r, err := openReader(path)
	if err != nil {
		return nil, err
	}
	var n int
	if err := r.QueryRow(`SELECT count(*) FROM sqlite_master WHERE name = 'calls'`).Scan(&n); err != nil || n == 0 {
		r.Close()
		if err == nil {
			err = errors.New("no calls table")
		}
		return nil, fmt.Errorf("sqlitestore: %s is not a dispatch database: %w", path, err)
	}
	has, err := hasColumn(context.Background(), r, "calls", "recent_attempts")
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("sqlitestore: reading the columns of %s: %w", path, err)
	}
	recent := "recent_attempts"
	if !has {
		recent = "NULL"
	}
	return newStore(&Store{r: r, readOnly: true}, recent), nil
}

func openReader(path string) (*sql.DB, error) {
	r, err := sql.Open("sqlite", dsn(path, "busy_timeout(10000)", "query_only(1)"))
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: %w", err)
	}
	r.SetMaxOpenConns(4)
	return r, nil
}

// Apply implements [store.Store]: all batches in one transaction.
func (s *Store) Apply(ctx context.Context, batches ...*store.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	if s.readOnly {
		return errors.New("sqlitestore: opened read-only")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.wc.Raw(func(any) error { return s.apply(batches) })
}

func (s *Store) apply(batches []*store.Batch) (err error) {
	w := s.wr
	if err := w.exec(w.begin); err != nil {
		return fmt.Errorf("sqlitestore: begin: %w", err)
	}
	defer func() {
		if err != nil {
			w.exec(w.rollback)
		}
	}()
	if err = w.putCalls(batches); err != nil {
		return fmt.Errorf("sqlitestore: %w", err)
	}
	for _, b := range batches {
		for _, id := range b.ClearInbox {
			if err = w.exec(w.delInbox, id); err != nil {
				return fmt.Errorf("sqlitestore: clearing inbox: %w", err)
			}
		}
		for _, k := range b.Delivered {
			if slices.Contains(b.ClearInbox, k.ParentID) {
				// Gone with the inbox just cleared: a call that ends
				// consumes its last results and drops its inbox.
				continue
			}
			if err = w.exec(w.delResult, k.ParentID, k.ChildID); err != nil {
				return fmt.Errorf("sqlitestore: removing a result: %w", err)
			}
		}
		for _, r := range b.Results {
			if err = w.exec(w.addResult, r.ParentID, r.ChildID, int64(r.ParentGen), r.Seq, r.Data); err != nil {
				return fmt.Errorf("sqlitestore: storing a result: %w", err)
			}
		}
		for _, a := range b.Attempts {
			if err = w.exec(w.addAttempt, a.CallID, int64(a.N), ns(a.Start), int64(a.Duration), int64(a.Status), a.Outcome); err != nil {
				return fmt.Errorf("sqlitestore: storing an attempt: %w", err)
			}
		}
		for k, v := range b.Meta {
			if err = w.exec(w.setMeta, k, v); err != nil {
				return fmt.Errorf("sqlitestore: storing %s: %w", k, err)
			}
		}
		if !b.PruneKeys.IsZero() {
			if err = w.exec(w.pruneKeys, ns(b.PruneKeys)); err != nil {
				return fmt.Errorf("sqlitestore: pruning idempotency keys: %w", err)
			}
		}
		for _, k := range b.Keys {
			ids, _ := json.Marshal(k.IDs) // strings: cannot fail
			if err = w.exec(w.setKey, k.Key, nonNil(k.Digest), string(ids), ns(k.CreatedAt), ns(k.ExpiresAt)); err != nil {
				return fmt.Errorf("sqlitestore: storing idempotency key %q: %w", k.Key, err)
			}
		}
	}
	if err = w.exec(w.commit); err != nil {
		return fmt.Errorf("sqlitestore: commit: %w", err)
	}
	s.ck.committed()
	return nil
}

type scanner interface{ Scan(...any) error }

func scanCall(row scanner) (*store.Call, error) {
	var c store.Call
	var parentGen, gen, corr, created, expires, updated, state, minR, maxR, deadline, status int64
	err := row.Scan(&c.ID, &c.ParentID, &c.RootID, &parentGen, &gen, &corr, &c.Endpoint, &c.Function,
		&c.Version, &c.InputType, &c.Input, &created, &expires, &updated, &state, &c.Attempts, &c.Restarts,
		&c.StateType, &c.CoroutineState, &minR, &maxR, &deadline, &c.PollError, &status,
		&c.Output, &c.Error, &c.RecentAttempts)
	if err != nil {
		return nil, err
	}
	c.ParentGen, c.Gen, c.CorrelationID = uint32(parentGen), uint32(gen), uint64(corr)
	c.CreatedAt, c.ExpiresAt, c.UpdatedAt = fromNS(created), fromNS(expires), fromNS(updated)
	c.State = store.CallState(state)
	c.MinResults, c.MaxResults = int32(minR), int32(maxR)
	c.PollDeadline = fromNS(deadline)
	c.Status = int32(status)
	return &c, nil
}

// Recover implements [store.Store].
func (s *Store) Recover(ctx context.Context, fn func(*store.Call, []store.Result) error) error {
	inboxes := map[string][]store.Result{}
	rows, err := s.r.QueryContext(ctx, `SELECT parent_id, child_id, parent_gen, seq, data FROM results ORDER BY parent_id, seq`)
	if err != nil {
		return fmt.Errorf("sqlitestore: reading results: %w", err)
	}
	for rows.Next() {
		var r store.Result
		var gen int64
		if err := rows.Scan(&r.ParentID, &r.ChildID, &gen, &r.Seq, &r.Data); err != nil {
			rows.Close()
			return fmt.Errorf("sqlitestore: reading results: %w", err)
		}
		r.ParentGen = uint32(gen)
		inboxes[r.ParentID] = append(inboxes[r.ParentID], r)
	}
	if err := rows.Close(); err != nil {
		return err
	}
	if err := rows.Err(); err != nil {
		return err
	}
	calls, err := s.query(ctx, s.selectCalls+` WHERE state != 3 ORDER BY created_at`)
	if err != nil {
		return err
	}
	for _, c := range calls {
		if err := fn(c, inboxes[c.ID]); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) query(ctx context.Context, q string, args ...any) ([]*store.Call, error) {
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: %w", err)
	}
	defer rows.Close()
	var out []*store.Call
	for rows.Next() {
		c, err := scanCall(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlitestore: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// GetCall implements [store.Store].
func (s *Store) GetCall(ctx context.Context, id string) (*store.Call, error) {
	c, err := scanCall(s.r.QueryRowContext(ctx, s.selectCalls+` WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: %w", err)
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
		where = append(where, `created_at < ?`)
		args = append(args, ns(opts.Before))
	}
	q := s.selectCalls
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT ?`
	return s.query(ctx, q, append(args, limit)...)
}

// Children implements [store.Store].
func (s *Store) Children(ctx context.Context, id string) ([]*store.Call, error) {
	return s.query(ctx, s.selectCalls+` WHERE parent_id = ? AND parent_id != '' ORDER BY created_at, id`, id)
}

// Attempts implements [store.Store]. The table and the row are read in
// one transaction, so that attempts moving from one to the other between
// the two reads are neither missed nor repeated.
func (s *Store) Attempts(ctx context.Context, id string) ([]store.Attempt, error) {
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: reading the attempts of call %s: %w", id, err)
	}
	defer tx.Rollback()
	table, err := readAttempts(ctx, tx, id)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: reading the attempts of call %s: %w", id, err)
	}
	var recent []byte
	err = tx.QueryRowContext(ctx, `SELECT `+s.recent+` FROM calls WHERE id = ?`, id).Scan(&recent)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlitestore: reading the attempts of call %s: %w", id, err)
	}
	return store.MergeAttempts(table, id, recent)
}

func readAttempts(ctx context.Context, tx *sql.Tx, id string) ([]store.Attempt, error) {
	rows, err := tx.QueryContext(ctx, `SELECT call_id, n, start, duration, status, outcome FROM attempts WHERE call_id = ? ORDER BY n`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Attempt
	for rows.Next() {
		var a store.Attempt
		var start, dur, status int64
		if err := rows.Scan(&a.CallID, &a.N, &start, &dur, &status, &a.Outcome); err != nil {
			return nil, err
		}
		a.Start, a.Duration, a.Status = fromNS(start), time.Duration(dur), int32(status)
		out = append(out, a)
	}
	return out, rows.Err()
}

// Meta implements [store.Store]. A database made before the meta table
// existed (and opened read-only since) has no values.
func (s *Store) Meta(ctx context.Context, key string) (string, error) {
	var v string
	err := s.r.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, key).Scan(&v)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", nil
	case err != nil && strings.Contains(err.Error(), "no such table"):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("sqlitestore: reading %s: %w", key, err)
	}
	return v, nil
}

// Key implements [store.Store]. A database made before the table of keys
// existed (and opened read-only since) has none.
func (s *Store) Key(ctx context.Context, key string) (*store.Key, error) {
	k := store.Key{Key: key}
	var ids string
	var created, expires int64
	err := s.r.QueryRowContext(ctx, `SELECT digest, ids, created_at, expires_at FROM idempotency_keys WHERE key = ?`, key).
		Scan(&k.Digest, &ids, &created, &expires)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, store.ErrNoKey
	case err != nil && strings.Contains(err.Error(), "no such table"):
		return nil, store.ErrNoKey
	case err != nil:
		return nil, fmt.Errorf("sqlitestore: reading idempotency key %q: %w", key, err)
	}
	if err := json.Unmarshal([]byte(ids), &k.IDs); err != nil {
		return nil, fmt.Errorf("sqlitestore: reading idempotency key %q: its ids: %w", key, err)
	}
	k.CreatedAt, k.ExpiresAt = fromNS(created), fromNS(expires)
	return &k, nil
}

// Close implements [store.Store].
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	if s.wc != nil {
		errs = append(errs, s.wc.Raw(func(any) error { return s.wr.close() }))
		errs = append(errs, s.wc.Close())
	}
	if s.w != nil {
		errs = append(errs, s.w.Close())
	}
	if s.ck != nil {
		errs = append(errs, s.ck.close())
	}
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	return errors.Join(errs...)
}

func ns(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// nonNil is b, or an empty slice for nil: NOT NULL blobs.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func fromNS(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}
