package serde_test

import (
	"testing"

	"github.com/dispatchkit/dispatch/serde"
)

var benchValues = []struct {
	name string
	v    any
	dst  func() any
}{
	{"string", "hello, world", func() any { return new(string) }},
	{"struct", Item{SKU: "sku-1", Qty: 3}, func() any { return new(Item) }},
	{"json map", map[string]any{"name": "n", "count": 3.0, "tags": []any{"a", "b"}}, func() any { return new(map[string]any) }},
	{"nested struct", Order{ID: "o", Items: []Item{{"a", 1}, {"b", 2}}, Meta: map[string]string{"k": "v"}, Placed: when, Total: 3, Priority: ptr(1)}, func() any { return new(Order) }},
}

func BenchmarkMarshal(b *testing.B) {
	for _, bv := range benchValues {
		b.Run(bv.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := serde.Marshal(bv.v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkUnmarshal(b *testing.B) {
	for _, bv := range benchValues {
		b.Run(bv.name, func(b *testing.B) {
			a, err := serde.Marshal(bv.v)
			if err != nil {
				b.Fatal(err)
			}
			dst := bv.dst()
			b.ReportAllocs()
			for b.Loop() {
				if err := serde.Unmarshal(a, dst); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkMarshalCBOR(b *testing.B) {
	for _, bv := range benchValues {
		b.Run(bv.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := serde.MarshalCBOR(bv.v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkUnmarshalCBOR(b *testing.B) {
	for _, bv := range benchValues {
		b.Run(bv.name, func(b *testing.B) {
			data := mustCBOR(bv.v)
			dst := bv.dst()
			b.ReportAllocs()
			for b.Loop() {
				if err := serde.UnmarshalCBOR(data, dst); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncodable(b *testing.B) {
	for _, bv := range benchValues {
		b.Run(bv.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := serde.Encodable(bv.v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
