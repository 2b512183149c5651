package serde

import (
	"fmt"
	"math"
	"reflect"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// typeURLPrefix is the prefix of the type URLs Marshal writes.
const typeURLPrefix = "type.googleapis.com/"

var (
	typeDuration     = reflect.TypeFor[time.Duration]()
	typeProtoMessage = reflect.TypeFor[proto.Message]()
	typeMapStringAny = reflect.TypeFor[map[string]any]()
	typeSliceAny     = reflect.TypeFor[[]any]()
)

// maxJSONInt is the largest integer a google.protobuf.Value (a double)
// holds exactly, with all those below it.
const maxJSONInt = 1 << 53

// Marshal returns v as an [anypb.Any] that other SDKs can read, by the
// mapping of the package documentation. A pointer is marshaled as the value
// it points to, and a nil pointer as google.protobuf.Empty.
func Marshal(v any) (*anypb.Any, error) {
	return marshal(v, 0)
}

func marshal(v any, indirections int) (*anypb.Any, error) {
	switch x := v.(type) {
	case nil:
		return marshalProto(&emptypb.Empty{})
	case *anypb.Any:
		if x == nil {
			return marshalProto(&emptypb.Empty{})
		}
		return proto.CloneOf(x), nil
	case proto.Message:
		return marshalProto(x)
	case string:
		return marshalProto(wrapperspb.String(x))
	case bool:
		return marshalProto(wrapperspb.Bool(x))
	case int:
		return marshalProto(wrapperspb.Int64(int64(x)))
	case int64:
		return marshalProto(wrapperspb.Int64(x))
	case uint64:
		return marshalProto(wrapperspb.UInt64(x))
	case float64:
		return marshalProto(wrapperspb.Double(x))
	case []byte:
		return marshalProto(wrapperspb.Bytes(x))
	case time.Time:
		ts := timestamppb.New(x)
		if err := ts.CheckValid(); err != nil {
			return nil, fmt.Errorf("serde: cannot marshal time.Time %s as a google.protobuf.Timestamp, which holds years 1 to 9999: %w", x, err)
		}
		return marshalProto(ts)
	case time.Duration:
		return marshalProto(durationpb.New(x))
	case map[string]any, []any:
		// A google.protobuf.Value when JSON holds it (a nil map or slice
		// is a null Value), else CBOR.
		if val, ok := jsonValue(x, 0); ok {
			return marshalProto(val)
		}
		return marshalCBOR(x)
	}
	return marshalReflect(reflect.ValueOf(v), indirections)
}

// marshalReflect marshals the types Marshal does not list by name: pointers,
// named types, and everything CBOR encodes.
func marshalReflect(rv reflect.Value, indirections int) (*anypb.Any, error) {
	t := rv.Type()
	if t.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return marshalProto(&emptypb.Empty{})
		}
		if indirections >= MaxNestedLevels {
			return nil, fmt.Errorf("serde: cannot marshal %s: more than %d pointer indirections", t, MaxNestedLevels)
		}
		return marshal(rv.Elem().Interface(), indirections+1)
	}
	pt := reflect.PointerTo(t)
	if pt.Implements(typeProtoMessage) {
		return nil, fmt.Errorf("serde: cannot marshal the proto message %s by value: pass a pointer, %s", t, pt)
	}
	if pt.Implements(typeCBORMarshaler) {
		return marshalCBOR(rv.Interface()) // the type chose its encoding
	}
	switch t.Kind() {
	case reflect.Bool:
		return marshalProto(wrapperspb.Bool(rv.Bool()))
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return marshalProto(wrapperspb.Int64(rv.Int()))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return marshalProto(wrapperspb.UInt64(rv.Uint()))
	case reflect.Float32, reflect.Float64:
		return marshalProto(wrapperspb.Double(rv.Float()))
	case reflect.String:
		return marshalProto(wrapperspb.String(rv.String()))
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return marshalProto(wrapperspb.Bytes(rv.Bytes()))
		}
	}
	return marshalCBOR(rv.Interface())
}

// marshalProto wraps m in an Any, with a deterministic encoding (map entries
// in key order) so that equal values give equal bytes.
func marshalProto(m proto.Message) (*anypb.Any, error) {
	r := m.ProtoReflect()
	if !r.IsValid() { // a nil message pointer
		return marshalProto(&emptypb.Empty{})
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("serde: cannot marshal %s: %w", r.Descriptor().FullName(), err)
	}
	return &anypb.Any{TypeUrl: typeURLPrefix + string(r.Descriptor().FullName()), Value: b}, nil
}

func marshalCBOR(v any) (*anypb.Any, error) {
	b, err := MarshalCBOR(v)
	if err != nil {
		return nil, err
	}
	return &anypb.Any{TypeUrl: CBORTypeURL, Value: b}, nil
}

// jsonValue converts x to a google.protobuf.Value when it is made only of
// what JSON holds without loss: nil, bool, string, finite floats, integers
// within ±2^53, and map[string]any and []any of those, nested at most
// MaxNestedLevels deep. It reports false for anything else.
func jsonValue(x any, depth int) (*structpb.Value, bool) {
	switch x := x.(type) {
	case nil:
		return structpb.NewNullValue(), true
	case bool:
		return structpb.NewBoolValue(x), true
	case string:
		return structpb.NewStringValue(x), true
	case float64:
		return jsonNumber(x)
	case float32:
		return jsonNumber(float64(x))
	case int:
		return jsonInt(int64(x))
	case int8:
		return jsonInt(int64(x))
	case int16:
		return jsonInt(int64(x))
	case int32:
		return jsonInt(int64(x))
	case int64:
		return jsonInt(x)
	case uint:
		return jsonUint(uint64(x))
	case uint8:
		return jsonUint(uint64(x))
	case uint16:
		return jsonUint(uint64(x))
	case uint32:
		return jsonUint(uint64(x))
	case uint64:
		return jsonUint(x)
	case map[string]any:
		if x == nil {
			return structpb.NewNullValue(), true
		}
		if depth >= MaxNestedLevels {
			return nil, false
		}
		fields := make(map[string]*structpb.Value, len(x))
		for k, e := range x {
			ev, ok := jsonValue(e, depth+1)
			if !ok {
				return nil, false
			}
			fields[k] = ev
		}
		return structpb.NewStructValue(&structpb.Struct{Fields: fields}), true
	case []any:
		if x == nil {
			return structpb.NewNullValue(), true
		}
		if depth >= MaxNestedLevels {
			return nil, false
		}
		values := make([]*structpb.Value, len(x))
		for i, e := range x {
			ev, ok := jsonValue(e, depth+1)
			if !ok {
				return nil, false
			}
			values[i] = ev
		}
		return structpb.NewListValue(&structpb.ListValue{Values: values}), true
	}
	return nil, false
}

func jsonNumber(f float64) (*structpb.Value, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, false
	}
	return structpb.NewNumberValue(f), true
}

func jsonInt(i int64) (*structpb.Value, bool) {
	if i < -maxJSONInt || i > maxJSONInt {
		return nil, false
	}
	return structpb.NewNumberValue(float64(i)), true
}

func jsonUint(u uint64) (*structpb.Value, bool) {
	if u > maxJSONInt {
		return nil, false
	}
	return structpb.NewNumberValue(float64(u)), true
}
