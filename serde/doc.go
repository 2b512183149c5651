// Package serde turns Go values into the google.protobuf.Any payloads of the
// Dispatch protocol (Call.input, CallResult.output) and back, and holds the
// CBOR codec that the workflow engine uses for its state.
//
// # Values on the wire
//
// So that Go, Python and TypeScript functions can call each other, [Marshal]
// writes plain values as well-known protobuf types, and everything else as
// CBOR under a type URL of this SDK:
//
//	Go value                                  Any payload (type URL type.googleapis.com/...)
//	----------------------------------------  ----------------------------------------------
//	nil, a nil pointer                        google.protobuf.Empty
//	bool                                      google.protobuf.BoolValue
//	int, int8, int16, int32, int64            google.protobuf.Int64Value
//	uint, uint8, uint16, uint32, uint64       google.protobuf.UInt64Value
//	float32, float64                          google.protobuf.DoubleValue
//	string                                    google.protobuf.StringValue
//	[]byte                                    google.protobuf.BytesValue
//	time.Time                                 google.protobuf.Timestamp (years 1 to 9999)
//	time.Duration                             google.protobuf.Duration
//	proto.Message                             the message itself (an *anypb.Any as is)
//	map[string]any, []any of JSON values      google.protobuf.Value
//	structs and everything else               dispatchkit.go.v1.CBOR (CBORTypeURL)
//
// Named types go by their kind: a `type Color string` is a StringValue, a
// `type Level int` an Int64Value, a `type Blob []byte` a BytesValue, so that
// other SDKs read them as plain values; a type with a MarshalCBOR method
// goes as CBOR, the encoding it chose. A pointer is marshaled as the value it
// points to, so Marshal(&s) and Marshal(s) give the same payload.
//
// "JSON values" are those JSON holds without loss: nil, bool, string,
// finite floats, integers within ±2^53, and map[string]any and []any of
// them, nested at most [MaxNestedLevels] deep. A map[string]any or []any
// with anything else inside (a struct, a time.Time, a []string, a big
// integer, NaN) goes as CBOR, whole. Numbers in a Value are doubles: an int
// in a map[string]any comes back as a float64, as with encoding/json.
//
// # Decoding
//
// [Unmarshal] accepts each payload into every Go type it fits, and reports
// an error naming both otherwise; it never truncates nor wraps around:
//
//   - Int64Value (and Int32Value) into any integer type that holds the value,
//     and into float32 or float64 when the float holds it exactly (2^53+1 into
//     a float64 is an error). UInt64Value (and UInt32Value) likewise.
//   - DoubleValue (and FloatValue) into float64; into float32 rounded to the
//     nearest float32 (a finite value beyond the float32 range is an error);
//     into an integer type only when integral and in range: 1.5 into an int
//     is an error.
//   - BoolValue into bool types, StringValue into string types, BytesValue into
//     byte slices and byte arrays of its length.
//   - Timestamp into time.Time (in UTC), Duration into time.Duration (an error
//     beyond about ±292 years). Neither decodes into an integer, and integers
//     do not decode into a time.Duration: the unit would be a guess.
//   - Empty (and a null Value) into a pointer, an interface, a map or a slice
//     as nil, and into a struct other than time.Time as its zero value; into
//     anything else it is an error, since a zero would pass for a value: use
//     a pointer to tell an absent value apart.
//   - Value (and Struct, ListValue) into map[string]any and []any directly,
//     and into any other type through its JSON form with encoding/json and
//     its rules, so that a dictionary sent by a Python function fills a Go
//     struct.
//   - CBOR into any type, with [UnmarshalCBOR].
//   - A proto message into a pointer to its own Go type only (the type URL must
//     name it), or into an interface it implements.
//
// Into a value of type any, Unmarshal makes the natural Go value: nil, bool,
// int64, uint64, float64, string, []byte, time.Time, time.Duration,
// map[string]any and []any (from a Value), what [DecMode] makes of CBOR, or
// the proto message, which needs its Go package linked in: an unknown type
// URL is an error that names it.
//
// A pointer destination is allocated anew (nil for Empty); a **T works as
// well as a *T. *dst is always replaced, never merged into.
//
// Every error of this package starts with "serde: ".
//
// # The CBOR payload
//
// An Any of type URL [CBORTypeURL] holds in its value the CBOR encoding
// (RFC 8949) of a Go value, written with [EncMode]. Any SDK can read it with
// a CBOR library:
//
//   - Encoding is core deterministic (RFC 8949 section 4.2.1): definite
//     lengths only, shortest forms of integers and lengths, floats in the
//     shortest of float16, float32 or float64 that holds them exactly, map
//     keys sorted by the bytes of their encoding.
//   - A struct is a map from field names (or the name in its `cbor` tag,
//     else its `json` tag) to values; unexported fields are left out.
//   - A slice or array is an array, a []byte or [N]byte a byte string, a
//     string a text string (valid UTF-8), a map a map; a nil slice or map, and
//     a nil pointer, is null; a pointer is the value it points to.
//   - Integers are integers (a big.Int beyond 64 bits a bignum, tags 2 and
//     3); floats are floats; a time.Duration is an integer of nanoseconds.
//   - A time.Time is tag 0 around an RFC 3339 string with nanoseconds and
//     its zone offset, "2024-01-02T03:04:05.000000006+01:00"; the zero
//     time.Time is null.
//   - A type with a MarshalCBOR or MarshalBinary method is what that method
//     writes (a byte string for MarshalBinary).
//
// [DecMode] reads what [EncMode] writes, tags 0 and 1, and untagged strings
// and numbers into a time.Time. It rejects indefinite lengths, duplicate map
// keys, invalid UTF-8, and, so that no input exhausts the stack or the
// memory, nesting deeper than [MaxNestedLevels] (64) and arrays or maps of
// more than [MaxArrayElements] or [MaxMapPairs] (2^20) entries. [MarshalCBOR]
// refuses to write what breaks these limits, so what it writes it reads back.
//
// # Checking values
//
// CBOR cannot encode channels, functions, unsafe pointers, uintptrs, complex
// numbers, or cyclic values, and it rejects a struct type with a field of
// such a type even when the field is nil. [Encodable] finds the first such
// value and names its path (`Items[2].Callback`), so that a function can
// check its state or output early; [MarshalCBOR] and [Marshal] return that
// same error when they fail.
package serde
