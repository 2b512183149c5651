package status_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/dispatchkit/dispatch/internal/status"
)

// Each helper below provokes a real failure on a real socket and returns the
// error that Go reports, as user code would see it.

// refusedAddr returns the address of a port on 127.0.0.1 that was listened
// on and closed, so that nothing accepts connections there.
func refusedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func dialRefused(t *testing.T) error {
	conn, err := net.Dial("tcp", refusedAddr(t))
	if err == nil {
		conn.Close()
		t.Fatal("dialing a closed port succeeded")
	}
	return err
}

func httpRefused(t *testing.T) error {
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("http://" + refusedAddr(t) + "/")
	if err == nil {
		resp.Body.Close()
		t.Fatal("GET on a closed port succeeded")
	}
	return err
}

// serve runs handle for each connection accepted on a new listener on
// 127.0.0.1 and returns the listener's address. The listener and the
// connections are closed, and the goroutines waited for, when the test ends.
func serve(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
			wg.Go(func() { handle(conn) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// silent accepts a connection and never answers; the connection stays open
// until the test ends.
func silent(net.Conn) {}

// resetting reads one byte, so that the client is connected and waiting,
// then closes the connection with SO_LINGER 0, which sends a TCP RST.
func resetting(conn net.Conn) {
	conn.Read(make([]byte, 1))
	conn.(*net.TCPConn).SetLinger(0)
	conn.Close()
}

// readReset returns the error of reading from a connection the server reset,
// and the error of writing to it afterwards.
func readReset(t *testing.T) (readErr, writeErr error) {
	conn, err := net.Dial("tcp", serve(t, resetting))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	_, readErr = conn.Read(make([]byte, 1)) // blocks until the RST arrives
	_, writeErr = conn.Write([]byte("x"))
	return readErr, writeErr
}

func connReset(t *testing.T) error {
	err, _ := readReset(t)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("reading from a reset connection: want ECONNRESET, got %v", err)
	}
	return err
}

func brokenPipe(t *testing.T) error {
	_, err := readReset(t)
	if !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("writing to a reset connection: want EPIPE, got %v", err)
	}
	return err
}

func readDeadline(t *testing.T) error {
	conn, err := net.Dial("tcp", serve(t, silent))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err = conn.Read(make([]byte, 1))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("want a deadline error, got %v", err)
	}
	return err
}

func httpClientTimeout(t *testing.T) error {
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 20 * time.Millisecond}
	resp, err := client.Get("http://" + serve(t, silent) + "/")
	if err == nil {
		resp.Body.Close()
		t.Fatal("GET on a silent server succeeded")
	}
	return err
}

func httpContextDeadline(t *testing.T) error {
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+serve(t, silent)+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatal("POST on a silent server succeeded")
	}
	return err
}

// failingResolver is a pure Go resolver that cannot reach any DNS server,
// so that a lookup fails at once with a *net.DNSError on any machine.
var failingResolver = &net.Resolver{
	PreferGo: true,
	Dial: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("no DNS server in this test")
	},
}

func dnsLookupFailure(t *testing.T) error {
	_, err := failingResolver.LookupHost(t.Context(), "nothing.invalid")
	if err == nil {
		t.Fatal("lookup succeeded")
	}
	return err
}

func dnsDialFailure(t *testing.T) error {
	d := &net.Dialer{Resolver: failingResolver}
	conn, err := d.DialContext(t.Context(), "tcp", "nothing.invalid:80")
	if err == nil {
		conn.Close()
		t.Fatal("dial succeeded")
	}
	var op *net.OpError
	if !errors.As(err, &op) {
		t.Fatalf("want the DNS error inside a *net.OpError, got %T", err)
	}
	return err
}

// systemDNSFailure looks a name of the reserved .invalid domain up with the
// system's resolver. It skips the test if the machine's resolver does not
// answer "no such host" quickly (no resolver at all, say): the hermetic
// cases above cover DNS errors then.
func systemDNSFailure(t *testing.T) error {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	_, err := net.DefaultResolver.LookupHost(ctx, "dispatch-status-test.invalid")
	var dns *net.DNSError
	if !errors.As(err, &dns) || !dns.IsNotFound {
		t.Skipf("the system resolver did not report a missing host (%v); see the hermetic DNS cases", err)
	}
	return err
}

// tlsServer starts an HTTPS server whose handshake errors are not logged.
func tlsServer(t *testing.T) *httptest.Server {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func tlsUnknownAuthority(t *testing.T) error {
	srv := tlsServer(t)
	tr := &http.Transport{} // the system's roots, without the test server's CA
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(srv.URL)
	if err == nil {
		resp.Body.Close()
		t.Fatal("GET with an unknown CA succeeded")
	}
	return err
}

func tlsWrongHost(t *testing.T) error {
	srv := tlsServer(t)
	tr := srv.Client().Transport.(*http.Transport).Clone() // trusts the CA
	tr.TLSClientConfig.ServerName = "wrong-host.invalid"
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(srv.URL)
	if err == nil {
		resp.Body.Close()
		t.Fatal("GET with the wrong server name succeeded")
	}
	return err
}

func tlsToPlainServer(t *testing.T) error {
	addr := serve(t, func(conn net.Conn) {
		io.WriteString(conn, "HTTP/1.1 400 Bad Request\r\n\r\n")
		conn.Close()
	})
	conn, err := tls.Dial("tcp", addr, &tls.Config{})
	if err == nil {
		conn.Close()
		t.Fatal("TLS handshake with a plain server succeeded")
	}
	return err
}

func TestOfRealNetworkErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		cause func(*testing.T) error
		want  status.Status
	}{
		{"dial refused", dialRefused, status.TCPError},
		{"HTTP refused", httpRefused, status.TCPError},
		{"read reset", connReset, status.TCPError},
		{"write broken pipe", brokenPipe, status.TCPError},
		{"read deadline", readDeadline, status.Timeout},
		{"HTTP client timeout", httpClientTimeout, status.Timeout},
		{"HTTP context deadline", httpContextDeadline, status.Timeout},
		{"DNS lookup", dnsLookupFailure, status.DNSError},
		{"DNS in dial", dnsDialFailure, status.DNSError}, // not TCP_ERROR: DNS comes first
		{"DNS system resolver", systemDNSFailure, status.DNSError},
		{"TLS unknown authority", tlsUnknownAuthority, status.TLSError},
		{"TLS wrong host", tlsWrongHost, status.TLSError},
		{"TLS to plain server", tlsToPlainServer, status.TLSError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			err := tt.cause(t)
			is.Equal(status.Of(err), tt.want)
			// Wrapping does not change the status.
			is.Equal(status.Of(fmt.Errorf("calling the warehouse: %w", err)), tt.want)
		})
	}
}

func TestOfMarkersWin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		cause func(*testing.T) error
		mark  func(error) error
		want  status.Status
	}{
		{"temporary over refused", dialRefused, status.MarkTemporary, status.TemporaryError},
		{"permanent over refused", dialRefused, status.MarkPermanent, status.PermanentError},
		{"throttled over timeout", readDeadline, status.MarkThrottled, status.Throttled},
		{"incompatible over DNS", dnsLookupFailure, status.MarkIncompatible, status.IncompatibleState},
		{"permanent over TLS", tlsUnknownAuthority, status.MarkPermanent, status.PermanentError},
		{"not found over reset", connReset, func(err error) error { return status.WithStatus(err, status.NotFound) }, status.NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			cause := tt.cause(t)
			err := tt.mark(cause)
			is.Equal(status.Of(err), tt.want)
			is.Equal(err.Error(), cause.Error()) // markers keep the message
			is.True(errors.Is(err, cause))       // and the chain
			is.Equal(status.Of(fmt.Errorf("step 2: %w", err)), tt.want)
		})
	}
}

// classified is a user error type, for the chains below.
type classified struct{ msg string }

func (e *classified) Error() string { return e.msg }

func TestOfChains(t *testing.T) {
	t.Parallel()
	plain := errors.New("boom")
	notFound := &status.Error{Status: status.NotFound, Type: "*main.Missing", Message: "no order o-1"}
	timeoutOp := &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	dnsTimeout := &net.DNSError{Err: "i/o timeout", Name: "example.com", IsTimeout: true}

	tests := []struct {
		name string
		err  error
		want status.Status
	}{
		{"nil", nil, status.OK},
		{"plain", plain, status.PermanentError},
		{"user type", &classified{"x"}, status.PermanentError},
		{"context canceled", context.Canceled, status.PermanentError},
		{"context deadline", context.DeadlineExceeded, status.Timeout},
		{"wrapped deadline", fmt.Errorf("query: %w", context.DeadlineExceeded), status.Timeout},
		{"os deadline", os.ErrDeadlineExceeded, status.Timeout},
		{"timeout OpError is not TCP", timeoutOp, status.Timeout},
		{"ETIMEDOUT", &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ETIMEDOUT)}, status.Timeout},
		{"DNS timeout is a timeout", dnsTimeout, status.Timeout},
		{"DNS not found", &net.DNSError{Err: "no such host", Name: "x.invalid", IsNotFound: true}, status.DNSError},
		{"bare ECONNREFUSED", syscall.ECONNREFUSED, status.TCPError},
		{"syscall ECONNRESET", os.NewSyscallError("read", syscall.ECONNRESET), status.TCPError},
		{"bare EPIPE", fmt.Errorf("write: %w", syscall.EPIPE), status.TCPError},
		{"other OpError", &net.OpError{Op: "read", Net: "tcp", Err: net.ErrClosed}, status.TCPError},
		{"TLS alert", tls.AlertError(42), status.TLSError},
		{"TLS record header", fmt.Errorf("x: %w", tls.RecordHeaderError{Msg: "bad"}), status.TLSError},
		{"TLS inside OpError", &net.OpError{Op: "remote error", Err: tls.AlertError(40)}, status.TLSError},
		{"HTTP 503", &status.HTTPStatusError{Code: 503}, status.TemporaryError},
		{"HTTP 404 wrapped", fmt.Errorf("fetch: %w", &status.HTTPStatusError{Code: 404}), status.NotFound},
		{"HTTP 200 is no error", &status.HTTPStatusError{Code: 200}, status.PermanentError},
		{"child error keeps its status", notFound, status.NotFound},
		{"wrapped child error", fmt.Errorf("lookup: %w", notFound), status.NotFound},
		{"child error with OK status", &status.Error{Status: status.OK}, status.PermanentError},
		{"marker over child", status.MarkTemporary(notFound), status.TemporaryError},
		{"outermost marker wins", status.MarkPermanent(fmt.Errorf("a: %w", status.MarkTemporary(plain))), status.PermanentError},
		{"inner marker under wrap", fmt.Errorf("a: %w", status.MarkThrottled(plain)), status.Throttled},
		{"marker over context deadline", status.WithStatus(context.DeadlineExceeded, status.Throttled), status.Throttled},
		{"marker with OK", status.WithStatus(plain, status.OK), status.PermanentError},
		{"marker with unknown status", status.WithStatus(plain, 42), status.PermanentError},
		{"joined: first explicit", errors.Join(plain, status.MarkThrottled(plain), status.MarkTemporary(plain)), status.Throttled},
		{"joined: classified", errors.Join(plain, syscall.ECONNREFUSED), status.TCPError},
		{"sentinel", status.ErrThrottled, status.Throttled},
		{"wrapped sentinel", fmt.Errorf("quota: %w", status.ErrNotFound), status.NotFound},
		{"panic", &status.PanicError{Value: "x"}, status.PermanentError},
		{"panic with a marked error", &status.PanicError{Value: status.MarkTemporary(plain)}, status.PermanentError},
		{"marked panic", status.MarkTemporary(&status.PanicError{Value: "x"}), status.TemporaryError},
		{"panic with a network error", &status.PanicError{Value: syscall.ECONNREFUSED}, status.PermanentError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			is.Equal(status.Of(tt.err), tt.want)
		})
	}
}

func TestMarkersNil(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	for _, mark := range []func(error) error{status.MarkTemporary, status.MarkPermanent, status.MarkThrottled, status.MarkIncompatible} {
		is.NoErr(mark(nil))
	}
	is.NoErr(status.WithStatus(nil, status.Timeout))
}

func TestSentinels(t *testing.T) {
	t.Parallel()
	plain := errors.New("boom")
	tests := []struct {
		sentinel error
		status   status.Status
		message  string
	}{
		{status.ErrTimeout, status.Timeout, "dispatch: timeout"},
		{status.ErrThrottled, status.Throttled, "dispatch: throttled"},
		{status.ErrInvalidArgument, status.InvalidArgument, "dispatch: invalid argument"},
		{status.ErrInvalidResponse, status.InvalidResponse, "dispatch: invalid response"},
		{status.ErrTemporary, status.TemporaryError, "dispatch: temporary error"},
		{status.ErrPermanent, status.PermanentError, "dispatch: permanent error"},
		{status.ErrIncompatibleState, status.IncompatibleState, "dispatch: incompatible state"},
		{status.ErrDNS, status.DNSError, "dispatch: DNS error"},
		{status.ErrTCP, status.TCPError, "dispatch: TCP error"},
		{status.ErrTLS, status.TLSError, "dispatch: TLS error"},
		{status.ErrHTTP, status.HTTPError, "dispatch: HTTP error"},
		{status.ErrUnauthenticated, status.Unauthenticated, "dispatch: unauthenticated"},
		{status.ErrPermissionDenied, status.PermissionDenied, "dispatch: permission denied"},
		{status.ErrNotFound, status.NotFound, "dispatch: not found"},
	}
	for _, tt := range tests {
		t.Run(tt.status.String(), func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			is.Equal(tt.sentinel.Error(), tt.message)
			is.Equal(status.Of(tt.sentinel), tt.status)

			// A child error and a marker of the status match the sentinel.
			child := &status.Error{Status: tt.status, Message: "x"}
			is.True(errors.Is(child, tt.sentinel))
			is.True(errors.Is(fmt.Errorf("wrapped: %w", child), tt.sentinel))
			is.True(errors.Is(status.WithStatus(plain, tt.status), tt.sentinel))

			// Other statuses do not.
			for _, other := range tests {
				if other.status != tt.status {
					is.True(!errors.Is(child, other.sentinel))
					is.True(!errors.Is(status.WithStatus(plain, tt.status), other.sentinel))
				}
			}
		})
	}
}

func TestOfTypedNil(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	var child *status.Error
	var httpErr *status.HTTPStatusError
	is.Equal(status.Of(child), status.PermanentError)
	is.Equal(status.Of(fmt.Errorf("x: %w", httpErr)), status.PermanentError)
	_, pe := status.ToProto(child)
	is.Equal(pe.GetMessage(), "PERMANENT_ERROR")
}

type panickyError struct{}

func (*panickyError) Error() string { panic("no message") }

func TestToProtoPanickingErrorMethod(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	s, pe := status.ToProto(status.MarkTemporary(&panickyError{}))
	is.Equal(status.Status(s), status.TemporaryError)
	is.Equal(pe.GetMessage(), "dispatch: the Error method of *status_test.panickyError panicked: no message")
}
