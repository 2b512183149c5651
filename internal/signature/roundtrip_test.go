package signature

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"
)

// runPath is where the endpoint serves Run, behind the "/app" prefix.
const runPath = "/dispatch.sdk.v1.FunctionService/Run"

// newEndpoint starts a server that mounts a verifying handler behind
// http.StripPrefix("/app"), as an application mounts its Dispatch endpoint.
// The handler answers 200, 401 (ErrMissing), 403 (ErrInvalid) or 500, with
// the error message as body, and reports the stripped path and protocol.
func newEndpoint(t *testing.T, v *Verifier, http2 bool) *httptest.Server {
	t.Helper()
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Path", r.URL.Path)
		w.Header().Set("X-Proto", strconv.Itoa(r.ProtoMajor))
		err = v.Verify(r, body)
		switch {
		case err == nil:
			w.WriteHeader(http.StatusOK)
		case errors.Is(err, ErrMissing):
			http.Error(w, err.Error(), http.StatusUnauthorized)
		case errors.Is(err, ErrInvalid):
			http.Error(w, err.Error(), http.StatusForbidden)
		default:
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	srv := httptest.NewUnstartedServer(http.StripPrefix("/app", handler))
	if http2 {
		srv.EnableHTTP2 = true
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	pub := priv.Public().(ed25519.PublicKey)
	body := []byte(`{"function":"greet","input":"world"}`)

	tests := []struct {
		name string
		// signer defaults to one with the real clock.
		signer *Signer
		// tamper changes the signed request before it is sent; it may
		// return a different body to send.
		tamper func(r *http.Request, srv *httptest.Server) []byte
		want   int
		msg    string // a part of the response body
	}{
		{name: "signed request", want: http.StatusOK},
		{name: "query added after signing", tamper: func(r *http.Request, _ *httptest.Server) []byte {
			r.URL.RawQuery = "extra=1&x=2"
			return nil
		}, want: http.StatusOK},
		{name: "no signature", tamper: func(r *http.Request, _ *httptest.Server) []byte {
			r.Header.Del("Signature")
			r.Header.Del("Signature-Input")
			return nil
		}, want: http.StatusUnauthorized, msg: "signature: request has no Signature-Input header"},
		{name: "malformed Signature", tamper: func(r *http.Request, _ *httptest.Server) []byte {
			r.Header.Set("Signature", "dispatch=:abc")
			return nil
		}, want: http.StatusUnauthorized, msg: "signature: Signature is not an RFC 8941 dictionary"},
		{name: "tampered body", tamper: func(r *http.Request, _ *httptest.Server) []byte {
			return []byte(`{"function":"greet","input":"mallory"}`)
		}, want: http.StatusForbidden, msg: "signature: Content-Digest sha-512 does not match the body"},
		{name: "tampered Content-Type", tamper: func(r *http.Request, _ *httptest.Server) []byte {
			r.Header.Set("Content-Type", "application/json")
			return nil
		}, want: http.StatusForbidden, msg: "does not verify"},
		{name: "tampered method", tamper: func(r *http.Request, _ *httptest.Server) []byte {
			r.Method = http.MethodPut
			return nil
		}, want: http.StatusForbidden, msg: "does not verify"},
		{name: "tampered path", tamper: func(r *http.Request, _ *httptest.Server) []byte {
			r.URL.Path = "/app/dispatch.sdk.v1.FunctionService/Other"
			return nil
		}, want: http.StatusForbidden, msg: "does not verify"},
		{name: "tampered authority", tamper: func(r *http.Request, srv *httptest.Server) []byte {
			r.Host = "example.com"
			return nil
		}, want: http.StatusForbidden, msg: "does not verify"},
		{name: "authority in upper case", tamper: func(r *http.Request, srv *httptest.Server) []byte {
			r.Host = strings.ToUpper(r.URL.Host)
			return nil
		}, want: http.StatusOK},
		{name: "signed ten minutes ago", signer: NewSigner(priv, WithSignerClock(func() time.Time {
			return time.Now().Add(-10 * time.Minute)
		})), want: http.StatusForbidden, msg: "old (limit 5m0s)"},
		{name: "signed by another key", signer: NewSigner(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))),
			want: http.StatusForbidden, msg: "does not verify"},
	}
	for _, http2 := range []bool{false, true} {
		proto := map[bool]string{false: "HTTP/1.1", true: "HTTP/2"}[http2]
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			srv := newEndpoint(t, NewVerifier(pub), http2)
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					t.Parallel()
					is := is.New(t)
					r, err := http.NewRequest(http.MethodPost, srv.URL+"/app"+runPath+"?x=1", nil)
					is.NoErr(err)
					r.Header.Set("Content-Type", "application/proto")
					signer := tt.signer
					if signer == nil {
						signer = NewSigner(priv)
					}
					is.NoErr(signer.Sign(r, body))
					send := body
					if tt.tamper != nil {
						if b := tt.tamper(r, srv); b != nil {
							send = b
						}
					}
					r.Body = io.NopCloser(bytes.NewReader(send))
					r.ContentLength = int64(len(send))
					resp, err := srv.Client().Do(r)
					is.NoErr(err)
					defer resp.Body.Close()
					got, err := io.ReadAll(resp.Body)
					is.NoErr(err)
					is.Equal(resp.Header.Get("X-Proto"), map[bool]string{false: "1", true: "2"}[http2]) // protocol under test
					if resp.StatusCode == http.StatusOK {
						is.Equal(resp.Header.Get("X-Path"), runPath) // the handler saw the stripped path
					}
					is.Equal(resp.StatusCode, tt.want) // status
					is.True(strings.Contains(string(got), tt.msg))
				})
			}
		})
	}
}

// TestRoundTripURLShapes signs requests whose URLs need care: an empty
// path, escaped characters, a port and upper-case host.
func TestRoundTripURLShapes(t *testing.T) {
	t.Parallel()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))
	pub := priv.Public().(ed25519.PublicKey)
	tests := []struct {
		name string
		path string // appended to the server URL
	}{
		{name: "empty path", path: ""},
		{name: "root with query", path: "/?a=b"},
		{name: "escaped space", path: "/app/a%20b"},
		{name: "escaped slash", path: "/app/a%2Fb/Run"},
		{name: "tilde escaped", path: "/app/a%7Eb"},
		{name: "unicode", path: "/app/h%C3%A9llo"},
		{name: "trailing question mark", path: "/app/run?"},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := NewVerifier(pub).Verify(r, body); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
		}
	}))
	t.Cleanup(srv.Close)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			u, err := url.Parse(srv.URL + tt.path)
			is.NoErr(err)
			u.Host = strings.Replace(u.Host, "127.0.0.1", "LocalHost", 1)
			r, err := http.NewRequest(http.MethodPost, u.String(), strings.NewReader("x"))
			is.NoErr(err)
			r.Header.Set("Content-Type", "text/plain")
			is.NoErr(NewSigner(priv).Sign(r, []byte("x")))
			// Dial the server's address whatever the Host says.
			r.URL.Host = srv.Listener.Addr().String()
			resp, err := srv.Client().Do(r)
			is.NoErr(err)
			defer resp.Body.Close()
			msg, err := io.ReadAll(resp.Body)
			is.NoErr(err)
			is.Equal(string(msg), "")                // no error from the verifier
			is.Equal(resp.StatusCode, http.StatusOK) // verified
		})
	}
}
