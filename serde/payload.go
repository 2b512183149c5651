package serde

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

type payloadKind int

const (
	kindEmpty payloadKind = iota
	kindBool
	kindInt
	kindUint
	kindFloat
	kindString
	kindBytes
	kindTimestamp
	kindDuration
	kindValue // google.protobuf.Value, Struct or ListValue
	kindCBOR
	kindProto // any other message
)

// payload is the content of an Any, parsed.
type payload struct {
	name string     // full name of the message type
	raw  *anypb.Any // nil for a nil Any
	kind payloadKind

	b     bool
	i     int64
	u     uint64
	f     float64
	f32   bool // f came from a google.protobuf.FloatValue
	s     string
	bytes []byte
	ts    *timestamppb.Timestamp
	dur   *durationpb.Duration
	val   *structpb.Value
}

func parse(a *anypb.Any) (*payload, error) {
	if a == nil || (a.TypeUrl == "" && len(a.Value) == 0) {
		return &payload{name: "google.protobuf.Empty", kind: kindEmpty}, nil
	}
	name := a.TypeUrl[strings.LastIndexByte(a.TypeUrl, '/')+1:]
	if name == "" {
		return nil, fmt.Errorf("serde: cannot decode an Any with type URL %q: it names no type", a.TypeUrl)
	}
	p := &payload{name: name, raw: a}
	var m proto.Message
	switch name {
	case "google.protobuf.Empty":
		p.kind, m = kindEmpty, &emptypb.Empty{}
	case "google.protobuf.BoolValue":
		p.kind, m = kindBool, &wrapperspb.BoolValue{}
	case "google.protobuf.Int32Value":
		p.kind, m = kindInt, &wrapperspb.Int32Value{}
	case "google.protobuf.Int64Value":
		p.kind, m = kindInt, &wrapperspb.Int64Value{}
	case "google.protobuf.UInt32Value":
		p.kind, m = kindUint, &wrapperspb.UInt32Value{}
	case "google.protobuf.UInt64Value":
		p.kind, m = kindUint, &wrapperspb.UInt64Value{}
	case "google.protobuf.FloatValue":
		p.kind, m = kindFloat, &wrapperspb.FloatValue{}
	case "google.protobuf.DoubleValue":
		p.kind, m = kindFloat, &wrapperspb.DoubleValue{}
	case "google.protobuf.StringValue":
		p.kind, m = kindString, &wrapperspb.StringValue{}
	case "google.protobuf.BytesValue":
		p.kind, m = kindBytes, &wrapperspb.BytesValue{}
	case "google.protobuf.Timestamp":
		p.kind, m = kindTimestamp, &timestamppb.Timestamp{}
	case "google.protobuf.Duration":
		p.kind, m = kindDuration, &durationpb.Duration{}
	case "google.protobuf.Value":
		p.kind, m = kindValue, &structpb.Value{}
	case "google.protobuf.Struct":
		p.kind, m = kindValue, &structpb.Struct{}
	case "google.protobuf.ListValue":
		p.kind, m = kindValue, &structpb.ListValue{}
	case cborTypeName:
		p.kind = kindCBOR
		return p, nil
	default:
		p.kind = kindProto
		return p, nil
	}
	if err := proto.Unmarshal(a.Value, m); err != nil {
		return nil, fmt.Errorf("serde: cannot decode the %s in an Any: %w", name, err)
	}
	switch m := m.(type) {
	case *wrapperspb.BoolValue:
		p.b = m.Value
	case *wrapperspb.Int32Value:
		p.i = int64(m.Value)
	case *wrapperspb.Int64Value:
		p.i = m.Value
	case *wrapperspb.UInt32Value:
		p.u = uint64(m.Value)
	case *wrapperspb.UInt64Value:
		p.u = m.Value
	case *wrapperspb.FloatValue:
		p.f, p.f32 = float64(m.Value), true
	case *wrapperspb.DoubleValue:
		p.f = m.Value
	case *wrapperspb.StringValue:
		p.s = m.Value
	case *wrapperspb.BytesValue:
		p.bytes = m.Value
	case *timestamppb.Timestamp:
		p.ts = m
	case *durationpb.Duration:
		p.dur = m
	case *structpb.Value:
		p.val = m
	case *structpb.Struct:
		p.val = structpb.NewStructValue(m)
	case *structpb.ListValue:
		p.val = structpb.NewListValue(m)
	}
	return p, nil
}

// isNull reports whether the payload is a null: Empty, or a null Value.
func (p *payload) isNull() bool {
	switch p.kind {
	case kindEmpty:
		return true
	case kindValue:
		switch p.val.GetKind().(type) {
		case nil, *structpb.Value_NullValue:
			return true
		}
	}
	return false
}

// String describes the payload for error messages: its type and value.
func (p *payload) String() string {
	var v string
	switch p.kind {
	case kindBool:
		v = strconv.FormatBool(p.b)
	case kindInt:
		v = strconv.FormatInt(p.i, 10)
	case kindUint:
		v = strconv.FormatUint(p.u, 10)
	case kindFloat:
		bits := 64
		if p.f32 {
			bits = 32
		}
		v = strconv.FormatFloat(p.f, 'g', -1, bits)
	case kindString:
		v = quoteShort(p.s)
	case kindBytes:
		v = fmt.Sprintf("(%d bytes)", len(p.bytes))
	case kindTimestamp:
		if p.ts.CheckValid() == nil {
			v = p.ts.AsTime().Format(time.RFC3339Nano)
		}
	case kindDuration:
		if d, err := asDuration(p.dur); err == nil {
			v = d.String()
		} else {
			v = fmt.Sprintf("%ds", p.dur.GetSeconds())
		}
	}
	if v == "" {
		return p.name
	}
	return p.name + " " + v
}

// quoteShort quotes s, cut to 40 bytes on a rune boundary.
func quoteShort(s string) string {
	const max = 40
	if len(s) <= max {
		return strconv.Quote(s)
	}
	n := max
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return strconv.Quote(s[:n]) + "..."
}

// asDuration converts d to a time.Duration, reporting what does not fit.
func asDuration(d *durationpb.Duration) (time.Duration, error) {
	if err := d.CheckValid(); err != nil {
		return 0, err
	}
	const maxSeconds = math.MaxInt64 / int64(time.Second)
	s, n := d.GetSeconds(), int64(d.GetNanos())
	if s > maxSeconds || s < -maxSeconds {
		return 0, errors.New("out of range of time.Duration (about ±292 years)")
	}
	x := s*int64(time.Second) + n
	if (s > 0 && x < 0) || (s < 0 && x > 0) {
		return 0, errors.New("out of range of time.Duration (about ±292 years)")
	}
	return time.Duration(x), nil
}

// valueToGo is Value.AsInterface, except that it keeps NaN and infinities
// as float64 rather than turning them into strings.
func valueToGo(v *structpb.Value) any {
	switch k := v.GetKind().(type) {
	case *structpb.Value_NumberValue:
		return k.NumberValue
	case *structpb.Value_StringValue:
		return k.StringValue
	case *structpb.Value_BoolValue:
		return k.BoolValue
	case *structpb.Value_StructValue:
		return structToGo(k.StructValue)
	case *structpb.Value_ListValue:
		return listToGo(k.ListValue)
	}
	return nil
}

func structToGo(s *structpb.Struct) map[string]any {
	m := make(map[string]any, len(s.GetFields()))
	for k, v := range s.GetFields() {
		m[k] = valueToGo(v)
	}
	return m
}

func listToGo(l *structpb.ListValue) []any {
	s := make([]any, len(l.GetValues()))
	for i, v := range l.GetValues() {
		s[i] = valueToGo(v)
	}
	return s
}
