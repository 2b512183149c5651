package status

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"github.com/fxamacker/cbor/v2"

	naming "github.com/dispatchkit/dispatch/internal/registry"
	"github.com/dispatchkit/dispatch/serde"
)

// codec turns errors of one registered type into bytes and back.
type codec struct {
	name   string
	typ    reflect.Type
	encode func(error) ([]byte, error)
	decode func([]byte) (error, error)
}

var registry = struct {
	sync.RWMutex
	byName map[string]*codec
	byType map[reflect.Type]*codec
}{
	byName: map[string]*codec{},
	byType: map[reflect.Type]*codec{},
}

// reservedPrefix starts the names of the SDK's own error types.
const reservedPrefix = "dispatch."

// valueMagic starts every error value this package encodes: the CBOR tag
// 55799 ("self-described CBOR"). Values that do not start with it, such as
// those of SDKs in other languages, are never decoded.
var valueMagic = []byte{0xd9, 0xd9, 0xf7}

// The SDK's CBOR configuration (serde): deterministic, and decoding with
// limits, as error values come from the wire.
var (
	encMode = serde.EncMode()
	decMode = serde.DecMode()
)

func init() {
	if err := register[*HTTPStatusError]("dispatch.HTTPStatusError"); err != nil {
		panic(err)
	}
}

// RegisterError registers the error type E under a name, so that errors of
// that type cross the wire as values: when a function fails with an error
// whose chain holds an E, the E is encoded (as CBOR) beside the error's
// message, and its caller, in this program or another build of it, decodes
// it so that errors.As(err, &e) finds it in the [*Error] it receives.
//
// The name, not the Go type name, identifies the type on the wire, so that a
// value written by one build is understood by the next even if the Go type
// was renamed or moved. Names match ^[a-zA-Z_][a-zA-Z0-9_<>.]*$ and the
// prefix "dispatch." is reserved for the SDK.
//
// Only exported fields travel, and E's Error method must work from them alone.
// Fields of interface type, including error, cannot be decoded: such an error
// arrives as text only. SDKs in other languages see the type name and the
// message, and must ignore the value.
//
// E may be a pointer type (the usual case for errors with a pointer
// receiver) or a value type; it is the type that errors.As looks for.
//
// RegisterError panics if the name is invalid or taken, or if E is already
// registered; it is meant for package-level declarations and init functions.
// [RegisterErrorSafely] returns the problem instead.
func RegisterError[E error](name string) {
	if err := RegisterErrorSafely[E](name); err != nil {
		panic(err)
	}
}

// RegisterErrorSafely is [RegisterError] that returns an error instead of
// panicking.
func RegisterErrorSafely[E error](name string) error {
	if strings.HasPrefix(name, reservedPrefix) {
		return fmt.Errorf("dispatch: error type name %q uses the prefix %q, which is reserved for the SDK; choose a name of your own, such as \"myapp.%s\"", name, reservedPrefix, strings.TrimPrefix(name, reservedPrefix))
	}
	return register[E](name)
}

func register[E error](name string) error {
	typ := reflect.TypeFor[E]()
	if len(name) > naming.MaxNameBytes {
		return fmt.Errorf("dispatch: error type name %q is %d bytes, at most %d: choose a shorter name", naming.Short(name), len(name), naming.MaxNameBytes)
	}
	if !naming.ValidName(name) { // the protocol's pattern, as for functions
		return fmt.Errorf("dispatch: error type name %q is not valid: it must start with a letter or '_' and hold only letters, digits, '_', '.', '<' and '>', such as \"myapp.NotReady\"", name)
	}
	if typ.Kind() == reflect.Interface {
		return fmt.Errorf("dispatch: cannot register the interface type %s as error type %q: register a concrete type, such as *MyError", typ, name)
	}
	c := &codec{
		name:   name,
		typ:    typ,
		encode: func(err error) ([]byte, error) { return encMode.Marshal(err) },
		decode: func(b []byte) (error, error) {
			p := new(E)
			if err := decMode.Unmarshal(b, p); err != nil {
				return nil, err
			}
			if v := reflect.ValueOf(*p); v.Kind() == reflect.Pointer && v.IsNil() {
				return nil, errors.New("dispatch: error value is nil")
			}
			return *p, nil
		},
	}

	registry.Lock()
	defer registry.Unlock()
	if other, ok := registry.byName[name]; ok {
		return fmt.Errorf("dispatch: error type name %q is already registered for %s; give %s another name", name, other.typ, typ)
	}
	if other, ok := registry.byType[typ]; ok {
		return fmt.Errorf("dispatch: error type %s is already registered as %q; register each type once", typ, other.name)
	}
	registry.byName[name] = c
	registry.byType[typ] = c
	return nil
}

// codecOf returns the codec registered for the dynamic type of err, or nil.
func codecOf(err error) *codec {
	registry.RLock()
	defer registry.RUnlock()
	return registry.byType[reflect.TypeOf(err)]
}

// encodeValue returns the registered name of err's type and err encoded as
// CBOR, or ok false if the type is not registered. If the type is
// registered but the value cannot be encoded, it returns the name alone.
func encodeValue(err error) (name string, value []byte, ok bool) {
	c := codecOf(err)
	if c == nil {
		return "", nil, false
	}
	value, encErr := c.encode(err)
	if encErr != nil {
		value = nil
	}
	return c.name, value, true
}

// decodeValue rebuilds the error that [encodeValue] encoded under the type
// name, or returns nil if the name is unknown or the value does not decode.
// The sentinels are rebuilt from their name alone.
func decodeValue(name string, value []byte) error {
	if s, ok := sentinelByName[name]; ok {
		return s
	}
	registry.RLock()
	c := registry.byName[name]
	registry.RUnlock()
	if c == nil || len(value) == 0 {
		return nil
	}
	err, decErr := c.decode(value)
	if decErr != nil {
		return nil
	}
	return err
}

// envelope is what Error.value holds for errors of this SDK: the status the
// function failed with (call results carry no status of their own) and, for
// a registered error type, the error encoded as CBOR. On the wire it is the
// 3-byte self-described CBOR tag (valueMagic) followed by the array
// [status, value-or-null].
type envelope struct {
	_      struct{} `cbor:",toarray"`
	Status Status
	Value  cbor.RawMessage
}

// sealValue returns the Error.value for an error with status s and the
// encoded registered value raw (nil if none). It returns nil when there is
// nothing a receiver could not infer (PERMANENT_ERROR and no value), so that
// most errors cross the wire as a type and a message only.
func sealValue(s Status, raw []byte) []byte {
	if s == PermanentError && raw == nil {
		return nil
	}
	b, err := encMode.Marshal(envelope{Status: s, Value: raw})
	if err != nil {
		return nil
	}
	return append(bytes.Clone(valueMagic), b...)
}

// openValue reads an Error.value written by sealValue. ok is false for
// values of other SDKs (they do not start with the tag) and for values that
// do not decode.
func openValue(value []byte) (s Status, raw []byte, ok bool) {
	if !bytes.HasPrefix(value, valueMagic) {
		return 0, nil, false
	}
	var env envelope
	if err := decMode.Unmarshal(value[len(valueMagic):], &env); err != nil {
		return 0, nil, false
	}
	raw = env.Value
	if bytes.Equal(raw, []byte{0xf6}) {
		raw = nil
	}
	return env.Status, raw, true
}
