package server_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/matryer/is"
	"google.golang.org/protobuf/proto"

	"github.com/dispatchkit/dispatch/server"
)

// bigBody is a request body of 32 MB, twice the limit of a request; it
// counts the bytes read.
type bigBody struct{ n atomic.Int64 }

func (b *bigBody) Read(p []byte) (int, error) {
	left := 32<<20 - b.n.Load()
	if left <= 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), left)]
	clear(p)
	b.n.Add(int64(len(p)))
	return len(p), nil
}

// TestAuthBeforeBody checks that a request without the API key is refused
// before its body is read (32 MB, here), with the error of its protocol,
// and that the inspection API does not read bodies.
func TestAuthBeforeBody(t *testing.T) {
	b := setup(t)
	h := b.srv.Handler()
	const dispatchPath = "/dispatch.sdk.v1.DispatchService/Dispatch"
	tests := []struct {
		name        string
		method      string
		path        string
		contentType string
		auth        string
		check       func(is *is.I, res *http.Response, body []byte)
	}{
		{"connect proto", "POST", dispatchPath, "application/proto", "", connectUnauthenticated},
		{"connect json", "POST", dispatchPath, "application/json", "", connectUnauthenticated},
		{"connect, wrong key", "POST", dispatchPath, "application/proto", "Bearer nope", connectUnauthenticated},
		{"unknown content type", "POST", dispatchPath, "text/plain", "", connectUnauthenticated},
		{"grpc", "POST", dispatchPath, "application/grpc", "", grpcUnauthenticated},
		{"grpc+proto", "POST", dispatchPath, "application/grpc+proto", "", grpcUnauthenticated},
		{"grpc-web", "POST", dispatchPath, "application/grpc-web+proto", "", grpcUnauthenticated},
		{"inspection", "GET", "/dispatch.local.v1/calls", "", "", httpStatus(http.StatusUnauthorized)},
		{"result", "GET", "/dispatch.local.v1/calls/x/result?wait=1s", "", "", httpStatus(http.StatusUnauthorized)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			body := &bigBody{}
			r := httptest.NewRequest(tt.method, tt.path, io.NopCloser(body))
			r.ContentLength = -1
			if tt.contentType != "" {
				r.Header.Set("Content-Type", tt.contentType)
			}
			if tt.auth != "" {
				r.Header.Set("Authorization", tt.auth)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			res := rec.Result()
			data, _ := io.ReadAll(res.Body)
			is.Equal(body.n.Load(), int64(0)) // the body was not read
			tt.check(is, res, data)
			is.True(!strings.Contains(string(data), b.srv.APIKey())) // the key is not echoed
		})
	}

	t.Run("with the key, the request goes through", func(t *testing.T) {
		is := is.New(t)
		b.ep.handle("echo", echo)
		data, err := proto.Marshal(&sdkv1.DispatchRequest{Calls: []*sdkv1.Call{call("echo", "x")}})
		is.NoErr(err)
		r := httptest.NewRequest("POST", dispatchPath, bytes.NewReader(data))
		r.Header.Set("Content-Type", "application/proto")
		r.Header.Set("Authorization", "Bearer "+b.srv.APIKey())
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		is.Equal(rec.Code, http.StatusOK)
		var res sdkv1.DispatchResponse
		is.NoErr(proto.Unmarshal(rec.Body.Bytes(), &res))
		is.Equal(len(res.GetDispatchIds()), 1)
		waitFor(t, "echo", func() bool { return b.srv.Live() == 0 })
	})
}

// connectUnauthenticated checks a Connect unary error: 401, JSON code
// "unauthenticated".
func connectUnauthenticated(is *is.I, res *http.Response, body []byte) {
	is.Equal(res.StatusCode, http.StatusUnauthorized)
	var e struct{ Code, Message string }
	is.NoErr(json.Unmarshal(body, &e))
	is.Equal(e.Code, "unauthenticated")
	is.True(strings.Contains(e.Message, `expected header "Authorization: Bearer <key>"`))
}

// grpcUnauthenticated checks a gRPC or gRPC-Web error: 200 with
// grpc-status 16 (UNAUTHENTICATED), in the headers or the trailers.
func grpcUnauthenticated(is *is.I, res *http.Response, body []byte) {
	is.Equal(res.StatusCode, http.StatusOK)
	st := res.Header.Get("Grpc-Status") + res.Trailer.Get("Grpc-Status")
	is.Equal(st, "16")
}

func httpStatus(code int) func(is *is.I, res *http.Response, body []byte) {
	return func(is *is.I, res *http.Response, body []byte) { is.Equal(res.StatusCode, code) }
}

// rawRequest opens a connection to addr and sends head, the request line
// and headers (CRLF line ends added), then body.
func rawRequest(t *testing.T, addr string, head []string, body string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, strings.Join(head, "\r\n")+"\r\n\r\n"+body); err != nil {
		t.Fatal(err)
	}
	return conn
}

// readUntilClosed reads conn until the server closes it, and fails the
// test if it does not within a generous deadline.
func readUntilClosed(t *testing.T, conn net.Conn) string {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	data, err := io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server kept the connection open; read so far: %q", data)
	}
	return string(data)
}

// TestSlowBody checks that a client that sends its headers and then
// stops sending its body gets an answer and its connection closed once
// Config.BodyReadTimeout has passed, whatever the route, and with or
// without the key.
func TestSlowBody(t *testing.T) {
	b := setup(t, func(c *server.Config) { c.BodyReadTimeout = 200 * time.Millisecond })
	tests := []struct {
		name   string
		head   []string
		status string // of the answer
	}{
		{"dispatch", []string{"POST /dispatch.sdk.v1.DispatchService/Dispatch HTTP/1.1", "Host: x", "Authorization: Bearer test", "Content-Type: application/proto", "Content-Length: 1000"}, "504"},
		{"dispatch, chunked", []string{"POST /dispatch.sdk.v1.DispatchService/Dispatch HTTP/1.1", "Host: x", "Authorization: Bearer test", "Content-Type: application/proto", "Transfer-Encoding: chunked"}, "504"},
		{"dispatch without the key", []string{"POST /dispatch.sdk.v1.DispatchService/Dispatch HTTP/1.1", "Host: x", "Content-Type: application/proto", "Content-Length: 1000"}, "401"},
		{"an unknown route", []string{"POST /nowhere HTTP/1.1", "Host: x", "Content-Length: 1000"}, "404"},
		// The route does not read bodies: it answers, then the
		// server's drain of the body meets the deadline.
		{"the inspection API", []string{"GET /dispatch.local.v1/calls HTTP/1.1", "Host: x", "Authorization: Bearer test", "Content-Length: 1000"}, "200"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			body := "0123456789" // of 1000 bytes, and then nothing
			if strings.Contains(strings.Join(tt.head, "\n"), "chunked") {
				body = "a\r\n0123456789\r\n"
			}
			conn := rawRequest(t, b.srv.Addr(), tt.head, body)
			out := readUntilClosed(t, conn)
			is.True(strings.HasPrefix(out, "HTTP/1.1 "+tt.status)) // an answer, then the connection closed
		})
	}
}

// TestSteadyBody checks that a body sent in pieces within
// Config.BodyReadTimeout is read whole and the request succeeds.
func TestSteadyBody(t *testing.T) {
	is := is.New(t)
	b := setup(t, func(c *server.Config) { c.BodyReadTimeout = 10 * time.Second })
	b.ep.handle("echo", echo)
	data, err := proto.Marshal(&sdkv1.DispatchRequest{Calls: []*sdkv1.Call{call("echo", strings.Repeat("x", 3000))}})
	is.NoErr(err)
	pr, pw := io.Pipe()
	go func() {
		for len(data) > 0 {
			n := min(len(data), 1000)
			pw.Write(data[:n])
			data = data[n:]
			<-time.After(50 * time.Millisecond) // the client's pace
		}
		pw.Close()
	}()
	req, err := http.NewRequest("POST", b.srv.URL()+"/dispatch.sdk.v1.DispatchService/Dispatch", pr)
	is.NoErr(err)
	req.Header.Set("Content-Type", "application/proto")
	req.Header.Set("Authorization", "Bearer test")
	res, err := http.DefaultClient.Do(req)
	is.NoErr(err)
	defer res.Body.Close()
	is.Equal(res.StatusCode, http.StatusOK)
	out, err := io.ReadAll(res.Body)
	is.NoErr(err)
	var dr sdkv1.DispatchResponse
	is.NoErr(proto.Unmarshal(out, &dr))
	is.Equal(len(dr.GetDispatchIds()), 1)
	waitFor(t, "echo", func() bool { return b.ep.count("echo") == 1 })
}

// TestBodyDeadlineCleared checks that the body's deadline bounds the body
// alone: a handler that reads its body and then takes longer than the
// deadline keeps its context and answers.
func TestBodyDeadlineCleared(t *testing.T) {
	is := is.New(t)
	const d = 100 * time.Millisecond
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		select {
		case <-r.Context().Done():
			http.Error(w, "context cancelled while the handler ran", http.StatusInternalServerError)
		case <-time.After(10 * d): // well past the body's deadline
			io.WriteString(w, "ok")
		}
	})
	srv := httptest.NewServer(server.BodyDeadline(inner, d))
	defer srv.Close()
	res, err := http.Post(srv.URL, "text/plain", strings.NewReader("a body"))
	is.NoErr(err)
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	is.Equal(res.StatusCode, http.StatusOK)
	is.Equal(string(out), "ok")
}

// TestIdleTimeout checks that a keep-alive connection left idle is closed
// after Config.IdleTimeout.
func TestIdleTimeout(t *testing.T) {
	is := is.New(t)
	b := setup(t, func(c *server.Config) { c.IdleTimeout = 200 * time.Millisecond })
	conn := rawRequest(t, b.srv.Addr(), []string{"GET /dispatch.local.v1/health HTTP/1.1", "Host: x"}, "")
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	is.NoErr(err)
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	is.Equal(res.StatusCode, http.StatusOK)
	is.True(!res.Close) // kept alive
	_, err = br.ReadByte()
	var ne net.Error
	is.True(!(errors.As(err, &ne) && ne.Timeout())) // closed by the server, not by our deadline
	is.True(err != nil)                             // EOF, or a reset
}
