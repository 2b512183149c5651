package serde

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// Unmarshal decodes the value a holds into the value dst points to, by the
// rules of the package documentation. dst must be a non-nil pointer. A nil
// a, or an Any with neither type URL nor value, is google.protobuf.Empty.
//
// *dst is replaced, not merged into. An error names the payload and the Go
// type, and says why they do not fit.
func Unmarshal(a *anypb.Any, dst any) error {
	rv := reflect.ValueOf(dst)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("serde: Unmarshal needs a non-nil pointer, got %s", typeName(reflect.TypeOf(dst)))
	}
	p, err := parse(a)
	if err != nil {
		return err
	}
	return p.decode(rv.Elem())
}

func (p *payload) errorf(t reflect.Type, format string, args ...any) error {
	return fmt.Errorf("serde: cannot decode %s into %s: "+format, append([]any{p, typeName(t)}, args...)...)
}

func (p *payload) incompatible(t reflect.Type) error {
	if p.kind == kindProto {
		return p.errorf(t, "a proto message decodes into a pointer to its Go message type, or into an interface")
	}
	return p.errorf(t, "incompatible types")
}

// decode sets v, settable, to the payload.
func (p *payload) decode(v reflect.Value) error {
	t := v.Type()
	switch t.Kind() {
	case reflect.Interface:
		return p.decodeInterface(v)
	case reflect.Pointer:
		if p.isNull() {
			v.SetZero()
			return nil
		}
		nv := reflect.New(t.Elem())
		if err := p.decode(nv.Elem()); err != nil {
			return err
		}
		v.Set(nv)
		return nil
	}
	if reflect.PointerTo(t).Implements(typeProtoMessage) {
		return p.decodeProto(v.Addr().Interface().(proto.Message))
	}
	if p.kind == kindCBOR {
		if err := unmarshalCBOR(p.raw.Value, v); err != nil {
			return p.errorf(t, "%w", err)
		}
		return nil
	}
	if p.isNull() {
		return p.decodeNil(v)
	}
	switch t {
	case typeTime:
		switch p.kind {
		case kindTimestamp:
			if err := p.ts.CheckValid(); err != nil {
				return p.errorf(t, "%v", err)
			}
			v.Set(reflect.ValueOf(p.ts.AsTime()))
			return nil
		case kindValue:
			return p.decodeJSON(v)
		}
		return p.incompatible(t)
	case typeDuration:
		if p.kind != kindDuration {
			return p.incompatible(t)
		}
		d, err := asDuration(p.dur)
		if err != nil {
			return p.errorf(t, "%v", err)
		}
		v.SetInt(int64(d))
		return nil
	}
	switch p.kind {
	case kindBool:
		if t.Kind() == reflect.Bool {
			v.SetBool(p.b)
			return nil
		}
	case kindInt:
		return p.setInt(v, p.i)
	case kindUint:
		return p.setUint(v, p.u)
	case kindFloat:
		return p.setFloat(v, p.f)
	case kindString:
		if t.Kind() == reflect.String {
			v.SetString(p.s)
			return nil
		}
	case kindBytes:
		switch {
		case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8:
			v.SetBytes(p.bytes)
			return nil
		case t.Kind() == reflect.Array && t.Elem().Kind() == reflect.Uint8:
			if t.Len() != len(p.bytes) {
				return p.errorf(t, "want %d bytes", t.Len())
			}
			for i, b := range p.bytes {
				v.Index(i).SetUint(uint64(b))
			}
			return nil
		}
	case kindValue:
		return p.decodeJSON(v)
	}
	return p.incompatible(t)
}

// decodeNil decodes a null (Empty, or a null Value) into v: nil for a map or
// a slice, the zero value for a struct, an error for anything else.
func (p *payload) decodeNil(v reflect.Value) error {
	switch t := v.Type(); {
	case t.Kind() == reflect.Map, t.Kind() == reflect.Slice, t.Kind() == reflect.Struct && t != typeTime:
		v.SetZero()
		return nil
	}
	return p.errorf(v.Type(), "no value: decode into a pointer, to tell an absent value from a zero one")
}

func (p *payload) setInt(v reflect.Value, x int64) error {
	t := v.Type()
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if v.OverflowInt(x) {
			return p.errorf(t, "out of range")
		}
		v.SetInt(x)
		return nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if x < 0 {
			return p.errorf(t, "negative value")
		}
		if v.OverflowUint(uint64(x)) {
			return p.errorf(t, "out of range")
		}
		v.SetUint(uint64(x))
		return nil
	case reflect.Float32, reflect.Float64:
		f := float64(x)
		if t.Kind() == reflect.Float32 {
			f = float64(float32(x))
		}
		if f >= 0x1p63 || int64(f) != x {
			return p.errorf(t, "not exactly representable as %s", t.Kind())
		}
		v.SetFloat(f)
		return nil
	}
	return p.incompatible(t)
}

func (p *payload) setUint(v reflect.Value, x uint64) error {
	t := v.Type()
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if x > math.MaxInt64 || v.OverflowInt(int64(x)) {
			return p.errorf(t, "out of range")
		}
		v.SetInt(int64(x))
		return nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if v.OverflowUint(x) {
			return p.errorf(t, "out of range")
		}
		v.SetUint(x)
		return nil
	case reflect.Float32, reflect.Float64:
		f := float64(x)
		if t.Kind() == reflect.Float32 {
			f = float64(float32(x))
		}
		if f >= 0x1p64 || uint64(f) != x {
			return p.errorf(t, "not exactly representable as %s", t.Kind())
		}
		v.SetFloat(f)
		return nil
	}
	return p.incompatible(t)
}

func (p *payload) setFloat(v reflect.Value, f float64) error {
	t := v.Type()
	switch t.Kind() {
	case reflect.Float64:
		v.SetFloat(f)
		return nil
	case reflect.Float32:
		// A double rounds to the nearest float32; only a finite value
		// beyond the range of float32 is an error.
		if !math.IsInf(f, 0) && math.Abs(f) > math.MaxFloat32 {
			return p.errorf(t, "out of range")
		}
		v.SetFloat(f)
		return nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if math.IsInf(f, 0) || math.Trunc(f) != f {
			return p.errorf(t, "not an integer")
		}
		if f < -0x1p63 || f >= 0x1p63 || v.OverflowInt(int64(f)) {
			return p.errorf(t, "out of range")
		}
		v.SetInt(int64(f))
		return nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if math.IsInf(f, 0) || math.Trunc(f) != f {
			return p.errorf(t, "not an integer")
		}
		if f < 0 {
			return p.errorf(t, "negative value")
		}
		if f >= 0x1p64 || v.OverflowUint(uint64(f)) {
			return p.errorf(t, "out of range")
		}
		v.SetUint(uint64(f))
		return nil
	}
	return p.incompatible(t)
}

// decodeJSON decodes a google.protobuf.Value into v through its JSON form,
// with encoding/json, so that a dictionary sent by another SDK fills a
// struct.
func (p *payload) decodeJSON(v reflect.Value) error {
	t := v.Type()
	switch kind := p.val.GetKind().(type) {
	case nil, *structpb.Value_NullValue:
		return p.decodeNil(v)
	case *structpb.Value_StructValue:
		if t == typeMapStringAny {
			v.Set(reflect.ValueOf(structToGo(kind.StructValue)))
			return nil
		}
	case *structpb.Value_ListValue:
		if t == typeSliceAny {
			v.Set(reflect.ValueOf(listToGo(kind.ListValue)))
			return nil
		}
	}
	b, err := protojson.Marshal(p.val)
	if err != nil {
		return p.errorf(t, "%v", err)
	}
	v.SetZero()
	if err := json.Unmarshal(b, v.Addr().Interface()); err != nil {
		v.SetZero()
		return p.errorf(t, "%v", err)
	}
	return nil
}

// decodeInterface sets v, of an interface type, to the natural Go value of
// the payload (or, for a proto message, to the message itself when that
// is what the interface wants).
func (p *payload) decodeInterface(v reflect.Value) error {
	t := v.Type()
	x, err := p.natural(t)
	if err != nil {
		return err
	}
	if x == nil {
		v.SetZero()
		return nil
	}
	xv := reflect.ValueOf(x)
	if xv.Type().Implements(t) {
		v.Set(xv)
		return nil
	}
	if p.raw != nil && p.kind != kindCBOR && p.kind != kindProto {
		// A well-known type into, say, a proto.Message: the message itself.
		if m, err := anypb.UnmarshalNew(p.raw, proto.UnmarshalOptions{}); err == nil && reflect.TypeOf(m).Implements(t) {
			v.Set(reflect.ValueOf(m))
			return nil
		}
	}
	return p.errorf(t, "the payload decodes into %s, which does not implement %s", xv.Type(), t)
}

// natural returns the payload as the Go value it most naturally is: nil,
// bool, int64, uint64, float64, string, []byte, time.Time, time.Duration,
// map[string]any, []any, what CBOR decodes into any, or the proto message.
func (p *payload) natural(t reflect.Type) (any, error) {
	switch p.kind {
	case kindEmpty:
		return nil, nil
	case kindBool:
		return p.b, nil
	case kindInt:
		return p.i, nil
	case kindUint:
		return p.u, nil
	case kindFloat:
		return p.f, nil
	case kindString:
		return p.s, nil
	case kindBytes:
		return p.bytes, nil
	case kindTimestamp:
		if err := p.ts.CheckValid(); err != nil {
			return nil, p.errorf(t, "%v", err)
		}
		return p.ts.AsTime(), nil
	case kindDuration:
		d, err := asDuration(p.dur)
		if err != nil {
			return nil, p.errorf(t, "%v", err)
		}
		return d, nil
	case kindValue:
		return valueToGo(p.val), nil
	case kindCBOR:
		var x any
		if err := unmarshalCBOR(p.raw.Value, reflect.ValueOf(&x).Elem()); err != nil {
			return nil, p.errorf(t, "%w", err)
		}
		return x, nil
	}
	m, err := anypb.UnmarshalNew(p.raw, proto.UnmarshalOptions{})
	if errors.Is(err, protoregistry.NotFound) {
		return nil, fmt.Errorf("serde: cannot decode an Any of unknown type URL %q into %s: no Go type is linked in for %s; import its generated package, or decode into a pointer to its message type",
			p.raw.TypeUrl, typeName(t), p.name)
	}
	if err != nil {
		return nil, p.errorf(t, "%v", err)
	}
	return m, nil
}

// decodeProto decodes the payload into the proto message m, which must be
// of the type the payload names. Empty resets m.
func (p *payload) decodeProto(m proto.Message) error {
	if a, ok := m.(*anypb.Any); ok {
		proto.Reset(a)
		if p.raw != nil {
			proto.Merge(a, p.raw)
		}
		return nil
	}
	want := string(m.ProtoReflect().Descriptor().FullName())
	switch {
	case p.raw == nil:
		proto.Reset(m)
		return nil
	case p.name == want:
		if err := proto.Unmarshal(p.raw.Value, m); err != nil {
			return p.errorf(reflect.TypeOf(m), "%v", err)
		}
		return nil
	case p.kind == kindEmpty:
		proto.Reset(m)
		return nil
	}
	return p.errorf(reflect.TypeOf(m), "want a %s", want)
}
