package scheduler

import (
	"bytes"
	"crypto/ed25519"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/matryer/is"

	"github.com/dispatchkit/dispatch/internal/signature"
)

// recordingTransport keeps the request it is given and its body, and
// answers 200.
type recordingTransport struct {
	got  *http.Request
	body []byte
}

func (t *recordingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.got = r
	var err error
	if t.body, err = io.ReadAll(r.Body); err != nil {
		return nil, err
	}
	return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: r}, nil
}

// runRequest is a Run request as connect sends it, with body.
func runHTTPRequest(t testing.TB, body []byte, knownLength bool) *http.Request {
	var rd io.Reader = bytes.NewReader(body)
	if !knownLength {
		rd = io.MultiReader(rd) // hides the length from http.NewRequest
	}
	r, err := http.NewRequest(http.MethodPost, "http://127.0.0.1:8000/dispatch.sdk.v1.FunctionService/Run", rd)
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/proto")
	r.Header.Set("Connect-Protocol-Version", "1")
	r.Header.Set("Connect-Timeout-Ms", "300000")
	r.Header.Set("User-Agent", "connect-go/1.19.1 (go1.26)")
	r.Header.Set("Accept-Encoding", "gzip")
	return r
}

// TestSigningTransport checks that the request the base transport gets
// is signed over its whole body, which it can read again (GetBody, for
// net/http's retries) and net/http knows to be in memory, and that the
// request given is left as it was.
func TestSigningTransport(t *testing.T) {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	tests := []struct {
		name        string
		body        []byte
		knownLength bool
	}{
		{"length known", bytes.Repeat([]byte("run"), 300), true},
		{"length unknown", bytes.Repeat([]byte("run"), 300), false},
		{"empty", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			base := &recordingTransport{}
			tr := &signingTransport{base: base, sign: signature.NewSigner(key).Sign}
			r := runHTTPRequest(t, tt.body, tt.knownLength)
			before := r.Header.Clone()
			res, err := tr.RoundTrip(r)
			is.NoErr(err)
			is.Equal(res.StatusCode, http.StatusOK)
			is.Equal(r.Header, before) // the request given is not changed

			got := base.got
			is.True(got != r)
			is.True(bytes.Equal(base.body, tt.body))
			is.Equal(got.ContentLength, int64(len(tt.body)))
			// A body net/http knows to be in memory: it writes the
			// headers and the body in one go (attempt.go).
			is.Equal(reflect.TypeOf(got.Body), reflect.TypeOf(io.NopCloser(bytes.NewReader(nil))))
			for k, v := range before {
				is.Equal(got.Header[k], v) // every header kept
			}
			is.True(strings.HasPrefix(got.Header.Get("Signature"), "dispatch=:"))
			again, err := got.GetBody()
			is.NoErr(err)
			b, err := io.ReadAll(again)
			is.NoErr(err)
			is.True(bytes.Equal(b, tt.body))

			// The endpoint's view: the same request, as received.
			in, err := http.NewRequest(http.MethodPost, got.URL.String(), bytes.NewReader(base.body))
			is.NoErr(err)
			in.Header = got.Header
			v := signature.NewVerifier(key.Public().(ed25519.PublicKey))
			is.NoErr(v.Verify(in, base.body))
		})
	}
}

// BenchmarkSigningTransport is the signing of a Run request as the
// engine's HTTP client does it, without the network: the body read, the
// request copied, signed (BenchmarkSign in internal/signature), the body
// given as connect gives it (2 of the allocations).
func BenchmarkSigningTransport(b *testing.B) {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	tr := &signingTransport{base: discardTransport{}, sign: signature.NewSigner(key).Sign}
	body := bytes.Repeat([]byte("dispatch"), 128)
	r := runHTTPRequest(b, body, true)
	b.ReportAllocs()
	for b.Loop() {
		r.Body = io.NopCloser(bytes.NewReader(body))
		if _, err := tr.RoundTrip(r); err != nil {
			b.Fatal(err)
		}
	}
}

type discardTransport struct{}

func (discardTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: r}, nil
}
