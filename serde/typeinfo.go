package serde

import (
	"encoding"
	"math/big"
	"reflect"
	"sync"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// typeInfo is what the walker needs to know of a type, computed once.
//
// The encoder checks types in two steps. Building the encode function of a
// type fails on a chan, func, complex, uintptr or unsafe.Pointer reached
// through pointers, slices, arrays and maps, but stops at a struct: its
// fields are checked when a struct value is encoded. So a []T with a bad
// field in T encodes while empty, and a []chan int does not.
type typeInfo struct {
	// fault is what makes building the encode function of the type fail,
	// or nil.
	fault *typeFault
	// dynamic says that values of the type may hold what their type does
	// not tell: an interface, or a recursive type (a cycle, a deep nest).
	dynamic bool
	// mayFail says that some value of the type fails to encode.
	mayFail bool
	// collidable says that the type holds a map whose keys may differ in
	// Go but encode alike: keys that are not booleans, integers or strings.
	collidable bool
	// fields are the struct fields the encoder encodes.
	fields []fieldInfo
}

type typeFault struct {
	suffix string       // path from the type to the fault: "", "[*]", ...
	typ    reflect.Type // the type that cannot be encoded
	mapKey bool         // typ is the key type of the map at suffix
}

var typeInfos sync.Map // reflect.Type -> *typeInfo

func typeInfoOf(t reflect.Type) *typeInfo {
	if ti, ok := typeInfos.Load(t); ok {
		return ti.(*typeInfo)
	}
	ti := &typeInfo{
		fault:   staticFault(t),
		dynamic: isDynamic(t, map[reflect.Type]bool{}, map[reflect.Type]bool{}),
	}
	ti.mayFail = ti.dynamic || reachesFault(t, map[reflect.Type]bool{})
	ti.collidable = hasCollidableKeys(t, map[reflect.Type]bool{})
	if t.Kind() == reflect.Struct && !isLeaf(t) {
		ti.fields = structFields(t)
	}
	actual, _ := typeInfos.LoadOrStore(t, ti)
	return actual.(*typeInfo)
}

var (
	typeTime            = reflect.TypeFor[time.Time]()
	typeBigInt          = reflect.TypeFor[big.Int]()
	typeCBORTag         = reflect.TypeFor[cbor.Tag]()
	typeCBORRawTag      = reflect.TypeFor[cbor.RawTag]()
	typeCBORMarshaler   = reflect.TypeFor[cbor.Marshaler]()
	typeBinaryMarshaler = reflect.TypeFor[encoding.BinaryMarshaler]()
)

// isLeaf reports whether the encoder encodes t without looking inside: a
// type with a MarshalCBOR or MarshalBinary method (the default of [EncMode]
// is to call it), the types it handles itself, and byte strings.
func isLeaf(t reflect.Type) bool {
	switch t {
	case typeTime, typeBigInt, typeCBORTag, typeCBORRawTag:
		return true
	}
	if t.Kind() == reflect.Pointer || t.Kind() == reflect.Interface {
		return false
	}
	pt := reflect.PointerTo(t)
	if pt.Implements(typeCBORMarshaler) || pt.Implements(typeBinaryMarshaler) {
		return true
	}
	return (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) && t.Elem().Kind() == reflect.Uint8
}

// staticFault returns what makes building the encode function of t fail:
// a type CBOR cannot encode, reached from t through pointers, slices,
// arrays and maps.
func staticFault(t reflect.Type) *typeFault {
	if isLeaf(t) {
		return nil
	}
	switch t.Kind() {
	case reflect.Bool,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64, reflect.String, reflect.Interface, reflect.Struct:
		return nil
	case reflect.Pointer:
		return staticFault(t.Elem())
	case reflect.Slice, reflect.Array:
		if f := staticFault(t.Elem()); f != nil {
			return &typeFault{suffix: "[*]" + f.suffix, typ: f.typ, mapKey: f.mapKey}
		}
		return nil
	case reflect.Map:
		if f := staticFault(t.Key()); f != nil {
			return &typeFault{typ: t.Key(), mapKey: true}
		}
		if f := staticFault(t.Elem()); f != nil {
			return &typeFault{suffix: "[*]" + f.suffix, typ: f.typ, mapKey: f.mapKey}
		}
		return nil
	}
	return &typeFault{typ: t}
}

// reachesFault reports whether a type CBOR cannot encode is reachable from
// t, through struct fields too.
func reachesFault(t reflect.Type, seen map[reflect.Type]bool) bool {
	if seen[t] {
		return false
	}
	seen[t] = true
	if staticFault(t) != nil {
		return true
	}
	if isLeaf(t) {
		return false
	}
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return reachesFault(t.Elem(), seen)
	case reflect.Map:
		return reachesFault(t.Key(), seen) || reachesFault(t.Elem(), seen)
	case reflect.Struct:
		for _, fi := range structFields(t) {
			if reachesFault(fi.typ, seen) {
				return true
			}
		}
	}
	return false
}

// hasCollidableKeys reports whether t holds a map whose key type has values
// that differ in Go but encode alike.
func hasCollidableKeys(t reflect.Type, seen map[reflect.Type]bool) bool {
	if seen[t] || isLeaf(t) {
		return false
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return hasCollidableKeys(t.Elem(), seen)
	case reflect.Map:
		switch k := t.Key(); k.Kind() {
		case reflect.Bool, reflect.String,
			reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			if isLeaf(k) {
				return true // encoded by a method of its own
			}
		default:
			return true
		}
		return hasCollidableKeys(t.Elem(), seen)
	case reflect.Struct:
		for _, fi := range structFields(t) {
			if hasCollidableKeys(fi.typ, seen) {
				return true
			}
		}
	}
	return false
}

// isDynamic reports whether t holds an interface or is recursive.
func isDynamic(t reflect.Type, onPath, static map[reflect.Type]bool) bool {
	if isLeaf(t) || static[t] {
		return false
	}
	if onPath[t] {
		return true
	}
	onPath[t] = true
	defer delete(onPath, t)
	dynamic := false
	switch t.Kind() {
	case reflect.Interface:
		dynamic = true
	case reflect.Pointer, reflect.Slice, reflect.Array:
		dynamic = isDynamic(t.Elem(), onPath, static)
	case reflect.Map:
		dynamic = isDynamic(t.Key(), onPath, static) || isDynamic(t.Elem(), onPath, static)
	case reflect.Struct:
		for _, fi := range structFields(t) {
			if isDynamic(fi.typ, onPath, static) {
				dynamic = true
				break
			}
		}
	}
	if !dynamic {
		static[t] = true
	}
	return dynamic
}
