package scheduler

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"math"
	"sync/atomic"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/dispatchkit/dispatch/internal/store"
)

// callState is the in-memory state of a live call; store rows only know
// pending and suspended.
type callState uint8

const (
	stNew       callState = iota // made, not yet durable
	stQueued                     // in its endpoint's ready queue
	stWaiting                    // backing off before a retry
	stRunning                    // a Run request is in flight
	stSuspended                  // waiting for results or max_wait
	stDone                       // has a final outcome (left the map)
)

// call is the hot state of one live dispatch id. Fields are guarded by the
// engine lock.
type call struct {
	id, parentID, rootID string
	ep                   *endpoint
	function, version    string
	input                *anypb.Any
	corrID               uint64
	created, expires     int64 // unix nanoseconds
	gen, parentGen       uint32
	attempts             uint32
	fails                uint16 // consecutive retried failures, for back-off
	restarts             uint8
	state                callState
	timerIdx             int32 // index in e.timers plus one; 0 when not armed
	timerAt              int64 // when the armed wake-up is due
	// stop cancels the Run request in flight (stRunning), for a cancel
	// of the call (cancel.go); nil otherwise.
	stop func()

	// Poll. polled is set once the call returned a Poll in this
	// generation: its next run is a resume.
	polled     bool
	stateAny   *anypb.Any
	stateRaw   []byte
	minResults int32
	maxResults int32
	deadline   int64
	pollErr    *sdkv1.Error
	inbox      []*sdkv1.CallResult
	inboxIDs   []string // child ids of inbox, same order
	retryAt    int64
	// held is the batch of a child's final outcome that resumed the call
	// before it was stored, waiting to be committed with the call's
	// answer (hold.go); only while the call runs. unsettled counts the
	// results for the call submitted to the store and not yet in its
	// inbox.
	held       *heldBatch
	unsettled  int32
	lastErr    *sdkv1.Error // last failure, kept for inspection
	lastStatus sdkv1.Status

	// recent holds the attempts not yet moved to the attempts table,
	// encoded by store.AppendAttempt, and stored in the call's row;
	// nRecent counts them. It is only ever appended to or replaced,
	// never truncated in place: a row being committed may share it.
	recent  []byte
	nRecent uint8

	// rendered is set once a row of the call was rendered with its
	// current identity (endpoint, function, version, input): the next
	// rows are rewrites (store.Call.Rewrite). A tail call clears it.
	rendered bool
}

// maxRecentAttempts is how many attempts a call's row holds before they
// move to the attempts table in one batch.
const maxRecentAttempts = 16

// record keeps attempt a of c: in c's row, which every batch of an
// outcome rewrites, and every maxRecentAttempts attempts, moved with the
// ones before it to the attempts table in b. Called with e.mu held, before
// the row is rendered into b.
func (c *call) record(a store.Attempt, b *store.Batch) {
	c.recent = store.AppendAttempt(c.recent, a)
	c.nRecent++
	if c.nRecent < maxRecentAttempts {
		return
	}
	moved, err := store.DecodeAttempts(c.id, c.recent)
	if err != nil {
		// Only this package encodes them; keep them in the row.
		return
	}
	b.Attempts = append(b.Attempts, moved...)
	c.recent, c.nRecent = nil, 0
}

// row renders c as its store row.
func (c *call) row(now int64) *store.Call {
	r := &store.Call{
		ID:            c.id,
		ParentID:      c.parentID,
		RootID:        c.rootID,
		ParentGen:     c.parentGen,
		Gen:           c.gen,
		CorrelationID: c.corrID,
		Endpoint:      c.ep.url,
		Function:      c.function,
		Version:       c.version,
		InputType:     c.input.GetTypeUrl(),
		Input:         c.input.GetValue(),
		CreatedAt:     time.Unix(0, c.created),
		ExpiresAt:     time.Unix(0, c.expires),
		UpdatedAt:     time.Unix(0, now),
		State:         store.Pending,
		Attempts:      int(c.attempts),
		Restarts:      int(c.restarts),
		Status:        int32(c.lastStatus),
		Rewrite:       c.rendered,
	}
	c.rendered = true
	if len(c.recent) > 0 {
		r.RecentAttempts = c.recent
	}
	if c.lastErr != nil {
		r.Error, _ = proto.Marshal(c.lastErr)
	}
	if c.polled {
		r.State = store.Suspended
		r.MinResults, r.MaxResults = c.minResults, c.maxResults
		r.PollDeadline = time.Unix(0, c.deadline)
	}
	if c.stateAny != nil {
		r.StateType, r.CoroutineState = c.stateAny.GetTypeUrl(), c.stateAny.GetValue()
	} else {
		r.CoroutineState = c.stateRaw
	}
	if c.pollErr != nil {
		r.PollError, _ = proto.Marshal(c.pollErr)
	}
	return r
}

// after returns now+d in unix nanoseconds, saturated at the last instant
// an int64 holds (year 2262): an expiration or max_wait of centuries must
// not wrap around into the past.
func after(now time.Time, d time.Duration) int64 {
	n := now.UnixNano()
	if d > 0 && n > math.MaxInt64-int64(d) {
		return math.MaxInt64
	}
	return n + int64(d)
}

// idGen makes dispatch ids: 8 bytes of (unix milliseconds << 16 | counter),
// strictly increasing in a process, then 4 random bytes so that ids made by
// other processes (a restart, another replica) do not collide. Encoded as
// 20 characters of lower-case base32hex, they sort by creation time.
type idGen struct{ last atomic.Uint64 }

var idEncoding = base32.HexEncoding.WithPadding(base32.NoPadding)

func (g *idGen) next(now time.Time) string { return g.nextIn(now, 0, 0) }

// nextIn is next for an id of partition p of n (store.PartitionOf), when
// n > 0: the random bytes, drawn once, are counted up until the id falls
// in p, which takes n tries on average, and the counter is spent once, so
// ids still sort by creation time. Engines of a partition draw every id so,
// children's too (see "One partition of a shared store" in doc.go).
func (g *idGen) nextIn(now time.Time, p, n int) string {
	ts := uint64(now.UnixMilli()) << 16
	var v uint64
	for {
		last := g.last.Load()
		v = max(ts, last+1)
		if g.last.CompareAndSwap(last, v) {
			break
		}
	}
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], v)
	_, _ = rand.Read(b[8:])
	r := binary.BigEndian.Uint32(b[8:])
	for {
		var out [20]byte
		idEncoding.Encode(out[:], b[:])
		for i, ch := range out {
			if ch >= 'A' && ch <= 'Z' {
				out[i] = ch + ('a' - 'A')
			}
		}
		if n <= 0 || store.PartitionOfBytes(out[:], n) == p {
			return string(out[:])
		}
		// Another id of the same random start: the next value of the
		// random bytes, not a new draw (a draw costs ten times the
		// encoding and hash of a try). The ids of two processes still
		// differ by their random starts, and those of one by its counter.
		r++
		binary.BigEndian.PutUint32(b[8:], r)
	}
}
