package trace

import (
	"bytes"
	"cmp"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// FormatLimit is the longest output of [Format], in bytes. Longer renderings
// are cut at a character boundary and end with [TruncatedMarker].
const FormatLimit = 1024

// TruncatedMarker ends an output of [Format] that was cut at [FormatLimit].
const TruncatedMarker = "…(truncated)"

const (
	maxDepth     = 32  // nesting shown before "…"
	maxTextBytes = 128 // bytes of a printable []byte shown
	maxHexBytes  = 32  // bytes of a binary []byte shown
)

// Format returns a readable, one-line rendering of any Go value, in a
// syntax close to Go's:
//
//   - nil (and nil pointers, maps, slices, channels, functions) as nil;
//   - strings quoted; numbers and booleans as Go prints them;
//   - structs as TypeName{Field: value, ...} with exported fields only (the
//     unexported ones are skipped), anonymous structs as {Field: value};
//   - maps as {key: value, ...} in sorted key order; slices and arrays as
//     [a, b, c];
//   - pointers as &value, followed; a pointer back to a value being printed
//     shows as <cycle *T>;
//   - time.Time in RFC 3339 (2024-05-01T12:00:00Z), time.Duration as 1.5s;
//   - []byte as []byte("text") when it is printable text, as
//     []byte(0x0a0b0c) otherwise, shortened with its length when long;
//   - protocol buffer messages as their full name followed by their compact
//     JSON form: dispatch.sdk.v1.Call{"function":"f"};
//   - errors as error("message"); other types with a String method and no
//     exported fields (enumerations, net.IP, big.Int) by that method;
//   - channels as <chan T>, functions as <func name>.
//
// The output is at most [FormatLimit] bytes followed by [TruncatedMarker],
// and nesting deeper than 32 levels shows as "…". Format never panics, even
// when a String or Error method does.
func Format(v any) string {
	p := &printer{limit: FormatLimit}
	p.value(reflect.ValueOf(v), 0)
	return p.buf.String()
}

type printer struct {
	buf   strings.Builder
	limit int
	full  bool               // the limit was reached
	path  map[visit]struct{} // references being printed, to detect cycles
}

// visit identifies a pointer, map or slice being printed.
type visit struct {
	ptr uintptr
	typ reflect.Type
}

// write appends s, or as much of it as the limit allows followed by the
// truncation marker.
func (p *printer) write(s string) {
	if p.full {
		return
	}
	room := p.limit - p.buf.Len()
	if len(s) <= room {
		p.buf.WriteString(s)
		return
	}
	for room > 0 && !utf8.RuneStart(s[room]) {
		room--
	}
	p.buf.WriteString(s[:room])
	p.buf.WriteString(TruncatedMarker)
	p.full = true
}

var (
	timeType     = reflect.TypeFor[time.Time]()
	durationType = reflect.TypeFor[time.Duration]()
	errorType    = reflect.TypeFor[error]()
	stringerType = reflect.TypeFor[fmt.Stringer]()
	messageType  = reflect.TypeFor[proto.Message]()
	byteType     = reflect.TypeFor[byte]()
)

func (p *printer) value(v reflect.Value, depth int) {
	if p.full {
		return
	}
	if !v.IsValid() {
		p.write("nil")
		return
	}
	if depth > maxDepth {
		p.write("…")
		return
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface, reflect.Map, reflect.Slice, reflect.Func, reflect.Chan:
		if v.IsNil() {
			p.write("nil")
			return
		}
	}
	if p.special(v) {
		return
	}

	switch v.Kind() {
	case reflect.Bool:
		p.write(strconv.FormatBool(v.Bool()))
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		p.write(strconv.FormatInt(v.Int(), 10))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		p.write(strconv.FormatUint(v.Uint(), 10))
	case reflect.Uintptr:
		p.write("0x" + strconv.FormatUint(v.Uint(), 16))
	case reflect.Float32, reflect.Float64:
		p.write(strconv.FormatFloat(v.Float(), 'g', -1, v.Type().Bits()))
	case reflect.Complex64, reflect.Complex128:
		p.write(strconv.FormatComplex(v.Complex(), 'g', -1, v.Type().Bits()))
	case reflect.String:
		p.string(v.String())
	case reflect.Interface:
		p.value(v.Elem(), depth)
	case reflect.Pointer:
		p.pointer(v, depth)
	case reflect.Struct:
		p.structure(v, depth)
	case reflect.Map:
		p.mapping(v, depth)
	case reflect.Slice, reflect.Array:
		p.list(v, depth)
	case reflect.Chan:
		p.write("<" + typeName(v.Type()) + ">")
	case reflect.Func:
		p.function(v)
	case reflect.UnsafePointer:
		p.write("unsafe.Pointer(0x" + strconv.FormatUint(uint64(v.Pointer()), 16) + ")")
	default:
		p.write("<" + v.Type().String() + ">")
	}
}

// special renders the values that have a form of their own, and reports
// whether v was one of them.
func (p *printer) special(v reflect.Value) bool {
	t := v.Type()
	switch {
	case t.Kind() == reflect.Pointer && (t.Elem() == timeType || t.Elem() == durationType):
		return false // shown as the value it points to, by pointer
	case t == timeType:
		p.write(v.Interface().(time.Time).Format(time.RFC3339Nano))
		return true
	case t == durationType:
		p.write(time.Duration(v.Int()).String())
		return true
	case !v.CanInterface():
		return false
	case t.Implements(messageType):
		return p.message(v.Interface().(proto.Message))
	case t.Implements(errorType):
		if s, ok := call(v.Interface().(error).Error); ok {
			p.write("error(")
			p.string(s)
			p.write(")")
			return true
		}
	case t.Implements(stringerType) && !showsFields(t):
		if s, ok := call(v.Interface().(fmt.Stringer).String); ok {
			p.write(s)
			return true
		}
	}
	return false
}

// showsFields reports whether values of type t are better shown field by
// field than by their String method: structs with exported fields, and
// pointers to them.
func showsFields(t reflect.Type) bool {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return false
	}
	for i := range t.NumField() {
		if t.Field(i).IsExported() {
			return true
		}
	}
	return false
}

// call returns the result of a String or Error method, or false if it
// panicked.
func call(method func() string) (s string, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	return method(), true
}

// message renders a protocol buffer message, or reports false if it cannot
// be marshaled to JSON (an Any of an unknown type, say).
func (p *printer) message(m proto.Message) bool {
	b, err := protojson.Marshal(m)
	if err != nil {
		return false
	}
	// protojson varies its whitespace on purpose; compact it to one form.
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return false
	}
	name := string(m.ProtoReflect().Descriptor().FullName())
	if out.Len() > 0 && out.Bytes()[0] == '{' {
		p.write(name + out.String())
	} else {
		p.write(name + "(" + out.String() + ")")
	}
	return true
}

// string writes s quoted, quoting no more than the room left.
func (p *printer) string(s string) {
	if room := p.limit - p.buf.Len() + 1; len(s) > room && room >= 0 {
		for room > 0 && !utf8.RuneStart(s[room]) {
			room--
		}
		s = s[:room] // the quoted form still exceeds the limit
	}
	p.write(strconv.Quote(s))
}

// enter records that the reference r of type t is being printed, and
// reports false if it already was: a cycle.
func (p *printer) enter(r uintptr, t reflect.Type) bool {
	if p.path == nil {
		p.path = map[visit]struct{}{}
	}
	k := visit{r, t}
	if _, ok := p.path[k]; ok {
		return false
	}
	p.path[k] = struct{}{}
	return true
}

func (p *printer) leave(r uintptr, t reflect.Type) {
	delete(p.path, visit{r, t})
}

func (p *printer) pointer(v reflect.Value, depth int) {
	r, t := v.Pointer(), v.Type()
	if !p.enter(r, t) {
		p.write("<cycle " + typeName(t) + ">")
		return
	}
	defer p.leave(r, t)
	elem := v.Elem()
	if et := elem.Type(); et != timeType && et != durationType {
		p.write("&")
	}
	p.value(elem, depth+1)
}

func (p *printer) structure(v reflect.Value, depth int) {
	t := v.Type()
	if t.Name() != "" {
		p.write(typeName(t))
	}
	p.write("{")
	first := true
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		if !first {
			p.write(", ")
		}
		first = false
		p.write(f.Name + ": ")
		p.value(v.Field(i), depth+1)
	}
	p.write("}")
}

func (p *printer) mapping(v reflect.Value, depth int) {
	r, t := v.Pointer(), v.Type()
	if !p.enter(r, t) {
		p.write("<cycle " + typeName(t) + ">")
		return
	}
	defer p.leave(r, t)
	keys := v.MapKeys()
	slices.SortFunc(keys, compareKeys)
	p.write("{")
	for i, k := range keys {
		if p.full {
			return
		}
		if i > 0 {
			p.write(", ")
		}
		p.value(k, depth+1)
		p.write(": ")
		p.value(v.MapIndex(k), depth+1)
	}
	p.write("}")
}

func (p *printer) list(v reflect.Value, depth int) {
	if v.Type().Elem().Kind() == reflect.Uint8 {
		p.bytes(v)
		return
	}
	if v.Kind() == reflect.Slice && v.Len() > 0 {
		r, t := v.Pointer(), v.Type()
		if !p.enter(r, t) {
			p.write("<cycle " + typeName(t) + ">")
			return
		}
		defer p.leave(r, t)
	}
	p.write("[")
	for i := range v.Len() {
		if p.full {
			return
		}
		if i > 0 {
			p.write(", ")
		}
		p.value(v.Index(i), depth+1)
	}
	p.write("]")
}

// bytes renders a []byte, a [N]byte or a named type of either.
func (p *printer) bytes(v reflect.Value) {
	var b []byte
	if v.Kind() == reflect.Slice {
		b = v.Bytes()
	} else {
		b = make([]byte, v.Len())
		reflect.Copy(reflect.ValueOf(b), v)
	}
	p.write(typeName(v.Type()) + "(")
	if len(b) == 0 || printable(b) {
		shown := b[:min(len(b), maxTextBytes)]
		for len(shown) > 0 && !utf8.Valid(shown) {
			shown = shown[:len(shown)-1]
		}
		p.string(string(shown))
		if len(shown) < len(b) {
			p.write("… " + strconv.Itoa(len(b)) + " bytes")
		}
	} else {
		p.write("0x" + hex.EncodeToString(b[:min(len(b), maxHexBytes)]))
		if len(b) > maxHexBytes {
			p.write("… " + strconv.Itoa(len(b)) + " bytes")
		}
	}
	p.write(")")
}

// printable reports whether b is UTF-8 text made of printable characters
// and spaces.
func printable(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if !unicode.IsPrint(r) && !unicode.IsSpace(r) {
			return false
		}
	}
	return true
}

func (p *printer) function(v reflect.Value) {
	fn := runtime.FuncForPC(v.Pointer())
	if fn == nil {
		p.write("<func>")
		return
	}
	name := fn.Name()
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	p.write("<func " + name + ">")
}

// typeName returns t's name without package paths: Order, *Order, []Order,
// map[string]Order, chan Order.
func typeName(t reflect.Type) string {
	if t == byteType {
		return "byte"
	}
	if t.Name() != "" {
		name := t.Name()
		if i := strings.IndexByte(name, '['); i >= 0 { // a generic type
			name = name[:i] + "[…]"
		}
		return name
	}
	switch t.Kind() {
	case reflect.Pointer:
		return "*" + typeName(t.Elem())
	case reflect.Slice:
		return "[]" + typeName(t.Elem())
	case reflect.Array:
		return "[" + strconv.Itoa(t.Len()) + "]" + typeName(t.Elem())
	case reflect.Map:
		return "map[" + typeName(t.Key()) + "]" + typeName(t.Elem())
	case reflect.Chan:
		switch t.ChanDir() {
		case reflect.RecvDir:
			return "<-chan " + typeName(t.Elem())
		case reflect.SendDir:
			return "chan<- " + typeName(t.Elem())
		}
		return "chan " + typeName(t.Elem())
	case reflect.Func:
		return "func"
	case reflect.Struct:
		if t.NumField() == 0 {
			return "struct{}"
		}
		return "struct{…}"
	case reflect.Interface:
		if t.NumMethod() == 0 {
			return "any"
		}
		return "interface"
	}
	return t.String()
}

// compareKeys orders map keys: numbers by value, strings and booleans
// naturally, anything else (or keys of different kinds, in a map[any]) by
// their rendering.
func compareKeys(a, b reflect.Value) int {
	for a.Kind() == reflect.Interface && !a.IsNil() {
		a = a.Elem()
	}
	for b.Kind() == reflect.Interface && !b.IsNil() {
		b = b.Elem()
	}
	if a.Kind() == b.Kind() {
		switch a.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			return cmp.Compare(a.Int(), b.Int())
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
			return cmp.Compare(a.Uint(), b.Uint())
		case reflect.Float32, reflect.Float64:
			return cmp.Compare(a.Float(), b.Float())
		case reflect.String:
			return strings.Compare(a.String(), b.String())
		case reflect.Bool:
			return cmp.Compare(boolInt(a.Bool()), boolInt(b.Bool()))
		}
	}
	return strings.Compare(render(a), render(b))
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func render(v reflect.Value) string {
	p := &printer{limit: FormatLimit}
	p.value(v, 0)
	return p.buf.String()
}
