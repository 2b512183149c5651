package dispatch

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"buf.build/gen/go/stealthrocket/dispatch-proto/connectrpc/go/dispatch/sdk/v1/sdkv1connect"
	"connectrpc.com/connect"
	"github.com/dispatchkit/dispatch/internal/signature"
	"github.com/dispatchkit/dispatch/serde"
	"github.com/matryer/is"
)

// newH2CServer serves h over HTTP/1.1 and cleartext HTTP/2 (h2c), and
// returns it with a client transport that speaks h2c with prior knowledge
// (as gRPC clients do on http:// URLs).
func newH2CServer(t *testing.T, h http.Handler) (*httptest.Server, *http.Transport) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	closeIdle(t, tr)
	return srv, tr
}

// toRun routes every request to the Run procedure, as a router or
// http.StripPrefix does: it rewrites r.URL.Path and leaves r.RequestURI,
// the path the client sent and signed, alone.
func toRun(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r2 := r.Clone(r.Context())
		r2.URL.Path, r2.URL.RawPath = runPath, ""
		h.ServeHTTP(w, r2)
	})
}

var (
	createdParam = regexp.MustCompile(`;created=(\d+)`)
	validAt      = regexp.MustCompile(`valid at unix time (\d+)`)
)

// TestEndpointSignatureVectors sends every request of the shared vectors,
// with its exact headers and body, to an endpoint whose clock is set around
// the signature's creation time. A vector whose expectation says "valid at
// unix time N" must pass verification at N and fail with permission_denied
// once too old (created+301 s) or too far in the future (created-6 s); any
// other vector must be refused with permission_denied.
//
// The vectors that sign a path other than Run's (/foo) reach the handler
// through toRun, which routes them as a prefix-stripping router would: the
// endpoint verifies the path the client sent (r.RequestURI), not the one
// it was routed with, so they verify; a request sent to another path fails.
// A verified request then fails with invalid_argument: the vectors' bodies
// are not calls ({"hello": "world"} decodes as a RunRequest naming no
// function, and the Run-path vector has an empty gRPC body).
func TestEndpointSignatureVectors(t *testing.T) {
	t.Parallel()
	vectors := loadVectors(t)
	type check struct {
		name   string
		at     time.Time
		path   string // send to this path instead of the vector's
		body   string // send this body instead of the vector's
		status int
		code   connect.Code
	}
	for _, v := range vectors.Signatures {
		key, ok := vectors.Keys[v.Key]
		if !ok {
			t.Fatalf("vector %q: no key %q in the file", v.Name, v.Key)
		}
		m := createdParam.FindStringSubmatch(v.SignatureInput)
		if m == nil {
			t.Fatalf("vector %q: no created parameter in %q", v.Name, v.SignatureInput)
		}
		created := unix(t, m[1])
		u, err := url.Parse(v.URL)
		if err != nil {
			t.Fatalf("vector %q: %v", v.Name, err)
		}
		// gRPC errors travel in grpc-status, under HTTP 200. The other
		// body (the vector's, plus a space) is not a gRPC message, so it is
		// served as raw protobuf, with the HTTP status of its code (see
		// rawproto.go).
		badRequest, forbidden := http.StatusBadRequest, http.StatusForbidden
		if strings.HasPrefix(v.Headers["Content-Type"], "application/grpc") {
			badRequest, forbidden = http.StatusOK, http.StatusOK
		}
		var checks []check
		if m := validAt.FindStringSubmatch(v.Expect); m != nil {
			at := unix(t, m[1])
			checks = []check{
				// Verified, then refused by the decoder.
				{name: "valid", at: at, status: badRequest, code: connect.CodeInvalidArgument},
				{name: "too old", at: created.Add(301 * time.Second), status: forbidden, code: connect.CodePermissionDenied},
				{name: "in the future", at: created.Add(-6 * time.Second), status: forbidden, code: connect.CodePermissionDenied},
				{name: "other path", at: at, path: "/other" + u.Path, status: forbidden, code: connect.CodePermissionDenied},
				{name: "other body", at: at, body: v.Body + " ", status: http.StatusForbidden, code: connect.CodePermissionDenied},
			}
		} else {
			checks = []check{{name: "refused", at: created.Add(time.Minute), status: forbidden, code: connect.CodePermissionDenied}}
		}
		for _, c := range checks {
			t.Run(v.Name+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				is := is.New(t)
				d := newTest(t, WithVerificationKey(key.PublicBase64), WithClock(fixedClock(c.at)))
				mux := http.NewServeMux()
				if u.Path == runPath {
					mux.Handle("/", d.Handler())
				} else {
					mux.Handle("/", toRun(d.Handler()))
				}
				srv, tr := newH2CServer(t, mux)
				path, body := u.RequestURI(), v.Body
				if c.path != "" {
					path = c.path
				}
				if c.body != "" {
					body = c.body
				}
				req, err := http.NewRequestWithContext(t.Context(), v.Method, srv.URL+path, strings.NewReader(body))
				is.NoErr(err)
				for k, val := range v.Headers {
					switch http.CanonicalHeaderKey(k) {
					case "Host":
						req.Host = val
					case "Content-Length":
						n, err := strconv.ParseInt(val, 10, 64)
						is.NoErr(err)
						is.Equal(n, int64(len(v.Body))) // the vector's Content-Length
					default:
						req.Header.Set(k, val)
					}
				}
				req.Header.Set("Signature-Input", v.SignatureInput)
				req.Header.Set("Signature", v.Signature)
				res, err := (&http.Client{Transport: tr}).Do(req)
				is.NoErr(err)
				o := readOutcome(t, res)
				is.Equal(o.code, c.code)     // connect code
				is.Equal(o.status, c.status) // HTTP status
				if c.name == "valid" {
					is.True(o.status != http.StatusUnauthorized && o.status != http.StatusForbidden)
					is.True(o.code != connect.CodeUnauthenticated && o.code != connect.CodePermissionDenied)
				}
			})
		}
	}
}

// TestEndpointVectorPathsAreNotRun checks that the handler mounted as is
// answers 404 to the vectors' /foo path without looking at its signature:
// it serves Run only.
func TestEndpointVectorPathsAreNotRun(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	_, key := testKeys(t)
	d := newTest(t, WithVerificationKey(key.PublicPEM), WithClock(fixedClock(testNow)))
	mux := http.NewServeMux()
	mux.Handle("/", d.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	res, err := srv.Client().Post(srv.URL+"/foo?bar=1", "application/json", strings.NewReader(`{"hello": "world"}`))
	is.NoErr(err)
	o := readOutcome(t, res)
	is.Equal(o.status, http.StatusNotFound)
}

func unix(t *testing.T, s string) time.Time {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return time.Unix(n, 0)
}

// TestEndpointSignedUnderPrefix serves the endpoint under /app and calls it
// at http://host/app, signed as Dispatch signs, with Connect, gRPC and
// gRPC-Web clients, over TLS with HTTP/2 and over h2c.
func TestEndpointSignedUnderPrefix(t *testing.T) {
	t.Parallel()
	priv, key := testKeys(t)
	signer := signature.NewSigner(priv, signature.WithSignerClock(fixedClock(testNow)))
	d := newTest(t, WithVerificationKey(key.PublicBase64), WithClock(fixedClock(testNow)))

	mounts := []struct {
		name  string
		mount func(mux *http.ServeMux)
	}{
		{"handler", func(mux *http.ServeMux) { mux.Handle("/app/", d.Handler()) }},
		{"StripPrefix", func(mux *http.ServeMux) { mux.Handle("/app/", http.StripPrefix("/app", d.Handler())) }},
	}
	protocols := []struct {
		name string
		opts []connect.ClientOption
	}{
		{"connect", nil},
		{"connect+json", []connect.ClientOption{connect.WithProtoJSON()}},
		{"grpc", []connect.ClientOption{connect.WithGRPC()}},
		{"grpc-web", []connect.ClientOption{connect.WithGRPCWeb()}},
	}
	// signedWithoutPrefix signs the path as if the endpoint were at the
	// root, as a Dispatch configured with the wrong endpoint URL would.
	signedWithoutPrefix := func(r *http.Request, body []byte) []byte {
		r2 := r.Clone(r.Context())
		r2.URL.Path = strings.TrimPrefix(r2.URL.Path, "/app")
		if err := signer.Sign(r2, body); err != nil {
			panic(err)
		}
		r.Header = r2.Header
		return body
	}
	for _, m := range mounts {
		mux := http.NewServeMux()
		m.mount(mux)
		tlsSrv := httptest.NewUnstartedServer(mux)
		tlsSrv.EnableHTTP2 = true
		tlsSrv.StartTLS()
		t.Cleanup(tlsSrv.Close)
		h2c, h2cTransport := newH2CServer(t, mux)
		servers := []struct {
			name string
			url  string
			tr   http.RoundTripper
		}{
			{"tls", tlsSrv.URL, tlsSrv.Client().Transport},
			{"h2c", h2c.URL, h2cTransport},
		}
		for _, s := range servers {
			for _, p := range protocols {
				for _, wrong := range []bool{false, true} {
					name := m.name + "/" + s.name + "/" + p.name
					if wrong {
						name += "/signed without the prefix"
					}
					t.Run(name, func(t *testing.T) {
						t.Parallel()
						is := is.New(t)
						st := &signingTransport{base: s.tr, signer: signer}
						if wrong {
							st.signer, st.after = nil, signedWithoutPrefix
						}
						client := sdkv1connect.NewFunctionServiceClient(&http.Client{Transport: st}, s.url+"/app", p.opts...)
						res, err := client.Run(t.Context(), connect.NewRequest(runReq(t, "roottest.echo", "prefixed")))
						if wrong {
							is.Equal(connect.CodeOf(err), connect.CodePermissionDenied)
							return
						}
						is.NoErr(err)
						var out string
						is.NoErr(serde.Unmarshal(res.Msg.GetExit().GetResult().GetOutput(), &out))
						is.Equal(out, "prefixed")
					})
				}
			}
		}
	}
}
