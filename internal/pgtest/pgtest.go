// Package pgtest gives tests a real PostgreSQL database: [URL] returns the
// URL of a new, empty database, dropped when the test ends.
//
// Where the databases are made, in this order:
//
//   - DISPATCH_TEST_POSTGRES, if set: the URL of a server where the tests
//     may create and drop databases (postgres://user:password@host:port/db;
//     the user needs CREATEDB). PostgreSQL 13 or later.
//   - Else, if PostgreSQL's binaries are installed (initdb and postgres on
//     PATH, or Debian's /usr/lib/postgresql/N/bin), a throwaway server:
//     one per test binary, in a temporary directory, listening on a free
//     loopback port, with fsync and synchronous_commit on (the durability
//     the product runs with). As root it runs as the postgres user (initdb
//     refuses root). [Main] stops it and removes its directory when the
//     tests end; on Linux the server also dies with the test binary.
//   - Else the test fails when CI is set in the environment, and otherwise
//     is skipped with a message that says how to run it. That is the only
//     skip in the suite, and CI never takes it.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names the variable that points the tests at a PostgreSQL server.
const EnvURL = "DISPATCH_TEST_POSTGRES"

// howTo says how to give the tests a PostgreSQL.
const howTo = "install PostgreSQL (apt-get install postgresql: the tests start a throwaway server " +
	"from /usr/lib/postgresql/N/bin) or set " + EnvURL + " to the URL of a server where they may " +
	"create databases, like postgres://postgres@127.0.0.1:5432/postgres"

var (
	once    sync.Once
	admin   *url.URL // where databases are created
	cluster *throwaway
	setErr  error
	seq     atomic.Int64
)

// errNone is the setup error when there is no PostgreSQL at all: the one
// case that skips (outside CI).
var errNone = errors.New("pgtest: no PostgreSQL to test with")

// URL returns the URL of a new, empty database on the test server, dropped
// (with its connections) when t ends. Without a PostgreSQL it fails t when
// CI is set and skips it otherwise (see the package documentation).
func URL(t testing.TB) string {
	t.Helper()
	once.Do(setup)
	if errors.Is(setErr, errNone) {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v, and CI is set: %s", setErr, howTo)
		}
		t.Skipf("%v: %s", setErr, howTo)
	}
	if setErr != nil {
		t.Fatal(setErr)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := fmt.Sprintf("dispatch_test_%d_%d_%s", os.Getpid(), seq.Add(1), hex.EncodeToString(b[:]))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := exec1(ctx, admin.String(), "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: creating database %s on %s: %v", name, admin.Redacted(), err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := exec1(ctx, admin.String(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: dropping database %s: %v", name, err)
		}
	})
	u := *admin
	u.Path = "/" + name
	return u.String()
}

// exec1 runs one statement on a connection of its own.
func exec1(ctx context.Context, dsn, sql string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// Main wraps the tests of a package that uses [URL] so that the throwaway
// server, if one was started, is stopped once they have run:
//
//	func TestMain(m *testing.M) { goleak.VerifyTestMain(pgtest.Main(m)) }
func Main(m *testing.M) interface{ Run() int } { return mainRunner{m} }

type mainRunner struct{ m *testing.M }

func (r mainRunner) Run() int {
	code := r.m.Run()
	if cluster != nil {
		if err := cluster.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: stopping the throwaway PostgreSQL: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

func setup() {
	if s := os.Getenv(EnvURL); s != "" {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			setErr = fmt.Errorf("pgtest: %s is not a postgres:// URL (like postgres://postgres@127.0.0.1:5432/postgres)", EnvURL)
			return
		}
		admin = u
		return
	}
	cluster, setErr = startCluster()
	if setErr == nil {
		admin = cluster.url
	}
}
