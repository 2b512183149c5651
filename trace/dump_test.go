package trace_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/matryer/is"

	"github.com/dispatchkit/dispatch/trace"
)

type Input struct{ N int }

func TestDump(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		snapshot trace.Snapshot
		want     string
	}{
		{
			name: "suspended with frames and calls",
			snapshot: trace.Snapshot{
				Function:   "pipeline",
				DispatchID: "7f3a9c2e",
				Event:      "suspend",
				Frames: []trace.Frame{
					{Name: "pipeline.transformed", Env: Order{ID: "o-1", Items: []string{"a", "b"}}, Detail: "await all: 3 of 5 results"},
					{Name: "pipeline", Env: Input{N: 3}},
				},
				Pending: []trace.Pending{
					{CorrelationID: 1, Function: "transform2", Input: "hello"},
					{CorrelationID: 2, Function: "notify", Endpoint: "https://other.example.com", Input: Order{ID: "o-1"}},
				},
				Queued: 3,
			},
			want: `dispatch trace: suspend pipeline (id 7f3a9c2e)
  frames, top of stack first:
    0  pipeline.transformed
       env:    Order{ID: "o-1", Items: ["a", "b"]}
       detail: await all: 3 of 5 results
    1  pipeline
       env:    Input{N: 3}
  pending calls: 2
    #1  transform2("hello")
    #2  notify(Order{ID: "o-1", Items: nil})  endpoint: https://other.example.com
  queued calls (sent as results come in): 3
`,
		},
		{
			name: "unserializable state and aligned columns",
			snapshot: trace.Snapshot{
				Function:   "fanout",
				DispatchID: "01J9",
				Event:      "suspend",
				Frames: []trace.Frame{
					{Name: "f0", Env: Job{Done: make(chan struct{}), Handler: handle}},
					{Name: "f1", Detail: "gather: 0 of 2\nfirst error wins"},
					{Name: "f2"}, {Name: "f3"}, {Name: "f4"}, {Name: "f5"}, {Name: "f6"}, {Name: "f7"}, {Name: "f8"}, {Name: "f9"},
					{Name: "f10", Env: []any{nil, errors.New("x")}},
				},
				Pending: []trace.Pending{
					{CorrelationID: 9, Function: "a", Endpoint: "https://a.example.com"},
					{CorrelationID: 10, Function: "bbbbbb", Endpoint: "https://b.example.com", Input: 1},
					{CorrelationID: 11, Function: "c"},
				},
			},
			want: `dispatch trace: suspend fanout (id 01J9)
  frames, top of stack first:
     0  f0
        env:    Job{Done: <chan struct{}>, Results: nil, Callback: nil, Handler: <func trace_test.handle>}
     1  f1
        detail: gather: 0 of 2
                first error wins
     2  f2
     3  f3
     4  f4
     5  f5
     6  f6
     7  f7
     8  f8
     9  f9
    10  f10
        env:    [nil, error("x")]
  pending calls: 3
    #9   a()        endpoint: https://a.example.com
    #10  bbbbbb(1)  endpoint: https://b.example.com
    #11  c()
`,
		},
		{
			name: "a suspension whose state could not be saved sent nothing",
			snapshot: trace.Snapshot{
				Function:   "order",
				DispatchID: "01JB",
				Event:      "suspend",
				Frames:     []trace.Frame{{Name: "order.charged", Env: Input{N: 1}, Detail: "waits on await: 1 calls, 0 sent before, 1 not sent, 0 results in"}},
				Pending:    []trace.Pending{{CorrelationID: 1, Function: "charge", Input: 42}},
				Failure:    "the state could not be saved, so the call fails and no call was sent: flow: frame 0\nsecond line",
			},
			want: `dispatch trace: suspend order (id 01JB)
  failed: the state could not be saved, so the call fails and no call was sent: flow: frame 0
          second line
  frames, top of stack first:
    0  order.charged
       env:    Input{N: 1}
       detail: waits on await: 1 calls, 0 sent before, 1 not sent, 0 results in
  calls not sent: 1
    #1  charge(42)
`,
		},
		{
			name:     "exit with nothing",
			snapshot: trace.Snapshot{Function: "noop", Event: "exit"},
			want: `dispatch trace: exit noop
  frames: none
  pending calls: none
`,
		},
		{
			name:     "zero snapshot",
			snapshot: trace.Snapshot{},
			want: `dispatch trace: (unnamed function)
  frames: none
  pending calls: none
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			var b strings.Builder
			is.NoErr(trace.Dump(&b, tt.snapshot))
			if b.String() != tt.want {
				t.Errorf("Dump wrote:\n%s\nwant:\n%s", b.String(), tt.want)
			}
		})
	}
}

type failingWriter struct{ writes int }

func (w *failingWriter) Write([]byte) (int, error) {
	w.writes++
	return 0, errors.New("disk full")
}

func TestDumpWriteError(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	w := &failingWriter{}
	err := trace.Dump(w, trace.Snapshot{Function: "f", Frames: []trace.Frame{{Name: "a"}, {Name: "b"}}})
	is.Equal(err.Error(), "disk full")
	is.Equal(w.writes, 1) // the whole dump in one write
}
