package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// schemaVersion is the version of [schema], kept in the one row of
// schema_version. Open migrates an older database to it (see migrate) and
// refuses a newer one.
//
//	1: the first
//	2: the table idempotency_keys (schemaV2)
//	3: partitions of the cluster mode: calls.part, replicas, dispatch_fence (schemaV3)
const schemaVersion = 3

// Advisory lock keys (the two-int form, so as not to meet an application's
// one-bigint keys): the class is "dispatch", the object the hash of the
// schema the tables are in, so that databases and schemas are locked apart.
const (
	// "DSP1": the server that owns the database (session lock), taken
	// exclusive by a single-owner store (Open) and shared by each replica
	// of a cluster (OpenCluster), so that the two modes exclude each other.
	lockClassOwner   = 0x44535031
	lockClassMigrate = 0x44535032 // "DSP2": one migration at a time (transaction lock)
)

// schema is version 1, made in a new database (the versions after it are
// applied to it by migrate). Storage parameters, table
// by table (see the package documentation):
//
//   - calls is updated at every step of a call, and keeps done calls (there
//     is no pruning yet). fillfactor 70 leaves room on each page for the
//     new versions of its rows, so that updates stay HOT (the row's new
//     version on the same page, no new index entries); the indexes name
//     only columns that never change and done, a stored generated column
//     that changes once, when the call ends. Autovacuum at 2% of dead rows
//     (the default 20% lets a table of millions of done calls carry
//     hundreds of thousands of dead index entries between two vacuums).
//   - results is a queue: each row is inserted, then deleted when its
//     parent resumes. No updates, so the default fillfactor; autovacuum
//     after 1,000 dead rows whatever the table's size (scale factor 0), as
//     its live size stays small and its estimated size would delay
//     vacuums.
//   - attempts is insert-only: the defaults (PostgreSQL 13 and later also
//     vacuum after inserts, which keeps its visibility map current).
//   - partitions has one row per partition (row 0: the single-owner
//     store's; 1..N: the cluster's, from version 3), rewritten by each
//     owner at each start and, in the cluster, at each lease renewal,
//     every few seconds: fillfactor 50 and autovacuum after 100 dead rows.
//   - meta, keys and schema_version are tiny and rarely written: the
//     defaults.
const schema = `
CREATE TABLE schema_version (
	version integer NOT NULL
);
CREATE TABLE calls (
	id              text PRIMARY KEY,
	parent_id       text NOT NULL,
	root_id         text NOT NULL,
	parent_gen      bigint NOT NULL,
	gen             bigint NOT NULL,
	correlation_id  bigint NOT NULL,
	endpoint        text NOT NULL,
	function        text NOT NULL,
	version         text NOT NULL,
	input_type      text NOT NULL,
	input           bytea,
	created_at      bigint NOT NULL,
	expires_at      bigint NOT NULL,
	updated_at      bigint NOT NULL,
	state           integer NOT NULL,
	attempts        integer NOT NULL,
	restarts        integer NOT NULL,
	state_type      text NOT NULL,
	coroutine_state bytea,
	min_results     integer NOT NULL,
	max_results     integer NOT NULL,
	poll_deadline   bigint NOT NULL,
	poll_error      bytea,
	status          integer NOT NULL,
	output          bytea,
	error           bytea,
	recent_attempts bytea,
	done            boolean GENERATED ALWAYS AS (state = 3) STORED
) WITH (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000);
CREATE INDEX calls_live ON calls (created_at) WHERE NOT done;
CREATE INDEX calls_parent ON calls (parent_id, created_at) WHERE parent_id <> '';
CREATE INDEX calls_roots ON calls (created_at) WHERE parent_id = '';
CREATE INDEX calls_created ON calls (created_at);
CREATE TABLE results (
	parent_id  text NOT NULL,
	child_id   text NOT NULL,
	parent_gen bigint NOT NULL,
	seq        bigint NOT NULL,
	data       bytea NOT NULL,
	PRIMARY KEY (parent_id, child_id)
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);
CREATE TABLE attempts (
	call_id  text NOT NULL,
	n        integer NOT NULL,
	start    bigint NOT NULL,
	duration bigint NOT NULL,
	status   integer NOT NULL,
	outcome  text NOT NULL,
	PRIMARY KEY (call_id, n)
);
CREATE TABLE meta (
	key   text PRIMARY KEY,
	value text NOT NULL
);
CREATE TABLE keys (
	name       text PRIMARY KEY,
	value      text NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE partitions (
	id          integer PRIMARY KEY,
	owner       text NOT NULL,
	epoch       bigint NOT NULL,
	lease_until timestamptz
) WITH (fillfactor = 50, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 100);
`

// schemaV2 is what version 2 adds: the idempotency keys of Dispatch
// requests (store.Key), each written once with the calls it names and
// deleted, a batch at a time, when it expires. ids is a JSON array of
// text, as in the SQLite store, so that many keys are written with one
// statement on arrays. The defaults for vacuum: rows are never updated,
// and deleted in bulk by expiration.
const schemaV2 = `
CREATE TABLE idempotency_keys (
	key        text PRIMARY KEY,
	digest     bytea NOT NULL,
	ids        text NOT NULL,
	created_at bigint NOT NULL,
	expires_at bigint NOT NULL
);
CREATE INDEX idempotency_keys_expires ON idempotency_keys (expires_at);
`

// fenceCode is the SQLSTATE that dispatch_fence raises (class DP is none
// of PostgreSQL's), mapped to a [*FencedError] by Apply.
const fenceCode = "DP001"

// schemaV3 is what version 3 adds, for the cluster mode (cluster.go):
//
//   - calls.part, the partition of the call (0: none, a single-owner
//     store's). ADD COLUMN with a constant default changes no row (it is
//     instant since PostgreSQL 11); building calls_part_live reads the
//     table once, not CONCURRENTLY (the migration is one transaction, and
//     no server of this version writes the database before it is done).
//     The index serves the recovery of one partition's live calls. part
//     is written when a call is made (the upsert does not update it) and
//     changed at most once, from 0, by the first replica to open the
//     database after a single owner: updates of a call stay HOT.
//   - replicas, the heartbeats of the replicas (for rebalancing and for
//     forwarding requests), rewritten every few seconds by each: as
//     partitions, fillfactor 50 and autovacuum after 100 dead rows.
//   - dispatch_fence(p, e), the first statement of every Apply of a
//     partition's store (and of a single owner's, on row 0): it locks
//     the partition's row FOR SHARE if its epoch is still e, and raises
//     fenceCode if not. The row lock lasts
//     until the transaction ends, so a takeover (UPDATE ... SET epoch =
//     epoch + 1, which needs a lock that FOR SHARE excludes) waits for the
//     transactions in flight, and every later one of the old owner finds
//     the new epoch: under READ COMMITTED, FOR SHARE that waited on an
//     update re-checks its WHERE on the row's new version. FOR KEY SHARE
//     would not do: an UPDATE of non-key columns does not wait for it.
const schemaV3 = `
ALTER TABLE calls ADD COLUMN part integer NOT NULL DEFAULT 0;
CREATE INDEX calls_part_live ON calls (part, created_at) WHERE NOT done;
CREATE TABLE replicas (
	name       text PRIMARY KEY,
	url        text NOT NULL,
	seen_until timestamptz NOT NULL
) WITH (fillfactor = 50, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 100);
CREATE FUNCTION dispatch_fence(p integer, e bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	PERFORM 1 FROM partitions WHERE id = p AND epoch = e FOR SHARE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'dispatch: partition % is no longer at epoch %: another replica owns it', p, e
			USING ERRCODE = '` + fenceCode + `';
	END IF;
END
$$;
`

// migrate brings the database to schemaVersion in one transaction: a new
// database gets the schema of version 1, then every database the changes
// of each version after its own. A database of a later version is
// refused: this build would not write what that one expects. Concurrent
// migrations wait for one another on a transaction lock. after, if not
// nil, runs last in the same transaction, under that lock (the cluster's
// set-up of its partitions).
func migrate(ctx context.Context, conn *pgx.Conn, where string, after func(pgx.Tx) error) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("pgstore: opening %s: %w", where, err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))`, lockClassMigrate); err != nil {
		return fmt.Errorf("pgstore: opening %s: %w", where, err)
	}
	v, err := readVersion(ctx, tx)
	if err != nil {
		return fmt.Errorf("pgstore: reading the schema version of %s: %w", where, err)
	}
	if v > schemaVersion {
		return newerError(where, v)
	}
	if err := upgrade(ctx, tx, where, v); err != nil {
		return err
	}
	if after != nil {
		if err := after(tx); err != nil {
			return err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("pgstore: opening %s: %w", where, err)
	}
	return nil
}

// upgrade applies to a database of schema version v the changes of each
// version after it.
func upgrade(ctx context.Context, tx pgx.Tx, where string, v int) error {
	if v == schemaVersion {
		return nil
	}
	fail := func(err error) error {
		return fmt.Errorf("pgstore: migrating %s from schema version %d to %d: %w", where, v, schemaVersion, err)
	}
	if v == 0 {
		if _, err := tx.Exec(ctx, schema); err != nil {
			return fail(err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
			return fail(err)
		}
	}
	// Later versions: their changes here, each guarded by v.
	if v < 2 {
		if _, err := tx.Exec(ctx, schemaV2); err != nil {
			return fail(err)
		}
	}
	if v < 3 {
		if _, err := tx.Exec(ctx, schemaV3); err != nil {
			return fail(err)
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE schema_version SET version = $1`, schemaVersion); err != nil {
		return fail(err)
	}
	return nil
}

func newerError(where string, v int) error {
	return fmt.Errorf("pgstore: %s was made by a newer version of dispatch (schema version %d, this one knows up to %d): "+
		"run that newer version, or give this one another database "+
		"(--postgres for dispatch test, Config.Postgres in Go)", where, v, schemaVersion)
}

// errNoSchema is readVersion's error for a database without the tables.
var errNoSchema = errors.New("no dispatch tables")

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// readVersion returns the schema version of the database, 0 when it has
// none of the tables.
func readVersion(ctx context.Context, q querier) (int, error) {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT to_regclass('schema_version') IS NOT NULL`).Scan(&exists); err != nil {
		return 0, err
	}
	if !exists {
		return 0, nil
	}
	var v int
	err := q.QueryRow(ctx, `SELECT version FROM schema_version`).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return v, err
}
