// Command getting-started is an HTTP service whose GET / dispatches a call
// of publish, a function that POSTs a payload to a URL and fails on a
// non-2xx status: the Go version of Dispatch's Python quick start. Run it
// with
//
//	go run ./examples/getting-started
//
// then, in another terminal, curl the address it prints. By default a
// stand-in server started by the program receives the POST; give a real
// URL with -url (for example -url https://httpbin.org/post).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/dispatchkit/dispatch"
	_ "github.com/dispatchkit/dispatch/local" // local mode: a Dispatch server in-process when none is configured
)

// Message is the input of publish: a payload for a URL.
type Message struct {
	URL     string
	Payload string
}

// out is where the program reports what happens; functions run
// concurrently, and a log.Logger serializes its writes.
var out = log.New(os.Stdout, "", 0)

// Publish POSTs the payload to the URL. Its errors tell Dispatch what to
// do: a network error is classified (DNS, TCP, TLS errors and timeouts are
// retried), and dispatch.HTTPResponseError classifies a non-2xx answer by
// its status code (5xx and 429 are retried, other 4xx are not).
var Publish = dispatch.Func("publish", func(ctx context.Context, m Message) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.URL, strings.NewReader(m.Payload))
	if err != nil {
		return "", err // a malformed URL: PERMANENT_ERROR, not retried
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		out.Printf("publish: POST %s: %v (%s)\n", m.URL, err, dispatch.StatusOf(err))
		return "", err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	if err := dispatch.HTTPResponseError(res); err != nil {
		retry := "Dispatch will not retry"
		if dispatch.StatusOf(err).Retried() {
			retry = "Dispatch will retry"
		}
		out.Printf("publish: POST %s: %s (%s): %s\n", m.URL, res.Status, dispatch.StatusOf(err), retry)
		return "", err
	}
	out.Printf("publish: POST %s: %s\n", m.URL, res.Status)
	return res.Status, nil
})

func main() {
	addr := flag.String("addr", "127.0.0.1:8090", "address of the HTTP service")
	target := flag.String("url", "", "URL that publish POSTs to (default: a stand-in server started by this program)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "getting-started: %v (choose another address with -addr)\n", err)
		os.Exit(1)
	}
	if err := run(ctx, os.Stdout, ln, *target); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run serves the functions to Dispatch, and the service on ln, until ctx
// is done. With no DISPATCH_API_URL, New starts a local Dispatch server in
// this process. With target "", publish POSTs to a stand-in server.
func run(ctx context.Context, w io.Writer, ln net.Listener, target string, opts ...dispatch.Option) error {
	out.SetOutput(w)
	defer ln.Close()
	if target == "" {
		url, stop, err := serve(standIn())
		if err != nil {
			return err
		}
		defer stop()
		target = url
		out.Printf("stand-in for the remote URL listening at %s\n", target)
	}

	d, err := dispatch.New(opts...)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Start(); err != nil {
		return err
	}

	srv := &http.Server{Handler: service(target), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	out.Printf("service listening; try:\n\n  curl http://%s/\n\n", ln.Addr())

	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdown)
	if serr := <-done; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

// service is the application: GET / dispatches publish and answers at
// once. Dispatch runs the call later, and retries it until it succeeds.
func service(target string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		id, err := Publish.Dispatch(r.Context(), Message{URL: target, Payload: `{"hello":"world"}`})
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		out.Printf("GET /: dispatched publish as %s\n", id)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, "{\"answer\":\"Hello, Dispatch!\",\"dispatch_id\":%q}\n", id)
	})
	return mux
}

// standIn answers every POST with 200 and reports what it received.
func standIn() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		out.Printf("stand-in: received %s %s %s\n", r.Method, r.URL.Path, body)
	})
}

// serve serves h on a random loopback port and returns its URL and a
// function that stops it.
func serve(h http.Handler) (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	return "http://" + ln.Addr().String(), func() {
		srv.Close()
		<-done
	}, nil
}
