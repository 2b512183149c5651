package store_test

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/dispatchkit/dispatch/internal/store"
)

var at0 = time.Unix(1_700_000_000, 123456789)

func encodeAttempts(atts []store.Attempt) (buf []byte, ends []int) {
	for _, a := range atts {
		buf = store.AppendAttempt(buf, a)
		ends = append(ends, len(buf))
	}
	return buf, ends
}

func equalAttempts(is *is.I, got, want []store.Attempt) {
	is.Helper()
	is.Equal(len(got), len(want))
	for i := range got {
		is.True(got[i].Start.Equal(want[i].Start)) // also both zero or not
		g, w := got[i], want[i]
		g.Start, w.Start = time.Time{}, time.Time{}
		is.Equal(g, w)
	}
}

func TestAttemptsEncoding(t *testing.T) {
	tests := []struct {
		name string
		atts []store.Attempt
	}{
		{name: "none"},
		{
			name: "several",
			atts: []store.Attempt{
				{CallID: "c", N: 1, Start: at0, Duration: time.Millisecond, Status: 6, Outcome: "retry"},
				{CallID: "c", N: 2, Start: at0.Add(time.Second), Duration: 2 * time.Millisecond, Status: 1, Outcome: "poll"},
				{CallID: "c", N: 3, Start: at0.Add(2 * time.Second), Duration: time.Hour, Status: 1, Outcome: "exit"},
			},
		},
		{
			name: "empty outcome and zero values",
			atts: []store.Attempt{{CallID: "c"}, {CallID: "c", N: 1}},
		},
		{
			name: "long outcomes",
			atts: []store.Attempt{
				{CallID: "c", N: 1, Start: at0, Outcome: strings.Repeat("x", 127)},
				{CallID: "c", N: 2, Start: at0, Outcome: strings.Repeat("é", 200)},
				{CallID: "c", N: 3, Start: at0, Outcome: strings.Repeat("an error; ", 10_000)},
			},
		},
		{
			name: "extreme values",
			atts: []store.Attempt{
				{CallID: "c", N: 1 << 31, Start: time.Unix(0, -1), Duration: -time.Second, Status: math.MinInt32, Outcome: "a"},
				{CallID: "c", N: 7, Start: time.Unix(-100_000, 5), Duration: math.MinInt64, Status: math.MaxInt32},
				{CallID: "c", N: 8, Start: time.Unix(0, math.MaxInt64), Duration: math.MaxInt64, Status: -1},
				{CallID: "c", N: 9, Start: time.Time{}, Duration: -1, Outcome: "zero start"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			buf, ends := encodeAttempts(tt.atts)
			got, err := store.DecodeAttempts("c", buf)
			is.NoErr(err)
			equalAttempts(is, got, tt.atts)

			// Every prefix is an error, but those that end a record.
			records := map[int]int{0: 0} // prefix length → records in it
			for i, end := range ends {
				records[end] = i + 1
			}
			for n := range len(buf) {
				got, err := store.DecodeAttempts("c", buf[:n])
				if k, ok := records[n]; ok {
					is.NoErr(err)
					equalAttempts(is, got, tt.atts[:k])
					continue
				}
				is.True(err != nil) // truncated inside a record
				is.Equal(got, nil)
			}
		})
	}
}

func TestDecodeAttemptsMalformed(t *testing.T) {
	tests := []struct {
		name string
		buf  []byte
	}{
		{name: "varint overflow", buf: bytes.Repeat([]byte{0xff}, 11)},
		{name: "N too large", buf: store.AppendAttempt(nil, store.Attempt{N: 1<<31 + 1})},
		{name: "negative N", buf: store.AppendAttempt(nil, store.Attempt{N: -1})},
		{name: "outcome longer than the rest", buf: []byte{1, 0, 0, 0, 5, 'a', 'b'}},
		{name: "huge outcome length", buf: []byte{1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{name: "good then bad", buf: append(store.AppendAttempt(nil, store.Attempt{N: 1, Outcome: "poll"}), 0x80)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			got, err := store.DecodeAttempts("call-7", tt.buf)
			is.True(err != nil)
			is.Equal(got, nil)
			is.True(strings.Contains(err.Error(), "call-7")) // names the call
		})
	}
}

func TestMergeAttempts(t *testing.T) {
	a := func(n int, outcome string) store.Attempt {
		return store.Attempt{CallID: "c", N: n, Start: at0.Add(time.Duration(n) * time.Second), Outcome: outcome}
	}
	tests := []struct {
		name          string
		table, recent []store.Attempt
		want          []store.Attempt
	}{
		{name: "none"},
		{name: "table only", table: []store.Attempt{a(1, "x"), a(2, "y")}, want: []store.Attempt{a(1, "x"), a(2, "y")}},
		{name: "recent only", recent: []store.Attempt{a(1, "x")}, want: []store.Attempt{a(1, "x")}},
		{
			name:   "table then recent",
			table:  []store.Attempt{a(1, "x"), a(2, "y")},
			recent: []store.Attempt{a(3, "z")},
			want:   []store.Attempt{a(1, "x"), a(2, "y"), a(3, "z")},
		},
		{
			name:   "table wins, no repeats, recent in order of N",
			table:  []store.Attempt{a(1, "x"), a(2, "y")},
			recent: []store.Attempt{a(5, "v"), a(2, "stale"), a(3, "z"), a(3, "again"), a(4, "w")},
			want:   []store.Attempt{a(1, "x"), a(2, "y"), a(3, "z"), a(4, "w"), a(5, "v")},
		},
		{
			// An older build moved later attempts to the table and left
			// earlier ones in the row.
			name:   "recent older than the table's",
			table:  []store.Attempt{a(1, "x"), a(4, "w")},
			recent: []store.Attempt{a(2, "y"), a(3, "z")},
			want:   []store.Attempt{a(1, "x"), a(2, "y"), a(3, "z"), a(4, "w")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			buf, _ := encodeAttempts(tt.recent)
			got, err := store.MergeAttempts(tt.table, "c", buf)
			is.NoErr(err)
			equalAttempts(is, got, tt.want)
		})
	}
	t.Run("malformed", func(t *testing.T) {
		is := is.New(t)
		_, err := store.MergeAttempts(nil, "c", []byte{0x80})
		is.True(err != nil)
	})
}

func FuzzDecodeAttempts(f *testing.F) {
	buf, _ := encodeAttempts([]store.Attempt{
		{N: 1, Start: at0, Duration: time.Millisecond, Status: 6, Outcome: "retry"},
		{N: 2, Duration: -1, Outcome: ""},
	})
	f.Add(buf)
	f.Add([]byte{})
	f.Add([]byte{0x80})
	f.Add([]byte{1, 0, 0, 0, 5, 'a'})
	f.Fuzz(func(t *testing.T, buf []byte) {
		got, err := store.DecodeAttempts("c", buf)
		if err != nil {
			return
		}
		// What decodes encodes to something that decodes the same.
		again, _ := encodeAttempts(got)
		got2, err := store.DecodeAttempts("c", again)
		if err != nil {
			t.Fatalf("re-encoding of %x does not decode: %v", buf, err)
		}
		equalAttempts(is.New(t), got2, got)
	})
}
