package dispatch

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"connectrpc.com/connect"
	"github.com/dispatchkit/dispatch/internal/signature"
	"github.com/dispatchkit/dispatch/internal/testsync"
	"github.com/dispatchkit/dispatch/internal/vectors"
	"github.com/dispatchkit/dispatch/serde"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// TestMain checks that no test leaks a goroutine (servers, client
// connections, handlers). It also clears the DISPATCH_* variables, so that
// a developer's shell does not change what the examples print; the tests
// themselves never read the process environment (they pass withEnv).
func TestMain(m *testing.M) {
	for _, v := range []string{EnvAPIKey, EnvAPIURL, EnvEndpointURL, EnvVerificationKey, EnvTrace} {
		os.Unsetenv(v)
	}
	goleak.VerifyTestMain(m)
}

// Functions registered by the root package's tests. Their names start with
// "roottest." so that they do not collide with the examples' or other
// packages' registrations in the same binary.
var (
	rtEcho = Func("roottest.echo", func(ctx context.Context, s string) (string, error) {
		return s, nil
	})
	rtDouble = Func("roottest.double", func(ctx context.Context, n int) (int, error) {
		return 2 * n, nil
	})
	rtFlaky = Func("roottest.flaky", func(ctx context.Context, s string) (string, error) {
		return "", Temporary(&rtError{Reason: "flaky " + s})
	})
	rtPanic = Func("roottest.panic", func(ctx context.Context, s string) (string, error) {
		panic("roottest: boom " + s)
	})
)

// rtError is an error type of the tests, to check that the type of a
// function's error reaches the wire.
type rtError struct{ Reason string }

func (e *rtError) Error() string { return "roottest: " + e.Reason }

// testNow is the fixed time of the tests' clocks.
var testNow = time.Unix(1_700_000_000, 0).UTC()

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

// noEnv is an empty environment: the tests never read the process's.
func noEnv() Option { return withEnv(func(string) (string, bool) { return "", false }) }

// env is an environment made of m.
func env(m map[string]string) Option {
	return withEnv(func(k string) (string, bool) { v, ok := m[k]; return v, ok })
}

// testAPIURL is the Dispatch server of instances that do not dispatch: a
// name that never resolves. Naming one keeps New out of local mode, which
// would start an embedded server (and replace the verification key).
const testAPIURL = "http://dispatch.invalid:4450"

// remote adds testAPIURL to an environment that names no Dispatch server,
// to keep New out of local mode.
func remote(m map[string]string) map[string]string {
	out := map[string]string{EnvAPIURL: testAPIURL}
	for k, v := range m {
		out[k] = v
	}
	return out
}

// newTest returns an instance with an empty environment, a silent logger
// and testAPIURL, plus opts; it is closed at the end of the test.
func newTest(tb testing.TB, opts ...Option) *Dispatch {
	tb.Helper()
	d, err := New(append([]Option{noEnv(), WithZerolog(zerolog.Nop()), WithAPIURL(testAPIURL)}, opts...)...)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() { d.Close() })
	return d
}

// The signature test vectors, shared with the other SDKs (see
// internal/vectors).
type (
	vectorFile = vectors.File
	vectorKey  = vectors.Key
)

func loadVectors(tb testing.TB) *vectorFile { return vectors.Load(tb) }

// testKeys returns the RFC 9421 test key pair of the vectors.
func testKeys(tb testing.TB) (ed25519.PrivateKey, vectorKey) {
	tb.Helper()
	k, ok := loadVectors(tb).Keys["rfc9421_test_key_ed25519"]
	if !ok {
		tb.Fatal("the vectors have no rfc9421_test_key_ed25519 key")
	}
	priv, err := signature.ParsePrivateKey(k.PrivateSeedBase64)
	if err != nil {
		tb.Fatalf("ParsePrivateKey: %v", err)
	}
	return priv, k
}

// runPath is the path of FunctionService.Run.
const runPath = "/dispatch.sdk.v1.FunctionService/Run"

// mustAny encodes v as an Any.
func mustAny(tb testing.TB, v any) *anypb.Any {
	tb.Helper()
	a, err := serde.Marshal(v)
	if err != nil {
		tb.Fatalf("serde.Marshal(%v): %v", v, err)
	}
	return a
}

// runReq is the first RunRequest of function with input.
func runReq(tb testing.TB, function string, input any) *sdkv1.RunRequest {
	tb.Helper()
	return &sdkv1.RunRequest{Function: function, Directive: &sdkv1.RunRequest_Input{Input: mustAny(tb, input)}}
}

// runBody is the binary RunRequest calling function with input.
func runBody(tb testing.TB, function string, input any) []byte {
	tb.Helper()
	b, err := proto.Marshal(runReq(tb, function, input))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// signingTransport plays Dispatch's part on the client side of a test: it
// signs each request (or not), letting a test tamper with it before or
// after signing.
type signingTransport struct {
	base   http.RoundTripper
	signer *signature.Signer // nil: do not sign
	// before replaces the body before signing; after tampers with the
	// signed request and returns the body actually sent.
	before func(body []byte) []byte
	after  func(r *http.Request, body []byte) []byte
}

func (t *signingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	var body []byte
	if r.Body != nil {
		b, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			return nil, err
		}
		body = b
	}
	r = r.Clone(r.Context())
	if t.before != nil {
		body = t.before(body)
	}
	if t.signer != nil {
		if err := t.signer.Sign(r, body); err != nil {
			return nil, err
		}
	}
	if t.after != nil {
		body = t.after(r, body)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	return t.base.RoundTrip(r)
}

// outcome is how the endpoint answered a raw HTTP request: the HTTP status
// and the Connect code, from a Connect JSON error body or gRPC's
// grpc-status field (0 for a success).
type outcome struct {
	status  int
	code    connect.Code
	message string
	body    []byte
}

func readOutcome(tb testing.TB, res *http.Response) outcome {
	tb.Helper()
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		tb.Fatalf("reading the response: %v", err)
	}
	o := outcome{status: res.StatusCode, body: body}
	if gs := res.Header.Get("Grpc-Status") + res.Trailer.Get("Grpc-Status"); gs != "" {
		var c int
		fmt.Sscan(gs, &c)
		o.code = connect.Code(c)
		o.message = res.Header.Get("Grpc-Message") + res.Trailer.Get("Grpc-Message")
		return o
	}
	if res.StatusCode != http.StatusOK && strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		var e struct{ Code, Message string }
		if err := json.Unmarshal(body, &e); err != nil {
			tb.Fatalf("error body %q: %v", body, err)
		}
		if err := o.code.UnmarshalText([]byte(e.Code)); err != nil {
			tb.Fatalf("error body %q: %v", body, err)
		}
		o.message = e.Message
	}
	return o
}

// closeIdle closes a test client's idle connections at the end of the test,
// so that goleak finds no connection goroutine left.
func closeIdle(tb testing.TB, tr interface{ CloseIdleConnections() }) {
	tb.Cleanup(tr.CloseIdleConnections)
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger
// shared by server goroutines.
type syncBuffer = testsync.Buffer
