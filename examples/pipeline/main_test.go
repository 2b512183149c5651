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
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
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
