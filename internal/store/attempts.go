package store

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Recent attempts. Every Run request makes an [Attempt], kept for
// inspection. Writing each to the attempts table would add a b-tree page
// to nearly every transaction, so the scheduler keeps a call's latest
// attempts in its own row instead ([Call.RecentAttempts], which the row
// rewrites anyway) and moves them to the attempts table ([Batch.Attempts])
// a group at a time. [Store.Attempts] returns both, in order.
//
// The encoding is a sequence of records, each:
//
//	uvarint N, varint start (unix ns, 0 for the zero time), varint duration (ns),
//	varint status, uvarint len(outcome), outcome bytes

// AppendAttempt appends the encoding of a to buf (a.CallID is not
// encoded: it is the row's).
func AppendAttempt(buf []byte, a Attempt) []byte {
	buf = binary.AppendUvarint(buf, uint64(a.N))
	var start int64 // a zero Start is 0, as UnixNano is undefined for it
	if !a.Start.IsZero() {
		start = a.Start.UnixNano()
	}
	buf = binary.AppendVarint(buf, start)
	buf = binary.AppendVarint(buf, int64(a.Duration))
	buf = binary.AppendVarint(buf, int64(a.Status))
	buf = binary.AppendUvarint(buf, uint64(len(a.Outcome)))
	return append(buf, a.Outcome...)
}

var errBadAttempts = errors.New("malformed recent attempts")

// DecodeAttempts decodes the attempts AppendAttempt encoded in buf, giving
// each the call id callID.
func DecodeAttempts(callID string, buf []byte) ([]Attempt, error) {
	var out []Attempt
	for len(buf) > 0 {
		var a Attempt
		var ok bool
		var n uint64
		var start, dur, status int64
		if n, buf, ok = uvarint(buf); !ok || n > 1<<31 {
			return nil, fmt.Errorf("store: call %s: %w", callID, errBadAttempts)
		}
		a.N = int(n)
		if start, buf, ok = varint(buf); !ok {
			return nil, fmt.Errorf("store: call %s: %w", callID, errBadAttempts)
		}
		if dur, buf, ok = varint(buf); !ok {
			return nil, fmt.Errorf("store: call %s: %w", callID, errBadAttempts)
		}
		if status, buf, ok = varint(buf); !ok {
			return nil, fmt.Errorf("store: call %s: %w", callID, errBadAttempts)
		}
		var l uint64
		if l, buf, ok = uvarint(buf); !ok || l > uint64(len(buf)) {
			return nil, fmt.Errorf("store: call %s: %w", callID, errBadAttempts)
		}
		a.CallID = callID
		if start != 0 {
			a.Start = time.Unix(0, start)
		}
		a.Duration = time.Duration(dur)
		a.Status = int32(status)
		a.Outcome = string(buf[:l])
		buf = buf[l:]
		out = append(out, a)
	}
	return out, nil
}

// MergeAttempts returns the attempts of call callID as [Store.Attempts]
// does: table (those of the attempts table, in order of N, one per N),
// then those recent encodes (its [Call.RecentAttempts]) in order of N,
// leaving out any whose N is already in table or earlier in recent (the
// table's copy wins: an older server may have left stale recent attempts
// in a row it kept updating). table may be reused for the result.
func MergeAttempts(table []Attempt, callID string, recent []byte) ([]Attempt, error) {
	if len(recent) == 0 {
		return table, nil
	}
	dec, err := DecodeAttempts(callID, recent)
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(dec, func(a, b Attempt) int { return cmp.Compare(a.N, b.N) })
	seen := make(map[int]bool, len(table)+len(dec))
	for _, a := range table {
		seen[a.N] = true
	}
	n := len(table)
	for _, a := range dec {
		if !seen[a.N] {
			seen[a.N] = true
			table = append(table, a)
		}
	}
	if n > 0 && len(table) > n && table[n].N < table[n-1].N {
		// Recent attempts older than the table's last: left in a row by
		// an older build that moved later ones. Keep the order of N.
		slices.SortStableFunc(table, func(a, b Attempt) int { return cmp.Compare(a.N, b.N) })
	}
	return table, nil
}

func uvarint(b []byte) (uint64, []byte, bool) {
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, b, false
	}
	return v, b[n:], true
}

func varint(b []byte) (int64, []byte, bool) {
	v, n := binary.Varint(b)
	if n <= 0 {
		return 0, b, false
	}
	return v, b[n:], true
}
