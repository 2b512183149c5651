package serde

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// findDupKey returns the encoding of the first map key in data, well-formed
// CBOR, that equals the key before it in the same map, or nil.
//
// Go map keys that differ can encode alike: int64(1) and uint64(1) in a
// map[any]any, two NaNs, two pointers to equal values, two time.Time of the
// same instant in different locations. The encoder sorts map keys by their
// encoding, so such keys end up side by side, and defaultDecMode rejects them.
func findDupKey(data []byte) []byte {
	_, dup := scanItem(data, 0)
	return dup
}

// scanItem returns the offset after the item at off, and the first
// duplicate map key inside it.
func scanItem(data []byte, off int) (int, []byte) {
	major, arg, off := scanHead(data, off)
	switch major {
	case 2, 3: // byte and text strings
		return off + int(arg), nil
	case 4: // array
		for range arg {
			var dup []byte
			if off, dup = scanItem(data, off); dup != nil {
				return off, dup
			}
		}
	case 5: // map
		var prev []byte
		for range arg {
			start := off
			var dup []byte
			if off, dup = scanItem(data, off); dup != nil {
				return off, dup
			}
			key := data[start:off]
			if prev != nil && bytes.Equal(prev, key) {
				return off, key
			}
			prev = key
			if off, dup = scanItem(data, off); dup != nil {
				return off, dup
			}
		}
	case 6: // tag
		return scanItem(data, off)
	}
	return off, nil
}

// scanHead reads the head of the item at off: its major type, its argument
// (a length, a count, a value), and the offset after the head. Floats and
// simple values read as their argument, which is all their content.
func scanHead(data []byte, off int) (major byte, arg uint64, next int) {
	b := data[off]
	major, ai := b>>5, b&0x1f
	off++
	switch ai {
	case 24:
		return major, uint64(data[off]), off + 1
	case 25:
		return major, uint64(binary.BigEndian.Uint16(data[off:])), off + 2
	case 26:
		return major, uint64(binary.BigEndian.Uint32(data[off:])), off + 4
	case 27:
		return major, binary.BigEndian.Uint64(data[off:]), off + 8
	}
	return major, uint64(ai), off
}

// dupKeyError reports a map with two keys that encode alike.
func dupKeyError(v any, key []byte) error {
	diag, err := cbor.Diagnose(key)
	if err != nil {
		diag = fmt.Sprintf("h'%x'", key)
	}
	return fmt.Errorf("serde: cbor cannot encode %T: a map in it has two keys that both encode as %s, which UnmarshalCBOR rejects as duplicates; keys that differ in Go can encode alike (int64(1) and uint64(1), two NaNs, two pointers to equal values)", v, diag)
}
