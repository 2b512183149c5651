package serde

import (
	"fmt"
	"reflect"
	"strings"
)

// FieldProblem is a part of a type that does not come back from a round
// trip through [MarshalCBOR] and [UnmarshalCBOR]: a field whose type CBOR
// cannot encode, which fails every encoding of a value of the type, or an
// unexported field, which the encoder skips without a word, so that it
// reads back as its zero value.
type FieldProblem struct {
	// Path locates the field from the type, in Go syntax: a field by its
	// Go name (promoted fields through their embedded struct), `[*]` for
	// the elements of a slice, an array or a map: `Items[*].Done`. The
	// path is empty for the type itself.
	Path string
	// Type is the type at fault: the field's, or the key type of the map
	// at Path when MapKey is set.
	Type reflect.Type
	// MapKey says that Type is the key type of the map at Path.
	MapKey bool
	// Dropped says that the field is unexported: CBOR skips it. Otherwise
	// CBOR cannot encode Type (a channel, a function, an unsafe.Pointer,
	// a uintptr, a complex number).
	Dropped bool
}

// String says what is wrong, in a form that fits in a list:
//
//	Items[*].Done (chan bool): CBOR cannot encode this type
//	total (int): unexported, so CBOR drops it: it reads back as its zero value
func (p FieldProblem) String() string {
	path := p.Path
	if path == "" {
		path = "the type itself"
	}
	switch {
	case p.Dropped:
		return fmt.Sprintf("%s (%s): unexported, so CBOR drops it: it reads back as its zero value", path, typeName(p.Type))
	case p.MapKey:
		return fmt.Sprintf("%s: CBOR cannot encode the map's keys (%s)", path, typeName(p.Type))
	}
	return fmt.Sprintf("%s (%s): CBOR cannot encode this type", path, typeName(p.Type))
}

// CheckType returns every problem of t, in field order: every field whose
// type CBOR cannot encode and every unexported field that the encoder would
// drop, reached from t through struct fields (as the encoder sees them:
// exported ones and those promoted from embedded structs), pointers,
// slices, arrays and maps. A field tagged `cbor:"-"` (or, without a cbor
// tag, `json:"-"`) is skipped on purpose and is not a problem, exported or
// not; neither is anything inside a type that encodes itself (a
// MarshalCBOR or MarshalBinary method, time.Time, big.Int).
//
// CheckType looks at types, not values: it does not look into interfaces,
// since what an interface holds is known only at run time (a field of type
// any holding a channel fails when the value is encoded; see [Encodable]),
// and it goes once through each struct type on a path, so a recursive
// type is checked once.
func CheckType(t reflect.Type) []FieldProblem {
	if t == nil {
		return nil
	}
	var c typeChecker
	c.check(t, "", map[reflect.Type]bool{})
	return c.problems
}

type typeChecker struct{ problems []FieldProblem }

func (c *typeChecker) check(t reflect.Type, path string, onPath map[reflect.Type]bool) {
	if isLeaf(t) {
		return
	}
	switch t.Kind() {
	case reflect.Bool,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64, reflect.String, reflect.Interface:
		return
	case reflect.Pointer:
		c.check(t.Elem(), path, onPath)
	case reflect.Slice, reflect.Array:
		c.check(t.Elem(), path+"[*]", onPath)
	case reflect.Map:
		if staticFault(t.Key()) != nil {
			c.problems = append(c.problems, FieldProblem{Path: path, Type: t.Key(), MapKey: true})
		}
		c.check(t.Elem(), path+"[*]", onPath)
	case reflect.Struct:
		if onPath[t] {
			return
		}
		onPath[t] = true
		defer delete(onPath, t)
		// Encoded and dropped fields, in the order of their declaration.
		dropped := droppedFields(t, "", map[reflect.Type]bool{})
		for _, f := range structFields(t) {
			for len(dropped) > 0 && lessIndex(dropped[0].idx, f.idx) {
				c.problems = append(c.problems, FieldProblem{Path: joinPath(path, dropped[0].goPath), Type: dropped[0].typ, Dropped: true})
				dropped = dropped[1:]
			}
			c.check(f.typ, joinPath(path, f.goPath), onPath)
		}
		for _, d := range dropped {
			c.problems = append(c.problems, FieldProblem{Path: joinPath(path, d.goPath), Type: d.typ, Dropped: true})
		}
	default:
		c.problems = append(c.problems, FieldProblem{Path: path, Type: t})
	}
}

// droppedFields returns the unexported fields of struct type t that the
// encoder skips without being told to, through the embedded structs whose
// fields it promotes, in declaration order.
func droppedFields(t reflect.Type, prefix string, seen map[reflect.Type]bool) []fieldInfo {
	if seen[t] {
		return nil
	}
	seen[t] = true
	var out []fieldInfo
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("cbor")
		if tag == "" {
			tag = f.Tag.Get("json")
		}
		if tag == "-" {
			continue
		}
		goPath := joinPath(prefix, f.Name)
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && ft.Kind() == reflect.Struct && name == "" {
			for _, d := range droppedFields(ft, goPath, seen) {
				d.idx = append([]int{i}, d.idx...)
				out = append(out, d)
			}
			continue
		}
		if !f.IsExported() {
			out = append(out, fieldInfo{goPath: goPath, idx: []int{i}, typ: f.Type})
		}
	}
	return out
}

// lessIndex orders field index sequences as their fields are declared.
func lessIndex(a, b []int) bool {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return len(a) < len(b)
}

func joinPath(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}
