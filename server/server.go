package server

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"buf.build/gen/go/stealthrocket/dispatch-proto/connectrpc/go/dispatch/sdk/v1/sdkv1connect"
	"buf.build/go/protovalidate"
	"connectrpc.com/connect"

	"github.com/dispatchkit/dispatch/internal/endpointpolicy"
	"github.com/dispatchkit/dispatch/internal/scheduler"
	"github.com/dispatchkit/dispatch/internal/signature"
	"github.com/dispatchkit/dispatch/internal/store"
	"github.com/dispatchkit/dispatch/internal/store/memstore"
	"github.com/dispatchkit/dispatch/internal/store/sqlitestore"
)

// maxRequestBytes bounds a DispatchRequest.
const maxRequestBytes = 16 << 20

// compressMinBytes is the smallest answer the server compresses.
const compressMinBytes = 4 << 10

// Server is a local Dispatch server. Make one with [New], run it with
// [Server.Start], stop it with [Server.Shutdown] or [Server.Close].
type Server struct {
	cfg Config
	key ed25519.PrivateKey
	// store is where calls are read (results, inspection): the engine's
	// store, or the reader of all partitions of a replica.
	store store.Store
	// engine runs the calls of a server that owns its store (memory,
	// SQLite); cl, those of a replica on PostgreSQL, one engine per
	// partition it owns (replicas.go). One of the two is nil.
	engine *scheduler.Engine
	cl     *cluster
	policy *endpointpolicy.Policy
	sign   func(r *http.Request, body []byte) error
	http   *http.Server
	svc    *dispatchService // DispatchService, for DispatchInProcess too

	mu        sync.Mutex
	ln        net.Listener
	serveErr  chan error
	closeOnce sync.Once
	closeErr  error
	stopping  chan struct{} // closed when shutdown begins: ends waits for results
	unlock    func() error  // releases the state directory's lock
}

// New checks cfg, opens the store and loads (or makes) the signing key.
// It does not listen nor run calls: call [Server.Start].
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	unlock := func() error { return nil }
	if !cfg.Memory && cfg.Postgres == "" { // the PostgreSQL store locks its database itself
		var err error
		if unlock, err = lockDir(cfg.StateDir); err != nil {
			return nil, err
		}
	}
	s, err := newLocked(cfg)
	if err != nil {
		unlock()
		return nil, err
	}
	s.unlock = unlock
	return s, nil
}

// openTimeout bounds the connection to PostgreSQL, its migration and the
// reading of the signing key, in New.
const openTimeout = 30 * time.Second

// newLocked is New once the state directory is locked.
func newLocked(cfg Config) (*Server, error) {
	var st store.Store
	var key ed25519.PrivateKey
	var cl *cluster
	var err error
	policy, err := cfg.endpointPolicy()
	if err != nil {
		return nil, err
	}
	switch {
	case cfg.Postgres != "":
		// A replica: the engines come with the leases (replicas.go).
		ctx, cancel := context.WithTimeout(context.Background(), openTimeout)
		defer cancel()
		if cl, err = openCluster(ctx, &cfg); err != nil {
			return nil, err
		}
		if key, err = postgresKey(ctx, &cfg, cl.db); err != nil {
			cl.db.Close()
			return nil, err
		}
		st = cl.db.Reader()
	case cfg.Memory:
		if key, err = signingKey(&cfg); err != nil {
			return nil, err
		}
		st = memstore.New()
	default:
		if key, err = signingKey(&cfg); err != nil {
			return nil, err
		}
		st, err = sqlitestore.Open(filepath.Join(cfg.StateDir, "dispatch.db"), sqlitestore.Options{FullSync: cfg.FullSync})
		if err != nil {
			return nil, fmt.Errorf("server: opening the store in Config.StateDir %q: %w", cfg.StateDir, err)
		}
	}
	signer := signature.NewSigner(key)
	s := &Server{cfg: cfg, key: key, store: st, policy: policy, sign: signer.Sign, stopping: make(chan struct{})}
	if cl != nil {
		cl.s = s
		s.cl = cl
	} else {
		if cfg.wrapStore != nil {
			st = cfg.wrapStore(st)
			s.store = st
		}
		eng, err := scheduler.New(s.engineConfig(st))
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("server: %w", err)
		}
		s.engine = eng
	}
	closeStore := func() {
		if cl != nil {
			cl.db.Close()
		} else {
			st.Close()
		}
	}
	validator, err := protovalidate.New()
	if err != nil {
		closeStore()
		return nil, fmt.Errorf("server: protovalidate: %w", err)
	}
	s.svc = &dispatchService{s: s, validator: validator}
	mux := http.NewServeMux()
	path, h := sdkv1connect.NewDispatchServiceHandler(
		s.svc,
		connect.WithReadMaxBytes(maxRequestBytes),
		// A DispatchResponse is a few ids: gzip (which clients accept by
		// default) costs more to set up than it saves below a few KB.
		connect.WithCompressMinBytes(compressMinBytes),
	)
	mux.Handle(path, s.authorize(h))
	mux.Handle(inspectPrefix, s.inspectHandler())
	mux.HandleFunc("GET "+inspectPrefix+"health", s.serveHealth) // no key needed
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true) // gRPC over cleartext (h2c)
	s.http = &http.Server{
		Handler:   bodyDeadline(mux, cfg.BodyReadTimeout),
		Protocols: &protocols,
		// Not ReadTimeout: bodyDeadline bounds the body alone, from the
		// end of the headers, and closes a connection whose body failed.
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		ErrorLog:          nil,
	}
	return s, nil
}

// engineConfig is the configuration of an engine of the server on st.
func (s *Server) engineConfig(st store.Store) scheduler.Config {
	cfg := s.cfg
	return scheduler.Config{
		Store:              st,
		Sign:               s.sign,
		Logger:             cfg.Logger,
		DefaultExpiration:  cfg.DefaultExpiration,
		MinBackoff:         cfg.MinBackoff,
		MaxBackoff:         cfg.MaxBackoff,
		AttemptTimeout:     cfg.AttemptTimeout,
		MaxRestarts:        cfg.MaxRestarts,
		DefaultEndpoint:    cfg.Endpoint,
		InitialConcurrency: cfg.InitialConcurrency,
		MaxConcurrency:     cfg.MaxConcurrency,
		CommitRetry:        cfg.commitRetry,
		MaxHold:            cfg.maxHold,
		NoEarlyStart:       cfg.noEarlyStart,
		Policy:             s.policy,
		KeyRetention:       cfg.KeyRetention,
		Local:              localEndpoint(cfg),
	}
}

// readHeaderTimeout bounds the time to read a request's headers.
const readHeaderTimeout = 10 * time.Second

// authorize refuses a DispatchService request without the API key before
// its body is read (a caller without the key must not make the server read
// 16 MB first), with the error of the request's protocol (Connect, gRPC or
// gRPC-Web), as the service itself would answer it.
func (s *Server) authorize(h http.Handler) http.Handler {
	ew := connect.NewErrorWriter()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !authorized(r.Header, s.cfg.APIKey) {
			ew.Write(w, r, connect.NewError(connect.CodeUnauthenticated, errUnauthenticated))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// bodyDeadline bounds the time to read the body of each request to d, by
// a read deadline on the connection (HTTP/1) or the stream (HTTP/2) that
// is cleared once the body is read to its end, so that it never cuts what
// the handler does next (a wait for a result lasts up to 60 s). A body not
// read to its end (a handler that does not read it, an error) keeps the
// deadline, so that the server's attempt to drain it afterwards cannot be
// held either. An HTTP/1 connection whose body could not be read is
// closed after the answer: what remains of the body must not be read as
// the next request, nor hold the connection (connect's handlers run in
// full-duplex mode, in which net/http does not close it by itself).
func bodyDeadline(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			rc := http.NewResponseController(w)
			if rc.SetReadDeadline(time.Now().Add(d)) == nil {
				r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc, w: w, http1: r.ProtoMajor == 1}
			}
		}
		h.ServeHTTP(w, r)
	})
}

// deadlineBody clears the read deadline of its request once the body is
// read to its end (net/http also clears it for HTTP/1 when it starts its
// background read; this does it for every protocol), and closes an HTTP/1
// connection after the answer when the body could not be read.
type deadlineBody struct {
	io.ReadCloser
	rc    *http.ResponseController
	w     http.ResponseWriter
	http1 bool
	done  bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && !b.done {
		b.done = true
		if err == io.EOF {
			b.rc.SetReadDeadline(time.Time{})
		} else if b.http1 {
			b.w.Header().Set("Connection", "close")
		}
	}
	return n, err
}

// Start recovers the calls in flight from the store (logging how many),
// listens on Config.Addr and serves in the background. It returns once
// the server accepts connections. If Start fails, the server is closed.
//
// If the store was last used with another default endpoint
// (Config.Endpoint), the calls in flight bound to that previous default
// move to the new one, durably, before any runs, and the log says
// "moved N calls from the previous endpoint OLD to NEW". This is what lets
// a program in local mode, whose endpoint listens on a new random port at
// each run, finish the calls of its previous run. Calls that named
// another endpoint stay with it.
//
// A replica (Config.Postgres) listens first, since its advertised URL
// may be its listener's, then registers itself in the database, takes its
// share of the free partitions and recovers each, before it serves (see
// "Several replicas" in the package documentation).
func (s *Server) Start(ctx context.Context) error {
	if s.engine != nil {
		if err := s.engine.Start(ctx); err != nil {
			s.Close()
			return fmt.Errorf("server: %w", err)
		}
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		s.Close()
		return fmt.Errorf("server: listening on Config.Addr %q: %w", s.cfg.Addr, err)
	}
	if s.cl != nil {
		if err := s.cl.start(ctx, ln.Addr()); err != nil {
			ln.Close()
			s.Close()
			return err
		}
	}
	s.mu.Lock()
	s.ln = ln
	s.serveErr = make(chan error, 1)
	s.mu.Unlock()
	go func() {
		err := s.http.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.serveErr <- err
	}()
	s.cfg.Logger.Info().Str("addr", ln.Addr().String()).Str("endpoint", s.cfg.Endpoint).Msg("dispatch server started")
	return nil
}

// Addr returns the host:port the server listens on ("" before Start).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// URL returns the server's base URL, http://host:port, the value of
// DISPATCH_API_URL ("" before Start).
func (s *Server) URL() string {
	addr := s.Addr()
	if addr == "" {
		return ""
	}
	return "http://" + addr
}

// APIKey returns the bearer token DispatchService requires, the value of
// DISPATCH_API_KEY.
func (s *Server) APIKey() string { return s.cfg.APIKey }

// Endpoint returns the default endpoint URL (Config.Endpoint).
func (s *Server) Endpoint() string { return s.cfg.Endpoint }

// VerificationKey returns the public key that verifies the server's
// requests, as standard padded base64 of the raw 32 bytes: the value of
// DISPATCH_VERIFICATION_KEY.
func (s *Server) VerificationKey() string {
	return signature.EncodePublicKey(s.PublicKey())
}

// PublicKey returns the public key that verifies the server's requests.
func (s *Server) PublicKey() ed25519.PublicKey {
	return s.key.Public().(ed25519.PublicKey)
}

// Stats counts the calls a running server holds in memory.
type Stats struct {
	Live      int // calls not final
	Suspended int // calls waiting for results or for the end of a sleep
	// StateBytes is the total size of the coroutine states of the live
	// calls, as stored; Stateful is how many live calls have one.
	StateBytes int64
	Stateful   int
	// Held counts the await steps whose child's outcome was committed
	// with its parent's answer, in one transaction, rather than before the
	// parent's resume; HeldAlone, those of them committed on their own
	// after all (another result for the parent came first, the answer was
	// late, or the server stopped). Since the server started.
	Held, HeldAlone int64
	// Early counts the children started while the change that creates
	// them was being stored, rather than after. Since the server started.
	Early int64
}

// Stats returns counts of the server's live calls, for metrics and
// benchmarks. It visits every live call: do not call it in a hot loop.
func (s *Server) Stats() Stats {
	var st scheduler.Stats
	for _, e := range s.engines() {
		st.Add(e.Stats())
	}
	return Stats(st) // the same fields, documented for the server's users
}

// Health returns nil while the server accepts and runs calls, and else
// why not: not started, stopping, or its store cannot write (the error
// says what failed; calls already accepted resume after a restart).
//
// A replica (Config.Postgres) is healthy while one of its partitions runs,
// or while it owns none because the other replicas own them all; see
// [Server.Partitions] for which it owns.
func (s *Server) Health() error {
	if s.cl != nil {
		return s.cl.health()
	}
	err := s.engine.Err()
	var se *scheduler.StoreError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se):
		return storeFailed(se)
	default:
		return errors.New("server: not running: not started yet, or stopping")
	}
}

// Partitions returns the partitions of the database that this replica
// owns and runs, in order (see "Several replicas" in the package
// documentation); nil for a server that is not a replica (no
// Config.Postgres).
func (s *Server) Partitions() []int {
	if s.cl == nil {
		return nil
	}
	return s.cl.partitions()
}

// Handler returns the server's HTTP handler (DispatchService over Connect,
// gRPC and gRPC-Web, and the inspection API), for callers that serve it
// themselves; [Server.Start] must still be called to run calls.
func (s *Server) Handler() http.Handler { return s.http.Handler }

// Shutdown stops accepting requests, waits for those in progress (until
// ctx ends), stops running calls and closes the store. Calls in flight are
// not lost: they are in the store and resume on the next start. Every
// goroutine of the server has returned when Shutdown returns.
func (s *Server) Shutdown(ctx context.Context) error { return s.shutdown(ctx, true) }

// Close stops the server at once: open connections are closed rather than
// drained. See [Server.Shutdown].
func (s *Server) Close() error { return s.shutdown(context.Background(), false) }

func (s *Server) shutdown(ctx context.Context, graceful bool) error {
	s.closeOnce.Do(func() {
		close(s.stopping)
		var errs []error
		s.mu.Lock()
		ln, serveErr := s.ln, s.serveErr
		s.mu.Unlock()
		if ln != nil {
			if !graceful {
				s.http.Close()
			} else if err := s.http.Shutdown(ctx); err != nil {
				errs = append(errs, err)
				s.http.Close()
			}
			if err := <-serveErr; err != nil {
				errs = append(errs, err)
			}
		}
		if s.cl != nil {
			if err := s.cl.close(); err != nil {
				errs = append(errs, err)
			}
		} else {
			if err := s.engine.Close(); err != nil {
				errs = append(errs, err)
			}
			if err := s.store.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		if s.unlock != nil {
			if err := s.unlock(); err != nil {
				errs = append(errs, err)
			}
		}
		if err := errors.Join(errs...); err != nil {
			s.closeErr = fmt.Errorf("server: shutting down: %w", err)
		}
		s.cfg.Logger.Info().Msg("dispatch server stopped")
	})
	return s.closeErr
}

// engines returns the engines that run the server's calls: its one
// engine, or those of the partitions a replica owns.
func (s *Server) engines() []*scheduler.Engine {
	if s.cl != nil {
		return s.cl.engines()
	}
	return []*scheduler.Engine{s.engine}
}

// Serve runs a server for cfg until ctx ends, then shuts it down (giving
// requests in progress 5 seconds). ready, if not nil, is called once the
// server accepts connections.
func Serve(ctx context.Context, cfg Config, ready func(*Server)) error {
	s, err := New(cfg)
	if err != nil {
		return err
	}
	if err := s.Start(ctx); err != nil {
		return err // Start closed s
	}
	if ready != nil {
		ready(s)
	}
	<-ctx.Done()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.Shutdown(shutdownCtx)
}

// localEndpoint is the scheduler's in-process endpoint of cfg, if any.
func localEndpoint(cfg Config) *scheduler.LocalEndpoint {
	if cfg.EndpointRun == nil || cfg.Endpoint == "" {
		return nil
	}
	return &scheduler.LocalEndpoint{URL: cfg.Endpoint, Run: cfg.EndpointRun}
}
