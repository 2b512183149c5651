package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dispatchkit/dispatch"
	"github.com/dispatchkit/dispatch/local"
	"github.com/dispatchkit/dispatch/server"
)

// app is an SDK instance of the bench with the server it dispatches to:
// its embedded server (local mode), or one on PostgreSQL started beside it
// (srv).
type app struct {
	d      *dispatch.Dispatch
	srv    *server.Server
	stop   context.CancelFunc // stops serving the endpoint
	served chan error
}

// Dispatch is the instance's [dispatch.Dispatch.Dispatch].
func (a *app) Dispatch(ctx context.Context, calls ...dispatch.Caller) ([]string, error) {
	return a.d.Dispatch(ctx, calls...)
}

// server returns the server the instance dispatches to.
func (a *app) server() *server.Server {
	if a.srv != nil {
		return a.srv
	}
	return local.Server(a.d)
}

// Close stops the server first (as the SDK does with its embedded one),
// then the endpoint and the instance.
func (a *app) Close() error {
	if a.srv == nil {
		return a.d.Close()
	}
	err := a.srv.Close()
	a.stop()
	return errors.Join(err, <-a.served, a.d.Close())
}

// openPostgres starts, for the workload named name, a server on a database
// of its own (made on the first open of that name in this round, so that
// (e) reopens the same one) and an SDK instance dispatching to it and
// serving its endpoint on a loopback port.
func (o *runner) openPostgres(name string) (*app, error) {
	db, err := o.database(fmt.Sprintf("%s-%d", name, o.round))
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	endpoint := "http://" + ln.Addr().String()
	srv, err := server.New(server.Config{Endpoint: endpoint, Postgres: db, Logger: o.log, AllowEndpoints: []string{"loopback"}})
	if err != nil {
		ln.Close()
		return nil, err
	}
	if err := srv.Start(context.Background()); err != nil {
		ln.Close()
		return nil, err
	}
	d, err := dispatch.New(
		dispatch.WithAPIURL(srv.URL()),
		dispatch.WithAPIKey(srv.APIKey()),
		dispatch.WithPublicKey(srv.PublicKey()),
		dispatch.WithEndpointURL(endpoint),
		dispatch.WithZerolog(o.log),
		dispatch.WithTrace(nil),
		dispatch.WithHTTPClient(o.hc),
	)
	if err != nil {
		srv.Close()
		ln.Close()
		return nil, err
	}
	ctx, stop := context.WithCancel(context.Background())
	a := &app{d: d, srv: srv, stop: stop, served: make(chan error, 1)}
	go func() { a.served <- d.Serve(ctx, ln) }()
	return a, nil
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
