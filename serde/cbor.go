package serde

import (
	"errors"
	"fmt"
	"reflect"

	"github.com/fxamacker/cbor/v2"
)

// CBORTypeURL is the type URL of an [anypb.Any] whose value is the CBOR
// encoding of a Go value, as written by [MarshalCBOR]. See the package
// documentation for the format.
//
// [anypb.Any]: https://pkg.go.dev/google.golang.org/protobuf/types/known/anypb#Any
const CBORTypeURL = "type.googleapis.com/dispatchkit.go.v1.CBOR"

// cborTypeName is the type name in [CBORTypeURL], after its last slash:
// what Unmarshal matches, whatever the host part of the URL.
const cborTypeName = "dispatchkit.go.v1.CBOR"

// Decode limits of [DecMode]. [MarshalCBOR] refuses to write a value that
// breaks them, so that whatever it writes, [UnmarshalCBOR] reads back.
const (
	// MaxNestedLevels is how deeply CBOR arrays, maps and tags may nest.
	MaxNestedLevels = 64
	// MaxArrayElements is the largest number of elements of one CBOR array.
	MaxArrayElements = 1 << 20
	// MaxMapPairs is the largest number of key-value pairs of one CBOR map.
	MaxMapPairs = 1 << 20
)

// EncMode returns the CBOR encoding configuration of this SDK: RFC 8949
// core deterministic encoding (map keys and struct fields sorted bytewise by
// their encoding, shortest forms of integers, lengths and floats, canonical
// NaN and infinities, no indefinite lengths), time.Time as tag 0 with an RFC
// 3339 string to the nanosecond, and nil slices and maps as null. Other
// packages that write CBOR share it, so that every byte this SDK stores is
// encoded alike. Prefer [MarshalCBOR], which adds checks and clearer
// errors.
//
// The mode is immutable (a cbor.EncMode cannot be changed once made): every
// call returns the same one, and nothing can reconfigure the SDK's
// encoding. To encode otherwise, make a mode of your own from
// cbor.EncOptions, or start from EncMode().EncOptions().
func EncMode() cbor.EncMode { return defaultEncMode }

// defaultEncMode is the mode EncMode returns.
var defaultEncMode = mustEncMode(cbor.EncOptions{
	Sort:          cbor.SortCoreDeterministic,
	ShortestFloat: cbor.ShortestFloat16,
	NaNConvert:    cbor.NaNConvert7e00,
	InfConvert:    cbor.InfConvertFloat16,
	IndefLength:   cbor.IndefLengthForbidden,
	Time:          cbor.TimeRFC3339Nano,
	TimeTag:       cbor.EncTagRequired,
	BigIntConvert: cbor.BigIntConvertShortest,
	NilContainers: cbor.NilContainerAsNull,
})

// DecMode returns the CBOR decoding configuration of this SDK, the
// counterpart of [EncMode]: it rejects duplicate map keys, indefinite
// lengths and invalid UTF-8, enforces [MaxNestedLevels], [MaxArrayElements]
// and [MaxMapPairs], and decodes into a value of type any as: map[string]any
// for maps (see [UnmarshalCBOR] for other keys), []any, int64 for integers
// (a *big.Int beyond int64), float64, string, []byte, bool, nil and
// time.Time for tags 0 and 1. Unknown struct fields are ignored, so a newer
// build can read the state of an older one. Prefer [UnmarshalCBOR], which
// adds clearer errors.
//
// The mode is immutable, as [EncMode]'s is: every call returns the same one.
func DecMode() cbor.DecMode { return defaultDecMode }

// defaultDecMode is the mode DecMode returns.
var defaultDecMode = mustDecMode(decOptions(reflect.TypeFor[map[string]any]()))

// anyKeyDecMode is defaultDecMode decoding maps into any as map[any]any: the fallback
// for data with maps whose keys are not all strings.
var anyKeyDecMode = mustDecMode(decOptions(nil))

func decOptions(defaultMapType reflect.Type) cbor.DecOptions {
	return cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		TimeTag:          cbor.DecTagOptional,
		MaxNestedLevels:  MaxNestedLevels,
		MaxArrayElements: MaxArrayElements,
		MaxMapPairs:      MaxMapPairs,
		IndefLength:      cbor.IndefLengthForbidden,
		IntDec:           cbor.IntDecConvertSignedOrBigInt,
		BigIntDec:        cbor.BigIntDecodePointer,
		DefaultMapType:   defaultMapType,
		UTF8:             cbor.UTF8RejectInvalid,
		TimeTagToAny:     cbor.TimeTagToTime,
	}
}

func mustEncMode(opts cbor.EncOptions) cbor.EncMode {
	em, err := opts.EncMode()
	if err != nil {
		panic("serde: " + err.Error())
	}
	return em
}

func mustDecMode(opts cbor.DecOptions) cbor.DecMode {
	dm, err := opts.DecMode()
	if err != nil {
		panic("serde: " + err.Error())
	}
	return dm
}

// MarshalCBOR returns the deterministic CBOR encoding of v with [EncMode]:
// equal values give equal bytes, whatever the insertion order of their maps.
//
// It fails, before encoding anything, on a value that holds a cycle or nests
// deeper than [MaxNestedLevels] (without this check, a cycle would overflow
// the stack). When the encoder rejects v, the error is the one of
// [Encodable] if it finds the culprit (a *[UnsupportedTypeError] that names
// the field path), else the encoder's own error, wrapped. An encoding beyond
// the limits of [DecMode] is an error too, and so is a map with two keys
// that differ in Go but encode alike (int64(1) and uint64(1) in a
// map[any]any): what MarshalCBOR writes, [UnmarshalCBOR] reads.
func MarshalCBOR(v any) ([]byte, error) {
	var info *typeInfo
	if v != nil {
		info = typeInfoOf(reflect.TypeOf(v))
	}
	if info != nil && info.dynamic {
		w := walker{}
		if err := w.walk(reflect.ValueOf(v)); err != nil {
			// Report the first culprit in a stable order.
			if err := Encodable(v); err != nil {
				return nil, err
			}
			return nil, err
		}
	}
	b, err := defaultEncMode.Marshal(v)
	if err != nil {
		if err := Encodable(v); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("serde: cbor cannot encode %s: %w", typeName(reflect.TypeOf(v)), err)
	}
	if err := defaultDecMode.Wellformed(b); err != nil {
		return nil, fmt.Errorf("serde: the CBOR encoding of %s breaks the decode limits, so it could not be read back: %w",
			typeName(reflect.TypeOf(v)), err)
	}
	if info != nil && (info.dynamic || info.collidable) {
		if key := findDupKey(b); key != nil {
			return nil, dupKeyError(v, key)
		}
	}
	return b, nil
}

// UnmarshalCBOR decodes data into the value dst points to, with [DecMode].
// *dst is replaced, not merged into: fields absent from data are left zero.
//
// A map decoded into a value of type any is a map[string]any; when data
// holds a map with a key that is not a text string, every map decoded into
// an any is a map[any]any instead.
func UnmarshalCBOR(data []byte, dst any) error {
	rv := reflect.ValueOf(dst)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("serde: UnmarshalCBOR needs a non-nil pointer, got %s", typeName(reflect.TypeOf(dst)))
	}
	if err := unmarshalCBOR(data, rv.Elem()); err != nil {
		return fmt.Errorf("serde: cannot decode CBOR into %s: %w", typeName(rv.Type().Elem()), err)
	}
	return nil
}

// unmarshalCBOR decodes data into the settable v, replacing its value.
func unmarshalCBOR(data []byte, v reflect.Value) error {
	v.SetZero()
	dst := v.Addr().Interface()
	err := defaultDecMode.Unmarshal(data, dst)
	if err == nil {
		return nil
	}
	// A map key that is not a string, or keys that are alike once made
	// strings (tags dropped): the maps into an any must be map[any]any.
	var typeErr *cbor.UnmarshalTypeError
	var dupErr *cbor.DupMapKeyError
	if errors.As(err, &typeErr) || errors.As(err, &dupErr) {
		v.SetZero()
		if anyKeyDecMode.Unmarshal(data, dst) == nil {
			return nil
		}
		v.SetZero()
	}
	return err
}

// typeName names t for error messages, "nil" for no type.
func typeName(t reflect.Type) string {
	if t == nil {
		return "nil"
	}
	return t.String()
}
