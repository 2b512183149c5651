package dispatch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"
)

// ListenAndServe serves [Dispatch.Handler] on addr until ctx is done, then
// shuts down gracefully (in-flight runs get up to 10 s to finish). An empty
// addr listens on the host and port of the endpoint URL
// (DISPATCH_ENDPOINT_URL). It speaks HTTP/1.1 and cleartext HTTP/2, so
// Connect, gRPC and gRPC-Web clients are all served.
//
// Timeouts: request headers must arrive within 10 s, and the body within
// the body timeout of [Dispatch.Handler] (30 s, [WithBodyTimeout]); an
// idle keep-alive connection is closed after 2 minutes. Nothing bounds
// the time a function runs or its answer takes to write: there is no
// http.Server ReadTimeout or WriteTimeout, which would cut long runs
// short. To serve with other settings, mount the handler on a server of
// your own.
func (d *Dispatch) ListenAndServe(ctx context.Context, addr string) error {
	ln, err := d.listen(addr)
	if err != nil {
		return fmt.Errorf("dispatch: ListenAndServe: %w", err)
	}
	return d.Serve(ctx, ln)
}

// Start serves [Dispatch.Handler] in the background on the endpoint URL's
// address (see [Dispatch.ListenAndServe]) and returns once it accepts
// connections; [Dispatch.Close] stops it, as the end of ListenAndServe's
// context would.
func (d *Dispatch) Start() error {
	ln, err := d.listen("")
	if err != nil {
		return fmt.Errorf("dispatch: Start: %w", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	d.mu.Lock()
	d.stop, d.done = stop, done
	d.mu.Unlock()
	go func() { done <- d.Serve(ctx, ln) }()
	return nil
}

// listen returns the listener of the endpoint: the one made by local mode,
// or a new one on addr, or on the endpoint URL's host and port.
func (d *Dispatch) listen(addr string) (net.Listener, error) {
	if addr == "" {
		d.mu.Lock()
		ln := d.endpointLn
		d.endpointLn = nil
		d.mu.Unlock()
		if ln != nil {
			return ln, nil
		}
	}
	if addr == "" {
		if d.cfg.endpointURL == "" {
			return nil, fmt.Errorf("no address given and no %s to take one from", EnvEndpointURL)
		}
		u, _ := url.Parse(d.cfg.endpointURL) // checked by New
		addr = u.Host
		if u.Port() == "" {
			addr = net.JoinHostPort(u.Hostname(), map[string]string{"http": "80", "https": "443"}[u.Scheme])
		}
	}
	return net.Listen("tcp", addr)
}

// Serve is [Dispatch.ListenAndServe] on a listener the caller made.
func (d *Dispatch) Serve(ctx context.Context, ln net.Listener) error {
	d.markServing()
	srv := d.newServer()
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		select {
		case <-ctx.Done():
			shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = srv.Shutdown(shutdown)
		case <-done:
		}
	}()
	d.log.Info().Str("addr", ln.Addr().String()).Msg("dispatch: serving the endpoint")
	err := srv.Serve(ln)
	// srv.Serve returns as soon as Shutdown begins: wait for Shutdown, so
	// that in-flight runs get their time to finish before Serve returns.
	close(done)
	<-stopped
	if !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("dispatch: serve: %w", err)
	}
	return nil
}

// Timeouts of the server of ListenAndServe, Serve and Start.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 2 * time.Minute
)

func (d *Dispatch) newServer() *http.Server {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	p.SetHTTP2(true)
	return &http.Server{Handler: d.Handler(), Protocols: p, ReadHeaderTimeout: readHeaderTimeout, IdleTimeout: idleTimeout}
}
