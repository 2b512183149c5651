package serde_test

import (
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/matryer/is"

	"github.com/dispatchkit/dispatch/serde"
)

type (
	checkInner struct {
		Done  chan bool
		notes string
	}
	checkEmbedded struct {
		Hook  func()
		count int
	}
	checkOrder struct {
		ID     string
		Items  []checkInner
		total  int
		Meta   map[chan int]string
		Ptr    unsafe.Pointer
		Later  any                // interfaces are checked at run time
		When   time.Time          // encodes itself
		Big    *big.Int           // encodes itself
		Skip   func()             `cbor:"-"`
		hidden int                `json:"-"`
		Named  checkEmbedded      `cbor:"named"`
		Lookup map[string]*uint64 // fine
		checkEmbedded
	}
	checkTree struct {
		Kids []checkTree
		Fn   func()
	}
	checkClean struct {
		A string
		B []int
		C map[string]checkTree2
	}
	checkTree2 struct{ N int }
)

// The unexported fields above are there to be reported, never read.
var _ = []any{checkOrder{total: 1, hidden: 1}, checkInner{notes: "n"}, checkEmbedded{count: 1}}

func TestCheckType(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		typ  reflect.Type
		want []string // FieldProblem.String of each problem, in order
	}{
		{"clean", reflect.TypeFor[checkClean](), nil},
		{"plain values", reflect.TypeFor[map[string][]int](), nil},
		{"every problem, in field order", reflect.TypeFor[checkOrder](), []string{
			"Items[*].Done (chan bool): CBOR cannot encode this type",
			"Items[*].notes (string): unexported, so CBOR drops it: it reads back as its zero value",
			"total (int): unexported, so CBOR drops it: it reads back as its zero value",
			"Meta: CBOR cannot encode the map's keys (chan int)",
			"Ptr (unsafe.Pointer): CBOR cannot encode this type",
			"Named.Hook (func()): CBOR cannot encode this type",
			"Named.count (int): unexported, so CBOR drops it: it reads back as its zero value",
			"checkEmbedded.Hook (func()): CBOR cannot encode this type",
			"checkEmbedded.count (int): unexported, so CBOR drops it: it reads back as its zero value",
		}},
		{"a recursive type is checked once", reflect.TypeFor[checkTree](), []string{
			"Fn (func()): CBOR cannot encode this type",
		}},
		{"the type itself", reflect.TypeFor[chan int](), []string{
			"the type itself (chan int): CBOR cannot encode this type",
		}},
		{"through pointers and slices", reflect.TypeFor[*[]complex128](), []string{
			"[*] (complex128): CBOR cannot encode this type",
		}},
		{"an interface is not looked into", reflect.TypeFor[any](), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			var got []string
			for _, p := range serde.CheckType(tt.typ) {
				got = append(got, p.String())
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Fatalf("CheckType(%s):\n%s\nwant:\n%s", tt.typ, strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			is.Equal(len(got), len(tt.want))
		})
	}
}

// TestCheckTypeAgreesWithTheEncoder checks what CheckType reports against
// what the encoder does: a field it reports as CBOR cannot encode fails
// MarshalCBOR, and one it reports as dropped does not come back.
func TestCheckTypeAgreesWithTheEncoder(t *testing.T) {
	t.Parallel()
	type dropped struct {
		Kept string
		lost string
	}
	type faulty struct{ Fn func() }
	tests := []struct {
		name    string
		value   any
		decoded func() any // a pointer to decode into
		check   func(is *is.I, decoded any)
		fails   bool
	}{
		{"a dropped field reads back as zero", dropped{Kept: "k", lost: "l"}, func() any { return new(dropped) },
			func(is *is.I, d any) { is.Equal(*d.(*dropped), dropped{Kept: "k"}) }, false},
		{"a faulty field fails the encoding", faulty{}, nil, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			is.True(len(serde.CheckType(reflect.TypeOf(tt.value))) == 1)
			b, err := serde.MarshalCBOR(tt.value)
			if tt.fails {
				is.True(err != nil)
				return
			}
			is.NoErr(err)
			d := tt.decoded()
			is.NoErr(serde.UnmarshalCBOR(b, d))
			tt.check(is, d)
		})
	}
}
