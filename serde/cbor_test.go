package serde_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/matryer/is"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/dispatchkit/dispatch/serde"
)

// TestMarshalCBORVectors pins the encoding: other SDKs and stored state
// depend on these bytes.
func TestMarshalCBORVectors(t *testing.T) {
	t.Parallel()
	type fields struct {
		Long  int    `cbor:"long"`
		B     string `cbor:"b"`
		A     bool   `cbor:"a"`
		Skip  func() `cbor:"-"`
		JSON  int    `json:"j"`
		NoGo  int    `json:"-"`
		inner int
	}
	tests := []struct {
		name string
		in   any
		want string // hex
	}{
		// RFC 8949 appendix A.
		{"0", 0, "00"},
		{"24", 24, "1818"},
		{"-1000", -1000, "3903e7"},
		{"max uint64", uint64(math.MaxUint64), "1bffffffffffffffff"},
		{"1.5 as float16", 1.5, "f93e00"},
		{"100000.0 as float32", 100000.0, "fa47c35000"},
		{"1.1 as float64", 1.1, "fb3ff199999999999a"},
		{"NaN", math.NaN(), "f97e00"},
		{"-Inf", math.Inf(-1), "f9fc00"},
		{"string", "IETF", "6449455446"},
		{"bytes", []byte{1, 2, 3, 4}, "4401020304"},
		{"byte array", [2]byte{1, 2}, "420102"},
		{"array", []int{1, 2, 3}, "83010203"},
		{"map", map[string]any{"a": 1, "b": []int{2, 3}}, "a26161016162820203"},
		// Choices of this SDK.
		{"keys sorted by encoding", map[string]int{"bb": 2, "a": 1, "c": 3}, "a3616101616303626262" + "02"},
		{"int keys sorted", map[int]bool{10: true, -1: false, 1: true}, "a3" + "01f5" + "0af5" + "20f4"},
		{"struct fields by encoding", fields{Long: 1, B: "x", A: true, JSON: 2, inner: 3}, "a4" + "6161f5" + "61626178" + "616a02" + "646c6f6e6701"},
		{"nil slice is null", []int(nil), "f6"},
		{"empty slice", []int{}, "80"},
		{"nil map is null", map[string]int(nil), "f6"},
		{"nil pointer", (*int)(nil), "f6"},
		{"pointer", ptr(1), "01"},
		{"time is tag 0", time.Date(2013, 3, 21, 20, 4, 0, 500, time.UTC), "c0" + "781c" + hex.EncodeToString([]byte("2013-03-21T20:04:00.0000005Z"))},
		{"time keeps its offset", time.Date(2013, 3, 21, 20, 4, 0, 0, time.FixedZone("", -5*3600)), "c0" + "7819" + hex.EncodeToString([]byte("2013-03-21T20:04:00-05:00"))},
		{"zero time is null", time.Time{}, "f6"},
		{"duration is nanoseconds", 2 * time.Microsecond, "1907d0"},
		{"big int", new(big.Int).Lsh(big.NewInt(1), 64), "c249010000000000000000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			b, err := serde.MarshalCBOR(tt.in)
			is.NoErr(err)
			is.Equal(hex.EncodeToString(b), tt.want)
		})
	}
}

func TestMarshalCBORDeterministic(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	keys := []string{"zeta", "a", "mid", "b", "longer key", "é", "0", "Z"}
	var first []byte
	for i := range 50 {
		// Insert in a different order each time.
		m := map[string]any{}
		for j := range keys {
			k := keys[(i+j)%len(keys)]
			m[k] = map[string]int{k: len(k), "x": 1}
		}
		b, err := serde.MarshalCBOR(m)
		is.NoErr(err)
		if first == nil {
			first = b
		}
		is.Equal(b, first) // same bytes whatever the insertion order
	}
}

func TestCBORRoundTrip(t *testing.T) {
	t.Parallel()
	type tree struct {
		Name string
		Kids []*tree
	}
	tests := []struct {
		name string
		in   any
		dst  func() any
	}{
		{"order", Order{ID: "o", Items: []Item{{"a", 1}}, Meta: map[string]string{"k": "v"}, Placed: when, Total: -1.25, Priority: ptr(0)}, func() any { return new(Order) }},
		{"tree", tree{Name: "root", Kids: []*tree{{Name: "a"}, {Name: "b", Kids: []*tree{{Name: "c"}}}}}, func() any { return new(tree) }},
		{"shared pointer", func() any { p := &Point{1, 2}; return []*Point{p, p} }(), func() any { return new([]*Point) }},
		{"any values", map[string]any{"i": int64(-3), "u": int64(3), "f": 0.5, "s": "s", "b": []byte("b"), "t": true, "n": nil, "l": []any{int64(1)}, "when": when}, func() any { return new(map[string]any) }},
		{"big ints in any", []any{new(big.Int).Lsh(big.NewInt(1), 100), uint64(math.MaxUint64)}, func() any { return new([]any) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			b, err := serde.MarshalCBOR(tt.in)
			is.NoErr(err)
			dst := tt.dst()
			is.NoErr(serde.UnmarshalCBOR(b, dst))
			again, err := serde.MarshalCBOR(dst)
			is.NoErr(err)
			is.Equal(again, b) // decoding and encoding again gives the same bytes
		})
	}
}

func TestUnmarshalCBORIntoAny(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   any
		want any
	}{
		{"positive int", 5, int64(5)},
		{"negative int", -5, int64(-5)},
		{"uint64 beyond int64", uint64(math.MaxUint64), new(big.Int).SetUint64(math.MaxUint64)},
		{"float", 1.5, 1.5},
		{"time", when, when},
		{"string keyed map", map[string]int{"a": 1}, map[string]any{"a": int64(1)}},
		{"struct", Point{1, 2}, map[string]any{"X": int64(1), "Y": int64(2)}},
		{"int keyed map", map[int]string{1: "a"}, map[any]any{int64(1): "a"}},
		{"int keyed map inside", map[string]any{"m": map[int]int{1: 2}}, map[any]any{"m": map[any]any{int64(1): int64(2)}}},
		{"keys alike as strings", map[any]int{"a": 1, cbor.Tag{Number: 100, Content: "a"}: 2}, map[any]any{"a": int64(1), cbor.Tag{Number: 100, Content: "a"}: int64(2)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			var got any
			is.NoErr(serde.UnmarshalCBOR(mustCBOR(tt.in), &got))
			if !equal(got, tt.want) {
				t.Fatalf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestUnmarshalCBORReplaces(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	dst := Order{ID: "old", Total: 3, Meta: map[string]string{"old": "x"}}
	is.NoErr(serde.UnmarshalCBOR(mustCBOR(map[string]any{"id": "new", "meta": map[string]string{"k": "v"}}), &dst))
	is.Equal(dst, Order{ID: "new", Meta: map[string]string{"k": "v"}}) // nothing of the old value is left
}

// TestUnmarshalCBORLimits feeds inputs built to exhaust the decoder.
func TestUnmarshalCBORLimits(t *testing.T) {
	t.Parallel()
	nested := func(n int, open byte) []byte {
		return append(bytes.Repeat([]byte{open}, n), 0x00)
	}
	head := func(major byte, n uint64) []byte {
		return []byte{major<<5 | 26, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	}
	fullArray := func(n int) []byte {
		return append(head(4, uint64(n)), bytes.Repeat([]byte{0}, n)...)
	}
	tests := []struct {
		name string
		data []byte
		dst  any
		want string // "" for no error
	}{
		{"64 nested arrays", nested(64, 0x81), new(any), ""},
		{"65 nested arrays", nested(65, 0x81), new(any), "cbor: exceeded max nested level 64"},
		{"a million nested arrays", nested(1_000_000, 0x81), new(any), "cbor: exceeded max nested level 64"},
		{"a million nested tags", nested(1_000_000, 0xc6), new(any), "cbor: exceeded max nested level 64"},
		{"nested into a struct", append([]byte{0xa1, 0x61, 'X'}, nested(1000, 0x81)...), new(Point), "cbor: exceeded max nested level 64"},
		{"2^20 elements", fullArray(serde.MaxArrayElements), new([]byte), ""},
		{"2^20+1 elements", fullArray(serde.MaxArrayElements + 1), new(any), "cbor: exceeded max number of elements 1048576 for CBOR array"},
		{"array header beyond the data", head(4, 1<<31-1), new(any), "cbor: exceeded max number of elements"},
		{"map header beyond the data", head(5, 1<<30), new(any), "cbor: exceeded max number of key-value pairs 1048576"},
		{"byte string header beyond the data", head(2, 1<<31), new(any), "unexpected EOF"},
		{"duplicate map key", []byte{0xa2, 0x61, 'a', 0x01, 0x61, 'a', 0x02}, new(any), `cbor: found duplicate map key "a" at map element index 1`},
		{"duplicate struct field", []byte{0xa2, 0x61, 'X', 0x01, 0x61, 'X', 0x02}, new(Point), `cbor: found duplicate map key "X" at map element index 1`},
		{"indefinite length array", []byte{0x9f, 0x01, 0xff}, new(any), "cbor: indefinite-length array isn't allowed"},
		{"indefinite length string", []byte{0x7f, 0x61, 'a', 0xff}, new(any), "cbor: indefinite-length UTF-8 text string isn't allowed"},
		{"invalid UTF-8", []byte{0x61, 0xff}, new(any), "cbor: invalid UTF-8 string"},
		{"empty input", nil, new(any), "EOF"},
		{"truncated", []byte{0x82, 0x01}, new(any), "unexpected EOF"},
		{"trailing data", []byte{0x01, 0x02}, new(any), "extraneous data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			err := serde.UnmarshalCBOR(tt.data, tt.dst)
			if tt.want == "" {
				is.NoErr(err)
				return
			}
			is.True(err != nil)
			is.True(strings.HasPrefix(err.Error(), "serde: cannot decode CBOR into "))
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestUnmarshalCBORDestination(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	err := serde.UnmarshalCBOR([]byte{0x01}, 1)
	is.Equal(err.Error(), "serde: UnmarshalCBOR needs a non-nil pointer, got int")
	err = serde.UnmarshalCBOR([]byte{0x01}, (*int)(nil))
	is.Equal(err.Error(), "serde: UnmarshalCBOR needs a non-nil pointer, got *int")
}

// TestMarshalCBORLimits checks that MarshalCBOR writes nothing that
// UnmarshalCBOR would reject.
func TestMarshalCBORLimits(t *testing.T) {
	t.Parallel()
	type node struct {
		Next *node
	}
	list := func(n int) *node {
		var head *node
		for range n {
			head = &node{Next: head}
		}
		return head
	}
	nestedSlices := func(n int) any {
		var v any = 0
		for range n {
			v = []any{v}
		}
		return v
	}
	tests := []struct {
		name string
		in   any
		want string // "" for no error
	}{
		{"64 nested slices", nestedSlices(64), ""},
		{"65 nested slices", nestedSlices(65), "[0][0][0]"},
		{"65 nested slices, the reason", nestedSlices(65), "it nests more than 64 levels deep, which UnmarshalCBOR rejects"},
		{"list of 64", list(64), ""},
		{"list of 65", list(65), "serde: cbor cannot encode Next.Next.Next."},
		{"list of a million", list(1_000_000), "it nests more than 64 levels deep"},
		{"static nesting", [1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1]int{}, "breaks the decode limits, so it could not be read back: cbor: exceeded max nested level 64"},
		{"too many elements", make([]bool, serde.MaxArrayElements+1), "cbor: exceeded max number of elements 1048576"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			b, err := serde.MarshalCBOR(tt.in)
			if tt.want == "" {
				is.NoErr(err)
				var back any
				is.NoErr(serde.UnmarshalCBOR(b, &back)) // what is written is read
				return
			}
			is.True(err != nil)
			is.True(strings.HasPrefix(err.Error(), "serde: "))
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

// TestMarshalCBORDuplicateKeys checks that MarshalCBOR refuses maps whose
// keys differ in Go but encode alike, which UnmarshalCBOR would reject.
func TestMarshalCBORDuplicateKeys(t *testing.T) {
	t.Parallel()
	nans := map[float64]int{}
	nans[math.NaN()] = 1
	nans[math.NaN()] = 2
	tests := []struct {
		name string
		in   any
		want string // "" for no error
	}{
		{"int64 and uint64", map[any]string{int64(1): "a", uint64(1): "b"}, "a map in it has two keys that both encode as 1,"},
		{"inside any", []any{map[any]int{"x": 1}, map[any]int{int8(-2): 1, int16(-2): 2}}, "both encode as -2,"},
		{"NaNs", nans, "both encode as NaN,"},
		{"pointers to equal values", map[*int]bool{ptr(7): true, ptr(7): false}, "both encode as 7,"},
		{"same instant, other zones", map[time.Time]int{when: 1, when.In(time.FixedZone("", 0)): 2}, `both encode as 0("2024-06-12T22:56:39.123456789Z")`},
		{"distinct keys", map[any]int{int64(1): 1, "1": 2, 1.5: 3}, ""},
		{"pointers to distinct values", map[*int]bool{ptr(7): true, ptr(8): false}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			b, err := serde.MarshalCBOR(tt.in)
			if tt.want == "" {
				is.NoErr(err)
				var back any
				is.NoErr(serde.UnmarshalCBOR(b, &back))
				return
			}
			is.True(err != nil)
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestMarshalCBORErrors(t *testing.T) {
	t.Parallel()
	type withChan struct {
		Name string
		Done chan struct{}
	}
	type holder struct {
		Items []any
	}
	tests := []struct {
		name     string
		in       any
		wantPath string // of the *serde.UnsupportedTypeError; "-" for another error
		want     string
	}{
		{"chan field", withChan{}, "Done", "serde: cbor cannot encode Done (type chan struct {}): drop the field, or tag it `cbor:\"-\"` so the encoder skips it"},
		{"func in slice of any", holder{Items: []any{1, "x", func() {}}}, "Items[2]", "serde: cbor cannot encode Items[2] (type func())"},
		{"failing MarshalCBOR", failingMarshaler{}, "-", "serde: cbor cannot encode serde_test.failingMarshaler: no way"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			_, err := serde.MarshalCBOR(tt.in)
			is.True(err != nil)
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
			var typeErr *serde.UnsupportedTypeError
			if tt.wantPath == "-" {
				is.True(!errors.As(err, &typeErr))
				is.True(errors.Is(err, errNoWay)) // the error is wrapped
				return
			}
			is.True(errors.As(err, &typeErr))
			is.Equal(typeErr.Path, tt.wantPath)
		})
	}
}

type failingMarshaler struct{}

var errNoWay = errors.New("no way")

func (failingMarshaler) MarshalCBOR() ([]byte, error) { return nil, errNoWay }

func TestCBORTypeURL(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	is.Equal(serde.CBORTypeURL, "type.googleapis.com/dispatchkit.go.v1.CBOR")
	// Any host before the type name is accepted, as with anypb.
	var p Point
	is.NoErr(serde.Unmarshal(&anypb.Any{TypeUrl: "example.com/x/dispatchkit.go.v1.CBOR", Value: mustCBOR(Point{1, 2})}, &p))
	is.Equal(p, Point{1, 2})
}

// TestModes checks that EncMode and DecMode hand out the SDK's one
// configuration, as documented, and that MarshalCBOR and UnmarshalCBOR use
// it: a mode is immutable, so nothing a caller does with one changes how
// the SDK encodes.
func TestModes(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	em, dm := serde.EncMode(), serde.DecMode()
	is.True(em == serde.EncMode()) // the same mode every time
	is.True(dm == serde.DecMode())

	eo := em.EncOptions()
	is.Equal(eo.Sort, cbor.SortCoreDeterministic)
	is.Equal(eo.IndefLength, cbor.IndefLengthForbidden)
	is.Equal(eo.Time, cbor.TimeRFC3339Nano)
	is.Equal(eo.NilContainers, cbor.NilContainerAsNull)
	do := dm.DecOptions()
	is.Equal(do.DupMapKey, cbor.DupMapKeyEnforcedAPF)
	is.Equal(do.MaxNestedLevels, serde.MaxNestedLevels)
	is.Equal(do.MaxArrayElements, serde.MaxArrayElements)
	is.Equal(do.MaxMapPairs, serde.MaxMapPairs)
	is.Equal(do.UTF8, cbor.UTF8RejectInvalid)

	v := map[string]any{"b": 1, "a": []any{"x", 2.5}}
	want, err := serde.MarshalCBOR(v)
	is.NoErr(err)
	got, err := em.Marshal(v)
	is.NoErr(err)
	is.Equal(got, want) // MarshalCBOR writes with EncMode
	var back any
	is.NoErr(dm.Unmarshal(got, &back))
	var viaSDK any
	is.NoErr(serde.UnmarshalCBOR(got, &viaSDK))
	is.Equal(back, viaSDK) // UnmarshalCBOR reads with DecMode
}
