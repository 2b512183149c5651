package signature

import (
	"crypto/sha256"
	"sync"
	"time"
)

// DefaultReplayCacheSize is the number of signatures a replay cache
// remembers when [WithReplayCache] is given 0: 1<<20, enough for 3,400
// requests a second over the whole window of 306 seconds in which a
// signature is accepted (5 minutes old to 5 seconds ahead). An entry takes
// 20 to 40 bytes (16 bytes of digest in a Go map, which grows by
// doubling), so a full cache takes 23 to 40 MiB; at 1,000 requests a
// second it holds 306,000 entries, about 11 MiB.
const DefaultReplayCacheSize = 1 << 20

// replayKeySize is the number of bytes of the SHA-256 of a signature base
// that a replay cache keeps. 128 bits make an accidental collision of two
// genuine requests (a false replay) vanishingly unlikely, and only the
// holder of the signing key can make bases that verify, so nobody can aim
// for one.
const replayKeySize = 16

type replayKey [replayKeySize]byte

// WithReplayCache makes the verifier refuse replays (see "Replays" in the
// package doc): it remembers a digest of the signature base of every
// request it accepts until the request is too old to verify again, at most
// size of them (0 or less: [DefaultReplayCacheSize]). full, if not nil, is
// called once, the first time the cache is full of signatures still in
// their window and its oldest second is dropped, with the created time from
// which signatures are accepted from then on; it is called with the cache
// locked, so it must not verify requests itself.
func WithReplayCache(size int, full func(minCreated time.Time)) VerifierOption {
	return verifierOptionFunc(func(v *Verifier) {
		if size <= 0 {
			size = DefaultReplayCacheSize
		}
		v.replay = &replayCache{size: size, full: full}
	})
}

// replayCache remembers accepted signature bases by created second, in a
// ring of slots indexed by the second modulo its length; the ring is
// longer than the window, so two seconds still in the window never share a
// slot, and a slot that holds another second holds one out of the window.
type replayCache struct {
	size   int             // bound on the entries held
	full   func(time.Time) // called once, on the first eviction under pressure
	maxAge int64           // seconds a signature is accepted for; set by NewVerifier
	mu     sync.Mutex      // guards what follows
	slots  []replaySlot    // made on first use
	n      int             // entries held, over all slots
	min    int64           // created seconds below min are refused: their entries were dropped
	swept  int64           // slots of seconds up to swept are empty or dropped
	warned bool            // full was called
}

type replaySlot struct {
	sec  int64
	seen map[replayKey]struct{} // nil: empty
}

// init sizes the ring for a window of maxAge in the past and maxSkew in the
// future. Called by NewVerifier, once the options are applied.
func (c *replayCache) init(maxAge, maxSkew time.Duration) {
	c.maxAge = int64((maxAge + time.Second - 1) / time.Second)
	skew := int64((maxSkew + time.Second - 1) / time.Second)
	c.slots = make([]replaySlot, c.maxAge+skew+3)
}

// keyOf is the key of a signature base in a replay cache.
func keyOf(base []byte) replayKey {
	sum := sha256.Sum256(base)
	return replayKey(sum[:replayKeySize])
}

// check refuses key if it was seen, and remembers it otherwise. created
// is the signature's created parameter, already checked against now and
// the verifier's window; key is the key of the whole signature base
// (keyOf), which covers created.
func (c *replayCache) check(created int64, key replayKey, now time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweep(now.Unix() - c.maxAge - 1)
	if created < c.min {
		return c.tooOld(created)
	}
	s := c.slot(created)
	if s.seen != nil && s.sec != created {
		if s.sec > created {
			// Only when the clock went back by more than the window:
			// created is older than seconds seen, refuse it rather than
			// forget them.
			return invalidf("created %d is older than signatures already accepted (created %d) by more than the window: refused as too old", created, s.sec)
		}
		c.drop(s) // a second out of the window
	}
	if _, dup := s.seen[key]; dup {
		return &sigError{kind: ErrReplay, msg: "replay: a request with this signature was already accepted; each signed request is accepted once"}
	}
	for c.n >= c.size {
		c.evictOldest(now)
	}
	if created < c.min { // its own second was the oldest
		return c.tooOld(created)
	}
	if s.seen == nil {
		s.sec, s.seen = created, make(map[replayKey]struct{})
	}
	s.seen[key] = struct{}{}
	c.n++
	return nil
}

func (c *replayCache) slot(sec int64) *replaySlot {
	i := sec % int64(len(c.slots))
	if i < 0 {
		i += int64(len(c.slots))
	}
	return &c.slots[i]
}

func (c *replayCache) drop(s *replaySlot) {
	c.n -= len(s.seen)
	s.seen = nil
}

// sweep drops the slots of the seconds up to horizon, which are out of the
// window, so that memory follows the load down. Each second is swept once.
func (c *replayCache) sweep(horizon int64) {
	if horizon <= c.swept {
		return
	}
	from := max(c.swept+1, horizon-int64(len(c.slots))+1)
	for sec := from; sec <= horizon; sec++ {
		if s := c.slot(sec); s.seen != nil && s.sec <= horizon {
			c.drop(s)
		}
	}
	c.swept = horizon
}

// evictOldest drops the slot of the oldest second held and refuses
// signatures created up to that second from then on, so that a replay of
// a dropped entry is refused as too old rather than accepted.
func (c *replayCache) evictOldest(now time.Time) {
	var oldest *replaySlot
	for i := range c.slots {
		s := &c.slots[i]
		if s.seen != nil && (oldest == nil || s.sec < oldest.sec) {
			oldest = s
		}
	}
	if oldest == nil {
		return // unreachable: n > 0 means a slot holds entries
	}
	sec := oldest.sec
	c.drop(oldest)
	c.min = max(c.min, sec+1)
	if sec >= now.Unix()-c.maxAge && !c.warned {
		c.warned = true
		if c.full != nil {
			c.full(time.Unix(c.min, 0))
		}
	}
}

func (c *replayCache) tooOld(created int64) error {
	return invalidf("created %d is before %d: the replay cache is full (%d signatures), so signatures made before %d are refused as too old", created, c.min, c.size, c.min)
}
