package flow_test

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/dispatchkit/dispatch/flow"
	"github.com/dispatchkit/dispatch/internal/flowrun"
	"github.com/dispatchkit/dispatch/internal/status"
	"github.com/dispatchkit/dispatch/serde"
	"github.com/fxamacker/cbor/v2"
	"github.com/matryer/is"
	"google.golang.org/protobuf/types/known/anypb"
)

var update = flag.Bool("update", false, "rewrite the golden state files in testdata/ (never for a released format version)")

// The continuations below are part of the compatibility promise: the golden
// states in testdata/ refer to them by name. Do not rename them.

type Cart struct {
	ID    string
	Items []string
	Total float64
}

var (
	goldenPriced = flow.ThenWith("golden.priced", func(ctx *flow.Ctx, c Cart, prices []float64) flow.Step[Cart] {
		for _, p := range prices {
			c.Total += p
		}
		return flow.Done(c)
	})
	goldenWrapped = flow.ThenWith("golden.wrapped", func(ctx *flow.Ctx, tag string, c Cart) flow.Step[string] {
		return flow.Done(tag + ":" + c.ID)
	})
	goldenSlept = flow.Then("golden.slept", func(ctx *flow.Ctx, _ struct{}) flow.Step[string] {
		return flow.Done("awake")
	})
)

// goldenCases are flows suspended once; their state is kept in testdata and
// must resume, with the given results, to the given output in every later
// build.
var goldenCases = []struct {
	file    string
	start   func(*flow.Ctx, Cart) flow.Step[string]
	input   Cart
	results func(poll *sdkv1.Poll) []*sdkv1.CallResult
	want    string
}{
	{
		file: "v1_gather_nested.cbor",
		start: func(ctx *flow.Ctx, c Cart) flow.Step[string] {
			calls := make([]flow.Call[float64], len(c.Items))
			for i, it := range c.Items {
				calls[i] = flow.NewCall[float64]("price", it)
			}
			return flow.Bind(flow.Gather(calls, goldenPriced.With(c)), goldenWrapped.With("cart"))
		},
		input: Cart{ID: "c-1", Items: []string{"apple", "pear"}},
		results: func(p *sdkv1.Poll) []*sdkv1.CallResult {
			var rs []*sdkv1.CallResult
			for i, c := range p.GetCalls() {
				rs = append(rs, &sdkv1.CallResult{CorrelationId: c.GetCorrelationId(), Output: mustAny(1.5 * float64(i+1))})
			}
			return rs
		},
		want: "cart:c-1",
	},
	{
		file: "v1_sleep.cbor",
		start: func(ctx *flow.Ctx, c Cart) flow.Step[string] {
			return flow.Sleep(time.Hour, goldenSlept)
		},
		results: func(*sdkv1.Poll) []*sdkv1.CallResult { return nil },
		want:    "awake",
	},
}

func mustAny(v any) *anypb.Any {
	a, err := serde.Marshal(v)
	if err != nil {
		panic(err)
	}
	return a
}

var goldenStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// goldenConfig is the interpreter's configuration at now.
func goldenConfig(now time.Time) flowrun.Config {
	return flowrun.Config{Now: func() time.Time { return now }}
}

// goldenRun starts the flow start with in at now, as the first RunRequest
// of a registered flow does.
func goldenRun(now time.Time, start func(*flow.Ctx, Cart) flow.Step[string], in *anypb.Any) *sdkv1.RunResponse {
	first := func(c any, input *anypb.Any) any {
		cart, err := flowrun.Input[Cart]("golden", input)
		if err != nil {
			return flow.Fail[string](err)
		}
		return start(c.(*flow.Ctx), cart)
	}
	req := &sdkv1.RunRequest{Function: "golden", DispatchId: "g-1", Directive: &sdkv1.RunRequest_Input{Input: in}}
	return flowrun.Serve(context.Background(), goldenConfig(now), req, first)
}

// goldenResume resumes a flow with pr at now.
func goldenResume(now time.Time, pr *sdkv1.PollResult) *sdkv1.RunResponse {
	req := &sdkv1.RunRequest{Function: "golden", DispatchId: "g-1", Directive: &sdkv1.RunRequest_PollResult{PollResult: pr}}
	return flowrun.Serve(context.Background(), goldenConfig(now), req, nil)
}

func TestGoldenStates(t *testing.T) {
	for _, tt := range goldenCases {
		t.Run(tt.file, func(t *testing.T) {
			is := is.New(t)
			path := filepath.Join("testdata", tt.file)
			in, err := serde.Marshal(tt.input)
			is.NoErr(err)
			resp := goldenRun(goldenStart, tt.start, in)
			poll := resp.GetPoll()
			is.True(poll != nil)
			if *update {
				is.NoErr(os.WriteFile(path, poll.GetTypedCoroutineState().GetValue(), 0o644))
			}
			state, err := os.ReadFile(path)
			is.NoErr(err) // the golden file exists (go test -run TestGoldenStates -update writes it)

			// The state of this build decodes the golden state to the same
			// diagnostic form: the format did not drift silently.
			fresh, _ := cbor.Diagnose(poll.GetTypedCoroutineState().GetValue())
			old, err := cbor.Diagnose(state)
			is.NoErr(err)
			is.Equal(fresh, old)

			pr := &sdkv1.PollResult{
				State:   &sdkv1.PollResult_CoroutineState{CoroutineState: state},
				Results: tt.results(poll),
			}
			out := goldenResume(goldenStart.Add(2*time.Hour), pr)
			is.Equal(out.GetStatus(), sdkv1.Status_STATUS_OK)
			var got string
			is.NoErr(serde.Unmarshal(out.GetExit().GetResult().GetOutput(), &got))
			is.Equal(got, tt.want)
		})
	}
}

func TestIncompatibleStates(t *testing.T) {
	enc := func(v any) []byte {
		b, err := cbor.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	wait := map[int]any{1: 1, 2: 1, 3: 1, 4: 1, 5: []byte{0}}
	tests := []struct {
		name  string
		state []byte
		typed string // type URL; empty for untyped state
		want  []string
	}{
		{"garbage", []byte("not cbor at all"), "", []string{"not a state document"}},
		{"empty", nil, "", []string{"not a state document"}},
		{"future version", enc(map[int]any{1: flow.StateVersion + 1}), "", []string{"version 2", "newer build"}},
		{"unknown continuation", enc(map[int]any{1: 1, 2: []any{[]any{"golden.renamed", nil}}, 3: wait}), "", []string{`frame 0 "golden.renamed"`, "no continuation is registered"}},
		{"environment no longer decodes", enc(map[int]any{1: 1, 2: []any{[]any{"golden.priced", "a string, not a Cart"}}, 3: wait}), "", []string{`frame 0 "golden.priced"`, "no longer decodes into flow_test.Cart"}},
		{"deeper frame named", enc(map[int]any{1: 1, 2: []any{[]any{"golden.gone", nil}, []any{"golden.slept", nil}}, 3: wait}), "", []string{`frame 1 "golden.gone"`}},
		{"not suspended", enc(map[int]any{1: 1}), "", []string{"not suspended"}},
		{"wrong type URL", enc(map[int]any{1: 1}), "type.googleapis.com/other.State", []string{"other.State"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			pr := &sdkv1.PollResult{State: &sdkv1.PollResult_CoroutineState{CoroutineState: tt.state}}
			if tt.typed != "" {
				pr.State = &sdkv1.PollResult_TypedCoroutineState{TypedCoroutineState: &anypb.Any{TypeUrl: tt.typed, Value: tt.state}}
			}
			out := goldenResume(goldenStart, pr)
			is.Equal(out.GetStatus(), status.IncompatibleState.Proto())
			msg := out.GetExit().GetResult().GetError().GetMessage()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q lacks %q", msg, w)
				}
			}
		})
	}
}

func FuzzResume(f *testing.F) {
	for _, tt := range goldenCases {
		if b, err := os.ReadFile(filepath.Join("testdata", tt.file)); err == nil {
			f.Add(b, uint64(1))
		}
	}
	f.Add([]byte{0xa1, 0x01, 0x01}, uint64(0))
	f.Add([]byte{0xa2, 0x01, 0x01, 0x03, 0xa1, 0x01, 0x02}, uint64(7))
	f.Fuzz(func(t *testing.T, state []byte, corr uint64) {
		pr := &sdkv1.PollResult{
			State:   &sdkv1.PollResult_CoroutineState{CoroutineState: state},
			Results: []*sdkv1.CallResult{{CorrelationId: corr, Output: mustAny(1.0)}},
		}
		out := goldenResume(goldenStart, pr) // must never panic
		if out.GetStatus() == sdkv1.Status_STATUS_UNSPECIFIED {
			t.Fatalf("resume answered no status")
		}
	})
}

// BenchmarkStateRoundTrip measures what each await costs in state: a
// typical suspended flow (two frames with small environments, waiting on a
// call) is encoded at suspension and decoded at resume.
func BenchmarkStateRoundTrip(b *testing.B) {
	in, _ := serde.Marshal(Cart{ID: "c-1", Items: []string{"apple"}})
	start := goldenCases[0].start
	var size int
	b.ReportAllocs()
	for b.Loop() {
		resp := goldenRun(goldenStart, start, in) // encode
		state := resp.GetPoll().GetTypedCoroutineState()
		size = len(state.GetValue())
		pr := &sdkv1.PollResult{State: &sdkv1.PollResult_TypedCoroutineState{TypedCoroutineState: state}}
		_ = goldenResume(goldenStart, pr) // decode, then encode again (no result yet)
	}
	b.ReportMetric(float64(size), "state-bytes")
}
