package local_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/rs/zerolog"

	"github.com/dispatchkit/dispatch"
	"github.com/dispatchkit/dispatch/flow"
	"github.com/dispatchkit/dispatch/internal/pgtest"
	"github.com/dispatchkit/dispatch/local"
	"github.com/dispatchkit/dispatch/serde"
)

// A two-step workflow for the PostgreSQL tests: n -> (n+1)*2.
var (
	pgInc     = dispatch.Func("local.pg.inc", func(_ context.Context, n int) (int, error) { return n + 1, nil })
	pgDouble  = dispatch.Func("local.pg.double", func(_ context.Context, n int) (int, error) { return n * 2, nil })
	pgDoubled = flow.Then("local.pg.incremented", func(_ *flow.Ctx, n int) flow.Step[int] {
		return flow.Await(pgDouble.Call(n), flow.Return[int]())
	})
	pgFlow = dispatch.Flow("local.pg.flow", func(_ *flow.Ctx, n int) flow.Step[int] {
		return flow.Await(pgInc.Call(n), pgDoubled)
	})
)

// TestLocalPostgres checks local mode on PostgreSQL: one or two instances
// of the program on one database (replicas of its cluster) run workflows
// dispatched to either of them, and each result can be waited for from
// any instance.
func TestLocalPostgres(t *testing.T) {
	tests := []struct {
		name      string
		instances int
	}{
		{name: "one instance", instances: 1},
		{name: "two instances on one database", instances: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			db := pgtest.URL(t)
			ds := make([]*dispatch.Dispatch, tt.instances)
			for i := range ds {
				d, err := dispatch.New(dispatch.WithLocalPostgres(db), dispatch.WithEndpointURL(""), dispatch.WithZerolog(zerolog.Nop()), dispatch.WithTrace(nil))
				is.NoErr(err)
				t.Cleanup(func() { d.Close() })
				is.True(local.Server(d) != nil) // an embedded server
				is.Equal(d.StateDir(), "")      // no state directory: the calls are in the database
				is.NoErr(d.Start())
				ds[i] = d
			}
			for _, d := range ds[1:] {
				// One signing key, made by the first replica in the database.
				is.Equal(local.Server(d).PublicKey(), local.Server(ds[0]).PublicKey())
			}

			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			const n = 20
			ids := make([]string, n)
			for i := range ids {
				got, err := ds[i%len(ds)].Dispatch(ctx, pgFlow.Call(i))
				is.NoErr(err)
				ids[i] = got[0]
			}
			for i, id := range ids {
				d := ds[(i+1)%len(ds)] // waited for from another instance, when there is one
				res, err := d.Wait(ctx, id)
				is.NoErr(err)
				is.Equal(res.GetError().GetMessage(), "")
				var v int
				is.NoErr(serde.Unmarshal(res.GetOutput(), &v))
				is.Equal(v, (i+1)*2) // the workflow's result
			}
		})
	}
}

// TestLocalPostgresOptions checks that WithLocalPostgres refuses what it
// cannot honour, saying what to do.
func TestLocalPostgresOptions(t *testing.T) {
	tests := []struct {
		name string
		opts []dispatch.Option
		want []string
	}{
		{name: "empty URL", opts: []dispatch.Option{dispatch.WithLocalPostgres("")}, want: []string{`WithLocalPostgres("")`, "postgres://"}},
		{name: "with WithLocalServer", opts: []dispatch.Option{dispatch.WithLocalServer(t.TempDir()), dispatch.WithLocalPostgres("postgres://127.0.0.1:1/db")}, want: []string{"WithLocalServer and WithLocalPostgres", "pass one of them"}},
		{name: "with WithLocalFullSync", opts: []dispatch.Option{dispatch.WithLocalPostgres("postgres://127.0.0.1:1/db"), dispatch.WithLocalFullSync()}, want: []string{"WithLocalFullSync", "synchronous_commit", "drop WithLocalFullSync"}},
		{name: "no database there", opts: []dispatch.Option{dispatch.WithLocalPostgres("postgres://nobody@127.0.0.1:1/db?connect_timeout=5")}, want: []string{"dispatch: local mode:", "127.0.0.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			d, err := dispatch.New(append([]dispatch.Option{dispatch.WithZerolog(zerolog.Nop())}, tt.opts...)...)
			is.True(d == nil)
			is.True(err != nil)
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}
