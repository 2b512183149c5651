package serde_test

import (
	"fmt"

	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/dispatchkit/dispatch/serde"
)

func Example() {
	type Order struct {
		ID  string `cbor:"id"`
		Qty int    `cbor:"qty"`
	}

	// A struct goes as CBOR under this SDK's type URL...
	a, err := serde.Marshal(Order{ID: "o-1", Qty: 2})
	if err != nil {
		panic(err)
	}
	fmt.Println(a.GetTypeUrl())
	var order Order
	if err := serde.Unmarshal(a, &order); err != nil {
		panic(err)
	}
	fmt.Printf("%+v\n", order)

	// ...plain values as well-known types that other SDKs read, named
	// types by their kind.
	type Color string
	a, err = serde.Marshal(Color("red"))
	if err != nil {
		panic(err)
	}
	fmt.Println(a.GetTypeUrl())

	// Output:
	// type.googleapis.com/dispatchkit.go.v1.CBOR
	// {ID:o-1 Qty:2}
	// type.googleapis.com/google.protobuf.StringValue
}

func ExampleUnmarshal() {
	// A Python function returned 42.0: it fits an int...
	a, err := anypb.New(wrapperspb.Double(42))
	if err != nil {
		panic(err)
	}
	var n int
	fmt.Println(serde.Unmarshal(a, &n), n)

	// ...but 1.5 does not, and nothing is truncated.
	a, err = anypb.New(wrapperspb.Double(1.5))
	if err != nil {
		panic(err)
	}
	fmt.Println(serde.Unmarshal(a, &n))

	// Into an any, a payload becomes its natural Go value.
	var v any
	if err := serde.Unmarshal(a, &v); err != nil {
		panic(err)
	}
	fmt.Printf("%T %v\n", v, v)

	// Output:
	// <nil> 42
	// serde: cannot decode google.protobuf.DoubleValue 1.5 into int: not an integer
	// float64 1.5
}
