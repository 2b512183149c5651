package dispatch

import (
	"net"
	"net/http"
	"strings"
	"testing"

	"buf.build/gen/go/stealthrocket/dispatch-proto/connectrpc/go/dispatch/sdk/v1/sdkv1connect"
	"github.com/matryer/is"
)

// grpcOnly serves h to gRPC requests only, as a grpcio server such as
// dispatch-py's mock does: other content types are refused with 415, and
// the server speaks cleartext HTTP/2 only (h2c with prior knowledge), not
// HTTP/1.1. It returns the server's URL.
func grpcOnly(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: p, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ct := r.Header.Get("Content-Type"); ct != "application/grpc" && !strings.HasPrefix(ct, "application/grpc+") {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusUnsupportedMediaType)
			return
		}
		h.ServeHTTP(w, r)
	})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return "http://" + ln.Addr().String()
}

// TestProtocol dispatches to a gRPC-only DispatchService with each
// protocol: gRPC works (over h2c, with the client this package makes or a
// user's own that speaks h2c); the others fail with an error that says to
// pass WithProtocol(ProtocolGRPC).
func TestProtocol(t *testing.T) {
	t.Parallel()
	h1 := &http.Transport{}
	h2c := &http.Transport{Protocols: new(http.Protocols)}
	h2c.Protocols.SetUnencryptedHTTP2(true)
	closeIdle(t, h1)
	closeIdle(t, h2c)
	tests := []struct {
		name string
		opts []Option
		want []string // in the error; nil for a success
	}{
		{name: "gRPC", opts: []Option{WithProtocol(ProtocolGRPC)}},
		{name: "gRPC, an h2c client of the user's", opts: []Option{WithProtocol(ProtocolGRPC), WithHTTPClient(&http.Client{Transport: h2c})}},
		{name: "the default, Connect", want: []string{"connect protocol", EnvAPIURL, "WithProtocol(dispatch.ProtocolGRPC)"}},
		{name: "Connect", opts: []Option{WithProtocol(ProtocolConnect)}, want: []string{"WithProtocol(dispatch.ProtocolGRPC)"}},
		{name: "gRPC-Web", opts: []Option{WithProtocol(ProtocolGRPCWeb)}, want: []string{"grpc-web protocol", "WithProtocol(dispatch.ProtocolGRPC)"}},
		{name: "gRPC, an HTTP/1.1 client of the user's", opts: []Option{WithProtocol(ProtocolGRPC), WithHTTPClient(&http.Client{Transport: h1})}, want: []string{"grpc protocol", "HTTP/2", "WithHTTPClient"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			fake := &fakeDispatch{key: "secret", prefix: "grpc"}
			_, h := sdkv1connect.NewDispatchServiceHandler(fake)
			d := newTest(t, append([]Option{WithAPIURL(grpcOnly(t, h)), WithAPIKey("secret"), WithEndpointURL("http://127.0.0.1:8000")}, tt.opts...)...)
			ids, err := d.Dispatch(t.Context(), rtEcho.Call("a"), rtDouble.Call(2))
			auth, calls := fake.received()
			if tt.want == nil {
				is.NoErr(err)
				is.Equal(ids, []string{"grpc-1", "grpc-2"})
				is.Equal(auth, []string{"Bearer secret"})
				is.Equal(len(calls), 2)
				return
			}
			is.True(err != nil)
			is.True(strings.HasPrefix(err.Error(), "dispatch: "))
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			is.Equal(len(calls), 0) // nothing dispatched
		})
	}
}

func TestProtocolString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		p    Protocol
		want string
	}{
		{ProtocolConnect, "connect"},
		{Protocol{}, "connect"}, // the zero value
		{ProtocolGRPC, "grpc"},
		{ProtocolGRPCWeb, "grpc-web"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			is.New(t).Equal(tt.p.String(), tt.want)
		})
	}
}
