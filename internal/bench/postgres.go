package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dispatchkit/dispatch"
	"github.com/dispatchkit/dispatch/local"
	"github.com/dispatchkit/dispatch/server"
)

// app is an SDK instance of the bench with the server it dispatches to:
// its embedded server (local mode), or one or more replicas on PostgreSQL
// started beside it (srvs), each with an SDK instance of its own that
// dispatches to it (ds; ds[0] is d, which serves the endpoint).
type app struct {
	d      *dispatch.Dispatch
	pg     bool // on PostgreSQL: srvs and ds, beside d
	local  bool // on PostgreSQL, each of ds in local mode, srvs their embedded servers
	srvs   []*server.Server
	ds     []*dispatch.Dispatch
	rr     atomic.Uint32
	stop   context.CancelFunc // stops serving the endpoint
	served chan error
}

// Dispatch is the instance's [dispatch.Dispatch.Dispatch]; with several
// replicas, the next replica's, round-robin.
func (a *app) Dispatch(ctx context.Context, calls ...dispatch.Caller) ([]string, error) {
	ids, _, err := a.dispatchAt(ctx, calls...)
	return ids, err
}

// dispatchAt is Dispatch that also returns the server the calls were
// sent to. A replica runs the calls of a Dispatch request without a key
// in one of its own partitions, and wakes a wait for their results at
// once; another would read the call's row until it is done.
func (a *app) dispatchAt(ctx context.Context, calls ...dispatch.Caller) ([]string, *server.Server, error) {
	if len(a.srvs) < 2 {
		ids, err := a.d.Dispatch(ctx, calls...)
		return ids, a.server(), err
	}
	i := int(a.rr.Add(1)) % len(a.srvs)
	ids, err := a.ds[i].Dispatch(ctx, calls...)
	return ids, a.srvs[i], err
}

// server returns the (first) server the instance dispatches to.
func (a *app) server() *server.Server {
	if len(a.srvs) > 0 {
		return a.srvs[0]
	}
	return local.Server(a.d)
}

// Close stops the servers first (as the SDK does with its embedded one),
// then the endpoint and the instances.
func (a *app) Close() error {
	if !a.pg {
		return a.d.Close()
	}
	var errs []error
	if a.local {
		for _, d := range a.ds {
			errs = append(errs, d.Close()) // and its embedded server
		}
		return errors.Join(errs...)
	}
	for _, srv := range a.srvs {
		errs = append(errs, srv.Close())
	}
	if a.stop != nil {
		a.stop()
		errs = append(errs, <-a.served)
	}
	for _, d := range a.ds {
		errs = append(errs, d.Close())
	}
	return errors.Join(errs...)
}

// openPostgres starts, for the workload named name, the replicas of the
// lane (one unless --replicas) on a database of their own (made on the
// first open of that name in this round and lane, so that (e) reopens the
// same one), waits until the partitions are spread over them, and starts
// an SDK instance per replica, dispatching to it; the first serves the
// endpoint on a loopback port for them all.
func (o *runner) openPostgres(name string) (a *app, err error) {
	key := fmt.Sprintf("%s-%d", name, o.round)
	if o.replicas > 1 {
		key = fmt.Sprintf("%s-r%d-%d", name, o.replicas, o.round)
	}
	db, err := o.database(key)
	if err != nil {
		return nil, err
	}
	if o.transport == "inproc" {
		return o.openLocalPostgres(db)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	endpoint := "http://" + ln.Addr().String()
	a = &app{pg: true}
	defer func() {
		if err != nil {
			if a.stop == nil {
				ln.Close()
			}
			a.Close()
		}
	}()
	for range max(1, o.replicas) {
		srv, err := server.New(server.Config{Endpoint: endpoint, Postgres: db, Logger: o.log, AllowEndpoints: []string{"loopback"}})
		if err != nil {
			return nil, err
		}
		if err := srv.Start(context.Background()); err != nil {
			srv.Close()
			return nil, err
		}
		a.srvs = append(a.srvs, srv)
	}
	if err := spread(a.srvs); err != nil {
		return nil, err
	}
	for _, srv := range a.srvs {
		d, err := dispatch.New(o.sdkOptions(
			dispatch.WithAPIURL(srv.URL()),
			dispatch.WithAPIKey(srv.APIKey()),
			dispatch.WithPublicKey(srv.PublicKey()),
			dispatch.WithEndpointURL(endpoint),
		)...)
		if err != nil {
			return nil, err
		}
		a.ds = append(a.ds, d)
	}
	a.d = a.ds[0]
	ctx, stop := context.WithCancel(context.Background())
	a.stop, a.served = stop, make(chan error, 1)
	go func() { a.served <- a.d.Serve(ctx, ln) }()
	return a, nil
}

// openLocalPostgres starts the replicas of the lane on the database db
// as instances of the program in local mode on it
// (dispatch.WithLocalPostgres), each calling the functions in process and
// serving its own endpoint, and waits until the partitions are spread
// over them.
func (o *runner) openLocalPostgres(db string) (a *app, err error) {
	a = &app{pg: true, local: true}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	os.Setenv(dispatch.EnvLocalTransport, "inproc") // read by New (see open)
	for range max(1, o.replicas) {
		d, err := dispatch.New(o.localOptions(dispatch.WithLocalPostgres(db))...)
		if err != nil {
			return nil, err
		}
		a.ds = append(a.ds, d)
		if err := d.Start(); err != nil {
			return nil, err
		}
		a.srvs = append(a.srvs, local.Server(d))
	}
	a.d = a.ds[0]
	if err := spread(a.srvs); err != nil {
		return nil, err
	}
	return a, nil
}

// spreadTimeout bounds the wait for the partitions to spread over the
// replicas of a lane: a few rounds of their managers (2 s each by
// default, moving 4 partitions a round).
const spreadTimeout = time.Minute

// spread waits until the replicas srvs, the first started alone on a new
// database (so it took every partition), own the partitions evenly: the
// figures of N replicas are those of N replicas at work, not of one
// giving its partitions away.
func spread(srvs []*server.Server) error {
	n := len(srvs[0].Partitions())
	if len(srvs) == 1 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), spreadTimeout)
	defer cancel()
	return waitUntil(ctx, fmt.Sprintf("the %d partitions to spread over %d replicas", n, len(srvs)), func() bool {
		sum, least, most := 0, n, 0
		for _, s := range srvs {
			k := len(s.Partitions())
			sum, least, most = sum+k, min(least, k), max(most, k)
		}
		return sum == n && most-least <= 1
	})
}

// database returns the URL of the bench's database for key, making it on
// the server of --postgres on first use.
func (o *runner) database(key string) (string, error) {
	if u, ok := o.pgDBs[key]; ok {
		return u, nil
	}
	u, err := url.Parse(o.Postgres)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("--postgres %s is not a postgres:// URL (like postgres://user:password@127.0.0.1:5432/postgres)", redactURL(o.Postgres))
	}
	name := pgx.Identifier{fmt.Sprintf("dispatch_bench_%d_%s", os.Getpid(), key)}.Sanitize()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := pgExec(ctx, o.Postgres, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("--postgres: making the database %s on %s (the bench makes one per workload, so its user needs CREATEDB): %w", name, redactURL(o.Postgres), err)
	}
	if o.pgDBs == nil {
		o.pgDBs = map[string]string{}
	}
	u.Path = "/" + name[1:len(name)-1] // unquoted
	o.pgDBs[key] = u.String()
	return o.pgDBs[key], nil
}

// dropDatabases drops the databases the bench made.
func (o *runner) dropDatabases(stderr io.Writer) {
	for _, db := range o.pgDBs {
		u, _ := url.Parse(db)
		name := pgx.Identifier{u.Path[1:]}.Sanitize()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := pgExec(ctx, o.Postgres, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			fmt.Fprintf(stderr, "bench: dropping the database %s: %v\n", name, err)
		}
		cancel()
	}
}

func pgExec(ctx context.Context, dsn, sql string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// redactURL hides the password of a URL.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return "the --postgres URL"
}
