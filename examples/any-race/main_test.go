package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/dispatchkit/dispatch"
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
