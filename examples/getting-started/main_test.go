package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dispatchkit/dispatch"
	"github.com/matryer/is"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestGettingStarted(t *testing.T) {
	tests := []struct {
		name string
		// remote is the status codes a remote URL answers, in order (the
		// last one repeats); nil uses the program's stand-in.
		remote []int
		want   []string
	}{
		{"stand-in", nil, []string{
			"GET /: dispatched publish as ",
			`stand-in: received POST / {"hello":"world"}`,
			"publish: POST http://127.0.0.1:",
			": 200 OK",
		}},
		{"remote URL", []int{http.StatusOK}, []string{
			"GET /: dispatched publish as ",
			": 200 OK",
		}},
		{"remote URL failing twice", []int{http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusOK}, []string{
			"503 Service Unavailable (TEMPORARY_ERROR): Dispatch will retry",
			"502 Bad Gateway (TEMPORARY_ERROR): Dispatch will retry",
			": 200 OK",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()

			// received gets the payloads the remote URL accepted.
			received := make(chan string, 4)
			target := ""
			if tt.remote != nil {
				var n atomic.Int32
				remote := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					code := tt.remote[min(int(n.Add(1))-1, len(tt.remote)-1)]
					body, _ := io.ReadAll(r.Body)
					w.WriteHeader(code)
					if code == http.StatusOK {
						received <- string(body)
					}
				}))
				defer remote.Close()
				target = remote.URL
			}

			ln, err := net.Listen("tcp", "127.0.0.1:0")
			is.NoErr(err)
			w := newWatcher()
			runCtx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- run(runCtx, w, ln, target, dispatch.WithLocalServer(t.TempDir())) }()

			res, err := http.Get("http://" + ln.Addr().String() + "/")
			is.NoErr(err)
			body, err := io.ReadAll(res.Body)
			res.Body.Close()
			is.NoErr(err)
			is.Equal(res.StatusCode, http.StatusOK)
			is.True(strings.Contains(string(body), `"answer":"Hello, Dispatch!"`))

			// The dispatch is fire-and-forget: wait for the payload to
			// arrive, then for publish to report its success.
			if tt.remote != nil {
				select {
				case got := <-received:
					is.Equal(got, `{"hello":"world"}`)
				case <-ctx.Done():
					t.Fatalf("the remote URL received nothing:\n%s", w)
				}
			}
			select {
			case <-w.waitFor(": 200 OK\n"):
			case <-ctx.Done():
				t.Fatalf("publish did not succeed:\n%s", w)
			}
			stop()
			is.NoErr(<-done)
			for _, s := range tt.want {
				if !strings.Contains(w.String(), s) {
					t.Errorf("output lacks %q:\n%s", s, w)
				}
			}
		})
	}
}

// watcher is an io.Writer that signals when what was written contains a
// string.
type watcher struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	waits map[string]chan struct{}
}

func newWatcher() *watcher { return &watcher{waits: map[string]chan struct{}{}} }

func (w *watcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	w.check()
	return n, err
}

// waitFor returns a channel closed once the output contains s.
func (w *watcher) waitFor(s string) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	ch := make(chan struct{})
	w.waits[s] = ch
	w.check()
	return ch
}

func (w *watcher) check() {
	for s, ch := range w.waits {
		if strings.Contains(w.buf.String(), s) {
			close(ch)
			delete(w.waits, s)
		}
	}
}

func (w *watcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
