package serde_test

import (
	"fmt"

	"github.com/dispatchkit/dispatch/serde"
)

func ExampleMarshalCBOR() {
	// Map keys are sorted by their encoding: the bytes do not depend on
	// the order of insertion.
	b, err := serde.MarshalCBOR(map[string]any{"b": []int{2, 3}, "a": 1})
	if err != nil {
		panic(err)
	}
	fmt.Printf("%x\n", b)

	var v any
	if err := serde.UnmarshalCBOR(b, &v); err != nil {
		panic(err)
	}
	fmt.Println(v)

	// Output:
	// a26161016162820203
	// map[a:1 b:[2 3]]
}

func ExampleEncodable() {
	type Step struct {
		Name     string
		Callback func() error
	}
	type State struct {
		Steps []any
		Meta  map[string]any
	}

	state := State{Steps: []any{"start", Step{Name: "send"}}}
	fmt.Println(serde.Encodable(state))

	type Fixed struct {
		Name     string
		Callback func() error `cbor:"-"` // not part of the state
	}
	state = State{Steps: []any{"start", Fixed{Name: "send"}}, Meta: map[string]any{"try": 1}}
	fmt.Println(serde.Encodable(state))

	// Output:
	// serde: cbor cannot encode Steps[1].Callback (type func() error): drop the field, or tag it `cbor:"-"` so the encoder skips it
	// <nil>
}
