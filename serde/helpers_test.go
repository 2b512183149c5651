package serde_test

import (
	"math/big"
	"reflect"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/dispatchkit/dispatch/serde"
)

// Types of the tests. Their names show in error messages as serde_test.X.
type (
	Color string
	Level int
	Blob  []byte

	Point struct {
		X, Y int
	}

	Order struct {
		ID       string            `cbor:"id"`
		Items    []Item            `cbor:"items"`
		Meta     map[string]string `cbor:"meta,omitempty"`
		Placed   time.Time         `cbor:"placed"`
		Total    float64           `cbor:"total"`
		Priority *int              `cbor:"priority"`
	}

	Item struct {
		SKU string `cbor:"sku"`
		Qty int    `cbor:"qty"`
	}
)

// anyOf wraps m in an Any, as another SDK would send it.
func anyOf(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(err)
	}
	return a
}

// cborAny is an Any of CBOR bytes.
func cborAny(b []byte) *anypb.Any {
	return &anypb.Any{TypeUrl: serde.CBORTypeURL, Value: b}
}

func mustCBOR(v any) []byte {
	b, err := serde.MarshalCBOR(v)
	if err != nil {
		panic(err)
	}
	return b
}

// equal compares decoded values: proto messages with proto.Equal, times with
// time.Time.Equal (also inside maps and slices), big ints by value, the
// rest deeply.
func equal(a, b any) bool {
	switch x := a.(type) {
	case proto.Message:
		y, ok := b.(proto.Message)
		return ok && proto.Equal(x, y)
	case time.Time:
		y, ok := b.(time.Time)
		return ok && x.Equal(y)
	case *big.Int:
		y, ok := b.(*big.Int)
		return ok && x.Cmp(y) == 0
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) || (x == nil) != (y == nil) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !equal(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) || (x == nil) != (y == nil) {
			return false
		}
		for i := range x {
			if !equal(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

func ptr[T any](v T) *T { return &v }
