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

func TestFanout(t *testing.T) {
	tests := []struct {
		name     string
		chapters [][]string
		want     []string
	}{
		{"200 lines", book(4, 50), []string{
			"book: 4 chapters, 200 lines: gathering 4 chapter workflows",
			"  50/200 lines counted",
			"  100/200 lines counted",
			"  150/200 lines counted",
			"  200/200 lines counted",
			": 50 lines counted, merging",
			"book: 4 chapters counted, merging",
		}},
		{"small", [][]string{{"Go go GO.", "stop"}, {"go on"}}, []string{
			"  3/3 lines counted",
			"done in ",
			"6 words (3 distinct) in 3 lines of 2 chapters",
			"top words: go=4 on=1 stop=1",
		}},
		{"an empty chapter", [][]string{{}, {"one line"}}, []string{
			": 0 lines counted, merging",
			"2 words (2 distinct) in 1 lines of 2 chapters",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var buf bytes.Buffer
			is.NoErr(run(ctx, &buf, tt.chapters, dispatch.WithLocalServer(t.TempDir())))
			got := buf.String()
			for _, w := range append(tt.want, expected(tt.chapters)) {
				if !strings.Contains(got, w) {
					t.Errorf("output lacks %q:\n%s", w, got)
				}
			}
		})
	}
}

// expected computes the summary line of the book without Dispatch.
func expected(chapters [][]string) string {
	lines, words, distinct := 0, 0, map[string]bool{}
	for _, c := range chapters {
		lines += len(c)
		for _, l := range c {
			for _, w := range strings.Fields(l) {
				words++
				distinct[strings.ToLower(strings.Trim(w, ".,;:!?"))] = true
			}
		}
	}
	return fmt.Sprintf("%d words (%d distinct) in %d lines of %d chapters", words, len(distinct), lines, len(chapters))
}

// TestCrashEverywhere runs the book workflow without a server, its
// functions and chapter workflows for real, once uninterrupted and once
// crashed at each of its awaits (the gather of chapters, the merge).
func TestCrashEverywhere(t *testing.T) {
	tests := []struct {
		name     string
		chapters [][]string
	}{
		{"three chapters", book(3, 4)},
		{"an empty chapter", [][]string{{}, {"one line", "Two lines."}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			out.SetOutput(io.Discard)
			s, rep, err := flowtest.CrashEverywhere(t, Book, tt.chapters)
			is.NoErr(err)
			got := fmt.Sprintf("%d words (%d distinct) in %d lines of %d chapters", s.Words, s.Distinct, s.Lines, s.Chapters)
			is.Equal(got, expected(tt.chapters))
			is.True(len(s.Top) > 0)
			is.Equal(rep.Calls, len(tt.chapters)+1) // the chapter workflows, then the merge
		})
	}
}
