package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/dispatchkit/dispatch"
	"github.com/dispatchkit/dispatch/flow/flowtest"
	"github.com/matryer/is"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestAnyRace(t *testing.T) {
	const slow = 2 * time.Second // beyond the race's 1 s timeout
	tests := []struct {
		name string
		req  Request
		want []string
	}{
		{"first success, then a timeout", Request{
			Q:        "q",
			Replicas: []Replica{{Name: "eu", Down: true}, {Name: "us", Delay: slow}, {Name: "ap", Delay: 50 * time.Millisecond}},
			Slow:     []Replica{{Name: "sa", Delay: slow}},
			Timeout:  time.Second,
		}, []string{
			"any: asking eu (down), us (2s), ap (50ms)",
			"  eu: down",
			"  ap: answering after 50ms",
			`any: first success from ap: "42, says ap"`,
			"race: asking sa (2s), for at most 1s",
			"race: timed out, no replica answered in time (errors.Is(err, dispatch.ErrTimeout), status TIMEOUT)",
		}},
		{"every replica fails, the race is won", Request{
			Q:        "q",
			Replicas: []Replica{{Name: "eu", Down: true}, {Name: "us", Down: true}},
			Slow:     []Replica{{Name: "sa", Delay: slow}, {Name: "ap", Delay: 10 * time.Millisecond}},
			Timeout:  5 * time.Second,
		}, []string{
			"any: every replica failed: ",
			"replica eu is down",
			"replica us is down",
			`race: first answer from ap: "42, says ap"`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var buf bytes.Buffer
			is.NoErr(run(ctx, &buf, tt.req, dispatch.WithLocalServer(t.TempDir())))
			got := buf.String()
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("output lacks %q:\n%s", w, got)
				}
			}
		})
	}
}

// replicas are the test doubles of ask: a replica answers after its
// delay, on flowtest's virtual clock, or fails for good when it is down.
var replicas = []flowtest.Option{
	flowtest.Mock("ask", func(q Query) (Answer, error) {
		if q.Replica.Down {
			return Answer{}, dispatch.Permanent(fmt.Errorf("replica %s is down", q.Replica.Name))
		}
		return Answer{Replica: q.Replica.Name, Text: "42, says " + q.Replica.Name}, nil
	}),
	flowtest.Latency("ask", func(q Query) time.Duration { return q.Replica.Delay }),
}

// TestCrashEverywhere runs the workflow without a server, the replicas'
// delays and the race's timeout on the virtual clock, once uninterrupted
// and once crashed at each await (the Any, then the Race).
func TestCrashEverywhere(t *testing.T) {
	tests := []struct {
		name string
		req  Request
		want Report
	}{
		{"first success, then a timeout", Request{
			Q:        "q",
			Replicas: []Replica{{Name: "eu", Down: true}, {Name: "us", Delay: 2 * time.Second}, {Name: "ap", Delay: 50 * time.Millisecond}},
			Slow:     []Replica{{Name: "sa", Delay: time.Hour}},
			Timeout:  time.Minute,
		}, Report{
			Any:  `first success from ap: "42, says ap"`,
			Race: "timed out, no replica answered in time (errors.Is(err, dispatch.ErrTimeout), status TIMEOUT)",
		}},
		{"every replica fails, the race is won", Request{
			Q:        "q",
			Replicas: []Replica{{Name: "eu", Down: true}, {Name: "us", Down: true}},
			Slow:     []Replica{{Name: "sa", Delay: 2 * time.Second}, {Name: "ap", Delay: 10 * time.Millisecond}},
			Timeout:  5 * time.Second,
		}, Report{
			Any:  "every replica failed: flow: any: every call failed: call 0: PERMANENT_ERROR: replica eu is down\ncall 1: PERMANENT_ERROR: replica us is down",
			Race: `first answer from ap: "42, says ap"`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			out.SetOutput(io.Discard)
			r, _, err := flowtest.CrashEverywhere(t, QueryAll, tt.req, replicas...)
			is.NoErr(err)
			is.Equal(r, tt.want)
		})
	}
}
