package serde

import (
	"cmp"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// fieldInfo is a struct field the CBOR encoder encodes.
type fieldInfo struct {
	name     string // CBOR key: the tag name, or the Go name
	keyAsInt bool
	goPath   string // Go selector from the struct: "Base.Callback"
	idx      []int  // index sequence, through embedded structs
	typ      reflect.Type
	tagged   bool
}

var structFieldsCache sync.Map // reflect.Type -> []fieldInfo

// structFields returns the fields of struct type t that the CBOR encoder of
// github.com/fxamacker/cbor/v2 encodes, by its rules (those of encoding/json):
// exported fields and the fields of embedded structs (exported or not),
// except those tagged "-" (the cbor tag, else the json tag); of fields with
// the same name, the shallowest wins, then the tagged one, else none.
func structFields(t reflect.Type) []fieldInfo {
	if fs, ok := structFieldsCache.Load(t); ok {
		return fs.([]fieldInfo)
	}
	fs := collectFields(t)
	actual, _ := structFieldsCache.LoadOrStore(t, fs)
	return actual.([]fieldInfo)
}

// embedded is an embedded struct field whose fields are promoted.
type embedded struct {
	idx    []int
	goPath string
}

func collectFields(t reflect.Type) []fieldInfo {
	flds, next := appendFields(t, embedded{}, nil, nil)
	visited := map[reflect.Type]bool{t: true}
	for len(next) > 0 {
		cur := next
		next = nil
		for et, es := range cur {
			// Several embedded fields of one type at one level hide each other.
			if len(es) > 1 || visited[et] {
				continue
			}
			visited[et] = true
			flds, next = appendFields(et, es[0], flds, next)
		}
	}

	for i := range flds {
		if flds[i].keyAsInt {
			if n, err := strconv.Atoi(flds[i].name); err == nil {
				flds[i].name = strconv.Itoa(n)
			}
		}
	}
	slices.SortFunc(flds, func(a, b fieldInfo) int {
		if c := cmp.Compare(a.name, b.name); c != 0 {
			return c
		}
		if a.keyAsInt != b.keyAsInt {
			if a.keyAsInt {
				return -1
			}
			return 1
		}
		if c := cmp.Compare(len(a.idx), len(b.idx)); c != 0 {
			return c
		}
		if a.tagged != b.tagged {
			if a.tagged {
				return -1
			}
			return 1
		}
		return slices.Compare(a.idx, b.idx)
	})
	var kept []fieldInfo
	for i := 0; i < len(flds); {
		f := flds[i]
		if i == len(flds)-1 ||
			f.name != flds[i+1].name || f.keyAsInt != flds[i+1].keyAsInt ||
			len(f.idx) < len(flds[i+1].idx) ||
			(f.tagged && !flds[i+1].tagged) {
			kept = append(kept, f)
		}
		for i++; i < len(flds) && flds[i].name == f.name && flds[i].keyAsInt == f.keyAsInt; i++ {
		}
	}
	slices.SortFunc(kept, func(a, b fieldInfo) int { return slices.Compare(a.idx, b.idx) })
	return kept
}

func appendFields(t reflect.Type, parent embedded, flds []fieldInfo, next map[reflect.Type][]embedded) ([]fieldInfo, map[reflect.Type][]embedded) {
	for i := range t.NumField() {
		f := t.Field(i)
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if !f.IsExported() && (!f.Anonymous || ft.Kind() != reflect.Struct) {
			continue
		}
		tag := f.Tag.Get("cbor")
		if tag == "" {
			tag = f.Tag.Get("json")
		}
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		keyAsInt := false
		for opt := range strings.SplitSeq(opts, ",") {
			if opt == "keyasint" {
				keyAsInt = true
			}
		}
		idx := append(slices.Clip(parent.idx), i)
		goPath := f.Name
		if parent.goPath != "" {
			goPath = parent.goPath + "." + f.Name
		}
		if f.Anonymous && ft.Kind() == reflect.Struct && name == "" {
			if next == nil {
				next = map[reflect.Type][]embedded{}
			}
			next[ft] = append(next[ft], embedded{idx: idx, goPath: goPath})
			continue
		}
		if name == "" {
			name = f.Name
		}
		flds = append(flds, fieldInfo{
			name:     name,
			keyAsInt: keyAsInt,
			goPath:   goPath,
			idx:      idx,
			typ:      f.Type,
			tagged:   tag != "",
		})
	}
	return flds, next
}
