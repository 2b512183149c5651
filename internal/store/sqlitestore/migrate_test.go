package sqlitestore_test

import (
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/dispatchkit/dispatch/internal/store"
	"github.com/dispatchkit/dispatch/internal/store/sqlitestore"
)

// schemaV1 is the schema of version 1 as the first builds made it, kept
// to check that every later build opens their databases.
const schemaV1 = `
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
	error           BLOB
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
PRAGMA user_version = 1;
`

// schemaV2 is version 2 as its builds made it: version 1 and
// calls.recent_attempts.
var schemaV2 = strings.Replace(schemaV1, "PRAGMA user_version = 1;", "ALTER TABLE calls ADD COLUMN recent_attempts BLOB;\nPRAGMA user_version = 2;", 1)

// schemaV1NoMeta is version 1 before the meta table was added to it.
var schemaV1NoMeta = strings.Replace(schemaV1, `CREATE TABLE IF NOT EXISTS meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) WITHOUT ROWID;
`, "", 1)

var v1Created = time.Unix(1_700_000_000, 0)

// v1Rows are a root call "a", suspended, with one attempt and in its
// inbox the result of its child "k", done, as version 1 stored them.
var v1Rows = []string{
	`INSERT INTO calls (id, parent_id, root_id, parent_gen, gen, correlation_id, endpoint, function,
		version, input_type, input, created_at, expires_at, updated_at, state, attempts, restarts,
		state_type, coroutine_state, min_results, max_results, poll_deadline, poll_error, status,
		output, error) VALUES
		('a', '', 'a', 0, 1, 7, 'http://127.0.0.1:8000/', 'fn', 'v1', 'type.googleapis.com/google.protobuf.StringValue',
		 x'0a0178', 1700000000000000000, 1700003600000000000, 1700000001000000000, 2, 1, 0,
		 '', x'73746174', 1, 10, 1700000060000000000, NULL, 0, NULL, NULL),
		('k', 'a', 'a', 1, 0, 8, 'http://127.0.0.1:8000/', 'child', 'v1', '',
		 NULL, 1700000000500000000, 1700003600000000000, 1700000001000000000, 3, 1, 0,
		 '', NULL, 0, 0, 0, NULL, 1, x'6f7574', NULL)`,
	`INSERT INTO attempts (call_id, n, start, duration, status, outcome) VALUES ('a', 1, 1700000000100000000, 2000000, 1, 'poll')`,
	`INSERT INTO results (parent_id, child_id, parent_gen, seq, data) VALUES ('a', 'k', 1, 1, x'72')`,
}

func openRaw(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func execAll(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db := openRaw(t, path)
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// pragmas reads user_version, schema_version (which every change of the
// schema bumps) and how many recent_attempts columns calls has.
func pragmas(t *testing.T, path string) (user, schema, recentCols int) {
	t.Helper()
	db := openRaw(t, path)
	for q, v := range map[string]*int{
		`PRAGMA user_version`:   &user,
		`PRAGMA schema_version`: &schema,
		`SELECT count(*) FROM pragma_table_info('calls') WHERE name = 'recent_attempts'`: &recentCols,
	} {
		if err := db.QueryRow(q).Scan(v); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return user, schema, recentCols
}

// checkV1Rows checks that s reads the rows of v1Rows.
func checkV1Rows(t *testing.T, s store.Store) {
	t.Helper()
	is := is.New(t)
	ctx := context.Background()
	a, err := s.GetCall(ctx, "a")
	is.NoErr(err)
	is.Equal(a.RootID, "a")
	is.Equal(a.Gen, uint32(1))
	is.Equal(a.CorrelationID, uint64(7))
	is.Equal(a.Endpoint, "http://127.0.0.1:8000/")
	is.Equal(string(a.Input), "\x0a\x01x")
	is.True(a.CreatedAt.Equal(v1Created))
	is.True(a.PollDeadline.Equal(v1Created.Add(time.Minute)))
	is.Equal(a.State, store.Suspended)
	is.Equal(string(a.CoroutineState), "stat")
	is.Equal(a.MaxResults, int32(10))
	is.Equal(a.PollError, nil)
	is.Equal(a.RecentAttempts, nil)

	atts, err := s.Attempts(ctx, "a")
	is.NoErr(err)
	is.Equal(len(atts), 1)
	is.Equal(atts[0].N, 1)
	is.True(atts[0].Start.Equal(v1Created.Add(100 * time.Millisecond)))
	is.Equal(atts[0].Duration, 2*time.Millisecond)
	is.Equal(atts[0].Outcome, "poll")

	var live []string
	var inbox []store.Result
	is.NoErr(s.Recover(ctx, func(c *store.Call, in []store.Result) error {
		live = append(live, c.ID)
		if c.ID == "a" {
			inbox = in
		}
		return nil
	}))
	is.Equal(live, []string{"a"}) // k is done
	is.Equal(len(inbox), 1)
	is.Equal(inbox[0].ChildID, "k")
	is.Equal(string(inbox[0].Data), "r")

	kids, err := s.Children(ctx, "a")
	is.NoErr(err)
	is.Equal(len(kids), 1)
	is.Equal(string(kids[0].Output), "out")
	all, err := s.ListCalls(ctx, store.ListOptions{})
	is.NoErr(err)
	is.Equal(len(all), 2)
}

func TestMigrate(t *testing.T) {
	tests := []struct {
		name    string
		make    func(t *testing.T, path string) // a database to migrate
		version int                             // its user_version
	}{
		{
			name:    "version 1",
			make:    func(t *testing.T, path string) { execAll(t, path, slices.Concat([]string{schemaV1}, v1Rows)...) },
			version: 1,
		},
		{
			name:    "version 1 before the meta table",
			make:    func(t *testing.T, path string) { execAll(t, path, slices.Concat([]string{schemaV1NoMeta}, v1Rows)...) },
			version: 1,
		},
		{
			// An older build opened a newer database: it set
			// user_version back to 1 and left the column and tables.
			name: "version 3 set back to 1",
			make: func(t *testing.T, path string) {
				openAndClose(t, path)
				execAll(t, path, slices.Concat(v1Rows, []string{`PRAGMA user_version = 1`})...)
			},
			version: 1,
		},
		{
			name:    "version 2",
			make:    func(t *testing.T, path string) { execAll(t, path, slices.Concat([]string{schemaV2}, v1Rows)...) },
			version: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "dispatch.db")
			tt.make(t, path)
			user, _, _ := pragmas(t, path)
			is.Equal(user, tt.version)

			s, err := sqlitestore.Open(path, sqlitestore.Options{})
			is.NoErr(err)
			checkV1Rows(t, s)
			// It writes the new column, the meta table and the keys.
			a, err := s.GetCall(ctx, "a")
			is.NoErr(err)
			a.RecentAttempts = store.AppendAttempt(nil, store.Attempt{N: 2, Start: v1Created, Outcome: "exit"})
			key := store.Key{Key: "order-42", Digest: []byte("d"), IDs: []string{"a"}, CreatedAt: v1Created, ExpiresAt: v1Created.Add(time.Hour)}
			is.NoErr(s.Apply(ctx, &store.Batch{Calls: []*store.Call{a}, Meta: map[string]string{"k": "v"}, Keys: []store.Key{key}}))
			k, err := s.Key(ctx, "order-42")
			is.NoErr(err)
			is.Equal(k.IDs, []string{"a"})
			atts, err := s.Attempts(ctx, "a")
			is.NoErr(err)
			is.Equal(len(atts), 2)
			is.Equal(atts[1].Outcome, "exit")
			v, err := s.Meta(ctx, "k")
			is.NoErr(err)
			is.Equal(v, "v")
			is.NoErr(s.Close())

			user, schema, cols := pragmas(t, path)
			is.Equal(user, sqlitestore.SchemaVersion)
			is.Equal(cols, 1)

			// Opening again changes nothing.
			s, err = sqlitestore.Open(path, sqlitestore.Options{})
			is.NoErr(err)
			got, err := s.GetCall(ctx, "a")
			is.NoErr(err)
			is.Equal(got.RecentAttempts, a.RecentAttempts)
			is.NoErr(s.Close())
			user2, schema2, cols2 := pragmas(t, path)
			is.Equal([]int{user2, schema2, cols2}, []int{user, schema, cols})
		})
	}
}

func TestOpenNewer(t *testing.T) {
	is := is.New(t)
	path := filepath.Join(t.TempDir(), "dispatch.db")
	s, err := sqlitestore.Open(path, sqlitestore.Options{})
	is.NoErr(err)
	is.NoErr(s.Close())
	newer := sqlitestore.SchemaVersion + 1
	execAll(t, path, fmt.Sprintf(`PRAGMA user_version = %d`, newer))

	_, err = sqlitestore.Open(path, sqlitestore.Options{})
	is.True(err != nil)
	for _, want := range []string{path, "made by a newer version of dispatch", fmt.Sprintf("schema version %d, this one knows up to %d", newer, newer-1), "--state", "DISPATCH_STATE_DIR"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	user, _, _ := pragmas(t, path)
	is.Equal(user, newer) // untouched
}

// TestOpenUnpreparable checks that a database whose statements do not
// prepare (it claims the current version but lacks columns) fails Open
// with an error, and leaves nothing open (goleak, in TestMain).
func TestOpenUnpreparable(t *testing.T) {
	is := is.New(t)
	path := filepath.Join(t.TempDir(), "dispatch.db")
	execAll(t, path, `CREATE TABLE calls (id TEXT PRIMARY KEY)`, fmt.Sprintf(`PRAGMA user_version = %d`, sqlitestore.SchemaVersion))
	s, err := sqlitestore.Open(path, sqlitestore.Options{})
	is.True(err != nil)
	is.True(s == nil)
	is.True(strings.Contains(err.Error(), "preparing statements"))
}

func TestReadOnlyVersions(t *testing.T) {
	recent := store.AppendAttempt(nil, store.Attempt{N: 2, Start: v1Created, Outcome: "exit"})
	tests := []struct {
		name       string
		make       func(t *testing.T, path string)
		wantRecent []byte
		wantUser   int
	}{
		{
			// An older server is running on it: it stays version 1.
			name:     "version 1",
			make:     func(t *testing.T, path string) { execAll(t, path, slices.Concat([]string{schemaV1}, v1Rows)...) },
			wantUser: 1,
		},
		{
			name: "the current version",
			make: func(t *testing.T, path string) {
				openAndClose(t, path)
				execAll(t, path, slices.Concat(v1Rows, []string{`UPDATE calls SET recent_attempts = x'` + hex.EncodeToString(recent) + `' WHERE id = 'k'`})...)
			},
			wantRecent: recent,
			wantUser:   sqlitestore.SchemaVersion,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "dispatch.db")
			tt.make(t, path)
			r, err := sqlitestore.OpenReadOnly(path)
			is.NoErr(err)
			defer r.Close()
			checkV1Rows(t, r)
			k, err := r.GetCall(ctx, "k")
			is.NoErr(err)
			is.Equal(k.RecentAttempts, tt.wantRecent)
			atts, err := r.Attempts(ctx, "k")
			is.NoErr(err)
			is.Equal(len(atts), len(tt.wantRecent)/len(recent))
			v, err := r.Meta(ctx, store.MetaDefaultEndpoint)
			is.NoErr(err)
			is.Equal(v, "")
			_, err = r.Key(ctx, "order-42")
			is.Equal(err, store.ErrNoKey) // none, with or without the table
			user, _, _ := pragmas(t, path)
			is.Equal(user, tt.wantUser) // not migrated
		})
	}
}

// openAndClose makes (or migrates) the database at path with the current
// schema.
func openAndClose(t *testing.T, path string) {
	t.Helper()
	s, err := sqlitestore.Open(path, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
