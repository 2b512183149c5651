package dispatch

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"buf.build/gen/go/stealthrocket/dispatch-proto/connectrpc/go/dispatch/sdk/v1/sdkv1connect"
	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"connectrpc.com/connect"
	"github.com/dispatchkit/dispatch/internal/signature"
	"github.com/dispatchkit/dispatch/serde"
	"github.com/matryer/is"
	"google.golang.org/protobuf/proto"
)

// testLimit is the body size limit of the endpoint under test: small, so
// that a request over it is cheap to make.
const testLimit = 1024

// endpointBundle is an endpoint that verifies signatures with the test key
// at testNow, served over HTTP/1.1 (h1) and over TLS with HTTP/2 (h2, which
// gRPC needs), with a signer that signs as Dispatch does.
type endpointBundle struct {
	d      *Dispatch
	signer *signature.Signer
	h1, h2 *httptest.Server
}

func setupEndpoint(t *testing.T, opts ...Option) *endpointBundle {
	t.Helper()
	priv, keys := testKeys(t)
	d := newTest(t, append([]Option{
		WithVerificationKey(keys.PublicPEM),
		WithClock(fixedClock(testNow)),
		WithMaxRequestBytes(testLimit),
	}, opts...)...)
	h := d.Handler()
	h1 := httptest.NewServer(h)
	t.Cleanup(h1.Close)
	h2 := httptest.NewUnstartedServer(h)
	h2.EnableHTTP2 = true
	h2.StartTLS()
	t.Cleanup(h2.Close)
	return &endpointBundle{
		d:      d,
		signer: signature.NewSigner(priv, signature.WithSignerClock(fixedClock(testNow))),
		h1:     h1,
		h2:     h2,
	}
}

// transport returns a client transport over srv that signs like b's
// signer, or as tc says.
func (b *endpointBundle) transport(srv *httptest.Server, tc endpointCase) *signingTransport {
	st := &signingTransport{base: srv.Client().Transport, signer: b.signer, before: tc.before, after: tc.after}
	if tc.signer != nil {
		st.signer = tc.signer(b)
	}
	return st
}

// endpointCase is a row of the endpoint's error table (PROTOCOL.md, "A
// function run"), played by real Connect, gRPC and gRPC-Web clients and by
// raw HTTP posts.
type endpointCase struct {
	name     string
	function string
	input    any
	// signer returns the signer of the request (nil: unsigned); the
	// default is the bundle's.
	signer func(b *endpointBundle) *signature.Signer
	before func(body []byte) []byte                  // replaces the body before signing
	after  func(r *http.Request, body []byte) []byte // tampers with the signed request; returns the body sent
	status int                                       // HTTP status of a Connect unary answer
	code   connect.Code                              // 0: a RunResponse
	msg    string                                    // in the error message
	check  func(is *is.I, res *sdkv1.RunResponse)    // checks a RunResponse
}

// replacePayload replaces the message in body with payload, keeping the
// gRPC and gRPC-Web framing (a 5-byte prefix: flags, then the big-endian
// length) when body has it, so that the payload reaches the decoder.
func replacePayload(body, payload []byte) []byte {
	if len(body) >= 5 && body[0] == 0 && int(binary.BigEndian.Uint32(body[1:5])) == len(body)-5 {
		return append(binary.BigEndian.AppendUint32([]byte{0}, uint32(len(payload))), payload...)
	}
	return payload
}

func endpointCases(t *testing.T) []endpointCase {
	priv, _ := testKeys(t)
	signerAt := func(at time.Time) func(*endpointBundle) *signature.Signer {
		return func(*endpointBundle) *signature.Signer {
			return signature.NewSigner(priv, signature.WithSignerClock(fixedClock(at)))
		}
	}
	_, otherKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	otherBody := runBody(t, "roottest.echo", "y")
	return []endpointCase{
		{
			name: "a function's result", function: "roottest.echo", input: "hello",
			status: http.StatusOK,
			check: func(is *is.I, res *sdkv1.RunResponse) {
				is.Equal(res.GetStatus(), sdkv1.Status_STATUS_OK)
				var out string
				is.NoErr(serde.Unmarshal(res.GetExit().GetResult().GetOutput(), &out))
				is.Equal(out, "hello")
			},
		},
		{
			name: "a function's failure is a 200 with its status", function: "roottest.flaky", input: "x",
			status: http.StatusOK,
			check: func(is *is.I, res *sdkv1.RunResponse) {
				is.Equal(res.GetStatus(), sdkv1.Status_STATUS_TEMPORARY_ERROR)
				e := res.GetExit().GetResult().GetError()
				is.Equal(e.GetType(), "*dispatch.rtError") // the error's Go type
				is.Equal(e.GetMessage(), "roottest: flaky x")
				is.True(res.GetExit().GetResult().GetOutput() == nil)
			},
		},
		{
			name: "a panic is a permanent error with a traceback", function: "roottest.panic", input: "now",
			status: http.StatusOK,
			check: func(is *is.I, res *sdkv1.RunResponse) {
				is.Equal(res.GetStatus(), sdkv1.Status_STATUS_PERMANENT_ERROR)
				e := res.GetExit().GetResult().GetError()
				is.True(strings.Contains(e.GetMessage(), "roottest: boom now"))
				is.True(bytes.Contains(e.GetTraceback(), []byte("main_test.go"))) // where it panicked
			},
		},
		{
			name: "body not a RunRequest", function: "roottest.echo", input: "x",
			before: func(body []byte) []byte { return replacePayload(body, []byte{0xff, 0xff, 0xff, 0xff}) },
			status: http.StatusBadRequest, code: connect.CodeInvalidArgument,
		},
		{
			name: "empty function", function: "", input: "x",
			status: http.StatusBadRequest, code: connect.CodeInvalidArgument, msg: "names no function",
		},
		{
			name: "no body", function: "roottest.echo", input: "x",
			before: func([]byte) []byte { return nil },
			status: http.StatusBadRequest, code: connect.CodeInvalidArgument,
		},
		{
			name: "missing signature headers", function: "roottest.echo", input: "x",
			signer: func(*endpointBundle) *signature.Signer { return nil },
			status: http.StatusUnauthorized, code: connect.CodeUnauthenticated,
		},
		{
			name: "signature without Signature-Input", function: "roottest.echo", input: "x",
			after: func(r *http.Request, body []byte) []byte {
				r.Header.Del("Signature-Input")
				return body
			},
			status: http.StatusUnauthorized, code: connect.CodeUnauthenticated,
		},
		{
			name: "malformed Signature-Input", function: "roottest.echo", input: "x",
			after: func(r *http.Request, body []byte) []byte {
				r.Header.Set("Signature-Input", `dispatch=("@method" "@path"`)
				return body
			},
			status: http.StatusUnauthorized, code: connect.CodeUnauthenticated,
		},
		{
			name: "malformed Signature", function: "roottest.echo", input: "x",
			after: func(r *http.Request, body []byte) []byte {
				r.Header.Set("Signature", "dispatch=not-bytes")
				return body
			},
			status: http.StatusUnauthorized, code: connect.CodeUnauthenticated,
		},
		{
			name: "signed by another key", function: "roottest.echo", input: "x",
			signer: func(*endpointBundle) *signature.Signer {
				return signature.NewSigner(otherKey, signature.WithSignerClock(fixedClock(testNow)))
			},
			status: http.StatusForbidden, code: connect.CodePermissionDenied,
		},
		{
			name: "signature altered", function: "roottest.echo", input: "x",
			after: func(r *http.Request, body []byte) []byte {
				sig := r.Header.Get("Signature") // dispatch=:<base64>:
				i := len("dispatch=:") + 3
				c := byte('A')
				if sig[i] == 'A' {
					c = 'B'
				}
				r.Header.Set("Signature", sig[:i]+string(c)+sig[i+1:])
				return body
			},
			status: http.StatusForbidden, code: connect.CodePermissionDenied,
		},
		{
			name: "body does not match the digest", function: "roottest.echo", input: "x",
			after: func(r *http.Request, body []byte) []byte {
				return replacePayload(body, otherBody)
			},
			status: http.StatusForbidden, code: connect.CodePermissionDenied, msg: "Content-Digest",
		},
		{
			name: "digest replaced", function: "roottest.echo", input: "x",
			after: func(r *http.Request, body []byte) []byte {
				sent := replacePayload(body, otherBody)
				r.Header.Set("Content-Digest", signature.ContentDigest(sent))
				return sent
			},
			status: http.StatusForbidden, code: connect.CodePermissionDenied,
		},
		{
			name: "signature too old", function: "roottest.echo", input: "x",
			signer: signerAt(testNow.Add(-5*time.Minute - time.Second)),
			status: http.StatusForbidden, code: connect.CodePermissionDenied,
		},
		{
			name: "signature from the future", function: "roottest.echo", input: "x",
			signer: signerAt(testNow.Add(6 * time.Second)),
			status: http.StatusForbidden, code: connect.CodePermissionDenied,
		},
		{
			name: "signature 5 minutes old", function: "roottest.echo", input: "x",
			signer: signerAt(testNow.Add(-5 * time.Minute)),
			status: http.StatusOK,
			check:  func(is *is.I, res *sdkv1.RunResponse) { is.Equal(res.GetStatus(), sdkv1.Status_STATUS_OK) },
		},
		{
			name: "unknown function", function: "roottest.missing", input: "x",
			status: http.StatusNotFound, code: connect.CodeNotFound, msg: "roottest.echo", // lists the registered ones
		},
		{
			name: "body over the limit", function: "roottest.echo", input: strings.Repeat("x", testLimit),
			status: http.StatusRequestEntityTooLarge, code: connect.CodeResourceExhausted, msg: "WithMaxRequestBytes",
		},
	}
}

func TestEndpointErrorsConnectClients(t *testing.T) {
	t.Parallel()
	b := setupEndpoint(t)
	protocols := []struct {
		name string
		opts []connect.ClientOption
	}{
		{"connect", nil},
		{"connect+json", []connect.ClientOption{connect.WithProtoJSON()}},
		{"grpc", []connect.ClientOption{connect.WithGRPC()}},
		{"grpc-web", []connect.ClientOption{connect.WithGRPCWeb()}},
	}
	for _, p := range protocols {
		for _, tc := range endpointCases(t) {
			t.Run(p.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				is := is.New(t)
				st := b.transport(b.h2, tc)
				client := sdkv1connect.NewFunctionServiceClient(&http.Client{Transport: st}, b.h2.URL, p.opts...)
				req := runReq(t, tc.function, tc.input)
				res, err := client.Run(t.Context(), connect.NewRequest(req))
				if tc.code == 0 {
					is.NoErr(err)
					tc.check(is, res.Msg)
					return
				}
				is.True(err != nil)
				is.Equal(connect.CodeOf(err), tc.code) // connect code
				var ce *connect.Error
				is.True(errors.As(err, &ce))
				if !strings.Contains(ce.Message(), tc.msg) {
					t.Errorf("message %q does not contain %q", ce.Message(), tc.msg)
				}
				is.True(strings.HasPrefix(ce.Message(), "dispatch: ") || strings.HasPrefix(ce.Message(), "signature: ") || tc.code == connect.CodeInvalidArgument)
			})
		}
	}
}

func TestEndpointErrorsRawHTTP(t *testing.T) {
	t.Parallel()
	b := setupEndpoint(t)
	for _, tc := range endpointCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			client := &http.Client{Transport: b.transport(b.h1, tc)}
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, b.h1.URL+runPath, bytes.NewReader(runBody(t, tc.function, tc.input)))
			is.NoErr(err)
			req.Header.Set("Content-Type", "application/proto")
			res, err := client.Do(req)
			is.NoErr(err)
			o := readOutcome(t, res)
			is.Equal(o.status, tc.status) // HTTP status
			is.Equal(o.code, tc.code)     // connect code
			if !strings.Contains(o.message, tc.msg) {
				t.Errorf("message %q does not contain %q", o.message, tc.msg)
			}
			if tc.code == 0 {
				var msg sdkv1.RunResponse
				is.NoErr(proto.Unmarshal(o.body, &msg))
				tc.check(is, &msg)
			}
		})
	}
}

// TestEndpointRawEdges covers what only a raw HTTP client sends: no body
// at all, a JSON body that is not a RunRequest, a body of unknown length
// over the limit, and requests that are not Run.
func TestEndpointRawEdges(t *testing.T) {
	t.Parallel()
	b := setupEndpoint(t)
	big := runBody(t, "roottest.echo", strings.Repeat("x", 4*testLimit))
	tests := []struct {
		name        string
		method      string
		path        string
		contentType string
		payload     []byte
		chunked     bool // send the payload without a Content-Length
		unsigned    bool
		status      int
		code        connect.Code
	}{
		{name: "no body at all", contentType: "application/proto", status: http.StatusBadRequest, code: connect.CodeInvalidArgument},
		{name: "JSON that is not a RunRequest", contentType: "application/json", payload: []byte(`{"function": 42}`), status: http.StatusBadRequest, code: connect.CodeInvalidArgument},
		{name: "JSON with no function", contentType: "application/json", payload: []byte(`{"hello": "world"}`), status: http.StatusBadRequest, code: connect.CodeInvalidArgument},
		{name: "not JSON", contentType: "application/json", payload: []byte(`{`), status: http.StatusBadRequest, code: connect.CodeInvalidArgument},
		{name: "JSON RunRequest", contentType: "application/json", payload: []byte(`{"function": "roottest.echo", "input": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": "json"}}`), status: http.StatusOK},
		{name: "over the limit", contentType: "application/proto", payload: big, status: http.StatusRequestEntityTooLarge, code: connect.CodeResourceExhausted},
		{name: "over the limit, length unknown", contentType: "application/proto", payload: big, chunked: true, status: http.StatusRequestEntityTooLarge, code: connect.CodeResourceExhausted},
		{name: "over the limit, gRPC framing", contentType: "application/grpc-web+proto", payload: append([]byte{0, 0, 0, 0x10, 0}, big...), chunked: true, code: connect.CodeResourceExhausted, status: http.StatusOK},
		{name: "over the limit, unsigned", contentType: "application/proto", payload: big, unsigned: true, status: http.StatusRequestEntityTooLarge, code: connect.CodeResourceExhausted},
		{name: "another path", path: "/dispatch.sdk.v1.FunctionService/Other", contentType: "application/proto", status: http.StatusNotFound},
		{name: "unsigned, another path", path: "/dispatch.sdk.v1.FunctionService/Other", contentType: "application/proto", unsigned: true, status: http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			method, path := tt.method, tt.path
			if method == "" {
				method = http.MethodPost
			}
			if path == "" {
				path = runPath
			}
			req, err := http.NewRequestWithContext(t.Context(), method, b.h1.URL+path, nil)
			is.NoErr(err)
			req.Header.Set("Content-Type", tt.contentType)
			if !tt.unsigned {
				is.NoErr(b.signer.Sign(req, tt.payload))
			}
			if tt.payload != nil {
				req.Body = io.NopCloser(bytes.NewReader(tt.payload))
				req.ContentLength = int64(len(tt.payload))
				if tt.chunked {
					req.ContentLength = -1 // unknown: the body goes chunked
				}
			}
			res, err := b.h1.Client().Do(req)
			is.NoErr(err)
			o := readOutcome(t, res)
			is.Equal(o.status, tt.status) // HTTP status
			is.Equal(o.code, tt.code)     // connect code
		})
	}
}

// TestEndpointOverLimitGRPC checks that gRPC clients get resource_exhausted
// for a body over the limit (PROTOCOL.md allows it in place of a 413, which
// gRPC cannot carry).
func TestEndpointOverLimitGRPC(t *testing.T) {
	t.Parallel()
	b := setupEndpoint(t)
	tests := []struct {
		name string
		opts []connect.ClientOption
	}{
		{"grpc", []connect.ClientOption{connect.WithGRPC()}},
		{"grpc-web", []connect.ClientOption{connect.WithGRPCWeb()}},
		{"connect", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			client := sdkv1connect.NewFunctionServiceClient(&http.Client{Transport: b.transport(b.h2, endpointCase{})}, b.h2.URL, tt.opts...)
			_, err := client.Run(t.Context(), connect.NewRequest(runReq(t, "roottest.echo", strings.Repeat("x", 10*testLimit))))
			is.Equal(connect.CodeOf(err), connect.CodeResourceExhausted)
		})
	}
}

// TestEndpointKeepsServingAfterPanics runs panicking functions
// concurrently with healthy ones on one server.
func TestEndpointKeepsServingAfterPanics(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	b := setupEndpoint(t)
	client := sdkv1connect.NewFunctionServiceClient(&http.Client{Transport: b.transport(b.h2, endpointCase{})}, b.h2.URL, connect.WithGRPC())
	const n = 8
	type answer struct {
		fn  string
		res *connect.Response[sdkv1.RunResponse]
		err error
	}
	answers := make(chan answer, 2*n)
	for i := range 2 * n {
		fn := "roottest.panic"
		if i%2 == 1 {
			fn = "roottest.echo"
		}
		req := connect.NewRequest(runReq(t, fn, "x"))
		go func() {
			res, err := client.Run(context.Background(), req)
			answers <- answer{fn, res, err}
		}()
	}
	for range 2 * n {
		a := <-answers
		is.NoErr(a.err)
		if a.fn == "roottest.panic" {
			is.Equal(a.res.Msg.GetStatus(), sdkv1.Status_STATUS_PERMANENT_ERROR)
			is.True(len(a.res.Msg.GetExit().GetResult().GetError().GetTraceback()) > 0)
		} else {
			is.Equal(a.res.Msg.GetStatus(), sdkv1.Status_STATUS_OK)
		}
	}
	res, err := client.Run(t.Context(), connect.NewRequest(runReq(t, "roottest.echo", "after")))
	is.NoErr(err)
	var out string
	is.NoErr(serde.Unmarshal(res.Msg.GetExit().GetResult().GetOutput(), &out))
	is.Equal(out, "after")
}

// FuzzRunHandler sends arbitrary bodies to an endpoint without a
// verification key, as Connect (binary and JSON), gRPC-Web and gRPC
// requests, and as raw protobuf (unframed gRPC, octet-stream, no
// Content-Type): whatever the body, the handler answers one of the
// protocol's codes and never panics; a 200 of Connect or raw protobuf
// carries a RunResponse.
func FuzzRunHandler(f *testing.F) {
	d := newTest(f, WithMaxRequestBytes(testLimit))
	h := d.Handler()
	contentTypes := []string{"application/proto", "application/json", "application/grpc-web+proto", "application/grpc", "raw application/grpc+proto", "application/octet-stream", ""}
	seeds := [][]byte{
		nil,
		{0xff},
		runBody(f, "roottest.echo", "seed"),
		runBody(f, "roottest.double", 21),
		runBody(f, "roottest.pipeline", 1),
		runBody(f, "roottest.sum", []int{1, 2}),
		runBody(f, "roottest.panic", "seed"),
		runBody(f, "roottest.missing", "seed"),
		[]byte(`{"function": "roottest.echo", "input": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": "json"}}`),
	}
	resume, err := proto.Marshal(&sdkv1.RunRequest{Function: "roottest.pipeline", Directive: &sdkv1.RunRequest_PollResult{PollResult: &sdkv1.PollResult{
		State: &sdkv1.PollResult_CoroutineState{CoroutineState: []byte{0xa1, 0x01, 0x01}},
	}}})
	if err != nil {
		f.Fatal(err)
	}
	seeds = append(seeds, resume)
	for i, s := range seeds {
		f.Add(uint8(i), s)
	}
	f.Fuzz(func(t *testing.T, ct uint8, body []byte) {
		contentType := contentTypes[int(ct)%len(contentTypes)]
		if strings.HasPrefix(contentType, "application/grpc") {
			body = append(binary.BigEndian.AppendUint32([]byte{0}, uint32(len(body))), body...)
		}
		contentType = strings.TrimPrefix(contentType, "raw ")
		raw := rawStyle(contentType, body, int64(len(body)))
		req := httptest.NewRequest(http.MethodPost, runPath, bytes.NewReader(body))
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusNotFound, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("%s body %q: HTTP %d: %s", contentType, body, rec.Code, rec.Body)
		}
		if rec.Code == http.StatusOK && (contentType == "application/proto" || raw && len(body) > 0) {
			var res sdkv1.RunResponse
			if err := proto.Unmarshal(rec.Body.Bytes(), &res); err != nil {
				t.Fatalf("body %q: the answer is not a RunResponse: %v", body, err)
			}
			if res.GetStatus() == sdkv1.Status_STATUS_UNSPECIFIED {
				t.Fatalf("body %q: answer without a status: %v", body, &res)
			}
		}
	})
}

// countingBody is a request body of n bytes, a gRPC message prefix then
// zeros, that counts what is read of it.
type countingBody struct {
	n, read int
}

func (b *countingBody) Read(p []byte) (int, error) {
	if b.read >= b.n {
		return 0, io.EOF
	}
	k := min(len(p), b.n-b.read)
	clear(p[:k])
	var prefix [5]byte
	binary.BigEndian.PutUint32(prefix[1:], uint32(b.n-5))
	if b.read < len(prefix) {
		copy(p[:k], prefix[b.read:])
	}
	b.read += k
	return k, nil
}

func (b *countingBody) Close() error { return nil }

// TestEndpointRefusesBeforeBody checks that a request that is not signed by
// the verification key is refused from its headers, before its body is
// read: a caller without the key must not make the endpoint read up to its
// limit first. Only the first five bytes of a gRPC body are read, to tell
// a framed request from a bare one (rawproto.go).
func TestEndpointRefusesBeforeBody(t *testing.T) {
	t.Parallel()
	const size = 8 << 20
	other, err := signature.ParsePrivateKey(loadVectors(t).Keys["static_dev_key"].PrivateSeedBase64)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		contentType string
		signer      *signature.Signer // nil: unsigned
		status      int
		code        connect.Code
		read        int // the most bytes of the body read
	}{
		{"unsigned, Connect", "application/proto", nil, http.StatusUnauthorized, connect.CodeUnauthenticated, 0},
		{"unsigned, gRPC", "application/grpc", nil, http.StatusOK, connect.CodeUnauthenticated, 5},
		{"another key, Connect", "application/proto", signature.NewSigner(other, signature.WithSignerClock(fixedClock(testNow))), http.StatusForbidden, connect.CodePermissionDenied, 0},
		{"another key, gRPC", "application/grpc+proto", signature.NewSigner(other, signature.WithSignerClock(fixedClock(testNow))), http.StatusOK, connect.CodePermissionDenied, 5},
	}
	b := setupEndpoint(t, WithMaxRequestBytes(16<<20))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			body := &countingBody{n: size}
			r := httptest.NewRequest(http.MethodPost, runPath, body)
			r.ContentLength = size
			r.Header.Set("Content-Type", tt.contentType)
			if tt.signer != nil {
				// Signed over an empty body: the digest is in a header,
				// the body is never read to check it.
				is.NoErr(tt.signer.Sign(r, nil))
			}
			w := httptest.NewRecorder()
			b.d.Handler().ServeHTTP(w, r)
			o := readOutcome(t, w.Result())
			is.Equal(o.status, tt.status)
			is.Equal(o.code, tt.code)
			is.True(body.read <= tt.read) // the body was not read
		})
	}
}

// A scheduler that accepts gzip gets small answers as they are (gzip would
// cost more than it saves) and large ones compressed.
func TestRunCompression(t *testing.T) {
	tests := []struct {
		name     string
		input    string
		encoding string // the answer's Content-Encoding
	}{
		{"small answer", "hello", ""},
		{"large answer", strings.Repeat("a", 2*compressMinBytes), "gzip"},
	}
	d := newTest(t)
	srv := httptest.NewServer(d.Handler())
	t.Cleanup(srv.Close)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			req, err := http.NewRequest(http.MethodPost, srv.URL+runPath, bytes.NewReader(runBody(t, "roottest.echo", tt.input)))
			is.NoErr(err)
			req.Header.Set("Content-Type", "application/proto")
			req.Header.Set("Accept-Encoding", "gzip") // set by hand: the transport does not decode it then
			res, err := srv.Client().Do(req)
			is.NoErr(err)
			defer res.Body.Close()
			is.Equal(res.StatusCode, http.StatusOK)
			is.Equal(res.Header.Get("Content-Encoding"), tt.encoding)
			var body io.Reader = res.Body
			if tt.encoding == "gzip" {
				zr, err := gzip.NewReader(res.Body)
				is.NoErr(err)
				body = zr
			}
			raw, err := io.ReadAll(body)
			is.NoErr(err)
			var msg sdkv1.RunResponse
			is.NoErr(proto.Unmarshal(raw, &msg))
			var out string
			is.NoErr(serde.Unmarshal(msg.GetExit().GetResult().GetOutput(), &out))
			is.Equal(out, tt.input) // the answer decodes to the echo either way
		})
	}
}
