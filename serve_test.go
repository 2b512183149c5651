package dispatch

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"buf.build/gen/go/stealthrocket/dispatch-proto/connectrpc/go/dispatch/sdk/v1/sdkv1connect"
	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"connectrpc.com/connect"
	"github.com/dispatchkit/dispatch/serde"
	"github.com/matryer/is"
	"google.golang.org/protobuf/proto"
)

// TestServe serves the endpoint on a listener, calls it with Connect over
// HTTP/1.1 and with gRPC over cleartext HTTP/2, and shuts it down by
// cancelling the context.
func TestServe(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	d := newTest(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	is.NoErr(err)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- d.Serve(ctx, ln) }()

	h1 := &http.Transport{}
	h2c := &http.Transport{Protocols: new(http.Protocols)}
	h2c.Protocols.SetUnencryptedHTTP2(true)
	clients := []struct {
		name string
		tr   *http.Transport
		opts []connect.ClientOption
	}{
		{"connect over HTTP/1.1", h1, nil},
		{"grpc over h2c", h2c, []connect.ClientOption{connect.WithGRPC()}},
		{"grpc-web over HTTP/1.1", h1, []connect.ClientOption{connect.WithGRPCWeb()}},
	}
	for _, c := range clients {
		client := sdkv1connect.NewFunctionServiceClient(&http.Client{Transport: c.tr}, "http://"+ln.Addr().String(), c.opts...)
		res, err := client.Run(ctx, connect.NewRequest(runReq(t, "roottest.echo", c.name)))
		is.NoErr(err) // served
		var out string
		is.NoErr(serde.Unmarshal(res.Msg.GetExit().GetResult().GetOutput(), &out))
		is.Equal(out, c.name)
	}
	h1.CloseIdleConnections()
	h2c.CloseIdleConnections()

	cancel()
	is.NoErr(<-served) // a graceful shutdown is not an error
}

// TestServeGracefulShutdown cancels Serve while a run is in flight: the run
// completes, and Serve returns only after it has.
func TestServeGracefulShutdown(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	started, release := make(chan struct{}), make(chan struct{})
	var runDone atomic.Bool
	block, err := FuncSafely(uniqueName("roottest.block"), func(ctx context.Context, s string) (string, error) {
		close(started)
		<-release
		runDone.Store(true)
		return s, nil
	})
	is.NoErr(err)

	d := newTest(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	is.NoErr(err)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	served := make(chan bool, 1) // whether the run was done when Serve returned
	var serveErr error
	go func() {
		serveErr = d.Serve(ctx, ln)
		served <- runDone.Load()
	}()

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := sdkv1connect.NewFunctionServiceClient(&http.Client{Transport: tr}, "http://"+ln.Addr().String())
	answered := make(chan error, 1)
	req := connect.NewRequest(runReq(t, block.Name(), "in flight"))
	go func() {
		_, err := client.Run(context.Background(), req)
		answered <- err
	}()
	<-started // the run is in flight
	cancel()
	// Wait until the shutdown has begun (the listener is closed), polling
	// with a deadline, then let the run finish.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the listener is still open 10 s after the context was cancelled")
		}
	}
	close(release)
	is.True(<-served)    // Serve returned after the run in flight was done
	is.NoErr(serveErr)   // a graceful shutdown is not an error
	is.NoErr(<-answered) // and the run was answered
}

func TestListenAndServeErrors(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { taken.Close() }) // after the parallel subtests
	tests := []struct {
		name string
		opts []Option
		addr string
		want []string
	}{
		{name: "no address, no endpoint URL", want: []string{"ListenAndServe", EnvEndpointURL}},
		{name: "address taken", addr: taken.Addr().String(), want: []string{"ListenAndServe", taken.Addr().String()}},
		{
			name: "the endpoint URL's address taken",
			opts: []Option{WithEndpointURL("http://" + taken.Addr().String() + "/app")},
			want: []string{"ListenAndServe", taken.Addr().String()},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			d := newTest(t, tt.opts...)
			// Cancelled: should ListenAndServe wrongly start serving, it
			// stops at once instead of hanging the test.
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			err := d.ListenAndServe(ctx, tt.addr)
			is.True(err != nil)
			is.True(strings.HasPrefix(err.Error(), "dispatch: "))
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestStartCloseConcurrently starts and closes a local-mode instance at
// the same time: the endpoint's listener, made early by local mode, is
// taken by Start or closed by Close, and a second Close stops whatever
// Start began. Under -race it catches unguarded use of the listener when
// Close reaches it while Start is taking it (a narrow window: the test
// passes by chance on such code more often than not).
func TestStartCloseConcurrently(t *testing.T) {
	is := is.New(t)
	d, err := New(WithLocalServer(""), withEnv(func(string) (string, bool) { return "", false }))
	is.NoErr(err)
	started := make(chan error, 1)
	go func() { started <- d.Start() }()
	closed := d.Close()
	<-started // may fail: the listener was closed first
	is.NoErr(closed)
	is.NoErr(d.Close())
}

// TestServeSlowBody serves the endpoint with a small body timeout and
// sends, over HTTP/1.1 and h2c, a request whose body stalls after a few
// bytes: it is answered deadline_exceeded, or its connection closed,
// instead of holding the server. Meanwhile a run that started before it
// and lasts longer than the body timeout is answered, its context not
// cancelled: the deadline covers the body only (a connection-wide read
// deadline, such as http.Server.ReadTimeout sets on HTTP/2, would cut it
// short).
func TestServeSlowBody(t *testing.T) {
	t.Parallel()
	h2c := &http.Transport{Protocols: new(http.Protocols)}
	h2c.Protocols.SetUnencryptedHTTP2(true)
	h1 := &http.Transport{}
	closeIdle(t, h1)
	closeIdle(t, h2c)
	body := runBody(t, "roottest.echo", "slow")
	// The guards only keep a broken endpoint from hanging the test.
	const guard = 20 * time.Second
	tests := []struct {
		name string
		tr   *http.Transport
		// stall sends the headers of a request for body to addr, and a
		// few bytes of it, then waits. It returns the answer, or nil if
		// the connection was closed.
		stall func(t *testing.T, addr string) *outcome
	}{
		{
			name: "HTTP/1.1", tr: h1,
			// By hand: net/http's client waits for the whole body to be
			// written before it returns, even once answered.
			stall: func(t *testing.T, addr string) *outcome {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/proto\r\nContent-Length: %d\r\n\r\n", runPath, addr, len(body))
				c.Write(body[:4])
				c.SetReadDeadline(time.Now().Add(guard))
				res, err := http.ReadResponse(bufio.NewReader(c), nil)
				var ne net.Error
				switch {
				case errors.As(err, &ne) && ne.Timeout():
					t.Fatalf("no answer to a stalled body %v after it stalled, with a body timeout of 50 ms", guard)
				case err != nil:
					return nil // closed
				}
				o := readOutcome(t, res)
				return &o
			},
		},
		{
			name: "h2c", tr: h2c,
			stall: func(t *testing.T, addr string) *outcome {
				pr, pw := io.Pipe()
				defer pw.Close()
				go func() { _, _ = pw.Write(body[:4]) }()
				ctx, stop := context.WithTimeout(t.Context(), guard)
				defer stop()
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+runPath, pr)
				if err != nil {
					t.Fatal(err)
				}
				req.ContentLength = int64(len(body))
				req.Header.Set("Content-Type", "application/proto")
				res, err := h2c.RoundTrip(req)
				switch {
				case ctx.Err() != nil:
					t.Fatalf("no answer to a stalled body %v after it stalled, with a body timeout of 50 ms", guard)
				case err != nil:
					return nil // closed
				}
				o := readOutcome(t, res)
				return &o
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			started, release := make(chan struct{}), make(chan struct{})
			hold, err := FuncSafely(uniqueName("roottest.hold"), func(ctx context.Context, s string) (string, error) {
				close(started)
				select {
				case <-release:
					return s, nil
				case <-ctx.Done():
					return "", fmt.Errorf("roottest: the run was cancelled: %w", context.Cause(ctx))
				}
			})
			is.NoErr(err)
			d := newTest(t, WithBodyTimeout(50*time.Millisecond))
			addr := serveLoopback(t, d)
			t.Cleanup(tt.tr.CloseIdleConnections) // before the shutdown, so that it need not wait for them

			// A long run, whose body arrived in full.
			long := make(chan outcome, 1)
			go func() {
				req, _ := http.NewRequest(http.MethodPost, "http://"+addr+runPath, bytes.NewReader(runBody(t, hold.Name(), "held")))
				req.Header.Set("Content-Type", "application/proto")
				res, err := (&http.Client{Transport: tt.tr}).Do(req)
				if err != nil {
					long <- outcome{message: err.Error()}
					return
				}
				long <- readOutcome(t, res)
			}()
			<-started

			if o := tt.stall(t, addr); o != nil { // answered rather than closed
				is.Equal(o.code, connect.CodeDeadlineExceeded)
				is.True(strings.Contains(o.message, "WithBodyTimeout"))
			}

			close(release)
			o := <-long
			is.Equal(o.status, http.StatusOK) // the long run was answered
			var msg sdkv1.RunResponse
			is.NoErr(proto.Unmarshal(o.body, &msg))
			is.Equal(output[string](t, &msg), "held") // and not cancelled
		})
	}
}

// TestServeUnreadBody sends, over HTTP/1.1, requests whose body the
// handler does not read to its end (another path, a body over the limit)
// and which stall after a few bytes: net/http reads what is left of such a
// body after the answer, and the body timeout bounds that read too, so the
// request is answered and its connection closed instead of held.
func TestServeUnreadBody(t *testing.T) {
	t.Parallel()
	d := newTest(t, WithBodyTimeout(50*time.Millisecond), WithMaxRequestBytes(1000))
	addr := serveLoopback(t, d)
	// A gRPC prefix announcing the 1,995 bytes that follow it.
	grpcHead := string(binary.BigEndian.AppendUint32([]byte{0}, 1995))
	tests := []struct {
		name        string
		path        string
		contentType string
		sent        string // of a body of 2,000 bytes
		status      string // of the answer
	}{
		{"another path", "/other", "application/proto", "0123456789", "404"},
		{"over the limit, Connect", runPath, "application/proto", "0123456789", "413"},
		{"over the limit, gRPC", runPath, "application/grpc", grpcHead + "01234", "200"}, // grpc-status 8
		{"over the limit, unframed gRPC", runPath, "application/grpc+proto", "0123456789", "413"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			c, err := net.Dial("tcp", addr)
			is.NoErr(err)
			defer c.Close()
			fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: 2000\r\n\r\n%s", tt.path, tt.contentType, tt.sent)
			// The guard only keeps a broken endpoint from hanging the test.
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			out, err := io.ReadAll(c)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the endpoint kept the connection open, a body timeout of 50 ms notwithstanding; read so far: %q", out)
			}
			is.True(strings.HasPrefix(string(out), "HTTP/1.1 "+tt.status)) // an answer, then the connection closed
		})
	}
}

// TestServerTimeouts checks the timeouts of the server ListenAndServe and
// Start build: headers and idle connections are bounded, runs are not.
func TestServerTimeouts(t *testing.T) {
	t.Parallel()
	srv := newTest(t).newServer()
	tests := []struct {
		name      string
		got, want time.Duration
	}{
		{"ReadHeaderTimeout", srv.ReadHeaderTimeout, 10 * time.Second},
		{"IdleTimeout", srv.IdleTimeout, 2 * time.Minute},
		{"ReadTimeout", srv.ReadTimeout, 0},   // would cut long runs short
		{"WriteTimeout", srv.WriteTimeout, 0}, // likewise
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is.New(t).Equal(tt.got, tt.want)
		})
	}
}

// serveLoopback serves d on a new loopback listener until the end of the
// test (t.Cleanup: the cleanups registered after it run before the
// shutdown), and returns the listener's address. A shutdown that fails
// fails the test.
func serveLoopback(t *testing.T, d *Dispatch) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- d.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}
