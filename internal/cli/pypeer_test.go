package cli_test

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/matryer/is"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/dispatchkit/dispatch/internal/signature"
)

// A conformance test against an endpoint that speaks the protocol the way
// dispatch-py (the Python SDK) does, through `dispatch test`:
//
//   - its handler reads the raw protobuf body whatever the content type,
//     verifies the signature, and answers application/proto;
//   - inputs, outputs and coroutine states are opaque Any values of its own
//     type (pickles, in Python), which the server must carry unchanged;
//   - a coroutine's state goes in Poll.typed_coroutine_state and must come
//     back byte for byte in PollResult.typed_coroutine_state;
//   - polls never set max_wait; min_results is 1 and max_results is
//     max(1, min(outstanding calls, 10)), so a Gather of 20 is one poll of
//     20 calls and then polls with no calls until every result is in;
//   - correlation ids are coroutine id << 32 | call id.
//
// The workflows are the ones a Python user writes first: a sequence of
// awaits, a gather of 20, a child that fails with a temporary error and
// then succeeds, and a child that fails for good (caught by the parent, or
// not).

// pickleURL is the type URL of dispatch-py's pickled values.
const pickleURL = "buf.build/stealthrocket/dispatch-proto/dispatch.sdk.python.v1.Pickled"

// pickle wraps v as dispatch-py wraps a pickled Python value: opaque
// bytes under the SDK's own type URL (here JSON stands in for the pickle).
func pickle(v any) *anypb.Any {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return &anypb.Any{TypeUrl: pickleURL, Value: b}
}

func unpickle(a *anypb.Any, v any) error {
	if a.GetTypeUrl() != pickleURL {
		return fmt.Errorf("value of type %q, want %q", a.GetTypeUrl(), pickleURL)
	}
	return json.Unmarshal(a.GetValue(), v)
}

// pyState is the scheduler state a dispatch-py coroutine suspends with.
type pyState struct {
	Version     string         `json:"version"`
	Main        string         `json:"main"`
	Input       int            `json:"input"`
	Step        int            `json:"step"`
	Outstanding int            `json:"outstanding"`
	NextCallID  int            `json:"next_call_id"`
	Results     map[uint64]int `json:"results,omitempty"`
}

const pyVersion = "3.11.7 (main)"

// pyEndpoint is the scripted dispatch-py endpoint.
type pyEndpoint struct {
	srv *httptest.Server

	mu       sync.Mutex
	verifier *signature.Verifier
	issued   map[[32]byte]bool // digests of the states handed out
	attempts map[string]int    // Run requests per dispatch id
	problems []string          // protocol violations seen
}

func newPyEndpoint(t *testing.T) *pyEndpoint {
	p := &pyEndpoint{issued: map[[32]byte]bool{}, attempts: map[string]int{}}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serveHTTP))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *pyEndpoint) setKey(t *testing.T, key string) {
	pub, err := signature.ParsePublicKey(key)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.verifier = signature.NewVerifier(pub)
	p.mu.Unlock()
}

func (p *pyEndpoint) problem(format string, args ...any) {
	p.mu.Lock()
	p.problems = append(p.problems, fmt.Sprintf(format, args...))
	p.mu.Unlock()
}

func (p *pyEndpoint) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/dispatch.sdk.v1.FunctionService/Run" {
		http.NotFound(w, r)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	v := p.verifier
	p.mu.Unlock()
	if v == nil {
		http.Error(w, "no verification key yet", http.StatusForbidden)
		return
	}
	if err := v.Verify(r, body); err != nil {
		p.problem("signature: %v", err)
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	var req sdkv1.RunRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		p.problem("body: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	res := p.run(&req)
	out, err := proto.Marshal(res)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/proto")
	_, _ = w.Write(out)
}

// run is the function service: a few plain functions and the coroutines.
func (p *pyEndpoint) run(req *sdkv1.RunRequest) *sdkv1.RunResponse {
	p.mu.Lock()
	p.attempts[req.GetDispatchId()]++
	attempt := p.attempts[req.GetDispatchId()]
	p.mu.Unlock()
	switch fn := req.GetFunction(); fn {
	case "double":
		var n int
		if err := unpickle(req.GetInput(), &n); err != nil {
			return pyFail(sdkv1.Status_STATUS_INVALID_ARGUMENT, "TypeError", err.Error())
		}
		return pyReturn(2 * n)
	case "flaky":
		if attempt == 1 {
			return pyFail(sdkv1.Status_STATUS_TEMPORARY_ERROR, "ConnectionError", "try again")
		}
		var s string
		_ = unpickle(req.GetInput(), &s)
		return pyReturn(s + "-ok")
	case "broken":
		return pyFail(sdkv1.Status_STATUS_PERMANENT_ERROR, "ValueError", "something went wrong!")
	case "sequence", "gather20", "retry", "caught", "uncaught":
		return p.coroutine(req)
	default:
		return pyFail(sdkv1.Status_STATUS_NOT_FOUND, "KeyError", fn)
	}
}

func pyReturn(v any) *sdkv1.RunResponse {
	return &sdkv1.RunResponse{
		Status:    sdkv1.Status_STATUS_OK,
		Directive: &sdkv1.RunResponse_Exit{Exit: &sdkv1.Exit{Result: &sdkv1.CallResult{Output: pickle(v)}}},
	}
}

func pyFail(s sdkv1.Status, typ, msg string) *sdkv1.RunResponse {
	return &sdkv1.RunResponse{
		Status:    s,
		Directive: &sdkv1.RunResponse_Exit{Exit: &sdkv1.Exit{Result: &sdkv1.CallResult{Error: &sdkv1.Error{Type: typ, Message: msg}}}},
	}
}

// correlation is dispatch-py's correlation id: the coroutine's id (0, the
// main coroutine) in the high half, the call's id in the low half.
func correlation(coroutine, call int) uint64 { return uint64(coroutine)<<32 | uint64(call) }

// coroutine runs one round of the coroutine scheduler: it starts the main
// coroutine, or rebuilds it from the echoed state and hands it the
// results, and answers with an exit or a poll.
func (p *pyEndpoint) coroutine(req *sdkv1.RunRequest) *sdkv1.RunResponse {
	var st pyState
	var results []*sdkv1.CallResult
	if in := req.GetInput(); in != nil {
		if err := unpickle(in, &st.Input); err != nil {
			return pyFail(sdkv1.Status_STATUS_INVALID_ARGUMENT, "ValueError", "incorrect input for entry point")
		}
		st.Version, st.Main, st.NextCallID, st.Results = pyVersion, req.GetFunction(), 1, map[uint64]int{}
	} else {
		pr := req.GetPollResult()
		typed := pr.GetTypedCoroutineState()
		p.mu.Lock()
		known := typed != nil && p.issued[sha256.Sum256(typed.GetValue())]
		p.mu.Unlock()
		if !known || typed.GetTypeUrl() != pickleURL {
			p.problem("%s: the state was not echoed (typed %v, untyped %d bytes)", req.GetFunction(), typed, len(pr.GetCoroutineState()))
			return pyFail(sdkv1.Status_STATUS_INCOMPATIBLE_STATE, "IncompatibleStateError", "state")
		}
		if err := unpickle(typed, &st); err != nil || st.Version != pyVersion || st.Main != req.GetFunction() {
			p.problem("%s: state %q does not decode", req.GetFunction(), typed.GetValue())
			return pyFail(sdkv1.Status_STATUS_INCOMPATIBLE_STATE, "IncompatibleStateError", "state")
		}
		if pr.GetError() != nil {
			p.problem("%s: poll error %v", req.GetFunction(), pr.GetError())
			return pyFail(sdkv1.Status_STATUS_PERMANENT_ERROR, "RuntimeError", pr.GetError().GetMessage())
		}
		if st.Results == nil {
			st.Results = map[uint64]int{}
		}
		results = pr.GetResults()
		if limit := max(1, min(st.Outstanding, 10)); len(results) > limit {
			p.problem("%s: %d results in one resume, asked for at most %d", req.GetFunction(), len(results), limit)
		}
		if len(results) == 0 {
			p.problem("%s: resumed with no results (no max_wait was set)", req.GetFunction())
		}
		st.Outstanding -= len(results)
	}

	var calls []*sdkv1.Call
	call := func(function string, input any) {
		calls = append(calls, &sdkv1.Call{
			CorrelationId: correlation(0, st.NextCallID),
			Function:      function,
			Input:         pickle(input),
		})
		st.NextCallID++
		st.Outstanding++
	}
	// The result of the one call a sequential coroutine awaits.
	one := func() (*sdkv1.CallResult, bool) {
		if len(results) != 1 {
			return nil, false
		}
		if want := correlation(0, st.NextCallID-1); results[0].GetCorrelationId() != want {
			p.problem("%s: result for correlation id %#x, want %#x", st.Main, results[0].GetCorrelationId(), want)
		}
		return results[0], true
	}

	switch st.Main {
	case "sequence": // three awaits in a row: double(double(double(x)))
		if r, ok := one(); ok {
			if err := unpickle(r.GetOutput(), &st.Input); err != nil {
				return pyFail(sdkv1.Status_STATUS_PERMANENT_ERROR, "TypeError", err.Error())
			}
			st.Step++
		}
		if st.Step == 3 {
			return pyReturn(st.Input)
		}
		call("double", st.Input)
	case "gather20": // await gather(*(double(x+i) for i in range(20)))
		if st.Step == 0 {
			for i := range 20 {
				call("double", st.Input+i)
			}
			st.Step = 1
			break
		}
		for _, r := range results {
			var v int
			if err := unpickle(r.GetOutput(), &v); err != nil {
				return pyFail(sdkv1.Status_STATUS_PERMANENT_ERROR, "TypeError", err.Error())
			}
			if _, dup := st.Results[r.GetCorrelationId()]; dup {
				p.problem("gather20: result %#x delivered twice", r.GetCorrelationId())
			}
			st.Results[r.GetCorrelationId()] = v
		}
		if st.Outstanding == 0 {
			sum := 0
			for i := range 20 {
				v, ok := st.Results[correlation(0, i+1)]
				if !ok {
					p.problem("gather20: no result for call %d", i+1)
				}
				sum += v
			}
			return pyReturn(sum)
		}
	case "retry": // await flaky("k"), which fails once with a temporary error
		if r, ok := one(); ok {
			var s string
			if err := unpickle(r.GetOutput(), &s); err != nil {
				return pyFail(sdkv1.Status_STATUS_PERMANENT_ERROR, "TypeError", fmt.Sprintf("%v (error %v)", err, r.GetError()))
			}
			return pyReturn(s)
		}
		call("flaky", "k")
	case "caught", "uncaught": // try: await broken() except ValueError as e: ...
		if r, ok := one(); ok {
			e := r.GetError()
			if e == nil {
				return pyFail(sdkv1.Status_STATUS_PERMANENT_ERROR, "AssertionError", "broken() returned")
			}
			if st.Main == "uncaught" {
				return pyFail(sdkv1.Status_STATUS_PERMANENT_ERROR, e.GetType(), e.GetMessage())
			}
			return pyReturn("caught " + e.GetType() + ": " + e.GetMessage())
		}
		call("broken", nil)
	}

	state := pickle(st)
	p.mu.Lock()
	p.issued[sha256.Sum256(state.GetValue())] = true
	p.mu.Unlock()
	return &sdkv1.RunResponse{
		Status: sdkv1.Status_STATUS_OK,
		Directive: &sdkv1.RunResponse_Poll{Poll: &sdkv1.Poll{
			State:      &sdkv1.Poll_TypedCoroutineState{TypedCoroutineState: state},
			Calls:      calls,
			MinResults: int32(max(1, min(st.Outstanding, 1))),
			MaxResults: int32(max(1, min(st.Outstanding, 10))),
			// No MaxWait: dispatch-py leaves it unset.
		}},
	}
}

func TestDispatchPyEndpoint(t *testing.T) {
	ep := newPyEndpoint(t)
	addr, key, _, stop := runTest(t, ep.srv.URL, "--port", "0", "--state", t.TempDir())
	ep.setKey(t, key)

	tests := []struct {
		name     string
		function string
		input    any
		status   sdkv1.Status
		output   any    // decoded into the type of output
		errType  string // the error's type, when status is not OK
		attempts int    // Run requests of the root call, when not 0
	}{
		{name: "sequence of awaits", function: "sequence", input: 3, status: sdkv1.Status_STATUS_OK, output: 24, attempts: 4},
		{name: "gather of 20", function: "gather20", input: 1, status: sdkv1.Status_STATUS_OK, output: 2 * (20*1 + 190)},
		{name: "temporary error then success", function: "retry", input: 0, status: sdkv1.Status_STATUS_OK, output: "k-ok", attempts: 2},
		{name: "permanent error caught", function: "caught", input: 0, status: sdkv1.Status_STATUS_OK, output: "caught ValueError: something went wrong!", attempts: 2},
		{name: "permanent error raised", function: "uncaught", input: 0, status: sdkv1.Status_STATUS_PERMANENT_ERROR, errType: "ValueError", attempts: 2},
	}
	// Dispatched together, as one request, then waited for one by one.
	calls := make([]*sdkv1.Call, len(tests))
	for i, tt := range tests {
		calls[i] = &sdkv1.Call{Function: tt.function, Input: pickle(tt.input)}
	}
	ids := dispatchCalls(t, addr, "test", calls)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			o, err := fetchResult(t, addr, ids[i])
			is.NoErr(err)
			is.Equal(o.Status, tt.status)
			if tt.status == sdkv1.Status_STATUS_OK {
				is.Equal(o.Result.GetError(), nil)
				switch want := tt.output.(type) {
				case int:
					var got int
					is.NoErr(unpickle(o.Result.GetOutput(), &got))
					is.Equal(got, want)
				case string:
					var got string
					is.NoErr(unpickle(o.Result.GetOutput(), &got))
					is.Equal(got, want)
				}
			} else {
				is.Equal(o.Result.GetError().GetType(), tt.errType)
			}
			if tt.attempts != 0 {
				ep.mu.Lock()
				got := ep.attempts[ids[i]]
				ep.mu.Unlock()
				is.Equal(got, tt.attempts) // one Run request per step, no retry
			}
		})
	}
	is := is.New(t)
	ep.mu.Lock()
	problems := ep.problems
	ep.mu.Unlock()
	is.Equal(problems, nil) // what the endpoint saw is what dispatch-py expects
	is.Equal(stop(), 0)
}
