package serde_test

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/dispatchkit/dispatch/serde"
)

// fuzzDestinations are fresh pointers to the types FuzzUnmarshal decodes into.
func fuzzDestinations() []any {
	return []any{
		new(any), new(bool), new(int), new(int8), new(uint), new(uint8), new(float32), new(float64),
		new(string), new(Color), new([]byte), new([4]byte), new(time.Time), new(time.Duration),
		new(Point), new(*Point), new(Order), new(map[string]any), new([]any), new([]string),
		new(map[int]string), new(proto.Message), new(error), new(wrapperspb.StringValue),
		new(*timestamppb.Timestamp), new(anypb.Any),
	}
}

// FuzzUnmarshal feeds Unmarshal payloads from a peer: whatever the type URL
// and bytes, it must not panic, and a failure must be a serde error.
func FuzzUnmarshal(f *testing.F) {
	for _, v := range []any{
		nil, true, int64(-7), uint64(math.MaxUint64), 1.5, "text", []byte{0, 1}, when, 3 * time.Second,
		map[string]any{"X": 1.0, "Y": []any{"a", nil, true}}, []any{1.0}, Point{1, 2},
		Order{ID: "o", Items: []Item{{"a", 1}}, Placed: when, Priority: ptr(1)}, map[int]string{1: "a"},
		&fieldmaskpb.FieldMask{Paths: []string{"a"}},
	} {
		a, err := serde.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(a.GetTypeUrl(), a.GetValue())
	}
	for _, m := range []proto.Message{
		wrapperspb.Float(0.5), wrapperspb.Int32(-1), wrapperspb.UInt32(1),
		&structpb.Struct{Fields: map[string]*structpb.Value{"X": structpb.NewNumberValue(2)}},
		&structpb.ListValue{Values: []*structpb.Value{structpb.NewStringValue("s")}},
		&timestamppb.Timestamp{Seconds: math.MaxInt64}, &durationpb.Duration{Seconds: 1e11},
	} {
		a := anyOf(m)
		f.Add(a.GetTypeUrl(), a.GetValue())
	}
	f.Add("type.googleapis.com/example.v1.Nope", []byte{8, 1})
	f.Add("", []byte{})
	f.Add("/", []byte{0xff})
	f.Add(serde.CBORTypeURL, bytes.Repeat([]byte{0x81}, 10000))

	f.Fuzz(func(t *testing.T, typeURL string, value []byte) {
		a := &anypb.Any{TypeUrl: typeURL, Value: value}
		for _, dst := range fuzzDestinations() {
			err := serde.Unmarshal(a, dst)
			if err != nil && !strings.HasPrefix(err.Error(), "serde: ") {
				t.Fatalf("Unmarshal into %T: error without the package name: %v", dst, err)
			}
		}
		// What decodes into an any marshals again, without a panic.
		var v any
		if serde.Unmarshal(a, &v) == nil {
			_, _ = serde.Marshal(v)
		}
	})
}

// FuzzUnmarshalCBOR feeds UnmarshalCBOR arbitrary bytes: it must not panic,
// what MarshalCBOR writes of a decoded value must decode, and a few rounds of
// decoding and encoding must reach a fixed point. (One round is not always
// enough: a tagged map key decoded into an any drops its tag when the key
// is a string, so the second encoding has no tag.)
func FuzzUnmarshalCBOR(f *testing.F) {
	for _, v := range []any{
		0, -1, uint64(math.MaxUint64), 1.5, math.NaN(), "s", []byte("b"), true, nil, when,
		map[string]any{"a": []any{1, "b"}}, Point{1, 2}, map[int]any{1: map[string]any{}},
		Order{ID: "o", Items: []Item{{"a", 1}}, Meta: map[string]string{"k": "v"}, Placed: when},
	} {
		f.Add(mustCBOR(v))
	}
	f.Add([]byte{0x9f, 0x01, 0xff})                         // indefinite length
	f.Add([]byte{0xa2, 0x61, 'a', 0x01, 0x61, 'a', 0x02})   // duplicate key
	f.Add([]byte{0xc1, 0xfb, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0}) // epoch time +Inf
	f.Add([]byte{0xd8, 0x2a, 0x01})                         // unknown tag
	f.Add(bytes.Repeat([]byte{0x81}, 100))

	f.Fuzz(func(t *testing.T, data []byte) {
		var p Point
		if err := serde.UnmarshalCBOR(data, &p); err != nil && !strings.HasPrefix(err.Error(), "serde: ") {
			t.Fatalf("error without the package name: %v", err)
		}
		var o Order
		_ = serde.UnmarshalCBOR(data, &o)

		var v any
		if serde.UnmarshalCBOR(data, &v) != nil {
			return
		}
		prev, err := serde.MarshalCBOR(v)
		if err != nil {
			return // a decoded value need not encode (a time beyond RFC 3339, ...)
		}
		for range 3 {
			var w any
			if err := serde.UnmarshalCBOR(prev, &w); err != nil {
				t.Fatalf("MarshalCBOR wrote what UnmarshalCBOR rejects: %v\n%x", err, prev)
			}
			next, err := serde.MarshalCBOR(w)
			if err != nil {
				t.Fatalf("cannot encode again: %v", err)
			}
			if bytes.Equal(prev, next) {
				return
			}
			prev = next
		}
		t.Fatalf("encoding is not stable after 3 rounds: %x, from %s", prev, fmt.Sprint(v))
	})
}
