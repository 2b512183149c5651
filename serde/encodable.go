package serde

import (
	"cmp"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// UnsupportedTypeError reports a value of a type that CBOR cannot encode:
// a channel, a function, an unsafe.Pointer, a uintptr, a complex number, or
// a map whose key type is one of those, anywhere in the value.
//
// The encoder checks types, not values: a struct with a func field cannot be
// encoded even when the field is nil.
type UnsupportedTypeError struct {
	// Path locates the value from the root, with Go syntax: a field by its
	// Go name (promoted fields through their embedded struct), an element
	// by its index, a map entry by its key: `Items[2].Callback`,
	// `Meta["k"]`. An element of an empty slice, array or map is `[*]`.
	// The path is empty for the root.
	Path string
	// Type is the type that cannot be encoded (the key type when MapKey).
	Type reflect.Type
	// MapKey says that Type is the key type of the map at Path.
	MapKey bool
}

func (e *UnsupportedTypeError) Error() string {
	switch {
	case e.MapKey:
		return fmt.Sprintf("serde: cbor cannot encode the keys of the map at %s (type %s): use a key type CBOR can encode, like string or int",
			pathOrRoot(e.Path), typeName(e.Type))
	case e.Path == "":
		return fmt.Sprintf("serde: cbor cannot encode a value of type %s: send a value of another type, or give the type a MarshalCBOR method",
			typeName(e.Type))
	default:
		return fmt.Sprintf("serde: cbor cannot encode %s (type %s): drop the field, or tag it `cbor:\"-\"` so the encoder skips it",
			e.Path, typeName(e.Type))
	}
}

// UnsupportedValueError reports a value that CBOR could encode by its type,
// but not as it is: one that holds a cycle, or nests deeper than
// [MaxNestedLevels].
type UnsupportedValueError struct {
	// Path locates the value, as in [UnsupportedTypeError].
	Path string
	// Type is the type of the value at Path.
	Type reflect.Type
	// Reason says what is wrong with it.
	Reason string
}

func (e *UnsupportedValueError) Error() string {
	return fmt.Sprintf("serde: cbor cannot encode %s (type %s): %s", pathOrRoot(e.Path), typeName(e.Type), e.Reason)
}

func pathOrRoot(path string) string {
	if path == "" {
		return "the root value"
	}
	return path
}

// Encodable reports whether [MarshalCBOR] can encode v: it returns a
// *[UnsupportedTypeError] for the first value (in field order, then index
// order, then key order) whose type CBOR cannot encode, a
// *[UnsupportedValueError] for a cycle or a value nested too deeply, or nil.
//
// It walks v with reflection the way the encoder does: exported fields and
// the fields promoted from embedded structs, skipping those tagged
// `cbor:"-"` (or, without a cbor tag, `json:"-"`) and those hidden by a
// field of the same name at a shallower depth; not into types that encode
// themselves (a MarshalCBOR or MarshalBinary method, time.Time, big.Int).
// A pointer seen again on the way down is a cycle; a value shared by two
// paths is not. Encodable does not call any method of v.
func Encodable(v any) error {
	if v == nil {
		return nil
	}
	w := walker{types: true, sorted: true}
	return w.walk(reflect.ValueOf(v))
}

// walker walks a value the way the CBOR encoder would.
type walker struct {
	types  bool // report types that cannot be encoded
	sorted bool // visit map entries in key order, for a stable first error

	path  []segment
	stack []visit // pointers, maps and slices on the way down
	depth int     // CBOR arrays and maps on the way down
}

// segment is one step of a path.
type segment struct {
	field    string        // a field (Go selector, dots for promoted fields)
	index    int           // an element; -1 for `[*]`
	key      reflect.Value // a map key, when valid
	strKey   string        // a string map key, when isStrKey
	isStrKey bool
}

type visit struct {
	ptr     uintptr
	len     int
	typ     reflect.Type
	pathLen int
}

func (w *walker) push(s segment) { w.path = append(w.path, s) }
func (w *walker) pop()           { w.path = w.path[:len(w.path)-1] }

func (w *walker) pathString(n int) string {
	var b strings.Builder
	for _, s := range w.path[:n] {
		switch {
		case s.field != "":
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s.field)
		case s.isStrKey:
			b.WriteByte('[')
			b.WriteString(strconv.Quote(s.strKey))
			b.WriteByte(']')
		case s.key.IsValid():
			b.WriteByte('[')
			b.WriteString(formatKey(s.key))
			b.WriteByte(']')
		case s.index < 0:
			b.WriteString("[*]")
		default:
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(s.index))
			b.WriteByte(']')
		}
	}
	return b.String()
}

func formatKey(k reflect.Value) string {
	for k.Kind() == reflect.Interface && !k.IsNil() {
		k = k.Elem()
	}
	if k.Kind() == reflect.String {
		return strconv.Quote(k.String())
	}
	return fmt.Sprint(k)
}

// typeError reports the fault of the type of the value at the current path.
func (w *walker) typeError(f *typeFault) error {
	path := w.pathString(len(w.path)) + f.suffix
	return &UnsupportedTypeError{Path: path, Type: f.typ, MapKey: f.mapKey}
}

// enter records a pointer, map or slice on the way down, and reports a cycle
// when it is already there.
func (w *walker) enter(v reflect.Value, n int) error {
	p := visit{ptr: v.Pointer(), len: n, typ: v.Type(), pathLen: len(w.path)}
	for _, s := range w.stack {
		if s.ptr == p.ptr && s.len == p.len && s.typ == p.typ {
			reason := fmt.Sprintf("it points back to %s, a cycle: break the cycle, or tag a field on the way `cbor:\"-\"`",
				pathOrRoot(w.pathString(s.pathLen)))
			return &UnsupportedValueError{Path: w.pathString(len(w.path)), Type: v.Type(), Reason: reason}
		}
	}
	w.stack = append(w.stack, p)
	return nil
}

func (w *walker) leave() { w.stack = w.stack[:len(w.stack)-1] }

// nest counts a CBOR array or map on the way down.
func (w *walker) nest(v reflect.Value) error {
	w.depth++
	if w.depth > MaxNestedLevels {
		return &UnsupportedValueError{
			Path:   w.pathString(len(w.path)),
			Type:   v.Type(),
			Reason: fmt.Sprintf("it nests more than %d levels deep, which UnmarshalCBOR rejects", MaxNestedLevels),
		}
	}
	return nil
}

func (w *walker) walk(v reflect.Value) error {
	if !v.IsValid() {
		return nil // nil interface
	}
	t := v.Type()
	info := typeInfoOf(t)
	if !info.dynamic && (!info.mayFail || !w.types) {
		return nil // every value of the type encodes
	}
	// noValue is the answer where there is nothing further to walk.
	noValue := func() error {
		if w.types && info.fault != nil {
			return w.typeError(info.fault)
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return noValue()
		}
		if err := w.enter(v, 0); err != nil {
			return err
		}
		defer w.leave()
		return w.walk(v.Elem())

	case reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return w.walk(v.Elem())

	case reflect.Slice, reflect.Array:
		if v.Len() == 0 {
			return noValue()
		}
		if t.Kind() == reflect.Slice {
			if err := w.enter(v, v.Len()); err != nil {
				return err
			}
			defer w.leave()
		}
		if err := w.nest(v); err != nil {
			return err
		}
		defer func() { w.depth-- }()
		for i := range v.Len() {
			w.push(segment{index: i})
			err := w.walk(v.Index(i))
			w.pop()
			if err != nil {
				return err
			}
		}
		return nil

	case reflect.Map:
		if t == typeMapStringAny && v.CanInterface() {
			return w.walkMapStringAny(v)
		}
		if w.types {
			if f := typeInfoOf(t.Key()).fault; f != nil {
				return &UnsupportedTypeError{Path: w.pathString(len(w.path)), Type: t.Key(), MapKey: true}
			}
		}
		if v.Len() == 0 {
			return noValue()
		}
		if err := w.enter(v, 0); err != nil {
			return err
		}
		defer w.leave()
		if err := w.nest(v); err != nil {
			return err
		}
		defer func() { w.depth-- }()
		if w.sorted {
			keys := v.MapKeys()
			sortKeys(keys)
			for _, k := range keys {
				if err := w.walkEntry(k, v.MapIndex(k)); err != nil {
					return err
				}
			}
			return nil
		}
		for it := v.MapRange(); it.Next(); {
			if err := w.walkEntry(it.Key(), it.Value()); err != nil {
				return err
			}
		}
		return nil

	case reflect.Struct:
		if err := w.nest(v); err != nil {
			return err
		}
		defer func() { w.depth-- }()
		for _, f := range info.fields {
			w.push(segment{field: f.goPath})
			fv, ok := fieldByIndex(v, f.idx)
			var err error
			if ok {
				err = w.walk(fv)
			} else if ff := typeInfoOf(f.typ).fault; w.types && ff != nil {
				err = w.typeError(ff) // behind a nil embedded pointer, still checked
			}
			w.pop()
			if err != nil {
				return err
			}
		}
		return nil
	}
	return noValue()
}

// walkMapStringAny is the walk of a map[string]any, the most common map in
// a dynamic value, without the allocations of reflection.
func (w *walker) walkMapStringAny(v reflect.Value) error {
	m := v.Interface().(map[string]any)
	if len(m) == 0 {
		return nil
	}
	if err := w.enter(v, 0); err != nil {
		return err
	}
	defer w.leave()
	if err := w.nest(v); err != nil {
		return err
	}
	defer func() { w.depth-- }()
	visit := func(k string, e any) error {
		w.push(segment{strKey: k, isStrKey: true})
		defer w.pop()
		return w.walk(reflect.ValueOf(e))
	}
	if w.sorted {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if err := visit(k, m[k]); err != nil {
				return err
			}
		}
		return nil
	}
	for k, e := range m {
		if err := visit(k, e); err != nil {
			return err
		}
	}
	return nil
}

func (w *walker) walkEntry(k, e reflect.Value) error {
	w.push(segment{key: k})
	defer w.pop()
	if err := w.walk(k); err != nil {
		return err
	}
	return w.walk(e)
}

// sortKeys sorts map keys for a stable walk: strings and numbers by value,
// anything else by its printed form.
func sortKeys(keys []reflect.Value) {
	if len(keys) < 2 {
		return
	}
	switch keys[0].Kind() {
	case reflect.String:
		slices.SortFunc(keys, func(a, b reflect.Value) int { return cmp.Compare(a.String(), b.String()) })
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		slices.SortFunc(keys, func(a, b reflect.Value) int { return cmp.Compare(a.Int(), b.Int()) })
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		slices.SortFunc(keys, func(a, b reflect.Value) int { return cmp.Compare(a.Uint(), b.Uint()) })
	default:
		s := make([]string, len(keys))
		idx := make([]int, len(keys))
		for i, k := range keys {
			for k.Kind() == reflect.Interface && !k.IsNil() {
				k = k.Elem()
			}
			s[i], idx[i] = typeName(k.Type())+" "+fmt.Sprint(k), i
		}
		slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(s[a], s[b]) })
		sorted := make([]reflect.Value, len(keys))
		for i, j := range idx {
			sorted[i] = keys[j]
		}
		copy(keys, sorted)
	}
}

// fieldByIndex is v.FieldByIndex that reports false at a nil embedded pointer.
func fieldByIndex(v reflect.Value, idx []int) (reflect.Value, bool) {
	for i, x := range idx {
		if i > 0 {
			for v.Kind() == reflect.Pointer {
				if v.IsNil() {
					return reflect.Value{}, false
				}
				v = v.Elem()
			}
		}
		v = v.Field(x)
	}
	return v, true
}
