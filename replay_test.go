package dispatch

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"
	"github.com/dispatchkit/dispatch/internal/signature"
	"github.com/matryer/is"
	"github.com/rs/zerolog"
)

// TestEndpointRefusesReplays sends a signed request, then the same bytes
// again, in each style the endpoint serves: the copy is refused with
// permission_denied, a message that says it is a replay, and the function
// does not run again.
func TestEndpointRefusesReplays(t *testing.T) {
	t.Parallel()
	var runs atomic.Int64
	count, err := FuncSafely(uniqueName("roottest.count"), func(ctx context.Context, s string) (string, error) {
		runs.Add(1)
		return s, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	payload := runBody(t, count.Name(), "once")
	framed := append(binary.BigEndian.AppendUint32([]byte{0}, uint32(len(payload))), payload...)
	tests := []struct {
		name        string
		contentType string
		body        []byte
		status      int // of the replay
		grpc        bool
	}{
		{name: "connect", contentType: "application/proto", body: payload, status: http.StatusForbidden},
		{name: "grpc", contentType: "application/grpc", body: framed, status: http.StatusOK, grpc: true},
		{name: "grpc-web", contentType: "application/grpc-web+proto", body: framed, status: http.StatusOK, grpc: true},
		{name: "raw, unframed gRPC", contentType: "application/grpc+proto", body: payload, status: http.StatusForbidden},
		{name: "raw, octet-stream", contentType: "application/octet-stream", body: payload, status: http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t) // not parallel: the subtests share the run counter
			b := setupEndpoint(t)
			req, err := http.NewRequest(http.MethodPost, b.h2.URL+runPath, nil)
			is.NoErr(err)
			req.Header.Set("Content-Type", tt.contentType)
			is.NoErr(b.signer.Sign(req, tt.body))
			send := func() outcome {
				r := req.Clone(t.Context())
				r.Body = http.NoBody
				if len(tt.body) > 0 {
					r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(tt.body)), int64(len(tt.body))
				}
				res, err := b.h2.Client().Do(r)
				is.NoErr(err)
				return readOutcome(t, res)
			}
			before := runs.Load()
			first := send()
			is.Equal(first.status, http.StatusOK)
			is.Equal(first.code, connect.Code(0)) // served
			is.Equal(runs.Load(), before+1)

			replay := send()
			is.Equal(replay.status, tt.status)                  // HTTP status
			is.Equal(replay.code, connect.CodePermissionDenied) // connect code
			is.True(strings.Contains(replay.message, "replay")) // says why
			is.Equal(runs.Load(), before+1)                     // the function did not run again
		})
	}
}

// TestEndpointReplaySignersWithoutNonce signs two requests with the same
// body in the same second, as a signer without a nonce does (dispatch-py's
// mock server): the second has the same signature, so it is refused as a
// replay; with the nonce Dispatch adds, both are served.
func TestEndpointReplaySignersWithoutNonce(t *testing.T) {
	t.Parallel()
	priv, _ := testKeys(t)
	tests := []struct {
		name       string
		opts       []signature.SignerOption
		secondCode connect.Code
	}{
		{name: "with a nonce", secondCode: 0},
		{name: "without a nonce", opts: []signature.SignerOption{signature.WithoutNonce()}, secondCode: connect.CodePermissionDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			b := setupEndpoint(t)
			signer := signature.NewSigner(priv, append([]signature.SignerOption{signature.WithSignerClock(fixedClock(testNow))}, tt.opts...)...)
			h := b.d.Handler()
			var codes []connect.Code
			for range 2 {
				body := runBody(t, "roottest.echo", "same")
				req := httptest.NewRequest(http.MethodPost, runPath, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/grpc+proto")
				is.NoErr(signer.Sign(req, body))
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				codes = append(codes, readOutcome(t, rec.Result()).code)
			}
			is.Equal(codes, []connect.Code{0, tt.secondCode})
		})
	}
}

// TestEndpointReplayCacheFull serves more signed requests of one second
// than a cache of two holds: the ones past the bound are refused as too
// old (never a replay accepted), and the endpoint logs it once, naming
// WithReplayCache.
func TestEndpointReplayCacheFull(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	var buf syncBuffer
	b := setupEndpoint(t, WithReplayCache(2), WithZerolog(zerolog.New(&buf)))
	h := b.d.Handler()
	var codes []connect.Code
	for _, in := range []string{"a", "b", "c", "d", "a"} {
		body := runBody(t, "roottest.echo", in)
		req := httptest.NewRequest(http.MethodPost, runPath, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/proto")
		is.NoErr(b.signer.Sign(req, body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		codes = append(codes, readOutcome(t, rec.Result()).code)
	}
	denied := connect.CodePermissionDenied
	is.Equal(codes, []connect.Code{0, 0, denied, denied, denied})
	is.Equal(strings.Count(buf.String(), "pass a larger WithReplayCache"), 1) // logged once, naming the option
}
