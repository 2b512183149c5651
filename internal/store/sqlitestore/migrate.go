package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
)

// schemaVersion is the PRAGMA user_version of [schema]. Open
// migrates an older database to it (see migrate) and refuses a newer one.
//
//	1: the first
//	2: calls.recent_attempts
//	3: the table idempotency_keys (made by the schema's CREATE ... IF NOT EXISTS)
const schemaVersion = 3

// migrate brings the database at path to schemaVersion, in one
// transaction: a new database gets the whole schema, an older one the
// changes since its version. A database of a later version is refused:
// this build would not write what that one expects.
func migrate(db *sql.DB, path string) error {
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil) // IMMEDIATE (_txlock): one migration at a time
	if err != nil {
		return fmt.Errorf("sqlitestore: opening %s: %w", path, err)
	}
	defer tx.Rollback()
	var v int
	if err := tx.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil {
		return fmt.Errorf("sqlitestore: reading the schema version of %s: %w", path, err)
	}
	switch {
	case v > schemaVersion:
		return fmt.Errorf("sqlitestore: %s was made by a newer version of dispatch (schema version %d, this one knows up to %d): "+
			"run that newer version, or give this one another state directory "+
			"(--state for dispatch test, DISPATCH_STATE_DIR for a program's embedded server)", path, v, schemaVersion)
	case v == schemaVersion:
		return nil
	}
	fail := func(err error) error {
		return fmt.Errorf("sqlitestore: migrating %s from schema version %d to %d: %w", path, v, schemaVersion, err)
	}
	if _, err := tx.ExecContext(ctx, schema); err != nil {
		return fail(err)
	}
	// Version 2. An older build opening a version-2 database sets its
	// user_version back to 1 but keeps the column: add it only if missing.
	has, err := hasColumn(ctx, tx, "calls", "recent_attempts")
	if err != nil {
		return fail(err)
	}
	if !has {
		if _, err := tx.ExecContext(ctx, `ALTER TABLE calls ADD COLUMN recent_attempts BLOB`); err != nil {
			return fail(err)
		}
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, schemaVersion)); err != nil {
		return fail(err)
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	return nil
}

type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func hasColumn(ctx context.Context, q queryRower, table, column string) (bool, error) {
	var n int
	err := q.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info(?) WHERE name = ?`, table, column).Scan(&n)
	return n > 0, err
}
