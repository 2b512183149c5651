package scheduler

import (
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Validation of polls and tail calls. Every Poll is checked against the
// protovalidate rules of the protos, and protovalidate (CEL programs over
// reflection) cost 2.6 µs per Poll in a micro-benchmark but about 30 µs
// in place, on the path of every step of a workflow, its caches cold.
// The rules of Poll and Call are few:
//
//	Poll.max_wait          required, >= 1s
//	Poll.max_results       required (not 0), 1..1000
//	Poll.min_results       required (not 0), 1..1000
//	Call.function          required, ^[a-zA-Z_][a-zA-Z0-9_<>.]*$
//	Call.endpoint          a URI
//	Call.expiration        >= 0s
//
// so the engine first checks by hand whether a message is certainly
// valid: every field in the plain range of its rule, and an endpoint that
// protovalidate accepted before (the URI rule is RFC 3986, not redone by
// hand). Anything else, valid or not, goes to protovalidate, which gives
// the error. TestValidationRules fails if the protos' rules change.

const (
	// maxKnownEndpoints bounds the endpoints remembered as valid URIs.
	maxKnownEndpoints = 1024
	// maxPlainDuration bounds the durations checked by hand, far inside
	// the range CEL can represent (longer ones go to protovalidate).
	maxPlainDuration = 10 * 365 * 24 * time.Hour
)

// surelyValidPoll reports whether p passes the protovalidate rules, when
// that is plain to see. Called with e.mu held.
func (e *Engine) surelyValidPoll(p *sdkv1.Poll) bool {
	if !plainDuration(p.GetMaxWait(), time.Second) ||
		!inRange(p.GetMaxResults(), 1, 1000) || !inRange(p.GetMinResults(), 1, 1000) {
		return false
	}
	for _, c := range p.GetCalls() {
		if !e.surelyValidCall(c) {
			return false
		}
	}
	return true
}

// surelyValidCall is surelyValidPoll for one Call. Called with e.mu held.
func (e *Engine) surelyValidCall(c *sdkv1.Call) bool {
	if c == nil || !functionName(c.GetFunction()) {
		return false
	}
	if _, ok := e.knownEndpoints[c.GetEndpoint()]; !ok {
		return false
	}
	return c.GetExpiration() == nil || plainDuration(c.GetExpiration(), 0)
}

// knowEndpoints remembers the endpoints of calls protovalidate accepted.
// Called with e.mu held.
func (e *Engine) knowEndpoints(calls ...*sdkv1.Call) {
	for _, c := range calls {
		if len(e.knownEndpoints) >= maxKnownEndpoints {
			return
		}
		e.knownEndpoints[c.GetEndpoint()] = struct{}{}
	}
}

// validateCall checks a tail call like validatePoll checks a Poll. Called
// with e.mu held.
func (e *Engine) validateCall(c *sdkv1.Call) error {
	if e.surelyValidCall(c) {
		return nil
	}
	if err := e.validator.Validate(c); err != nil {
		return err
	}
	e.knowEndpoints(c)
	return nil
}

// plainDuration reports whether d is set, well formed, and in
// [least, maxPlainDuration].
func plainDuration(d *durationpb.Duration, least time.Duration) bool {
	if d == nil || d.CheckValid() != nil {
		return false
	}
	v := d.AsDuration()
	return v >= least && v <= maxPlainDuration
}

func inRange(v, lo, hi int32) bool { return v >= lo && v <= hi }

// functionName reports whether s matches ^[a-zA-Z_][a-zA-Z0-9_<>.]*$.
func functionName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		switch {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b == '_':
		case i > 0 && (b >= '0' && b <= '9' || b == '<' || b == '>' || b == '.'):
		default:
			return false
		}
	}
	return true
}
