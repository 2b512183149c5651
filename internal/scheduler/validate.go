package scheduler

import (
	"fmt"
	"strings"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/dispatchkit/dispatch/internal/endpointpolicy"
	"github.com/dispatchkit/dispatch/internal/registry"
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
// protovalidate and the endpoint policy accepted before (the URI rule is
// RFC 3986, not redone by hand). Anything else, valid or not, goes to
// protovalidate, which gives the error. TestValidationRules fails if the
// protos' rules change.
//
// Real SDKs leave the limits of a Poll out (dispatch-py never sets
// max_wait), so a Poll is validated with its missing values replaced by
// their defaults (withDefaults): only values that are present and out of
// range are refused. Beside the rules of the protos, the engine refuses a
// Poll whose min_results is above its max_results (after defaults), more
// than maxPollCalls calls, function names over MaxFunctionName bytes and
// endpoints the policy refuses.

// Defaults of the limits a Poll leaves out (0, or no max_wait).
const (
	// DefaultMinResults: the caller resumes as soon as one result is in.
	DefaultMinResults = 1
	// DefaultMaxResults: a resume carries every ready result, up to the
	// protocol's limit (and the byte limit of a resume, see fitting).
	DefaultMaxResults = 1000
	// A missing max_wait is no time limit: the caller resumes when
	// min_results results are in, or fails with TIMEOUT when it expires
	// first (noDeadline).
)

// noDeadline is the poll deadline of a Poll without max_wait: never. It
// is stored as such in the call's row (PollDeadline, unix nanoseconds
// of the year 2262), so that a recovered call keeps waiting only for its
// results and its expiration.
const noDeadline = int64(1<<63 - 1)

// MaxFunctionName is the longest function name of a call, in bytes: the
// longest name the SDK registers.
const MaxFunctionName = registry.MaxNameBytes

// minMaxWait is the smallest max_wait of the protos' rules; it stands for a
// missing max_wait when a Poll is handed to protovalidate.
var minMaxWait = durationpb.New(time.Second)

const (
	// maxKnownEndpoints bounds the endpoints remembered as valid URIs.
	maxKnownEndpoints = 1024
	// maxPlainDuration bounds the durations checked by hand, far inside
	// the range CEL can represent (longer ones go to protovalidate).
	maxPlainDuration = 10 * 365 * 24 * time.Hour
)

// surelyValidPoll reports whether p (its missing limits taken as their
// defaults, see withDefaults) passes the protovalidate rules and its
// calls pass CheckCall, when that is plain to see. Called with e.mu held.
func (e *Engine) surelyValidPoll(p *sdkv1.Poll) bool {
	if w := p.GetMaxWait(); w != nil && !plainDuration(w, time.Second) ||
		!inRange(p.GetMaxResults(), 0, 1000) || !inRange(p.GetMinResults(), 0, 1000) {
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

// SurelyValidDispatch reports whether the calls of a DispatchRequest
// certainly pass its protovalidate rules and CheckCall, as
// surelyValidPoll does for a Poll: the server then skips protovalidate,
// which was 8% of the CPU of `dispatch bench` (b) once the request no
// longer went through HTTP. Beside the rules of each Call, a
// DispatchRequest has two of its own (CEL over all its calls): every call
// has an endpoint, and it starts with http://, https://, bridge:// or
// arn:aws:lambda; only http:// and https:// are taken here (the endpoint
// policy allows no other). An empty request is left to the slow path.
// The server calls KnowEndpoints once the slow path accepted a request.
func (e *Engine) SurelyValidDispatch(calls []*sdkv1.Call) bool {
	if len(calls) == 0 {
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, c := range calls {
		if ep := c.GetEndpoint(); !strings.HasPrefix(ep, "http://") && !strings.HasPrefix(ep, "https://") {
			return false
		}
		if !e.surelyValidCall(c) {
			return false
		}
	}
	return true
}

// KnowEndpoints remembers the endpoints of calls that protovalidate and
// CheckCall accepted (see SurelyValidDispatch).
func (e *Engine) KnowEndpoints(calls []*sdkv1.Call) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.knowEndpoints(calls...)
}

// withDefaults returns p as protovalidate must see it: its missing limits
// set to their defaults, a missing max_wait to the least the rules allow.
// The result shares p's calls and has no state (which has no rules).
func withDefaults(p *sdkv1.Poll) *sdkv1.Poll {
	if p.GetMaxWait() != nil && p.GetMinResults() != 0 && p.GetMaxResults() != 0 {
		return p
	}
	q := &sdkv1.Poll{Calls: p.GetCalls(), MaxWait: p.GetMaxWait(), MinResults: p.GetMinResults(), MaxResults: p.GetMaxResults()}
	if q.MaxWait == nil {
		q.MaxWait = minMaxWait
	}
	if q.MinResults == 0 {
		q.MinResults = DefaultMinResults
	}
	if q.MaxResults == 0 {
		q.MaxResults = DefaultMaxResults
	}
	return q
}

// pollLimits returns the limits of a valid p, defaults applied.
func pollLimits(p *sdkv1.Poll) (minResults, maxResults int32) {
	minResults, maxResults = p.GetMinResults(), p.GetMaxResults()
	if minResults == 0 {
		minResults = DefaultMinResults
	}
	if maxResults == 0 {
		maxResults = DefaultMaxResults
	}
	return minResults, maxResults
}

// CheckCall checks what the protovalidate rules of a Call do not: the
// length of its function name and its endpoint against the endpoint
// policy. The server checks every call of a DispatchRequest with it; the
// engine checks the calls of polls and tail calls.
func (e *Engine) CheckCall(c *sdkv1.Call) error { return CheckCall(e.policy, c) }

// CheckCall is [Engine.CheckCall] with the endpoint policy p (nil allows
// every endpoint), for a server that has no engine at hand (a replica
// that owns no partition yet).
func CheckCall(p *endpointpolicy.Policy, c *sdkv1.Call) error {
	if n := len(c.GetFunction()); n > MaxFunctionName {
		return fmt.Errorf("function name is %d bytes, at most %d", n, MaxFunctionName)
	}
	if p != nil {
		return p.Check(c.GetEndpoint())
	}
	return nil
}

// knowEndpoints remembers the endpoints of calls protovalidate and the
// endpoint policy accepted. Called with e.mu held.
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
	if err := e.CheckCall(c); err != nil {
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

// functionName reports whether s matches ^[a-zA-Z_][a-zA-Z0-9_<>.]*$
// and is at most MaxFunctionName bytes long.
func functionName(s string) bool {
	if s == "" || len(s) > MaxFunctionName {
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
