package dispatch

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"connectrpc.com/connect"
	"github.com/dispatchkit/dispatch/flow"
	"github.com/dispatchkit/dispatch/internal/signature"
	"github.com/dispatchkit/dispatch/serde"
	"github.com/matryer/is"
	"google.golang.org/protobuf/proto"
)

// rawContentTypes are the Content-Types of raw protobuf requests: the
// unframed gRPC ones of dispatch-py v0.5.1's mock server, and the
// octet-stream (or none) of its later test server.
var rawContentTypes = []string{"application/grpc+proto", "application/grpc", "application/octet-stream", ""}

// postRaw posts body to b's HTTP/1.1 server with contentType, signed by
// signer unless it is nil, sent chunked when chunked is set, and returns
// the answer. An empty contentType is sent as an empty Content-Type field:
// the signature covers the field, so a signed request needs one.
func (b *endpointBundle) postRaw(t *testing.T, contentType string, body []byte, signer *signature.Signer, chunked bool) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, b.h1.URL+runPath, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header["Content-Type"] = []string{contentType}
	if signer != nil {
		if err := signer.Sign(req, body); err != nil {
			t.Fatal(err)
		}
	}
	if chunked {
		req.ContentLength = -1
		req.Body = io.NopCloser(bytes.NewReader(body)) // no length known
	}
	res, err := b.h1.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// ctName names a subtest after a Content-Type.
func ctName(contentType string) string {
	if contentType == "" {
		return "empty Content-Type"
	}
	return contentType
}

// rawAnswer reads a raw answer: the RunResponse of a 200, or the Connect
// JSON error otherwise.
type rawAnswer struct {
	status      int
	contentType string
	res         *sdkv1.RunResponse
	code        string
	message     string
}

func readRaw(t *testing.T, res *http.Response) rawAnswer {
	t.Helper()
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := rawAnswer{status: res.StatusCode, contentType: res.Header.Get("Content-Type")}
	if res.Header.Get("Grpc-Status") != "" || res.Trailer.Get("Grpc-Status") != "" {
		t.Fatalf("answered in gRPC's style (grpc-status %q%q), want raw", res.Header.Get("Grpc-Status"), res.Trailer.Get("Grpc-Status"))
	}
	if res.StatusCode == http.StatusOK {
		a.res = new(sdkv1.RunResponse)
		if err := proto.Unmarshal(body, a.res); err != nil {
			t.Fatalf("the answer %q is not a raw RunResponse: %v", body, err)
		}
		return a
	}
	var e struct{ Code, Message string }
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %q is not Connect's JSON: %v", body, err)
	}
	a.code, a.message = e.Code, e.Message
	return a
}

// TestEndpointRawProtobuf posts bare protobuf RunRequests, as dispatch-py's
// mock servers do, for each of their Content-Types: they are answered in
// the same style, 200 and a bare RunResponse, or the HTTP status of the
// error with a Connect JSON body.
func TestEndpointRawProtobuf(t *testing.T) {
	t.Parallel()
	b := setupEndpoint(t)
	tests := []struct {
		name     string
		body     []byte
		unsigned bool
		tamper   bool // sign, then send another body
		chunked  bool
		status   int
		code     connect.Code
		msg      string
		check    func(is *is.I, res *sdkv1.RunResponse)
	}{
		{
			name: "a function's result", body: runBody(t, "roottest.echo", "raw"), status: http.StatusOK,
			check: func(is *is.I, res *sdkv1.RunResponse) {
				is.Equal(res.GetStatus(), sdkv1.Status_STATUS_OK)
				var out string
				is.NoErr(serde.Unmarshal(res.GetExit().GetResult().GetOutput(), &out))
				is.Equal(out, "raw")
			},
		},
		{
			name: "a function's failure is a 200", body: runBody(t, "roottest.flaky", "raw"), status: http.StatusOK,
			check: func(is *is.I, res *sdkv1.RunResponse) {
				is.Equal(res.GetStatus(), sdkv1.Status_STATUS_TEMPORARY_ERROR)
			},
		},
		{
			name: "a workflow's poll carries untyped state", body: runBody(t, "roottest.pipeline", 3), status: http.StatusOK,
			check: func(is *is.I, res *sdkv1.RunResponse) {
				poll := res.GetPoll()
				is.True(poll != nil)
				is.True(poll.GetTypedCoroutineState() == nil) // moved
				is.True(len(poll.GetCoroutineState()) > 0)    // to the bytes v0.5.1 echoes
				is.Equal(len(poll.GetCalls()), 1)
			},
		},
		{name: "not a RunRequest", body: []byte{0xff, 0xff, 0xff, 0xff}, status: http.StatusBadRequest, code: connect.CodeInvalidArgument, msg: "not a RunRequest"},
		{name: "a gRPC prefix of the wrong length", body: append([]byte{0, 0, 0, 0, 9}, runBody(t, "roottest.echo", "x")...), status: http.StatusBadRequest, code: connect.CodeInvalidArgument},
		{name: "no function", body: mustMarshal(t, &sdkv1.RunRequest{Directive: &sdkv1.RunRequest_Input{Input: mustAny(t, "x")}}), status: http.StatusBadRequest, code: connect.CodeInvalidArgument, msg: "names no function"},
		{name: "unknown function", body: runBody(t, "roottest.missing", "x"), status: http.StatusNotFound, code: connect.CodeNotFound, msg: "roottest.echo"},
		{name: "unsigned", body: runBody(t, "roottest.echo", "x"), unsigned: true, status: http.StatusUnauthorized, code: connect.CodeUnauthenticated},
		{name: "body does not match the signature", body: runBody(t, "roottest.echo", "x"), tamper: true, status: http.StatusForbidden, code: connect.CodePermissionDenied, msg: "Content-Digest"},
		{name: "over the limit", body: runBody(t, "roottest.echo", strings.Repeat("x", 2*testLimit)), status: http.StatusRequestEntityTooLarge, code: connect.CodeResourceExhausted, msg: "WithMaxRequestBytes"},
		{name: "over the limit, length unknown", body: runBody(t, "roottest.echo", strings.Repeat("x", 2*testLimit)), chunked: true, status: http.StatusRequestEntityTooLarge, code: connect.CodeResourceExhausted},
	}
	for _, ct := range rawContentTypes {
		for _, tt := range tests {
			t.Run(ctName(ct)+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				is := is.New(t)
				signer := b.signer
				if tt.unsigned {
					signer = nil
				}
				body := tt.body
				var res *http.Response
				if tt.tamper {
					res = b.postTampered(t, ct, body)
				} else {
					res = b.postRaw(t, ct, body, signer, tt.chunked)
				}
				a := readRaw(t, res)
				is.Equal(a.status, tt.status) // HTTP status
				if tt.status == http.StatusOK {
					want := ct
					if want == "" {
						want = "application/octet-stream"
					}
					is.Equal(a.contentType, want) // the request's Content-Type
					tt.check(is, a.res)
					return
				}
				is.Equal(a.contentType, "application/json")
				is.Equal(a.code, tt.code.String()) // connect code
				if !strings.Contains(a.message, tt.msg) {
					t.Errorf("message %q does not contain %q", a.message, tt.msg)
				}
			})
		}
	}
}

// postTampered signs body and sends another one in its place.
func (b *endpointBundle) postTampered(t *testing.T, contentType string, body []byte) *http.Response {
	t.Helper()
	st := &signingTransport{base: b.h1.Client().Transport, signer: b.signer, after: func(r *http.Request, body []byte) []byte {
		return append(bytes.Clone(body), 0x10, 0x00) // another field
	}}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, b.h1.URL+runPath, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header["Content-Type"] = []string{contentType}
	res, err := (&http.Client{Transport: st}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func mustMarshal(tb testing.TB, m proto.Message) []byte {
	tb.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// TestEndpointRawWorkflow runs roottest.pipeline to its end in the raw
// style, resuming it with the untyped state it answered, as dispatch-py
// v0.5.1's mock does: results carry only their correlation ids.
func TestEndpointRawWorkflow(t *testing.T) {
	t.Parallel()
	b := setupEndpoint(t)
	for _, ct := range rawContentTypes {
		t.Run(ctName(ct), func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			a := readRaw(t, b.postRaw(t, ct, runBody(t, "roottest.pipeline", 3), b.signer, false))
			for i := 0; a.res.GetPoll() != nil; i++ {
				is.True(i < 3) // the flow ends
				poll := a.res.GetPoll()
				is.True(poll.GetTypedCoroutineState() == nil) // untyped in this style
				var results []*sdkv1.CallResult
				for _, c := range poll.GetCalls() {
					child := readRaw(t, b.postRaw(t, ct, mustMarshal(t, &sdkv1.RunRequest{Function: c.GetFunction(), Directive: &sdkv1.RunRequest_Input{Input: c.GetInput()}}), b.signer, false))
					r := child.res.GetExit().GetResult()
					r.CorrelationId = c.GetCorrelationId()
					results = append(results, r)
				}
				resume := mustMarshal(t, &sdkv1.RunRequest{Function: "roottest.pipeline", Directive: &sdkv1.RunRequest_PollResult{PollResult: &sdkv1.PollResult{
					State:   &sdkv1.PollResult_CoroutineState{CoroutineState: poll.GetCoroutineState()},
					Results: results,
				}}})
				a = readRaw(t, b.postRaw(t, ct, resume, b.signer, false))
			}
			is.Equal(output[int](t, a.res), 17) // 2*(2*3+1) + 3
		})
	}
}

// TestEndpointFramedGRPCStaysGRPC posts a framed gRPC body by hand: it is
// served by gRPC, not as raw protobuf, and its answer is framed with a
// grpc-status trailer; the poll state stays typed.
func TestEndpointFramedGRPCStaysGRPC(t *testing.T) {
	t.Parallel()
	b := setupEndpoint(t)
	tests := []struct {
		name  string
		body  []byte
		check func(is *is.I, res *sdkv1.RunResponse)
	}{
		{name: "a function", body: runBody(t, "roottest.echo", "framed"), check: func(is *is.I, res *sdkv1.RunResponse) {
			var out string
			is.NoErr(serde.Unmarshal(res.GetExit().GetResult().GetOutput(), &out))
			is.Equal(out, "framed")
		}},
		{name: "a workflow", body: runBody(t, "roottest.pipeline", 3), check: func(is *is.I, res *sdkv1.RunResponse) {
			is.Equal(res.GetPoll().GetTypedCoroutineState().GetTypeUrl(), flow.StateTypeURL)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			framed := append(binary.BigEndian.AppendUint32([]byte{0}, uint32(len(tt.body))), tt.body...)
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, b.h2.URL+runPath, bytes.NewReader(framed))
			is.NoErr(err)
			req.Header.Set("Content-Type", "application/grpc+proto")
			req.Header.Set("Te", "trailers")
			is.NoErr(b.signer.Sign(req, framed))
			res, err := b.h2.Client().Do(req)
			is.NoErr(err)
			defer res.Body.Close()
			out, err := io.ReadAll(res.Body)
			is.NoErr(err)
			is.Equal(res.Trailer.Get("Grpc-Status"), "0") // served by gRPC
			is.True(grpcFramed(out, int64(len(out))))     // a framed answer
			var msg sdkv1.RunResponse
			is.NoErr(proto.Unmarshal(out[5:], &msg))
			tt.check(is, &msg)
		})
	}
}

func TestRawStyle(t *testing.T) {
	t.Parallel()
	body := runBody(t, "roottest.echo", "x")
	framed := append(binary.BigEndian.AppendUint32([]byte{0}, uint32(len(body))), body...)
	compressed := append([]byte{1}, framed[1:]...)
	tests := []struct {
		name        string
		contentType string
		body        []byte
		total       int64 // 0: len(body)
		raw         bool
	}{
		{name: "gRPC, framed", contentType: "application/grpc", body: framed},
		{name: "gRPC+proto, framed", contentType: "application/grpc+proto", body: framed},
		{name: "gRPC, framed and compressed", contentType: "application/grpc", body: compressed},
		{name: "gRPC, unframed", contentType: "application/grpc", body: body, raw: true},
		{name: "gRPC+proto, unframed", contentType: "application/grpc+proto", body: body, raw: true},
		{name: "gRPC+proto with a parameter, unframed", contentType: "Application/GRPC+proto; charset=utf-8", body: body, raw: true},
		{name: "gRPC, flag 2", contentType: "application/grpc", body: append([]byte{2}, framed[1:]...), raw: true},
		{name: "gRPC, length one short", contentType: "application/grpc", body: framed[:len(framed)-1], raw: true},
		{name: "gRPC, length one long", contentType: "application/grpc", body: append(bytes.Clone(framed), 0), raw: true},
		{name: "gRPC, four bytes", contentType: "application/grpc", body: []byte{0, 0, 0, 0}, raw: true},
		{name: "gRPC, empty", contentType: "application/grpc"},
		{name: "gRPC, truncated over the limit, framed", contentType: "application/grpc", body: append(binary.BigEndian.AppendUint32([]byte{0}, 1<<20), body...), total: -1},
		{name: "gRPC, truncated over the limit, unframed", contentType: "application/grpc", body: body, total: -1, raw: true},
		{name: "gRPC, cut short before its first byte", contentType: "application/grpc", total: -1},
		{name: "gRPC, cut short within the prefix", contentType: "application/grpc", body: framed[:3], total: -1},
		{name: "gRPC, cut short within the message", contentType: "application/grpc", body: framed[:len(framed)-1], total: -1},
		{name: "gRPC+proto, unframed, cut short", contentType: "application/grpc+proto", body: body[:3], total: -1, raw: true},
		{name: "gRPC-Web is left to connect", contentType: "application/grpc-web+proto", body: body},
		{name: "Connect", contentType: "application/proto", body: body},
		{name: "JSON", contentType: "application/json", body: []byte(`{}`)},
		{name: "octet-stream", contentType: "application/octet-stream", body: body, raw: true},
		{name: "no Content-Type", body: body, raw: true},
		{name: "no Content-Type, empty", raw: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			total := tt.total
			if total == 0 {
				total = int64(len(tt.body))
			}
			is.New(t).Equal(rawStyle(tt.contentType, tt.body, total), tt.raw)
		})
	}
}

// TestEndpointRawUnverified posts a raw request with no Content-Type field
// at all to an endpoint without a verification key (a signed request has
// one: the signature covers it).
func TestEndpointRawUnverified(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	h := newTest(t).Handler()
	req := httptest.NewRequest(http.MethodPost, runPath, bytes.NewReader(runBody(t, "roottest.double", 21)))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	is.Equal(rec.Code, http.StatusOK)
	is.Equal(rec.Header().Get("Content-Type"), "application/octet-stream")
	var res sdkv1.RunResponse
	is.NoErr(proto.Unmarshal(rec.Body.Bytes(), &res))
	is.Equal(output[int](t, &res), 42)
}

// failingBody yields data, then fails with err: a body that stalled past
// the body timeout (os.ErrDeadlineExceeded) or whose connection broke.
type failingBody struct {
	data []byte
	err  error
}

func (b *failingBody) Read(p []byte) (int, error) {
	if len(b.data) == 0 {
		return 0, b.err
	}
	n := copy(p, b.data)
	b.data = b.data[n:]
	return n, nil
}

// TestEndpointIncompleteBody sends bodies whose reading fails part way:
// each is answered in the style of its request, judged on what arrived.
// A gRPC request cut short, even before its first byte or within its
// prefix, is answered with grpc-status under HTTP 200, not as raw
// protobuf; an unframed one is answered raw.
func TestEndpointIncompleteBody(t *testing.T) {
	t.Parallel()
	payload := runBody(t, "roottest.echo", "x")
	framed := append(binary.BigEndian.AppendUint32([]byte{0}, uint32(len(payload))), payload...)
	tests := []struct {
		name        string
		contentType string
		sent        []byte // what arrives before the failure
		err         error
		status      int
		code        connect.Code
		grpc        bool // answered with grpc-status
	}{
		{"gRPC, stalled in the message", "application/grpc", framed[:len(framed)/2], os.ErrDeadlineExceeded, http.StatusOK, connect.CodeDeadlineExceeded, true},
		{"gRPC, stalled within the prefix", "application/grpc", framed[:3], os.ErrDeadlineExceeded, http.StatusOK, connect.CodeDeadlineExceeded, true},
		{"gRPC, stalled before any byte", "application/grpc", nil, os.ErrDeadlineExceeded, http.StatusOK, connect.CodeDeadlineExceeded, true},
		{"gRPC, connection broken", "application/grpc", framed[:len(framed)/2], io.ErrUnexpectedEOF, http.StatusOK, connect.CodeInvalidArgument, true},
		{"gRPC-Web, stalled", "application/grpc-web+proto", framed[:len(framed)/2], os.ErrDeadlineExceeded, http.StatusOK, connect.CodeDeadlineExceeded, true},
		{"unframed gRPC+proto, stalled", "application/grpc+proto", payload[:len(payload)/2], os.ErrDeadlineExceeded, http.StatusGatewayTimeout, connect.CodeDeadlineExceeded, false},
		{"octet-stream, stalled", "application/octet-stream", payload[:len(payload)/2], os.ErrDeadlineExceeded, http.StatusGatewayTimeout, connect.CodeDeadlineExceeded, false},
		{"Connect, stalled", "application/proto", payload[:len(payload)/2], os.ErrDeadlineExceeded, http.StatusGatewayTimeout, connect.CodeDeadlineExceeded, false},
	}
	h := newTest(t).Handler()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			req := httptest.NewRequest(http.MethodPost, runPath, &failingBody{data: tt.sent, err: tt.err})
			req.ContentLength = int64(len(framed)) // announced in full
			req.Header.Set("Content-Type", tt.contentType)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			res := rec.Result()
			grpc := res.Header.Get("Grpc-Status") != "" || res.Trailer.Get("Grpc-Status") != ""
			o := readOutcome(t, res)
			is.Equal(grpc, tt.grpc)       // the request's style
			is.Equal(o.status, tt.status) // HTTP status
			is.Equal(o.code, tt.code)     // connect code
		})
	}
}
