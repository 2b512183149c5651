package serde_test

import (
	"errors"
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
	withCallback struct {
		Name     string
		Callback func()
	}
	cart struct {
		Items []any
		Meta  map[string]any
	}
	Base struct {
		Callback func()
	}
	embedsBase struct {
		Base
		Name string
	}
	embedsBasePointer struct {
		*Base
	}
	shadowsBase struct {
		Base
		Callback string // hides Base.Callback, as in encoding/json
	}
	skipsFields struct {
		Name     string
		Tagged   func()     `cbor:"-"`
		JSONOnly chan int   `json:"-"`
		private  func()     // unexported: not encoded
		Renamed  complex128 `cbor:"-" json:"renamed"`
	}
	cborTagWins struct {
		C chan int `cbor:"c" json:"-"` // the cbor tag wins over json
	}
	node struct {
		Name string
		Next *node
		Fn   func() `cbor:"-"`
	}
	selfMarshaling struct {
		Fn func()
	}
	withNilStructPointer struct {
		P *withCallback
	}
	withTime struct {
		At  time.Time
		Big *big.Int
	}
)

func (selfMarshaling) MarshalCBOR() ([]byte, error) { return []byte{0xf6}, nil }

func TestEncodable(t *testing.T) {
	t.Parallel()
	cycle := &node{Name: "a"}
	cycle.Next = &node{Name: "b", Next: cycle}
	shared := &node{Name: "shared"}
	selfMap := map[string]any{"name": "m"}
	selfMap["self"] = selfMap
	selfSlice := []any{1, nil}
	selfSlice[1] = selfSlice
	deep := map[string]any{"a": map[string]any{"b": []any{0, map[string]any{"c": make(chan int)}}}}

	tests := []struct {
		name   string
		in     any
		path   string       // of the error; "-" for none
		typ    reflect.Type // of an *UnsupportedTypeError; nil for an *UnsupportedValueError
		mapKey bool
	}{
		{"nil", nil, "-", nil, false},
		{"plain struct", Order{Items: []Item{{}}}, "-", nil, false},
		{"skipped fields", skipsFields{Tagged: func() {}, JSONOnly: make(chan int), private: func() {}, Renamed: 1i}, "-", nil, false},
		{"time and big int", withTime{At: when, Big: big.NewInt(1)}, "-", nil, false},
		{"type with MarshalCBOR", selfMarshaling{Fn: func() {}}, "-", nil, false},
		{"shadowed field", shadowsBase{}, "-", nil, false},
		{"shared pointer, no cycle", []*node{shared, shared}, "-", nil, false},
		{"list, no cycle", &node{Next: &node{Next: &node{}}}, "-", nil, false},
		{"chan", make(chan int), "", reflect.TypeFor[chan int](), false},
		{"func", func() {}, "", reflect.TypeFor[func()](), false},
		{"complex", 1i, "", reflect.TypeFor[complex128](), false},
		{"uintptr", uintptr(1), "", reflect.TypeFor[uintptr](), false},
		{"unsafe pointer", unsafe.Pointer(nil), "", reflect.TypeFor[unsafe.Pointer](), false},
		{"func field", withCallback{}, "Callback", reflect.TypeFor[func()](), false},
		{"pointer to func field", &withCallback{}, "Callback", reflect.TypeFor[func()](), false},
		{"element of slice of any", cart{Items: []any{Item{}, 2, withCallback{}}}, "Items[2].Callback", reflect.TypeFor[func()](), false},
		{"map entry", cart{Meta: map[string]any{"a": 1, "k": make(chan int)}}, `Meta["k"]`, reflect.TypeFor[chan int](), false},
		{"first map entry by key", map[string]any{"b": func() {}, "a": 1i}, `["a"]`, reflect.TypeFor[complex128](), false},
		{"int keys", map[int]any{3: func() {}}, "[3]", reflect.TypeFor[func()](), false},
		{"nested maps and slices", deep, `["a"]["b"][1]["c"]`, reflect.TypeFor[chan int](), false},
		{"map key type", map[complex64]int{}, "", reflect.TypeFor[complex64](), true},
		{"map key type of a field", struct{ M map[complex64]int }{}, "M", reflect.TypeFor[complex64](), true},
		{"empty slice of a bad type", struct{ L [][]chan int }{}, "L[*][*]", reflect.TypeFor[chan int](), false},
		{"slice of a bad type", struct{ L [][]chan int }{L: [][]chan int{{nil}, {}}}, "L[0][0]", reflect.TypeFor[chan int](), false},
		{"empty map of a bad type", struct{ M map[string]chan int }{}, "M[*]", reflect.TypeFor[chan int](), false},
		{"nil pointer to a bad type", struct{ P *chan int }{}, "P", reflect.TypeFor[chan int](), false},
		{"nil pointer to a struct with a bad field", withNilStructPointer{}, "-", nil, false},
		{"empty slice of a struct with a bad field", struct{ L []withCallback }{}, "-", nil, false},
		{"slice of a struct with a bad field", struct{ L []withCallback }{L: make([]withCallback, 2)}, "L[0].Callback", reflect.TypeFor[func()](), false},
		{"pointer to a struct with a bad field", withNilStructPointer{P: &withCallback{}}, "P.Callback", reflect.TypeFor[func()](), false},
		{"promoted field", embedsBase{}, "Base.Callback", reflect.TypeFor[func()](), false},
		{"promoted through nil pointer", embedsBasePointer{}, "Base.Callback", reflect.TypeFor[func()](), false},
		{"cbor tag wins", cborTagWins{}, "C", reflect.TypeFor[chan int](), false},
		{"interface field", struct{ V any }{V: make(chan bool)}, "V", reflect.TypeFor[chan bool](), false},
		{"pointer cycle", cycle, "Next.Next", nil, false},
		{"map cycle", selfMap, `["self"]`, nil, false},
		{"slice cycle", selfSlice, "[1]", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			err := serde.Encodable(tt.in)
			if tt.path == "-" {
				is.NoErr(err)
				_, err := serde.MarshalCBOR(tt.in)
				is.NoErr(err) // what Encodable accepts, MarshalCBOR encodes
				return
			}
			is.True(err != nil)
			is.True(strings.HasPrefix(err.Error(), "serde: cbor cannot encode "))
			if tt.typ == nil {
				var valueErr *serde.UnsupportedValueError
				is.True(errors.As(err, &valueErr))
				is.Equal(valueErr.Path, tt.path)
				is.True(strings.Contains(err.Error(), "a cycle"))
			} else {
				var typeErr *serde.UnsupportedTypeError
				is.True(errors.As(err, &typeErr))
				is.Equal(typeErr.Path, tt.path)
				is.Equal(typeErr.Type, tt.typ)
				is.Equal(typeErr.MapKey, tt.mapKey)
				is.True(strings.Contains(err.Error(), tt.typ.String()))
			}
			if tt.path != "" {
				is.True(strings.Contains(err.Error(), tt.path))
			}

			// MarshalCBOR fails with the same error, and does not loop.
			_, marshalErr := serde.MarshalCBOR(tt.in)
			is.Equal(marshalErr, err)
		})
	}
}

func TestUnsupportedTypeErrorMessage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want string
	}{
		{
			"field",
			&serde.UnsupportedTypeError{Path: "Items[2].Callback", Type: reflect.TypeFor[func()]()},
			"serde: cbor cannot encode Items[2].Callback (type func()): drop the field, or tag it `cbor:\"-\"` so the encoder skips it",
		},
		{
			"root",
			&serde.UnsupportedTypeError{Type: reflect.TypeFor[chan int]()},
			"serde: cbor cannot encode a value of type chan int: send a value of another type, or give the type a MarshalCBOR method",
		},
		{
			"map key",
			&serde.UnsupportedTypeError{Path: "Meta", Type: reflect.TypeFor[complex64](), MapKey: true},
			"serde: cbor cannot encode the keys of the map at Meta (type complex64): use a key type CBOR can encode, like string or int",
		},
		{
			"cycle",
			&serde.UnsupportedValueError{Path: "Next.Next", Type: reflect.TypeFor[*node](), Reason: "it points back to the root value, a cycle"},
			"serde: cbor cannot encode Next.Next (type *serde_test.node): it points back to the root value, a cycle",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			is.Equal(tt.err.Error(), tt.want)
		})
	}
}

// TestEncodableAgreesWithEncoder checks, type by type, that Encodable
// accepts exactly what the encoder encodes.
func TestEncodableAgreesWithEncoder(t *testing.T) {
	t.Parallel()
	type inner struct{ F func() }
	type innerOK struct{ N int }
	type twoEmbedded struct {
		inner
		Base // both promote a field named like theirs: F, Callback
	}
	type sameNameSameDepth struct {
		A struct{ X func() }
		B struct{ X int }
	}
	type conflict1 struct{ X func() }
	type conflict2 struct{ X int }
	type ambiguous struct {
		conflict1
		conflict2 // X at the same depth twice, untagged: neither is encoded
	}
	type tagged1 struct {
		X func() `cbor:"x"`
	}
	type taggedWins struct {
		tagged1
		conflict2 // the tagged X wins
	}
	type unexportedEmbedded struct {
		inner // unexported, but its exported fields are promoted
	}
	type unexportedNonStruct struct {
		int
	}
	type duplicateEmbedded struct {
		innerOK
		Other struct{ innerOK }
	}
	type named struct {
		F func() `cbor:"f"`
	}
	type embeddedTagged struct {
		Base `cbor:"base"`
	}
	type keyAsInt struct {
		A int    `cbor:"1,keyasint"`
		B func() `cbor:"01,keyasint"` // the same key as A: neither is encoded
	}
	for _, v := range []any{
		twoEmbedded{}, sameNameSameDepth{}, ambiguous{}, taggedWins{}, unexportedEmbedded{},
		unexportedNonStruct{int: 1}, duplicateEmbedded{}, named{}, embeddedTagged{}, keyAsInt{},
		skipsFields{}, shadowsBase{}, cborTagWins{}, embedsBasePointer{}, embedsBasePointer{Base: &Base{}},
		[]any{inner{}}, map[string]innerOK{}, [0]inner{}, struct{ P **inner }{}, struct{ I any }{I: inner{}},
	} {
		t.Run(reflect.TypeOf(v).String(), func(t *testing.T) {
			is := is.New(t)
			_, encErr := serde.EncMode().Marshal(v)
			err := serde.Encodable(v)
			is.Equal(err == nil, encErr == nil) // Encodable agrees with the encoder
		})
	}
}
