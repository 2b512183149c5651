package main

import (
	"bytes"
	"context"
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

func TestPipeline(t *testing.T) {
	tests := []struct {
		name string
		msg  string
		want []string
	}{
		{"three words", "hello durable world", []string{
			`transform1("hello durable world") = "HELLO DURABLE WORLD"`,
			`transform2("HELLO DURABLE WORLD") = "WORLD DURABLE HELLO"`,
			`publish("WORLD DURABLE HELLO") = 19 bytes`,
			`"hello durable world" became "WORLD DURABLE HELLO" (19 bytes)`,
		}},
		{"one word", "solo", []string{`"solo" became "SOLO" (4 bytes)`}},
	}
	// Both transports of local mode: in process (the default) and
	// signed HTTP.
	for _, transport := range []string{"inproc", "http"} {
		for _, tt := range tests {
			t.Run(transport+"/"+tt.name, func(t *testing.T) {
				t.Setenv(dispatch.EnvLocalTransport, transport)
				is := is.New(t)
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				var buf bytes.Buffer
				is.NoErr(run(ctx, &buf, tt.msg, dispatch.WithLocalServer(t.TempDir())))
				for _, w := range tt.want {
					if !strings.Contains(buf.String(), w) {
						t.Errorf("output lacks %q:\n%s", w, buf.String())
					}
				}
			})
		}
	}
}

// TestCrashEverywhere runs the pipeline without a server, its functions
// for real, once uninterrupted and once crashed at each of its three
// awaits: each crashed run resumes in a new process from the saved state
// and must publish the same receipt.
func TestCrashEverywhere(t *testing.T) {
	tests := []struct {
		name string
		msg  string
		want Receipt
	}{
		{"three words", "hello durable world", Receipt{Original: "hello durable world", Published: "WORLD DURABLE HELLO", Length: 19}},
		{"one word", "solo", Receipt{Original: "solo", Published: "SOLO", Length: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			out = io.Discard
			r, rep, err := flowtest.CrashEverywhere(t, Pipeline, tt.msg)
			is.NoErr(err)
			is.Equal(r, tt.want)
			is.Equal(rep.Calls, 3) // transform1, transform2, publish
		})
	}
}
