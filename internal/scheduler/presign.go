package scheduler

import (
	"crypto/sha512"
	"hash/maphash"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"buf.build/gen/go/stealthrocket/dispatch-proto/connectrpc/go/dispatch/sdk/v1/sdkv1connect"
	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"google.golang.org/protobuf/proto"
)

// Signing ahead. A call made ready by a commit (a child made by a poll, a
// parent whose last awaited result arrives, a new root call) has a Run
// request that is known before the commit ends. On a quiet server the
// engine marshals and signs it while the commit runs, so that the attempt
// finds the signature made (20 µs of each step of a sequential workflow,
// twice per await). The attempt uses a signature made ahead only for a
// body byte for byte the same, to the same URL: if the request changed
// meanwhile (more results arrived), it signs as usual. Nothing depends on
// a guess being right. Under load (presignBelow requests in flight or
// more), or for a call that will wait in its endpoint's queue, the engine
// does not sign ahead: the work would only move, a wrong guess would waste
// it, and a signature could go stale before its request is sent. Unused
// signatures are dropped after presignTTL.

const (
	// presignBelow is the number of Run requests in flight from which
	// the engine stops signing ahead.
	presignBelow = 8
	// presignMaxCalls bounds the calls of one change signed ahead (the
	// children of one poll).
	presignMaxCalls = 8
	// presignTTL is how long a signature made ahead is used (verifiers
	// accept signatures made minutes before).
	presignTTL = 30 * time.Second
	// presignMax bounds the signatures kept.
	presignMax = 1024
	// presignContentType is the Content-Type of Run requests (connect,
	// binary protobuf), which the signature covers.
	presignContentType = "application/proto"
)

// presignKey is what a signature made ahead covers: the authority and the
// escaped path, as the signer reads them, and the body. The method and the
// Content-Type are always the same. The body is keyed by its length and a
// maphash, not by its SHA-512: under load nearly every request misses (the
// engine signs ahead only when quiet, and unused guesses stay until
// presignTTL), and a SHA-512 of every body sent only to find no entry was
// a second hash per request beside the signer's own (about 1% of the CPU
// of bench (b) over HTTP). A hit is confirmed with the SHA-512 the entry
// keeps, so a maphash collision costs a signature made at send time,
// never a wrong one.
type presignKey struct {
	authority, path string
	size            int
	hash            uint64
}

type presigned struct {
	digest                          [sha512.Size]byte // of the body signed
	contentDigest, input, signature string
	at                              time.Time
}

// presignCache holds signatures made ahead until their request is sent.
type presignCache struct {
	mu    sync.Mutex
	m     map[presignKey]presigned
	seed  maphash.Seed // of the keys' hashes; set with m
	hits  atomic.Int64 // requests sent with a signature made ahead
	swept time.Time
}

func requestKey(seed maphash.Seed, r *http.Request, body []byte) presignKey {
	authority := r.Host
	if authority == "" {
		authority = r.URL.Host
	}
	return presignKey{authority: authority, path: r.URL.EscapedPath(), size: len(body), hash: maphash.Bytes(seed, body)}
}

// sweep drops the signatures older than presignTTL, at most once per
// presignTTL, so that guesses that were not used do not stay. Called with
// c.mu held.
func (c *presignCache) sweep(now time.Time) {
	if now.Sub(c.swept) < presignTTL {
		return
	}
	c.swept = now
	for k, v := range c.m {
		if now.Sub(v.at) > presignTTL {
			delete(c.m, k)
		}
	}
}

// presign signs a Run request to runURL with body, ahead of sending it.
func (t *signingTransport) presign(runURL string, body []byte, now time.Time) {
	r, err := http.NewRequest(http.MethodPost, runURL, nil)
	if err != nil {
		return
	}
	r.Header.Set("Content-Type", presignContentType)
	if err := t.sign(r, body); err != nil {
		return
	}
	p := presigned{
		digest:        sha512.Sum512(body),
		contentDigest: r.Header.Get("Content-Digest"),
		input:         r.Header.Get("Signature-Input"),
		signature:     r.Header.Get("Signature"),
		at:            now,
	}
	c := &t.presigned
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[presignKey]presigned)
		c.seed = maphash.MakeSeed()
	}
	c.sweep(now)
	if len(c.m) >= presignMax {
		return
	}
	c.m[requestKey(c.seed, r, body)] = p
}

// takePresigned sets the signature headers of r made ahead for body, and
// reports whether there were any.
func (t *signingTransport) takePresigned(r *http.Request, body []byte, now time.Time) bool {
	c := &t.presigned
	if r.Header.Get("Content-Type") != presignContentType {
		return false
	}
	c.mu.Lock()
	empty, seed := len(c.m) == 0, c.seed
	c.mu.Unlock()
	if empty {
		return false
	}
	key := requestKey(seed, r, body) // hashes the body: not under the lock
	c.mu.Lock()
	p, ok := c.m[key]
	if ok {
		delete(c.m, key)
	}
	c.sweep(now)
	c.mu.Unlock()
	if !ok || now.Sub(p.at) > presignTTL || sha512.Sum512(body) != p.digest {
		return false
	}
	r.Header["Content-Digest"] = []string{p.contentDigest}
	r.Header["Signature-Input"] = []string{p.input}
	r.Header["Signature"] = []string{p.signature}
	c.hits.Add(1)
	return true
}

// runURL is the URL of the Run requests to the endpoint at endpoint, as
// the connect client and queryClient make it: the procedure appended to
// the path, the query kept (it is not signed).
func runURL(endpoint string) string {
	base, query := splitQuery(endpoint)
	u := strings.TrimRight(base, "/") + sdkv1connect.FunctionServiceRunProcedure
	if query != "" {
		u += "?" + query
	}
	return u
}

// presign signs c's next Run request ahead, as it will be once the change
// being committed makes c ready, with extra (if not nil) delivered to its
// inbox. Called with e.mu held.
func (e *Engine) presign(c *call, extra *sdkv1.CallResult) {
	if e.cfg.Sign == nil || e.running >= presignBelow || e.closing {
		return
	}
	if ep := c.ep; ep.local || ep.ready > 0 || !ep.lim.canStart(ep) {
		return // c will wait in its endpoint's queue: the signature could go stale
	}
	inbox := c.inbox
	if extra != nil {
		inbox = make([]*sdkv1.CallResult, len(c.inbox), len(c.inbox)+1)
		copy(inbox, c.inbox)
		inbox = append(inbox, extra)
	}
	req, _ := e.runRequestFrom(c, inbox)
	e.presigns++
	u := runURL(c.ep.url)
	t := e.signer
	e.spawn(func() {
		// The messages req holds are not modified once made, so they can
		// be marshaled without the engine lock.
		body, err := proto.Marshal(req)
		if err != nil {
			return
		}
		t.presign(u, body, time.Now())
	})
}
