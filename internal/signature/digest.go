package signature

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
)

// ContentDigest is the Content-Digest field value (RFC 9530) the signer
// sends for body: "sha-512=:<standard base64>:".
func ContentDigest(body []byte) string {
	var b [contentDigestSize]byte
	return string(appendContentDigest(b[:0], body))
}

// contentDigestSize is the length of the Content-Digest the signer sends.
const contentDigestSize = len("sha-512=:") + (sha512.Size+2)/3*4 + 1

// appendContentDigest appends the Content-Digest field value for body to b.
func appendContentDigest(b []byte, body []byte) []byte {
	sum := sha512.Sum512(body)
	b = append(b, "sha-512=:"...)
	b = base64.StdEncoding.AppendEncode(b, sum[:])
	return append(b, ':')
}

// checkContentDigest checks the Content-Digest field value field against
// body: every sha-512 and sha-256 digest in it must match, compared in
// constant time, and there must be at least one. Other algorithms are
// ignored. Errors wrap ErrInvalid.
func checkContentDigest(field string, body []byte) error {
	members, err := parseDictionary(field)
	if err != nil {
		return invalidf("Content-Digest is not an RFC 8941 dictionary: %v", err)
	}
	checked := 0
	for i := range members {
		m := &members[i]
		var size int
		switch m.key {
		case "sha-512":
			size = sha512.Size
		case "sha-256":
			size = sha256.Size
		default:
			continue
		}
		if m.isList || m.val.kind != kindByteSeq {
			return invalidf("Content-Digest %s is a %s, want a byte sequence (:base64:)", m.key, memberKind(m))
		}
		var got [sha512.Size]byte
		if !decodeByteSeq(got[:size], m.val.str) {
			return invalidf("Content-Digest %s is %d bytes, want %d", m.key, byteSeqLen(m.val.str), size)
		}
		var want [sha512.Size]byte
		if size == sha512.Size {
			want = sha512.Sum512(body)
		} else {
			sum := sha256.Sum256(body)
			copy(want[:], sum[:])
		}
		if subtle.ConstantTimeCompare(got[:size], want[:size]) != 1 {
			return invalidf("Content-Digest %s does not match the body (%d bytes)", m.key, len(body))
		}
		checked++
	}
	if checked == 0 {
		return invalidf("Content-Digest has no sha-512 or sha-256 digest")
	}
	return nil
}

// memberKind describes the value of a dictionary member for messages.
func memberKind(m *member) string {
	if m.isList {
		return "inner list"
	}
	return m.val.kind.String()
}
