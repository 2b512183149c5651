package scheduler

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"buf.build/go/protovalidate"
	"github.com/matryer/is"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/dispatchkit/dispatch/internal/endpointpolicy"
)

// TestValidationRules pins the protovalidate rules of Poll and Call that
// the checks by hand of validate.go assume: a new version of the protos
// with other rules fails here, and validate.go must follow.
func TestValidationRules(t *testing.T) {
	rules := func(md protoreflect.MessageDescriptor) map[string]string {
		out := map[string]string{"": string(must(protojson.Marshal(md.Options())))}
		for i := 0; i < md.Fields().Len(); i++ {
			f := md.Fields().Get(i)
			out[string(f.Name())] = string(must(protojson.Marshal(f.Options())))
		}
		for i := 0; i < md.Oneofs().Len(); i++ {
			o := md.Oneofs().Get(i)
			out["oneof "+string(o.Name())] = string(must(protojson.Marshal(o.Options())))
		}
		return out
	}
	tests := []struct {
		msg  proto.Message
		want map[string]string
	}{
		{&sdkv1.Poll{}, map[string]string{
			"":                      `{}`,
			"coroutine_state":       `{}`,
			"typed_coroutine_state": `{}`,
			"calls":                 `{}`,
			"max_wait":              `{"[buf.validate.field]":{"required":true,"duration":{"gte":"1s"}}}`,
			"max_results":           `{"[buf.validate.field]":{"required":true,"int32":{"lte":1000,"gte":1}}}`,
			"min_results":           `{"[buf.validate.field]":{"required":true,"int32":{"lte":1000,"gte":1}}}`,
			"oneof state":           `{}`,
		}},
		{&sdkv1.Call{}, map[string]string{
			"":               `{}`,
			"correlation_id": `{}`,
			"endpoint":       `{"[buf.validate.field]":{"string":{"uri":true}}}`,
			"function":       `{"[buf.validate.field]":{"required":true,"string":{"pattern":"^[a-zA-Z_][a-zA-Z0-9_<>.]*$"}}}`,
			"input":          `{}`,
			"expiration":     `{"[buf.validate.field]":{"duration":{"gte":"0s"}}}`,
			"version":        `{}`,
		}},
	}
	for _, tt := range tests {
		md := tt.msg.ProtoReflect().Descriptor()
		t.Run(string(md.Name()), func(t *testing.T) {
			is := is.New(t)
			got := rules(md)
			is.Equal(len(got), len(tt.want)) // fields
			for k, want := range tt.want {
				// protojson output is not byte-stable: compare parsed.
				is.Equal(compactJSON(t, got[k]), compactJSON(t, want)) // the rules validate.go assumes
			}
		})
	}
}

// TestValidationRulesDefaults pins what withDefaults relies on: the rules
// refuse a Poll without limits exactly on the three fields it fills in,
// and accept it once they are filled in.
func TestValidationRulesDefaults(t *testing.T) {
	is := is.New(t)
	v := testValidator(t).validator
	p := validPoll()
	p.MaxWait, p.MinResults, p.MaxResults = nil, 0, 0
	err := v.Validate(p)
	var verr *protovalidate.ValidationError
	is.True(errors.As(err, &verr))
	var fields []string
	for _, viol := range verr.Violations {
		fields = append(fields, protovalidate.FieldPathString(viol.Proto.GetField()))
	}
	slices.Sort(fields)
	is.Equal(fields, []string{"max_results", "max_wait", "min_results"}) // required by the rules
	is.NoErr(v.Validate(withDefaults(p)))                                // filled in by withDefaults
	q := validPoll()
	is.True(withDefaults(q) == q) // a poll with all its limits is validated as it is
}

func compactJSON(t *testing.T, s string) string {
	t.Helper()
	out := make([]byte, 0, len(s))
	inString := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '"' && (i == 0 || s[i-1] != '\\') {
			inString = !inString
		}
		if !inString && (c == ' ' || c == '\n' || c == '\t') {
			continue
		}
		out = append(out, c)
	}
	return string(out)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// testValidator returns an engine with only what validation needs, with
// the endpoint of validPoll known.
func testValidator(tb testing.TB) *Engine {
	v, err := protovalidate.New()
	if err != nil {
		tb.Fatal(err)
	}
	e := &Engine{validator: v, policy: testPolicy(tb), knownEndpoints: map[string]struct{}{}}
	e.knowEndpoints(&sdkv1.Call{Endpoint: "http://127.0.0.1:8000"})
	return e
}

// testPolicy allows loopback and https://x.
func testPolicy(tb testing.TB) *endpointpolicy.Policy {
	p, err := endpointpolicy.New("loopback", "https://x")
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func validPoll() *sdkv1.Poll {
	return &sdkv1.Poll{
		State:      &sdkv1.Poll_CoroutineState{CoroutineState: []byte("s")},
		MaxWait:    durationpb.New(time.Minute),
		MinResults: 1, MaxResults: 1,
		Calls: []*sdkv1.Call{{
			Function: "main.step_1<int>", Endpoint: "http://127.0.0.1:8000", CorrelationId: 1,
			Input: &anypb.Any{TypeUrl: "type.googleapis.com/google.protobuf.Int64Value", Value: []byte{8, 1}},
		}},
	}
}

// TestSurelyValid checks that the checks by hand accept the common valid
// poll, with or without its limits, and never a poll protovalidate refuses
// (its missing limits set to their defaults).
func TestSurelyValid(t *testing.T) {
	e := testValidator(t)
	tests := []struct {
		name   string
		change func(p *sdkv1.Poll)
		sure   bool // the check by hand accepts it
	}{
		{"valid", func(*sdkv1.Poll) {}, true},
		{"a sleep: no calls", func(p *sdkv1.Poll) { p.Calls = nil }, true},
		{"max_wait of 1s", func(p *sdkv1.Poll) { p.MaxWait = durationpb.New(time.Second) }, true},
		{"results at 1000", func(p *sdkv1.Poll) { p.MinResults, p.MaxResults = 1000, 1000 }, true},
		{"an expiration", func(p *sdkv1.Poll) { p.Calls[0].Expiration = durationpb.New(time.Hour) }, true},
		{"no max_wait", func(p *sdkv1.Poll) { p.MaxWait = nil }, true},
		{"no limits at all", func(p *sdkv1.Poll) { p.MaxWait, p.MinResults, p.MaxResults = nil, 0, 0 }, true},
		{"max_results 0: missing", func(p *sdkv1.Poll) { p.MaxResults = 0 }, true},
		{"min_results 0: missing", func(p *sdkv1.Poll) { p.MinResults = 0 }, true},
		{"function name of 256 bytes", func(p *sdkv1.Poll) { p.Calls[0].Function = strings.Repeat("f", 256) }, true},
		{"function name of 257 bytes", func(p *sdkv1.Poll) { p.Calls[0].Function = strings.Repeat("f", 257) }, false},
		{"max_wait under 1s", func(p *sdkv1.Poll) { p.MaxWait = durationpb.New(999 * time.Millisecond) }, false},
		{"max_wait of 0", func(p *sdkv1.Poll) { p.MaxWait = durationpb.New(0) }, false},
		{"max_wait of centuries", func(p *sdkv1.Poll) { p.MaxWait = &durationpb.Duration{Seconds: 300 * 365 * 86400} }, false},
		{"max_wait malformed", func(p *sdkv1.Poll) { p.MaxWait = &durationpb.Duration{Seconds: 5, Nanos: -1} }, false},
		{"max_results 1001", func(p *sdkv1.Poll) { p.MaxResults = 1001 }, false},
		{"max_results negative", func(p *sdkv1.Poll) { p.MaxResults = -1 }, false},
		{"min_results negative", func(p *sdkv1.Poll) { p.MinResults = -1 }, false},
		{"no function", func(p *sdkv1.Poll) { p.Calls[0].Function = "" }, false},
		{"function starting with a digit", func(p *sdkv1.Poll) { p.Calls[0].Function = "1step" }, false},
		{"function with a dash", func(p *sdkv1.Poll) { p.Calls[0].Function = "a-b" }, false},
		{"function not ASCII", func(p *sdkv1.Poll) { p.Calls[0].Function = "étape" }, false},
		{"function with a newline", func(p *sdkv1.Poll) { p.Calls[0].Function = "step\n" }, false},
		{"endpoint not seen before", func(p *sdkv1.Poll) { p.Calls[0].Endpoint = "http://127.0.0.1:9000" }, false},
		{"endpoint not a URI", func(p *sdkv1.Poll) { p.Calls[0].Endpoint = "http://[::1" }, false},
		{"negative expiration", func(p *sdkv1.Poll) { p.Calls[0].Expiration = durationpb.New(-time.Second) }, false},
		{"expiration of centuries", func(p *sdkv1.Poll) {
			p.Calls[0].Expiration = &durationpb.Duration{Seconds: math.MaxInt64 / int64(time.Second)}
		}, false},
		{"a nil call", func(p *sdkv1.Poll) { p.Calls = append(p.Calls, nil) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			p := validPoll()
			tt.change(p)
			sure := e.surelyValidPoll(p)
			is.Equal(sure, tt.sure)
			if sure {
				is.NoErr(e.validator.Validate(withDefaults(p))) // protovalidate agrees
			}
		})
	}
}

// TestSurelyValidDispatch checks that the checks by hand accept the
// common valid DispatchRequest and never one that protovalidate or
// CheckCall refuses, and that the endpoints they know are those the slow
// path accepted.
func TestSurelyValidDispatch(t *testing.T) {
	valid := func() *sdkv1.Call {
		return &sdkv1.Call{Function: "main.step_1<int>", Endpoint: "http://127.0.0.1:8000", Input: nil}
	}
	tests := []struct {
		name  string
		calls func() []*sdkv1.Call
		sure  bool
	}{
		{"one valid call", func() []*sdkv1.Call { return []*sdkv1.Call{valid()} }, true},
		{"two, one with an expiration", func() []*sdkv1.Call {
			c := valid()
			c.Expiration = durationpb.New(time.Hour)
			return []*sdkv1.Call{valid(), c}
		}, true},
		{"no calls", func() []*sdkv1.Call { return nil }, false},
		{"a nil call", func() []*sdkv1.Call { return []*sdkv1.Call{valid(), nil} }, false},
		{"no endpoint", func() []*sdkv1.Call { c := valid(); c.Endpoint = ""; return []*sdkv1.Call{c} }, false},
		{"endpoint not seen before", func() []*sdkv1.Call { c := valid(); c.Endpoint = "http://127.0.0.1:9000"; return []*sdkv1.Call{c} }, false},
		{"bridge endpoint", func() []*sdkv1.Call { c := valid(); c.Endpoint = "bridge://x"; return []*sdkv1.Call{c} }, false},
		{"bad function", func() []*sdkv1.Call { c := valid(); c.Function = "bad name"; return []*sdkv1.Call{valid(), c} }, false},
		{"function name of 257 bytes", func() []*sdkv1.Call { c := valid(); c.Function = strings.Repeat("f", 257); return []*sdkv1.Call{c} }, false},
		{"negative expiration", func() []*sdkv1.Call {
			c := valid()
			c.Expiration = durationpb.New(-time.Second)
			return []*sdkv1.Call{c}
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			e := testValidator(t)
			calls := tt.calls()
			sure := e.SurelyValidDispatch(calls)
			is.Equal(sure, tt.sure)
			if sure {
				is.NoErr(e.validator.Validate(&sdkv1.DispatchRequest{Calls: calls})) // protovalidate agrees
				for _, c := range calls {
					is.NoErr(e.CheckCall(c)) // and so does CheckCall
				}
			}
		})
	}
	// An endpoint is known once the slow path accepted it.
	is := is.New(t)
	e := testValidator(t)
	c := &sdkv1.Call{Function: "f", Endpoint: "https://x/run"}
	is.True(!e.SurelyValidDispatch([]*sdkv1.Call{c}))
	e.KnowEndpoints([]*sdkv1.Call{c})
	is.True(e.SurelyValidDispatch([]*sdkv1.Call{c}))
}

// TestValidatePoll checks what a Poll may leave out (the defaults), and
// what is refused: values present and out of range, min_results above
// max_results, too many calls, long function names, endpoints the policy
// refuses.
func TestValidatePoll(t *testing.T) {
	tests := []struct {
		name     string
		change   func(p *sdkv1.Poll)
		min, max int32  // the limits the call waits with
		want     string // in the error; "" when valid
	}{
		{"all set", func(*sdkv1.Poll) {}, 1, 1, ""},
		{"like dispatch-py: no max_wait", func(p *sdkv1.Poll) { p.MaxWait, p.MinResults, p.MaxResults = nil, 1, 10 }, 1, 10, ""},
		{"no limits at all", func(p *sdkv1.Poll) { p.MaxWait, p.MinResults, p.MaxResults = nil, 0, 0 }, DefaultMinResults, DefaultMaxResults, ""},
		{"only min_results", func(p *sdkv1.Poll) { p.MinResults, p.MaxResults = 20, 0 }, 20, DefaultMaxResults, ""},
		{"only max_results", func(p *sdkv1.Poll) { p.MinResults, p.MaxResults = 0, 5 }, DefaultMinResults, 5, ""},
		{"no calls, no max_wait", func(p *sdkv1.Poll) { p.Calls, p.MaxWait = nil, nil }, 1, 1, ""},
		{"no max_wait, slow path", func(p *sdkv1.Poll) { p.MaxWait = nil; p.Calls[0].Endpoint = "http://127.0.0.1:9000" }, 1, 1, ""},
		{"function name of 256 bytes", func(p *sdkv1.Poll) { p.Calls[0].Function = strings.Repeat("f", 256) }, 1, 1, ""},
		{"max_wait under 1s", func(p *sdkv1.Poll) { p.MaxWait = durationpb.New(time.Millisecond) }, 0, 0, "max_wait"},
		{"max_wait of 0s, present", func(p *sdkv1.Poll) { p.MaxWait = durationpb.New(0) }, 0, 0, "max_wait"},
		{"max_wait negative", func(p *sdkv1.Poll) { p.MaxWait = durationpb.New(-time.Second) }, 0, 0, "max_wait"},
		{"min_results negative", func(p *sdkv1.Poll) { p.MinResults = -1 }, 0, 0, "min_results"},
		{"max_results 1001", func(p *sdkv1.Poll) { p.MaxResults = 1001 }, 0, 0, "max_results"},
		{"max_results 1001, no max_wait", func(p *sdkv1.Poll) { p.MaxWait, p.MaxResults = nil, 1001 }, 0, 0, "max_results"},
		{"min above max", func(p *sdkv1.Poll) { p.MinResults, p.MaxResults = 5, 2 }, 0, 0, "min_results (5) is above max_results (2)"},
		{"min above max, no max_wait", func(p *sdkv1.Poll) { p.MaxWait, p.MinResults, p.MaxResults = nil, 5, 2 }, 0, 0, "min_results (5) is above max_results (2)"},
		{"1001 calls", func(p *sdkv1.Poll) {
			for range 1000 {
				p.Calls = append(p.Calls, proto.Clone(p.Calls[0]).(*sdkv1.Call))
			}
		}, 0, 0, "1001 calls, at most 1000"},
		{"function name of 300 bytes", func(p *sdkv1.Poll) {
			p.Calls = append(p.Calls, proto.Clone(p.Calls[0]).(*sdkv1.Call))
			p.Calls[1].Function = strings.Repeat("f", 300)
		}, 0, 0, "call 1: function name is 300 bytes, at most 256"},
		{"endpoint refused", func(p *sdkv1.Poll) { p.Calls[0].Endpoint = "http://169.254.169.254/latest" }, 0, 0, "call 0: endpoint \"http://169.254.169.254/latest\" is not allowed"},
		{"credentials refused", func(p *sdkv1.Poll) { p.Calls[0].Endpoint = "http://u:pw@127.0.0.1:8000" }, 0, 0, "credentials"},
		{"invalid function", func(p *sdkv1.Poll) { p.Calls[0].Function = "bad name" }, 0, 0, "function"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			e := testValidator(t)
			p := validPoll()
			tt.change(p)
			err := e.validatePoll(p)
			if tt.want != "" {
				is.True(err != nil)
				is.True(strings.Contains(err.Error(), tt.want)) // says what is wrong
				return
			}
			is.NoErr(err)
			lo, hi := pollLimits(p)
			is.Equal(lo, tt.min)
			is.Equal(hi, tt.max)
		})
	}
}

// FuzzSurelyValid checks on arbitrary polls that what the checks by hand
// accept, protovalidate accepts (missing limits set to their defaults),
// and that leaving values out is the only tolerance: a poll with all its
// limits is valid exactly when protovalidate accepts it, its min_results
// is not above its max_results, and its calls pass CheckCall.
func FuzzSurelyValid(f *testing.F) {
	f.Add("step", "http://127.0.0.1:8000", true, int64(60), int32(0), int32(1), int32(1), true, int64(0), int32(0))
	f.Add("a<b>.c", "https://x/y", true, int64(1), int32(0), int32(1000), int32(1), true, int64(5), int32(1))
	f.Add("step", "http://127.0.0.1:8000", false, int64(0), int32(0), int32(0), int32(10), false, int64(0), int32(0))
	f.Add("step", "http://127.0.0.1:9", false, int64(0), int32(0), int32(3), int32(2), false, int64(0), int32(0))
	v := testValidator(f).validator
	policy := testPolicy(f)
	f.Fuzz(func(t *testing.T, function, endpoint string, hasWait bool, waitS int64, waitN, minR, maxR int32, hasExp bool, expS int64, expN int32) {
		e := &Engine{validator: v, policy: policy, knownEndpoints: map[string]struct{}{}}
		// Remember the endpoint only as validation would: if protovalidate
		// and the policy accept a call with it.
		probe := &sdkv1.Call{Function: "f", Endpoint: endpoint}
		if e.validator.Validate(probe) == nil && e.CheckCall(probe) == nil {
			e.knowEndpoints(probe)
		}
		c := &sdkv1.Call{Function: function, Endpoint: endpoint}
		if hasExp {
			c.Expiration = &durationpb.Duration{Seconds: expS, Nanos: expN}
		}
		p := &sdkv1.Poll{MinResults: minR, MaxResults: maxR, Calls: []*sdkv1.Call{c}}
		if hasWait {
			p.MaxWait = &durationpb.Duration{Seconds: waitS, Nanos: waitN}
		}
		if e.surelyValidPoll(p) {
			if err := e.validator.Validate(withDefaults(p)); err != nil {
				t.Fatalf("accepted by hand, refused by protovalidate: %v", err)
			}
			if err := e.CheckCall(c); err != nil {
				t.Fatalf("accepted by hand, refused by CheckCall: %v", err)
			}
		}
		if e.surelyValidCall(c) {
			if err := e.validator.Validate(c); err != nil {
				t.Fatalf("call accepted by hand, refused by protovalidate: %v", err)
			}
		}
		if e.SurelyValidDispatch([]*sdkv1.Call{c}) {
			if err := e.validator.Validate(&sdkv1.DispatchRequest{Calls: []*sdkv1.Call{c}}); err != nil {
				t.Fatalf("dispatch accepted by hand, refused by protovalidate: %v", err)
			}
			if err := e.CheckCall(c); err != nil {
				t.Fatalf("dispatch accepted by hand, refused by CheckCall: %v", err)
			}
		}
		if hasWait && minR != 0 && maxR != 0 {
			want := e.validator.Validate(p) == nil && minR <= maxR && e.CheckCall(c) == nil
			if got := e.validatePoll(p) == nil; got != want {
				t.Fatalf("validatePoll accepts: %v, protovalidate and the other rules: %v", got, want)
			}
		}
	})
}

// BenchmarkValidatePoll measures the check of a Poll on the path of every
// step of a workflow: the fast path of a valid poll with a known endpoint,
// with its limits and without (as dispatch-py sends it).
func BenchmarkValidatePoll(b *testing.B) {
	tests := []struct {
		name   string
		change func(p *sdkv1.Poll)
	}{
		{"all limits", func(*sdkv1.Poll) {}},
		{"no max_wait", func(p *sdkv1.Poll) { p.MaxWait, p.MaxResults = nil, 10 }},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			e := testValidator(b)
			p := validPoll()
			tt.change(p)
			b.ReportAllocs()
			for b.Loop() {
				if err := e.validatePoll(p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
