package serde_test

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/matryer/is"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/dispatchkit/dispatch/serde"
)

var when = time.Date(2024, 6, 12, 22, 56, 39, 123456789, time.UTC)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	fieldMask := &fieldmaskpb.FieldMask{Paths: []string{"a.b", "c"}}
	forwarded := anyOf(wrapperspb.String("as is"))
	tests := []struct {
		name    string
		in      any
		typeURL string // after type.googleapis.com/
		want    any    // decoded into a new value of its type; nil: skip
		natural any    // decoded into an any
	}{
		{"nil", nil, "google.protobuf.Empty", nil, nil},
		{"bool", true, "google.protobuf.BoolValue", true, true},
		{"int", 42, "google.protobuf.Int64Value", 42, int64(42)},
		{"int8", int8(-8), "google.protobuf.Int64Value", int8(-8), int64(-8)},
		{"int16", int16(-300), "google.protobuf.Int64Value", int16(-300), int64(-300)},
		{"int32", int32(1 << 30), "google.protobuf.Int64Value", int32(1 << 30), int64(1 << 30)},
		{"min int64", int64(math.MinInt64), "google.protobuf.Int64Value", int64(math.MinInt64), int64(math.MinInt64)},
		{"uint", uint(7), "google.protobuf.UInt64Value", uint(7), uint64(7)},
		{"uint8", uint8(255), "google.protobuf.UInt64Value", uint8(255), uint64(255)},
		{"uint16", uint16(65535), "google.protobuf.UInt64Value", uint16(65535), uint64(65535)},
		{"uint32", uint32(1 << 31), "google.protobuf.UInt64Value", uint32(1 << 31), uint64(1 << 31)},
		{"max uint64", uint64(math.MaxUint64), "google.protobuf.UInt64Value", uint64(math.MaxUint64), uint64(math.MaxUint64)},
		{"float32", float32(1.1), "google.protobuf.DoubleValue", float32(1.1), float64(float32(1.1))},
		{"float64", 0.1, "google.protobuf.DoubleValue", 0.1, 0.1},
		{"infinity", math.Inf(-1), "google.protobuf.DoubleValue", math.Inf(-1), math.Inf(-1)},
		{"string", "héllo", "google.protobuf.StringValue", "héllo", "héllo"},
		{"empty string", "", "google.protobuf.StringValue", "", ""},
		{"named string", Color("red"), "google.protobuf.StringValue", Color("red"), "red"},
		{"named int", Level(3), "google.protobuf.Int64Value", Level(3), int64(3)},
		{"bytes", []byte{1, 2, 3}, "google.protobuf.BytesValue", []byte{1, 2, 3}, []byte{1, 2, 3}},
		{"named bytes", Blob("blob"), "google.protobuf.BytesValue", Blob("blob"), []byte("blob")},
		{"time", when, "google.protobuf.Timestamp", when, when},
		{"duration", 90 * time.Second, "google.protobuf.Duration", 90 * time.Second, 90 * time.Second},
		{"negative duration", -time.Nanosecond, "google.protobuf.Duration", -time.Nanosecond, -time.Nanosecond},
		{"proto message", fieldMask, "google.protobuf.FieldMask", fieldMask, fieldMask},
		{"wrapper message", wrapperspb.Int32(5), "google.protobuf.Int32Value", wrapperspb.Int32(5), int64(5)},
		{"any as is", forwarded, "google.protobuf.StringValue", "as is", "as is"},
		{
			"json map", map[string]any{"a": 1.5, "b": []any{"x", true, nil}, "c": map[string]any{}},
			"google.protobuf.Value",
			map[string]any{"a": 1.5, "b": []any{"x", true, nil}, "c": map[string]any{}},
			map[string]any{"a": 1.5, "b": []any{"x", true, nil}, "c": map[string]any{}},
		},
		{"json ints are doubles", map[string]any{"n": 1, "m": uint8(2)}, "google.protobuf.Value", map[string]any{"n": 1.0, "m": 2.0}, map[string]any{"n": 1.0, "m": 2.0}},
		{"json list", []any{1.0, "two", []any{}}, "google.protobuf.Value", []any{1.0, "two", []any{}}, []any{1.0, "two", []any{}}},
		{"nil json map", map[string]any(nil), "google.protobuf.Value", map[string]any(nil), nil},
		{"map with a time", map[string]any{"t": when}, "dispatchkit.go.v1.CBOR", map[string]any{"t": when}, map[string]any{"t": when}},
		{"map with a big int", map[string]any{"n": int64(1<<53 + 1)}, "dispatchkit.go.v1.CBOR", map[string]any{"n": int64(1<<53 + 1)}, map[string]any{"n": int64(1<<53 + 1)}},
		{"list of string slice", []any{[]string{"a"}}, "dispatchkit.go.v1.CBOR", []any{[]any{"a"}}, []any{[]any{"a"}}},
		{"struct", Point{1, -2}, "dispatchkit.go.v1.CBOR", Point{1, -2}, map[string]any{"X": int64(1), "Y": int64(-2)}},
		{"pointer to struct", &Point{3, 4}, "dispatchkit.go.v1.CBOR", Point{3, 4}, map[string]any{"X": int64(3), "Y": int64(4)}},
		{"pointer to pointer to string", ptr(ptr("s")), "google.protobuf.StringValue", "s", "s"},
		{"nil pointer", (*Point)(nil), "google.protobuf.Empty", (*Point)(nil), nil},
		{"nil proto message", (*fieldmaskpb.FieldMask)(nil), "google.protobuf.Empty", (*fieldmaskpb.FieldMask)(nil), nil},
		{"int map", map[int]string{1: "a"}, "dispatchkit.go.v1.CBOR", map[int]string{1: "a"}, map[any]any{int64(1): "a"}},
		{"string slice", []string{"a", "b"}, "dispatchkit.go.v1.CBOR", []string{"a", "b"}, []any{"a", "b"}},
		{"array", [2]int{5, 6}, "dispatchkit.go.v1.CBOR", [2]int{5, 6}, []any{int64(5), int64(6)}},
		{
			"nested struct",
			Order{ID: "o1", Items: []Item{{"a", 1}, {"b", 2}}, Placed: when, Total: 9.5, Priority: ptr(2)},
			"dispatchkit.go.v1.CBOR",
			Order{ID: "o1", Items: []Item{{"a", 1}, {"b", 2}}, Placed: when, Total: 9.5, Priority: ptr(2)},
			map[string]any{
				"id": "o1", "items": []any{map[string]any{"sku": "a", "qty": int64(1)}, map[string]any{"sku": "b", "qty": int64(2)}},
				"placed": when, "total": 9.5, "priority": int64(2),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			a, err := serde.Marshal(tt.in)
			is.NoErr(err)
			is.Equal(a.GetTypeUrl(), "type.googleapis.com/"+tt.typeURL)

			var natural any
			is.NoErr(serde.Unmarshal(a, &natural))
			is.True(equal(natural, tt.natural)) // natural value

			if tt.want == nil {
				return
			}
			dst := reflect.New(reflect.TypeOf(tt.want))
			is.NoErr(serde.Unmarshal(a, dst.Interface()))
			got := dst.Elem().Interface()
			is.True(equal(got, tt.want)) // typed value

			// And back: the decoded value marshals to the same payload,
			// but where decoding changes its shape.
			if tt.name == "list of string slice" { // []string becomes []any
				return
			}
			b, err := serde.Marshal(got)
			is.NoErr(err)
			is.True(proto.Equal(a, b))
		})
	}
}

func TestMarshalPointerIsValue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		v, p any
	}{
		{"struct", Point{1, 2}, &Point{1, 2}},
		{"string", "s", ptr("s")},
		{"named string", Color("c"), ptr(Color("c"))},
		{"int", 5, ptr(ptr(5))},
		{"time", when, &when},
		{"map", map[string]any{"k": "v"}, &map[string]any{"k": "v"}},
		{"any", any(3), ptr(any(3))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			a, err := serde.Marshal(tt.v)
			is.NoErr(err)
			b, err := serde.Marshal(tt.p)
			is.NoErr(err)
			is.True(proto.Equal(a, b))
		})
	}
}

func TestMarshalJSONBoundaries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      any
		typeURL string
	}{
		{"2^53", map[string]any{"n": int64(1 << 53)}, "google.protobuf.Value"},
		{"-2^53", []any{-(1 << 53)}, "google.protobuf.Value"},
		{"2^53+1", map[string]any{"n": int64(1<<53 + 1)}, serde.CBORTypeURL},
		{"big uint", []any{uint64(1 << 60)}, serde.CBORTypeURL},
		{"NaN", []any{math.NaN()}, serde.CBORTypeURL},
		{"infinity", map[string]any{"f": math.Inf(1)}, serde.CBORTypeURL},
		{"bytes", map[string]any{"b": []byte("x")}, serde.CBORTypeURL},
		{"typed map inside", map[string]any{"m": map[string]string{}}, serde.CBORTypeURL},
		{"named map", map[string]any{"m": map[string]any{"c": Color("red")}}, serde.CBORTypeURL},
		{"64 levels", nestMaps(64), "google.protobuf.Value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			a, err := serde.Marshal(tt.in)
			is.NoErr(err)
			is.Equal(strings.TrimPrefix(a.GetTypeUrl(), "type.googleapis.com/"), strings.TrimPrefix(tt.typeURL, "type.googleapis.com/"))
		})
	}
}

func TestMarshalDeterministic(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	m := map[string]any{}
	for i := range 100 {
		m[fmt.Sprint("k", i)] = map[string]any{"i": float64(i), "s": fmt.Sprint(i)}
	}
	first, err := serde.Marshal(m)
	is.NoErr(err)
	for range 20 {
		a, err := serde.Marshal(m)
		is.NoErr(err)
		is.Equal(a.GetValue(), first.GetValue()) // same bytes every time
	}
}

func TestMarshalErrors(t *testing.T) {
	t.Parallel()
	type withFunc struct {
		Name     string
		Callback func()
	}
	type self *self
	loop := new(self)
	*loop = loop
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"chan", make(chan int), "serde: cbor cannot encode a value of type chan int"},
		{"func field", withFunc{}, "serde: cbor cannot encode Callback (type func())"},
		{"func in json map", map[string]any{"f": func() {}}, `serde: cbor cannot encode ["f"] (type func())`},
		{"complex", complex(1, 2), "serde: cbor cannot encode a value of type complex128"},
		{"time beyond year 9999", time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), "serde: cannot marshal time.Time 10000-01-01"},
		{"invalid UTF-8", "\xff", "serde: cannot marshal google.protobuf.StringValue"},
		{"proto by value", reflect.Zero(reflect.TypeFor[wrapperspb.StringValue]()).Interface(), "serde: cannot marshal the proto message wrapperspb.StringValue by value: pass a pointer"},
		{"pointer loop", loop, "more than 64 pointer indirections"},
		{"65 levels", nestMaps(65), `serde: cbor cannot encode ["k"]["k"]`},
		{"65 levels ends", nestMaps(65), `(type map[string]interface {}): it nests more than 64 levels deep, which UnmarshalCBOR rejects`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			_, err := serde.Marshal(tt.in)
			is.True(err != nil)
			is.True(strings.HasPrefix(err.Error(), "serde: "))
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestUnmarshalConversions(t *testing.T) {
	t.Parallel()
	pointAny, err := serde.Marshal(Point{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	jsonPoint := anyOf(structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
		"X": structpb.NewNumberValue(1), "Y": structpb.NewNumberValue(2), "Extra": structpb.NewStringValue("ignored"),
	}}))
	fieldMask := &fieldmaskpb.FieldMask{Paths: []string{"p"}}
	tests := []struct {
		name string
		a    *anypb.Any
		dst  any // a pointer to a value that is replaced
		want any // what dst points to after
	}{
		{"Int64Value into int16", anyOf(wrapperspb.Int64(300)), new(int16), int16(300)},
		{"Int64Value into uint16", anyOf(wrapperspb.Int64(300)), new(uint16), uint16(300)},
		{"Int64Value into float32", anyOf(wrapperspb.Int64(1 << 24)), new(float32), float32(1 << 24)},
		{"Int64Value 2^53 into float64", anyOf(wrapperspb.Int64(1 << 53)), new(float64), float64(1 << 53)},
		{"Int64Value into named int", anyOf(wrapperspb.Int64(2)), new(Level), Level(2)},
		{"Int32Value into int", anyOf(wrapperspb.Int32(-5)), new(int), -5},
		{"UInt32Value into int8", anyOf(wrapperspb.UInt32(5)), new(int8), int8(5)},
		{"UInt64Value into int64", anyOf(wrapperspb.UInt64(math.MaxInt64)), new(int64), int64(math.MaxInt64)},
		{"UInt64Value 2^63 into float64", anyOf(wrapperspb.UInt64(1 << 63)), new(float64), float64(1 << 63)},
		{"DoubleValue into int", anyOf(wrapperspb.Double(3)), new(int), 3},
		{"DoubleValue -2^63 into int64", anyOf(wrapperspb.Double(-0x1p63)), new(int64), int64(math.MinInt64)},
		{"DoubleValue into uint8", anyOf(wrapperspb.Double(255)), new(uint8), uint8(255)},
		{"DoubleValue rounds into float32", anyOf(wrapperspb.Double(0.1)), new(float32), float32(0.1)},
		{"DoubleValue NaN into float32", anyOf(wrapperspb.Double(math.Inf(1))), new(float32), float32(math.Inf(1))},
		{"FloatValue into float32", anyOf(wrapperspb.Float(1.25)), new(float32), float32(1.25)},
		{"FloatValue into float64", anyOf(wrapperspb.Float(0.1)), new(float64), float64(float32(0.1))},
		{"FloatValue into any", anyOf(wrapperspb.Float(0.5)), new(any), 0.5},
		{"StringValue into named string", anyOf(wrapperspb.String("red")), new(Color), Color("red")},
		{"BoolValue into bool", anyOf(wrapperspb.Bool(true)), new(bool), true},
		{"BytesValue into array", anyOf(wrapperspb.Bytes([]byte{1, 2, 3})), new([3]byte), [3]byte{1, 2, 3}},
		{"BytesValue into named bytes", anyOf(wrapperspb.Bytes([]byte{1})), new(Blob), Blob{1}},
		{"Timestamp into pointer", anyOf(timestamppb.New(when)), new(*time.Time), &when},
		{"Duration into duration", anyOf(durationpb.New(-3 * time.Hour)), new(time.Duration), -3 * time.Hour},
		{"Empty into pointer", anyOf(&emptypb.Empty{}), ptr(ptr(5)), (*int)(nil)},
		{"Empty into struct", anyOf(&emptypb.Empty{}), &Point{9, 9}, Point{}},
		{"Empty into map", anyOf(&emptypb.Empty{}), &map[string]int{"a": 1}, map[string]int(nil)},
		{"Empty into slice", anyOf(&emptypb.Empty{}), &[]int{1}, []int(nil)},
		{"Empty into any", anyOf(&emptypb.Empty{}), ptr(any(1)), nil},
		{"Empty into proto message", anyOf(&emptypb.Empty{}), &fieldmaskpb.FieldMask{Paths: []string{"x"}}, &fieldmaskpb.FieldMask{}},
		{"nil Any into any", nil, ptr(any(1)), nil},
		{"zero Any into pointer", &anypb.Any{}, ptr(ptr(1)), (*int)(nil)},
		{"Value into struct", jsonPoint, &Point{9, 9}, Point{1, 2}},
		{"Value into pointer to struct", jsonPoint, new(*Point), &Point{1, 2}},
		{"Value into typed map", jsonPoint, new(map[string]any), map[string]any{"X": 1.0, "Y": 2.0, "Extra": "ignored"}},
		{"Value number into int", anyOf(structpb.NewNumberValue(7)), new(int), 7},
		{"Value string into time", anyOf(structpb.NewStringValue("2024-06-12T22:56:39.123456789Z")), new(time.Time), when},
		{"Value null into pointer", anyOf(structpb.NewNullValue()), ptr(&Point{}), (*Point)(nil)},
		{"Value null into struct", anyOf(structpb.NewNullValue()), &Point{1, 1}, Point{}},
		{"Struct into map", anyOf(&structpb.Struct{Fields: map[string]*structpb.Value{"a": structpb.NewBoolValue(true)}}), new(map[string]any), map[string]any{"a": true}},
		{"Struct into struct", anyOf(&structpb.Struct{Fields: map[string]*structpb.Value{"X": structpb.NewNumberValue(4)}}), new(Point), Point{X: 4}},
		{"ListValue into slice", anyOf(&structpb.ListValue{Values: []*structpb.Value{structpb.NewStringValue("a")}}), new([]any), []any{"a"}},
		{"ListValue into string slice", anyOf(&structpb.ListValue{Values: []*structpb.Value{structpb.NewStringValue("a")}}), new([]string), []string{"a"}},
		{"Value NaN into any", anyOf(structpb.NewNumberValue(math.Inf(1))), new(any), math.Inf(1)},
		{"CBOR into struct replaces", cborAny(mustCBOR(map[string]int{"X": 1})), &Point{9, 9}, Point{X: 1}},
		{"CBOR into pointer", pointAny, new(*Point), &Point{1, 2}},
		{"CBOR into map", pointAny, new(map[string]int), map[string]int{"X": 1, "Y": 2}},
		{"proto into own type", anyOf(fieldMask), new(fieldmaskpb.FieldMask), fieldMask},
		{"proto into pointer", anyOf(fieldMask), new(*fieldmaskpb.FieldMask), fieldMask},
		{"proto into proto.Message", anyOf(fieldMask), new(proto.Message), fieldMask},
		{"wrapper into proto.Message", anyOf(wrapperspb.String("s")), new(proto.Message), wrapperspb.String("s")},
		{"wrapper into own type", anyOf(wrapperspb.String("s")), new(wrapperspb.StringValue), wrapperspb.String("s")},
		{"Any into Any", anyOf(wrapperspb.String("s")), new(anypb.Any), anyOf(wrapperspb.String("s"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			is.NoErr(serde.Unmarshal(tt.a, tt.dst))
			got := reflect.ValueOf(tt.dst).Elem().Interface()
			if m, ok := tt.dst.(proto.Message); ok {
				got = m
			}
			if !equal(got, tt.want) {
				t.Fatalf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestUnmarshalErrors(t *testing.T) {
	t.Parallel()
	badTimestamp := &timestamppb.Timestamp{Seconds: math.MaxInt64}
	longDuration := &durationpb.Duration{Seconds: 1e11}
	unknown := &anypb.Any{TypeUrl: "type.googleapis.com/example.v1.Nope", Value: []byte{8, 1}}
	tests := []struct {
		name string
		a    *anypb.Any
		dst  any
		want string // the error contains it
	}{
		{"1.5 into int", anyOf(wrapperspb.Double(1.5)), new(int), "serde: cannot decode google.protobuf.DoubleValue 1.5 into int: not an integer"},
		{"300 into int8", anyOf(wrapperspb.Int64(300)), new(int8), "serde: cannot decode google.protobuf.Int64Value 300 into int8: out of range"},
		{"-1 into uint", anyOf(wrapperspb.Int64(-1)), new(uint), "serde: cannot decode google.protobuf.Int64Value -1 into uint: negative value"},
		{"2^53+1 into float64", anyOf(wrapperspb.Int64(1<<53 + 1)), new(float64), "Int64Value 9007199254740993 into float64: not exactly representable as float64"},
		{"2^24+1 into float32", anyOf(wrapperspb.Int64(1<<24 + 1)), new(float32), "into float32: not exactly representable as float32"},
		{"max int64 into float64", anyOf(wrapperspb.Int64(math.MaxInt64)), new(float64), "not exactly representable"},
		{"max uint64 into float64", anyOf(wrapperspb.UInt64(math.MaxUint64)), new(float64), "not exactly representable"},
		{"UInt64Value into int64", anyOf(wrapperspb.UInt64(1 << 63)), new(int64), "UInt64Value 9223372036854775808 into int64: out of range"},
		{"UInt64Value into uint8", anyOf(wrapperspb.UInt64(256)), new(uint8), "into uint8: out of range"},
		{"UInt32Value into int8", anyOf(wrapperspb.UInt32(200)), new(int8), "UInt32Value 200 into int8: out of range"},
		{"double beyond float32", anyOf(wrapperspb.Double(1e300)), new(float32), "DoubleValue 1e+300 into float32: out of range"},
		{"NaN into int", anyOf(wrapperspb.Double(math.NaN())), new(int), "DoubleValue NaN into int: not an integer"},
		{"infinity into int64", anyOf(wrapperspb.Double(math.Inf(1))), new(int64), "DoubleValue +Inf into int64: not an integer"},
		{"1e20 into int64", anyOf(wrapperspb.Double(1e20)), new(int64), "into int64: out of range"},
		{"2^63 into int64", anyOf(wrapperspb.Double(0x1p63)), new(int64), "into int64: out of range"},
		{"-1 into uint", anyOf(wrapperspb.Double(-1)), new(uint), "DoubleValue -1 into uint: negative value"},
		{"256 into uint8", anyOf(wrapperspb.Double(256)), new(uint8), "into uint8: out of range"},
		{"2^64 into uint64", anyOf(wrapperspb.Double(0x1p64)), new(uint64), "into uint64: out of range"},
		{"0.5 into uint", anyOf(wrapperspb.Float(0.5)), new(uint), "FloatValue 0.5 into uint: not an integer"},
		{"string into int", anyOf(wrapperspb.String("12")), new(int), `StringValue "12" into int: incompatible types`},
		{"long string", anyOf(wrapperspb.String(strings.Repeat("é", 30))), new(int), `"` + strings.Repeat("é", 20) + `"...`},
		{"bool into string", anyOf(wrapperspb.Bool(true)), new(string), "BoolValue true into string: incompatible types"},
		{"int into bool", anyOf(wrapperspb.Int64(1)), new(bool), "Int64Value 1 into bool: incompatible types"},
		{"bytes into string", anyOf(wrapperspb.Bytes([]byte("ab"))), new(string), "BytesValue (2 bytes) into string: incompatible types"},
		{"bytes into short array", anyOf(wrapperspb.Bytes([]byte("abc"))), new([4]byte), "into [4]uint8: want 4 bytes"},
		{"string into bytes", anyOf(wrapperspb.String("ab")), new([]byte), `StringValue "ab" into []uint8: incompatible types`},
		{"timestamp into string", anyOf(timestamppb.New(when)), new(string), "Timestamp 2024-06-12T22:56:39.123456789Z into string: incompatible types"},
		{"timestamp into int64", anyOf(timestamppb.New(when)), new(int64), "into int64: incompatible types"},
		{"duration into int64", anyOf(durationpb.New(time.Second)), new(int64), "Duration 1s into int64: incompatible types"},
		{"int into duration", anyOf(wrapperspb.Int64(5)), new(time.Duration), "Int64Value 5 into time.Duration: incompatible types"},
		{"string into time", anyOf(wrapperspb.String("2024-01-01T00:00:00Z")), new(time.Time), "into time.Time: incompatible types"},
		{"empty into int", anyOf(&emptypb.Empty{}), new(int), "serde: cannot decode google.protobuf.Empty into int: no value"},
		{"empty into string", nil, new(string), "google.protobuf.Empty into string: no value"},
		{"empty into time", anyOf(&emptypb.Empty{}), new(time.Time), "Empty into time.Time: no value"},
		{"null into int", anyOf(structpb.NewNullValue()), new(int), "google.protobuf.Value into int: no value"},
		{"JSON 1.5 into int field", anyOf(structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"X": structpb.NewNumberValue(1.5)}})), new(Point), "google.protobuf.Value into serde_test.Point: json: cannot unmarshal number 1.5"},
		{"JSON string into int", anyOf(structpb.NewStringValue("x")), new(int), "google.protobuf.Value into int: json: cannot unmarshal string"},
		{"JSON 300 into int8", anyOf(structpb.NewNumberValue(300)), new(int8), "json: cannot unmarshal number 300"},
		{"JSON into duration", anyOf(structpb.NewNumberValue(3)), new(time.Duration), "Value into time.Duration: incompatible types"},
		{"CBOR into wrong type", cborAny(mustCBOR(map[string]string{"X": "a"})), new(Point), "serde: cannot decode dispatchkit.go.v1.CBOR into serde_test.Point: cbor: cannot unmarshal UTF-8 text string into Go struct field serde_test.Point.X of type int"},
		{"CBOR 300 into int8", cborAny(mustCBOR(300)), new(int8), "dispatchkit.go.v1.CBOR into int8: cbor: cannot unmarshal positive integer into Go value of type int8 (300 overflows int8)"},
		{"CBOR 1.5 into int", cborAny(mustCBOR(1.5)), new(int), "dispatchkit.go.v1.CBOR into int: cbor: cannot unmarshal primitives into Go value of type int"},
		{"CBOR garbage", cborAny([]byte{0xff}), new(any), "dispatchkit.go.v1.CBOR into interface {}: cbor:"},
		{"CBOR trailing bytes", cborAny([]byte{0x01, 0x01}), new(int), "dispatchkit.go.v1.CBOR into int: cbor: 1 bytes of extraneous data"},
		{"proto into another message", anyOf(wrapperspb.String("s")), new(wrapperspb.Int64Value), `StringValue "s" into *wrapperspb.Int64Value: want a google.protobuf.Int64Value`},
		{"CBOR into message", cborAny(mustCBOR(1)), new(fieldmaskpb.FieldMask), "dispatchkit.go.v1.CBOR into *fieldmaskpb.FieldMask: want a google.protobuf.FieldMask"},
		{"proto into int", anyOf(&fieldmaskpb.FieldMask{}), new(int), "google.protobuf.FieldMask into int: a proto message decodes into a pointer to its Go message type"},
		{"unknown type URL into any", unknown, new(any), `serde: cannot decode an Any of unknown type URL "type.googleapis.com/example.v1.Nope" into interface {}`},
		{"unknown type URL into int", unknown, new(int), "example.v1.Nope into int"},
		{"unknown type URL into proto.Message", unknown, new(proto.Message), `unknown type URL "type.googleapis.com/example.v1.Nope" into protoreflect.ProtoMessage`},
		{"string into proto.Message", cborAny(mustCBOR("s")), new(proto.Message), "dispatchkit.go.v1.CBOR into protoreflect.ProtoMessage: the payload decodes into string, which does not implement protoreflect.ProtoMessage"},
		{"string into error", anyOf(wrapperspb.String("s")), new(error), `StringValue "s" into error: the payload decodes into string, which does not implement error`},
		{"no type name", &anypb.Any{TypeUrl: "type.googleapis.com/", Value: []byte{1}}, new(any), `serde: cannot decode an Any with type URL "type.googleapis.com/": it names no type`},
		{"no type URL", &anypb.Any{Value: []byte{1}}, new(any), `type URL ""`},
		{"corrupt wrapper", &anypb.Any{TypeUrl: "type.googleapis.com/google.protobuf.Int64Value", Value: []byte{0xff}}, new(int), "serde: cannot decode the google.protobuf.Int64Value in an Any: proto:"},
		{"invalid timestamp", anyOf(badTimestamp), new(time.Time), "google.protobuf.Timestamp into time.Time: proto:"},
		{"invalid timestamp into any", anyOf(badTimestamp), new(any), "google.protobuf.Timestamp into interface {}: proto:"},
		{"long duration", anyOf(longDuration), new(time.Duration), "Duration 100000000000s into time.Duration: out of range of time.Duration"},
		{"long duration into any", anyOf(longDuration), new(any), "out of range of time.Duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			err := serde.Unmarshal(tt.a, tt.dst)
			is.True(err != nil)
			is.True(strings.HasPrefix(err.Error(), "serde: "))
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q\ndoes not contain %q", err, tt.want)
			}
		})
	}
}

func TestUnmarshalDestination(t *testing.T) {
	t.Parallel()
	a := anyOf(wrapperspb.Int64(1))
	tests := []struct {
		name string
		dst  any
		want string
	}{
		{"nil", nil, "serde: Unmarshal needs a non-nil pointer, got nil"},
		{"not a pointer", 5, "serde: Unmarshal needs a non-nil pointer, got int"},
		{"nil pointer", (*int)(nil), "serde: Unmarshal needs a non-nil pointer, got *int"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			err := serde.Unmarshal(a, tt.dst)
			is.True(err != nil)
			is.Equal(err.Error(), tt.want)
		})
	}
}

// TestUnmarshalEveryPair decodes every payload into every destination type
// and checks that each failure names both.
func TestUnmarshalEveryPair(t *testing.T) {
	t.Parallel()
	payloads := map[string]*anypb.Any{}
	for _, v := range []any{
		nil, true, -1, 1, uint64(1 << 63), 1.5, 2.0, math.NaN(), "s", []byte("b"), when, time.Second,
		map[string]any{"X": 1.5}, []any{"a"}, Point{1, 2}, []string{"x"}, &fieldmaskpb.FieldMask{},
		wrapperspb.Float(0.25), wrapperspb.Int32(-3), wrapperspb.UInt32(3), structpb.NewNullValue(),
	} {
		a, err := serde.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		payloads[fmt.Sprintf("%T %v", v, v)] = a
	}
	payloads["unknown"] = &anypb.Any{TypeUrl: "type.googleapis.com/example.v1.Nope"}
	types := []reflect.Type{
		reflect.TypeFor[bool](), reflect.TypeFor[int](), reflect.TypeFor[int8](), reflect.TypeFor[uint](),
		reflect.TypeFor[uint8](), reflect.TypeFor[float32](), reflect.TypeFor[float64](), reflect.TypeFor[string](),
		reflect.TypeFor[Color](), reflect.TypeFor[[]byte](), reflect.TypeFor[[1]byte](), reflect.TypeFor[time.Time](),
		reflect.TypeFor[time.Duration](), reflect.TypeFor[Point](), reflect.TypeFor[*Point](), reflect.TypeFor[map[string]any](),
		reflect.TypeFor[[]any](), reflect.TypeFor[[]string](), reflect.TypeFor[any](), reflect.TypeFor[proto.Message](),
		reflect.TypeFor[fmt.Stringer](), reflect.TypeFor[error](), reflect.TypeFor[fieldmaskpb.FieldMask](), reflect.TypeFor[*wrapperspb.StringValue](),
		reflect.TypeFor[complex128](), reflect.TypeFor[chan int](), reflect.TypeFor[uintptr](),
	}
	for name, a := range payloads {
		for _, typ := range types {
			t.Run(name+" into "+typ.String(), func(t *testing.T) {
				is := is.New(t)
				err := serde.Unmarshal(a, reflect.New(typ).Interface())
				if err == nil {
					return
				}
				msg := err.Error()
				is.True(strings.HasPrefix(msg, "serde: "))
				payload := a.GetTypeUrl()[strings.LastIndex(a.GetTypeUrl(), "/")+1:]
				// A pointer is allocated and its target filled, so the error
				// names the target; a proto message is named by its pointer.
				want := strings.TrimPrefix(typ.String(), "*")
				if reflect.PointerTo(typ).Implements(reflect.TypeFor[proto.Message]()) || typ.Implements(reflect.TypeFor[proto.Message]()) && typ.Kind() == reflect.Pointer {
					want = "*" + want
				}
				if !strings.Contains(msg, payload) || !strings.Contains(msg, " into "+want) {
					t.Fatalf("error %q does not name both %s and %s", msg, payload, want)
				}
			})
		}
	}
}

func TestUnmarshalCBORErrorUnwraps(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	var dst int8
	err := serde.Unmarshal(cborAny(mustCBOR(300)), &dst)
	var typeErr *cbor.UnmarshalTypeError
	is.True(errors.As(err, &typeErr)) // the cbor error is wrapped
}

// nestMaps returns n map[string]any, each in the next under "k".
func nestMaps(n int) any {
	var v any = "leaf"
	for range n {
		v = map[string]any{"k": v}
	}
	return v
}
