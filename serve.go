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
func (d *Dispatch) ListenAndServe(ctx context.Context, addr string) error {
	if addr == "" {
		if d.cfg.endpointURL == "" {
			return fmt.Errorf("dispatch: ListenAndServe: no address given and no %s to take one from", EnvEndpointURL)
		}
		u, _ := url.Parse(d.cfg.endpointURL) // checked by New
		addr = u.Host
		if u.Port() == "" {
			addr = net.JoinHostPort(u.Hostname(), map[string]string{"http": "80", "https": "443"}[u.Scheme])
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("dispatch: ListenAndServe: %w", err)
	}
	return d.Serve(ctx, ln)
}

// Serve is [Dispatch.ListenAndServe] on a listener the caller made.
func (d *Dispatch) Serve(ctx context.Context, ln net.Listener) error {
	srv := d.newServer()
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = srv.Shutdown(shutdown)
		case <-done:
		}
	}()
	d.log.Info().Str("addr", ln.Addr().String()).Msg("dispatch: serving the endpoint")
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("dispatch: serve: %w", err)
	}
	return nil
}

func (d *Dispatch) newServer() *http.Server {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	p.SetHTTP2(true)
	return &http.Server{Handler: d.Handler(), Protocols: p, ReadHeaderTimeout: 10 * time.Second}
}
