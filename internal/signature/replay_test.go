package signature

import (
	"crypto/ed25519"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/matryer/is"
)

// replayBundle is a verifier with a replay cache of the size given, whose
// clock the test moves, and what it saw.
type replayBundle struct {
	priv     ed25519.PrivateKey
	now      time.Time
	verifier *Verifier
	full     []time.Time // the calls of the full callback
}

func setupReplay(t *testing.T, size int) *replayBundle {
	t.Helper()
	b := &replayBundle{priv: loadVectors(t).PrivateKey(t, "rfc9421_test_key_ed25519"), now: time.Unix(vecCreated, 0)}
	b.verifier = NewVerifier(b.priv.Public().(ed25519.PublicKey),
		WithClock(func() time.Time { return b.now }),
		WithReplayCache(size, func(min time.Time) { b.full = append(b.full, min) }))
	return b
}

// sent is a signed request and its body.
type sent struct {
	r    *http.Request
	body string
}

// sign signs a Run request with body, created at vecCreated+at.
func (b *replayBundle) sign(t *testing.T, body string, at int64, opts ...SignerOption) sent {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/dispatch.sdk.v1.FunctionService/Run", strings.NewReader(body))
	r.Host = "example.com:8000"
	r.Header.Set("Content-Type", "application/proto")
	signer := NewSigner(b.priv, append([]SignerOption{WithSignerClock(unix(vecCreated + at))}, opts...)...)
	if err := signer.Sign(r, []byte(body)); err != nil {
		t.Fatal(err)
	}
	return sent{r: r, body: body}
}

// resent is s sent again with what change does to a copy of its request.
func resent(s sent, change func(r *http.Request) *http.Request) sent {
	r := s.r.Clone(s.r.Context())
	return sent{r: change(r), body: s.body}
}

func TestReplayCache(t *testing.T) {
	t.Parallel()
	// A step sends a request at vecCreated+at and expects want: nil,
	// ErrReplay, or ErrInvalid (a refusal that is not a replay).
	type step struct {
		at   int64
		send func(b *replayBundle, reqs map[string]sent) sent
		want error
		msg  string
	}
	named := func(name string) func(*replayBundle, map[string]sent) sent {
		return func(_ *replayBundle, reqs map[string]sent) sent { return reqs[name] }
	}
	tests := []struct {
		name  string
		size  int
		reqs  func(t *testing.T, b *replayBundle) map[string]sent
		steps []step
		full  []int64 // the minimum created times the full callback reported
	}{
		{
			name: "a request is accepted once",
			reqs: func(t *testing.T, b *replayBundle) map[string]sent {
				return map[string]sent{"a": b.sign(t, "a", 0)}
			},
			steps: []step{
				{at: 0, send: named("a")},
				{at: 0, send: named("a"), want: ErrReplay, msg: "signature: replay: "},
				{at: 299, send: named("a"), want: ErrReplay},
				{at: 301, send: named("a"), want: ErrInvalid, msg: "old (limit 5m0s)"}, // out of the window: too old
			},
		},
		{
			name: "a replay under another label, query or uncovered header is a replay",
			reqs: func(t *testing.T, b *replayBundle) map[string]sent {
				a := b.sign(t, "a", 0)
				relabel := func(r *http.Request) *http.Request {
					for _, h := range []string{"Signature-Input", "Signature"} {
						r.Header.Set(h, "other="+strings.TrimPrefix(r.Header.Get(h), "dispatch="))
					}
					return r
				}
				query := func(r *http.Request) *http.Request {
					r.RequestURI += "?x=1"
					r.URL.RawQuery = "x=1"
					return r
				}
				header := func(r *http.Request) *http.Request {
					r.Header.Set("X-Attempt", "2")
					return r
				}
				return map[string]sent{"a": a, "relabelled": resent(a, relabel), "query": resent(a, query), "header": resent(a, header)}
			},
			steps: []step{
				{send: named("relabelled")},
				{send: named("a"), want: ErrReplay},
				{send: named("query"), want: ErrReplay},
				{send: named("header"), want: ErrReplay},
			},
		},
		{
			name: "signatures with nonces are distinct",
			reqs: func(t *testing.T, b *replayBundle) map[string]sent {
				return map[string]sent{"first": b.sign(t, "same", 0), "second": b.sign(t, "same", 0)}
			},
			steps: []step{
				{send: named("first")},
				{send: named("second")},
				{send: named("first"), want: ErrReplay},
			},
		},
		{
			name: "without nonces, the same body in the same second is a replay",
			reqs: func(t *testing.T, b *replayBundle) map[string]sent {
				return map[string]sent{
					"first":       b.sign(t, "same", 0, WithoutNonce()),
					"second":      b.sign(t, "same", 0, WithoutNonce()),
					"next second": b.sign(t, "same", 1, WithoutNonce()),
					"other body":  b.sign(t, "other", 0, WithoutNonce()),
				}
			},
			steps: []step{
				{send: named("first")},
				{send: named("second"), want: ErrReplay},
				{at: 1, send: named("next second")},
				{at: 1, send: named("other body")},
			},
		},
		{
			name: "a refused request is not remembered",
			reqs: func(t *testing.T, b *replayBundle) map[string]sent {
				a := b.sign(t, "a", 0)
				forged := sent{r: a.r.Clone(a.r.Context()), body: "forged"} // a's headers, another body
				badSig := resent(a, func(r *http.Request) *http.Request {
					sig, c := r.Header.Get("Signature"), "A"
					if sig[12] == 'A' {
						c = "B"
					}
					r.Header.Set("Signature", sig[:12]+c+sig[13:])
					return r
				})
				return map[string]sent{"a": a, "forged": forged, "bad signature": badSig}
			},
			steps: []step{
				{send: named("forged"), want: ErrInvalid, msg: "Content-Digest"},
				{send: named("bad signature"), want: ErrInvalid, msg: "does not verify"},
				{send: named("a")},
			},
		},
		{
			name: "when full, the oldest second goes and its replays are refused as too old",
			size: 2,
			reqs: func(t *testing.T, b *replayBundle) map[string]sent {
				return map[string]sent{
					"t0": b.sign(t, "a", 0), "t1": b.sign(t, "b", 1), "t2": b.sign(t, "c", 2),
					"fresh t0": b.sign(t, "d", 0), "t3": b.sign(t, "e", 3),
				}
			},
			steps: []step{
				{at: 2, send: named("t0")},
				{at: 2, send: named("t1")},
				{at: 2, send: named("t2")}, // drops the second of t0
				{at: 2, send: named("t0"), want: ErrInvalid, msg: "the replay cache is full (2 signatures), so signatures made before 1700000001 are refused as too old"},
				{at: 2, send: named("fresh t0"), want: ErrInvalid, msg: "refused as too old"},
				{at: 2, send: named("t1"), want: ErrReplay},
				{at: 3, send: named("t3")}, // drops the second of t1
				{at: 3, send: named("t1"), want: ErrInvalid, msg: "refused as too old"},
				{at: 3, send: named("t2"), want: ErrReplay},
			},
			full: []int64{vecCreated + 1}, // called once
		},
		{
			name: "when one second fills the cache, its own requests are refused until the next",
			size: 2,
			reqs: func(t *testing.T, b *replayBundle) map[string]sent {
				return map[string]sent{"a": b.sign(t, "a", 0), "b": b.sign(t, "b", 0), "c": b.sign(t, "c", 0), "d": b.sign(t, "d", 1)}
			},
			steps: []step{
				{send: named("a")},
				{send: named("b")},
				{send: named("c"), want: ErrInvalid, msg: "refused as too old"},
				{send: named("a"), want: ErrInvalid, msg: "refused as too old"}, // never accepted again
				{at: 1, send: named("d")},
			},
			full: []int64{vecCreated + 1},
		},
		{
			name: "seconds out of the window leave the cache without shrinking the window",
			size: 2,
			reqs: func(t *testing.T, b *replayBundle) map[string]sent {
				return map[string]sent{"a": b.sign(t, "a", 0), "b": b.sign(t, "b", 0), "late": b.sign(t, "late", 400), "later": b.sign(t, "later", 401)}
			},
			steps: []step{
				{send: named("a")},
				{send: named("b")},
				{at: 400, send: named("late")}, // the second of a and b is swept
				{at: 401, send: named("later")},
				{at: 401, send: named("late"), want: ErrReplay},
			},
			full: nil, // no pressure: the callback is not called
		},
		{
			name: "a clock set back by more than the window refuses the older seconds",
			reqs: func(t *testing.T, b *replayBundle) map[string]sent {
				n := int64(len(b.verifier.replay.slots)) // the next second of the same slot
				return map[string]sent{"late": b.sign(t, "late", n), "early": b.sign(t, "early", 0)}
			},
			steps: []step{
				{at: 0, send: func(b *replayBundle, reqs map[string]sent) sent {
					b.now = time.Unix(vecCreated+int64(len(b.verifier.replay.slots)), 0)
					return reqs["late"]
				}},
				{at: 0, send: named("early"), want: ErrInvalid, msg: "older than signatures already accepted"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			b := setupReplay(t, tt.size)
			reqs := tt.reqs(t, b)
			for i, st := range tt.steps {
				b.now = time.Unix(vecCreated+st.at, 0)
				s := st.send(b, reqs)
				err := b.verifier.Verify(s.r, []byte(s.body))
				switch {
				case st.want == nil:
					if err != nil {
						t.Fatalf("step %d: %v", i, err)
					}
				case errors.Is(st.want, ErrReplay):
					if !errors.Is(err, ErrReplay) || !errors.Is(err, ErrInvalid) {
						t.Fatalf("step %d: %v, want a replay", i, err)
					}
				default:
					if !errors.Is(err, st.want) || errors.Is(err, ErrReplay) {
						t.Fatalf("step %d: %v, want a refusal that is not a replay", i, err)
					}
				}
				if err != nil && !strings.Contains(err.Error(), st.msg) {
					t.Fatalf("step %d: %q does not contain %q", i, err, st.msg)
				}
			}
			var full []int64
			for _, m := range b.full {
				full = append(full, m.Unix())
			}
			is.Equal(full, tt.full) // the calls of the full callback
			c := b.verifier.replay
			held := 0
			for _, s := range c.slots {
				held += len(s.seen)
			}
			is.Equal(c.n, held) // the count of entries is right
			is.True(c.n <= c.size)
		})
	}
}

// TestReplayConcurrent verifies one request from many goroutines: exactly
// one is accepted.
func TestReplayConcurrent(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	b := setupReplay(t, 0)
	s := b.sign(t, "once", 0)
	const n = 16
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- b.verifier.Verify(s.r, []byte(s.body))
		}()
	}
	wg.Wait()
	close(errs)
	accepted := 0
	for err := range errs {
		if err == nil {
			accepted++
		} else {
			is.True(errors.Is(err, ErrReplay))
		}
	}
	is.Equal(accepted, 1)
}

// TestNonceIsOptional checks that signatures with and without a nonce
// both verify, and that the nonce is a fresh string of 16 random bytes in
// standard base64.
func TestNonceIsOptional(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		opts      []SignerOption
		wantNonce bool
	}{
		{name: "default: a nonce", wantNonce: true},
		{name: "WithoutNonce", opts: []SignerOption{WithoutNonce()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			b := setupReplay(t, 0)
			s := b.sign(t, "x", 0, tt.opts...)
			is.NoErr(b.verifier.Verify(s.r, []byte(s.body)))
			inputs, err := parseDictionary(s.r.Header.Get("Signature-Input"))
			is.NoErr(err)
			var nonce *bareItem
			for i, p := range inputs[0].params {
				if p.key == "nonce" {
					nonce = &inputs[0].params[i].val
				}
			}
			is.Equal(nonce != nil, tt.wantNonce) // a nonce parameter
			if nonce != nil {
				is.Equal(nonce.kind, kindString)
				is.Equal(len(nonce.str), 24) // 16 bytes of base64
				other := b.sign(t, "x", 0, tt.opts...)
				is.True(other.r.Header.Get("Signature-Input") != s.r.Header.Get("Signature-Input")) // fresh each time
			}
		})
	}
}
