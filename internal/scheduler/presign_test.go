package scheduler

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/dispatchkit/dispatch/internal/signature"
)

// TestPresigned checks the signatures made ahead: used only for the same
// body to the same URL while fresh, once, and accepted by a verifier like
// a signature made at send time.
func TestPresigned(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	verifier := signature.NewVerifier(pub)
	var refused []error
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := verifier.Verify(r, body); err != nil {
			refused = append(refused, err)
			http.Error(w, err.Error(), http.StatusUnauthorized)
		}
	}))
	defer srv.Close()
	base := http.DefaultTransport.(*http.Transport).Clone()
	defer base.CloseIdleConnections()

	send := func(tr *signingTransport, url string, body []byte) int {
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", presignContentType)
		res, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	url := runURL(srv.URL + "/")
	other := srv.URL + "/other"
	tests := []struct {
		name     string
		signedTo string
		signed   []byte // body signed ahead
		signedAt time.Time
		sentTo   string
		sent     []byte
		hits     int64
		// collide files the signature made ahead under the key of the
		// body sent, as a collision of the keys' maphash would.
		collide bool
	}{
		{"same body", url, []byte("request"), time.Now(), url, []byte("request"), 1, false},
		{"other body", url, []byte("request"), time.Now(), url, []byte("request with more results"), 0, false},
		{"other URL", url, []byte("request"), time.Now(), other, []byte("request"), 0, false},
		// The signature covers the escaped path: /a%2Fb is not /a/b.
		{"other escaping of the path", runURL(srv.URL + "/a%2Fb"), []byte("request"), time.Now(), runURL(srv.URL + "/a/b"), []byte("request"), 0, false},
		// The query is kept after the procedure, and not signed.
		{"a query", runURL(srv.URL + "/admin?code=k"), []byte("request"), time.Now(), srv.URL + "/admin/dispatch.sdk.v1.FunctionService/Run?code=k", []byte("request"), 1, false},
		{"too old", url, []byte("request"), time.Now().Add(-presignTTL - time.Second), url, []byte("request"), 0, false},
		// The SHA-512 kept beside the signature tells the bodies apart.
		{"hash collision", url, []byte("request"), time.Now(), url, []byte("other request"), 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			refused = nil
			tr := &signingTransport{base: base, sign: signature.NewSigner(priv).Sign}
			tr.presign(tt.signedTo, tt.signed, tt.signedAt)
			is.Equal(len(tr.presigned.m), 1) // signed ahead
			if tt.collide {
				sent, err := http.NewRequest(http.MethodPost, tt.sentTo, nil)
				is.NoErr(err)
				for k, p := range tr.presigned.m {
					delete(tr.presigned.m, k)
					tr.presigned.m[requestKey(tr.presigned.seed, sent, tt.sent)] = p
				}
			}
			is.Equal(send(tr, tt.sentTo, tt.sent), http.StatusOK) // accepted either way
			is.Equal(tr.presigned.hits.Load(), tt.hits)
			is.Equal(len(refused), 0)
			// Used at most once: a second send signs.
			is.Equal(send(tr, tt.sentTo, tt.sent), http.StatusOK)
			is.Equal(tr.presigned.hits.Load(), tt.hits)
		})
	}

	t.Run("unused dropped", func(t *testing.T) {
		is := is.New(t)
		tr := &signingTransport{base: base, sign: signature.NewSigner(priv).Sign}
		long := time.Now().Add(-time.Hour)
		for i := range 10 {
			tr.presign(url, []byte{'g', byte(i)}, long) // guesses never used
		}
		is.Equal(send(tr, url, []byte("later")), http.StatusOK)
		is.Equal(len(tr.presigned.m), 0) // dropped, so requests skip the cache again
	})

	t.Run("bounded", func(t *testing.T) {
		is := is.New(t)
		tr := &signingTransport{base: base, sign: signature.NewSigner(priv).Sign}
		now := time.Now()
		for i := range presignMax + 10 {
			tr.presign(url, []byte{byte(i), byte(i >> 8)}, now)
		}
		is.Equal(len(tr.presigned.m), presignMax) // full: no more kept
		// Once the old ones expire, new ones replace them.
		tr.presign(url, []byte("late"), now.Add(presignTTL+2*time.Second))
		is.Equal(len(tr.presigned.m), 1)
	})
}

// BenchmarkTakePresignedMiss is the cost the cache of signatures made
// ahead adds to a request it has no signature for, while it holds some
// (the usual case under load): a body of the size of a RunRequest.
func BenchmarkTakePresignedMiss(b *testing.B) {
	tr := &signingTransport{sign: func(*http.Request, []byte) error { return nil }}
	url := runURL("http://127.0.0.1:8000/")
	now := time.Now()
	tr.presign(url, []byte("a guess never used"), now)
	body := bytes.Repeat([]byte("dispatch"), 128)
	r, err := http.NewRequest(http.MethodPost, url, nil)
	if err != nil {
		b.Fatal(err)
	}
	r.Header.Set("Content-Type", presignContentType)
	b.ReportAllocs()
	for b.Loop() {
		if tr.takePresigned(r, body, now) {
			b.Fatal("hit")
		}
	}
}
