package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/matryer/is"
	"go.uber.org/goleak"

	"github.com/dispatchkit/dispatch/internal/pgtest"
	"github.com/dispatchkit/dispatch/internal/store"
	"github.com/dispatchkit/dispatch/internal/store/memstore"
	"github.com/dispatchkit/dispatch/internal/store/pgstore"
	"github.com/dispatchkit/dispatch/internal/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(pgtest.Main(m)) }

func open(t testing.TB, url string) *pgstore.Store {
	t.Helper()
	s, err := pgstore.Open(context.Background(), url, pgstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	urls := map[store.Store]string{}
	storetest.Run(t, storetest.Opener{
		Open: func(t *testing.T) store.Store {
			url := pgtest.URL(t)
			s := open(t, url)
			urls[s] = url
			return s
		},
		Reopen: func(t *testing.T, s store.Store) store.Store {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			return open(t, urls[s])
		},
	})
}

// exec runs statements on a connection of the test's own.
func exec(t *testing.T, url string, stmts ...string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, q := range stmts {
		if _, err := conn.Exec(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// One store owns a database: a second Open is refused, naming the first,
// until the first is closed; each owner gets a new epoch.
func TestOneOwner(t *testing.T) {
	is := is.New(t)
	url := pgtest.URL(t)
	first, err := pgstore.Open(t.Context(), url, pgstore.Options{Owner: "the first"})
	is.NoErr(err)
	is.Equal(first.Epoch(), int64(1))

	_, err = pgstore.Open(t.Context(), url, pgstore.Options{Owner: "the second"})
	var locked *pgstore.LockedError
	is.True(errors.As(err, &locked))
	is.Equal(locked.Owner, "the first")
	is.True(strings.Contains(err.Error(), "another Dispatch server (the first) uses the database"))

	// A reader is not an owner.
	r, err := pgstore.OpenReadOnly(t.Context(), url)
	is.NoErr(err)
	is.NoErr(r.Close())

	is.NoErr(first.Close())
	second, err := pgstore.Open(t.Context(), url, pgstore.Options{Owner: "the second"})
	is.NoErr(err)
	is.Equal(second.Epoch(), int64(2))
	is.NoErr(second.Close())
}

// Stores opened at once on a new database: one migrates, one owns it, the
// others are refused with a LockedError (not a failed migration).
func TestConcurrentOpens(t *testing.T) {
	is := is.New(t)
	url := pgtest.URL(t)
	const n = 4
	var wg sync.WaitGroup
	stores := make([]*pgstore.Store, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			stores[i], errs[i] = pgstore.Open(t.Context(), url, pgstore.Options{Owner: fmt.Sprint(i)})
		})
	}
	wg.Wait()
	owners := 0
	for i := range n {
		var locked *pgstore.LockedError
		switch {
		case errs[i] == nil:
			owners++
			is.NoErr(stores[i].Close())
		case errors.As(errs[i], &locked):
		default:
			t.Fatalf("open %d: %v", i, errs[i])
		}
	}
	is.Equal(owners, 1)
}

// A database of a newer schema is refused, with what to do; so is, by a
// reader, a database without the tables.
func TestSchemaVersion(t *testing.T) {
	is := is.New(t)
	url := pgtest.URL(t)
	_, err := pgstore.OpenReadOnly(t.Context(), url)
	is.True(err != nil)
	is.True(strings.Contains(err.Error(), "is not a dispatch database")) // no tables yet

	s := open(t, url)
	is.NoErr(s.Close())
	exec(t, url, `UPDATE schema_version SET version = 99`)
	_, err = pgstore.Open(t.Context(), url, pgstore.Options{})
	is.True(err != nil)
	msg := err.Error()
	is.True(strings.Contains(msg, fmt.Sprintf("was made by a newer version of dispatch (schema version 99, this one knows up to %d)", pgstore.SchemaVersion)))
	is.True(strings.Contains(msg, "--postgres")) // what to do
	_, err = pgstore.OpenReadOnly(t.Context(), url)
	is.True(err != nil)
	is.True(strings.Contains(err.Error(), "schema version 99"))
}

// A database of version 1 is migrated to the current version when a
// store opens it: its calls stay, and it keeps idempotency keys. A reader
// beside an older server (version 1) finds no key.
func TestMigrateFromVersion1(t *testing.T) {
	is := is.New(t)
	url := pgtest.URL(t)
	exec(t, url, pgstore.SchemaV1, `INSERT INTO schema_version (version) VALUES (1)`,
		`INSERT INTO calls (id, parent_id, root_id, parent_gen, gen, correlation_id, endpoint, function, version,
			input_type, created_at, expires_at, updated_at, state, attempts, restarts, state_type,
			min_results, max_results, poll_deadline, status)
		VALUES ('a', '', 'a', 0, 0, 0, 'http://127.0.0.1:8000', 'fn', '', '', 1, 2, 3, 1, 0, 0, '', 0, 0, 0, 0)`)
	r, err := pgstore.OpenReadOnly(t.Context(), url)
	is.NoErr(err)
	_, err = r.Key(t.Context(), "k")
	is.Equal(err, store.ErrNoKey) // no table yet
	is.NoErr(r.Close())

	s := open(t, url)
	c, err := s.GetCall(t.Context(), "a")
	is.NoErr(err)
	is.Equal(c.Function, "fn")
	k := store.Key{Key: "k", Digest: []byte("d"), IDs: []string{"a"}, CreatedAt: time.Unix(1, 0), ExpiresAt: time.Unix(2, 0)}
	is.NoErr(s.Apply(t.Context(), &store.Batch{Keys: []store.Key{k}}))
	got, err := s.Key(t.Context(), "k")
	is.NoErr(err)
	is.Equal(got.IDs, []string{"a"})
	is.NoErr(s.Close())

	conn, err := pgx.Connect(t.Context(), url)
	is.NoErr(err)
	defer conn.Close(context.Background())
	var v int
	is.NoErr(conn.QueryRow(t.Context(), `SELECT version FROM schema_version`).Scan(&v))
	is.Equal(v, pgstore.SchemaVersion)
}

// A read-only store reads what the owner wrote and writes nothing.
func TestReadOnly(t *testing.T) {
	is := is.New(t)
	url := pgtest.URL(t)
	s := open(t, url)
	is.NoErr(s.Apply(t.Context(), &store.Batch{Calls: []*store.Call{{ID: "a", RootID: "a", State: store.Pending}}}))
	r, err := pgstore.OpenReadOnly(t.Context(), url)
	is.NoErr(err)
	defer r.Close()
	c, err := r.GetCall(t.Context(), "a")
	is.NoErr(err)
	is.Equal(c.ID, "a")
	is.True(r.Apply(t.Context(), &store.Batch{}) != nil)
	_, _, err = r.SigningKey(t.Context(), func() (string, error) { return "k", nil })
	is.True(err != nil) // no key, and a reader does not make one
}

// Servers starting at once on a database agree on one signing key.
func TestSigningKey(t *testing.T) {
	is := is.New(t)
	url := pgtest.URL(t)
	s := open(t, url)
	const n = 8
	keys := make([]string, n)
	made := make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			var err error
			keys[i], made[i], err = s.SigningKey(t.Context(), func() (string, error) { return fmt.Sprint("key ", i), nil })
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	madeBy := 0
	for i := range n {
		is.Equal(keys[i], keys[0]) // one key
		if made[i] {
			madeBy++
			is.Equal(keys[i], fmt.Sprint("key ", i)) // the one who made it
		}
	}
	is.Equal(madeBy, 1)
	is.NoErr(s.Close())
	s = open(t, url)
	k, made1, err := s.SigningKey(t.Context(), func() (string, error) { return "", errors.New("not called") })
	is.NoErr(err)
	is.Equal(k, keys[0]) // kept
	is.True(!made1)
}

// terminateLock ends the session holding the store's lock, as a network
// failure or a restart of PostgreSQL would.
func terminateLock(t *testing.T, url string) {
	t.Helper()
	exec(t, url, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = 'dispatch (lock)'`)
}

// checkUntil checks s's lock until Apply's error satisfies ok.
func checkUntil(t *testing.T, s *pgstore.Store, what string, ok func(error) bool) error {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s.CheckLock()
		err := s.Apply(t.Context(), &store.Batch{Meta: map[string]string{"k": "v"}})
		if ok(err) {
			return err
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (last: %v)", what, err)
		}
		time.Sleep(20 * time.Millisecond) // the session ends a moment after it is told to
	}
}

// takeOver opens another store on url while the lock of s is lost. The
// ended session may still hold the lock a moment after s heard of its end
// (Open is refused as locked: it is tried again), and s may take the lock
// back at its next check before the other gets it (then its session is
// ended again): either way the other gets the lock while s has none.
func takeOver(t *testing.T, s *pgstore.Store, url string) *pgstore.Store {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		other, err := pgstore.Open(t.Context(), url, pgstore.Options{Owner: "the other"})
		if err == nil {
			return other
		}
		var locked *pgstore.LockedError
		if !errors.As(err, &locked) || time.Now().After(deadline) {
			t.Fatalf("opening another store while the lock is lost: %v", err)
		}
		if s.Apply(t.Context(), &store.Batch{Meta: map[string]string{"k": "v"}}) == nil {
			terminateLock(t, url) // s took it back first
			checkUntil(t, s, "s to stop writing again", func(err error) bool { return err != nil })
		}
		time.Sleep(20 * time.Millisecond) // the session ends a moment after it is told to
	}
}

// A store whose lock's session ends stops writing, then takes the lock
// back and writes again; if another store took the database meanwhile, it
// stops writing for good.
func TestLockLost(t *testing.T) {
	tests := []struct {
		name     string
		takeOver bool // another store opens the database while the lock is lost
	}{
		{"taken back", false},
		{"taken over", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			url := pgtest.URL(t)
			s := open(t, url)
			is.NoErr(s.Apply(t.Context(), &store.Batch{Meta: map[string]string{"k": "v"}}))
			terminateLock(t, url)
			err := checkUntil(t, s, "s to stop writing", func(err error) bool { return err != nil })
			is.True(strings.Contains(err.Error(), "writes nothing until it has taken the lock back"))
			if !tt.takeOver {
				checkUntil(t, s, "s to write again", func(err error) bool { return err == nil })
				_, err = pgstore.Open(t.Context(), url, pgstore.Options{})
				var locked *pgstore.LockedError
				is.True(errors.As(err, &locked)) // held again
				return
			}
			other := takeOver(t, s, url)
			err = checkUntil(t, s, "s to stop for good", func(err error) bool {
				return err != nil && strings.Contains(err.Error(), "writes nothing more")
			})
			is.True(strings.Contains(err.Error(), "(the other)")) // names who has it
			is.NoErr(other.Close())
			s.CheckLock()
			err = s.Apply(t.Context(), &store.Batch{Meta: map[string]string{"k": "v"}})
			is.True(err != nil) // for good, even once the other has gone
			is.True(strings.Contains(err.Error(), "writes nothing more"))
		})
	}
}

// inboxOf is what Recover gives for parent p: child:data in arrival order.
func inboxOf(t *testing.T, s store.Store, p string) []string {
	t.Helper()
	var out []string
	err := s.Recover(t.Context(), func(c *store.Call, in []store.Result) error {
		if c.ID == p {
			for _, r := range in {
				out = append(out, r.ChildID+":"+string(r.Data))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// One Apply writes the net effect of its batches, in their order, as the
// memory store (which applies them one by one) ends up: the last row of a
// call, the inbox entries that remain after adds, removals and clears in
// any order, the last value of an attempt or a meta key.
func TestApplyNetEffect(t *testing.T) {
	r := func(child string, seq int64, data string) store.Result {
		return store.Result{ParentID: "p", ChildID: child, Seq: seq, Data: []byte(data)}
	}
	del := func(child string) store.ResultKey { return store.ResultKey{ParentID: "p", ChildID: child} }
	p := func(state store.CallState, fn string) *store.Call {
		return &store.Call{ID: "p", RootID: "p", State: state, Function: fn}
	}
	tests := []struct {
		name    string
		before  []store.Result // in the database before the Apply
		batches []*store.Batch // one Apply
	}{
		{"add then deliver", nil, []*store.Batch{
			{Results: []store.Result{r("a", 1, "a")}},
			{Delivered: []store.ResultKey{del("a")}},
		}},
		{"deliver then add again", []store.Result{r("a", 1, "old")}, []*store.Batch{
			{Delivered: []store.ResultKey{del("a")}},
			{Results: []store.Result{r("a", 2, "new")}},
		}},
		{"clear then add", []store.Result{r("a", 1, "a"), r("b", 2, "b")}, []*store.Batch{
			{ClearInbox: []string{"p"}},
			{Results: []store.Result{r("c", 3, "c")}},
		}},
		{"add then clear", []store.Result{r("a", 1, "a")}, []*store.Batch{
			{Results: []store.Result{r("b", 2, "b")}},
			{ClearInbox: []string{"p"}},
		}},
		{"add, clear, add, deliver", []store.Result{r("a", 1, "a")}, []*store.Batch{
			{Results: []store.Result{r("b", 2, "b"), r("c", 3, "c")}},
			{ClearInbox: []string{"p"}},
			{Results: []store.Result{r("d", 4, "d"), r("b", 5, "b2")}},
			{Delivered: []store.ResultKey{del("d")}},
		}},
		{"clear, deliver and add in one batch", []store.Result{r("a", 1, "a"), r("b", 2, "b")}, []*store.Batch{
			{ClearInbox: []string{"p"}, Delivered: []store.ResultKey{del("c")}, Results: []store.Result{r("c", 3, "c")}},
		}},
		{"deliver one of the database's", []store.Result{r("a", 1, "a"), r("b", 2, "b")}, []*store.Batch{
			{Delivered: []store.ResultKey{del("a")}},
			{Results: []store.Result{r("b", 3, "b2")}}, // replaced: a new seq
		}},
		{"clear twice", []store.Result{r("a", 1, "a")}, []*store.Batch{
			{ClearInbox: []string{"p"}},
			{Results: []store.Result{r("b", 2, "b")}},
			{ClearInbox: []string{"p"}},
			{Results: []store.Result{r("c", 3, "c")}},
		}},
	}
	// many gives enough rows of each kind that each is written from
	// arrays rather than row by row: calls, results to add and to remove
	// (of another parent q, some already in the database: setup), attempts
	// and meta keys.
	many := func() (setup, first, last *store.Batch) {
		setup = &store.Batch{Calls: []*store.Call{{ID: "q", RootID: "q", State: store.Suspended}}}
		first, last = &store.Batch{Meta: map[string]string{}}, &store.Batch{}
		for i := range 30 {
			id := fmt.Sprintf("c%02d", i)
			r := store.Result{ParentID: "q", ChildID: id, Seq: int64(100 + i), Data: []byte(id)}
			if i < 20 {
				setup.Results = append(setup.Results, r)
			} else {
				first.Results = append(first.Results, r)
			}
			first.Calls = append(first.Calls, &store.Call{ID: id, ParentID: "q", RootID: "q", State: store.Pending})
			first.Attempts = append(first.Attempts, store.Attempt{CallID: "q", N: 10 + i, Outcome: id})
			first.Meta[id] = id
			if i%2 == 0 {
				last.Delivered = append(last.Delivered, store.ResultKey{ParentID: "q", ChildID: id})
			}
		}
		return setup, first, last
	}
	for _, tt := range tests {
		for _, size := range []string{"few rows", "many rows"} {
			t.Run(tt.name+", "+size, func(t *testing.T) {
				is := is.New(t)
				pg := open(t, pgtest.URL(t))
				mem := memstore.New()
				defer mem.Close()
				for _, s := range []store.Store{pg, mem} {
					setup, first, last := many()
					if size == "many rows" {
						is.NoErr(s.Apply(t.Context(), setup))
					}
					is.NoErr(s.Apply(t.Context(), &store.Batch{Calls: []*store.Call{p(store.Suspended, "v0")}, Results: tt.before}))
					batches := append([]*store.Batch{
						{
							Calls:    []*store.Call{p(store.Pending, "v1")},
							Attempts: []store.Attempt{{CallID: "p", N: 1, Outcome: "first"}},
							Meta:     map[string]string{"k": "1"},
						},
					}, tt.batches...)
					batches = append(batches, &store.Batch{
						Calls:    []*store.Call{p(store.Suspended, "v2")}, // the last row wins
						Attempts: []store.Attempt{{CallID: "p", N: 1, Outcome: "last"}},
						Meta:     map[string]string{"k": "2"},
					})
					if size == "many rows" {
						batches = append(append([]*store.Batch{first}, batches...), last)
					}
					is.NoErr(s.Apply(t.Context(), batches...))
				}
				is.Equal(inboxOf(t, pg, "p"), inboxOf(t, mem, "p"))
				is.Equal(inboxOf(t, pg, "q"), inboxOf(t, mem, "q"))
				if size == "many rows" {
					is.Equal(len(inboxOf(t, pg, "q")), 15) // the odd ones
				}
				c, err := pg.GetCall(t.Context(), "p")
				is.NoErr(err)
				is.Equal(c.Function, "v2")
				is.Equal(c.State, store.Suspended)
				atts, err := pg.Attempts(t.Context(), "p")
				is.NoErr(err)
				is.Equal(len(atts), 1)
				is.Equal(atts[0].Outcome, "last")
				v, err := pg.Meta(t.Context(), "k")
				is.NoErr(err)
				is.Equal(v, "2")
				if size == "many rows" {
					kids, err := pg.Children(t.Context(), "q")
					is.NoErr(err)
					is.Equal(len(kids), 30)
					atts, err := pg.Attempts(t.Context(), "q")
					is.NoErr(err)
					is.Equal(len(atts), 30)
					v, err := pg.Meta(t.Context(), "c29")
					is.NoErr(err)
					is.Equal(v, "c29")
				}
			})
		}
	}
}

// A single owner whose lock was lost unnoticed, and another took the
// database, writes nothing: its Apply checks the epoch of row 0 first
// (or the lock's watch has already stopped it).
func TestSingleOwnerFenced(t *testing.T) {
	is := is.New(t)
	url := pgtest.URL(t)
	s := open(t, url)
	is.NoErr(s.Apply(t.Context(), &store.Batch{Calls: []*store.Call{{ID: "a", RootID: "a", State: store.Pending}}}))
	terminateLock(t, url)
	var other *pgstore.Store
	deadline := time.Now().Add(30 * time.Second)
	for other == nil {
		var err error
		other, err = pgstore.Open(t.Context(), url, pgstore.Options{Owner: "the other"})
		var locked *pgstore.LockedError
		if err != nil && (!errors.As(err, &locked) || time.Now().After(deadline)) {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond) // the session ends a moment after it is told to
	}
	defer other.Close()
	err := s.Apply(t.Context(), &store.Batch{Calls: []*store.Call{{ID: "b", RootID: "b", State: store.Pending}}})
	is.True(err != nil)
	if !strings.Contains(err.Error(), "writes nothing until it has taken the lock back") {
		is.True(errors.Is(err, store.ErrFenced)) // the watch had not run yet
		is.True(strings.Contains(err.Error(), "another Dispatch server opened the database after this one"))
	}
	_, err = other.GetCall(t.Context(), "b")
	is.Equal(err, store.ErrNotFound)
	is.NoErr(other.Apply(t.Context(), &store.Batch{Calls: []*store.Call{{ID: "c", RootID: "c", State: store.Pending}}}))
}
