package pgtest_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/matryer/is"
	"go.uber.org/goleak"

	"github.com/dispatchkit/dispatch/internal/pgtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(pgtest.Main(m)) }

// Each URL is a database of its own, empty, that takes writes.
func TestURL(t *testing.T) {
	is := is.New(t)
	a, b := pgtest.URL(t), pgtest.URL(t)
	is.True(a != b)
	for _, u := range []string{a, b} {
		conn, err := pgx.Connect(context.Background(), u)
		is.NoErr(err)
		var n int
		is.NoErr(conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&n))
		is.Equal(n, 0) // empty
		_, err = conn.Exec(context.Background(), `CREATE TABLE t (x int)`)
		is.NoErr(err)
		var fsync string
		is.NoErr(conn.QueryRow(context.Background(), `SHOW fsync`).Scan(&fsync))
		is.Equal(fsync, "on") // the durability the product runs with
		conn.Close(context.Background())
	}
}
