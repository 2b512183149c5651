// Command fanout counts the words of a book with a fan-out of 200 calls:
// the book workflow gathers one chapter workflow per chapter, and each
// chapter gathers one count call per line (a nested Gather), then reduces
// the counts with a merge call. Run it with
//
//	go run ./examples/fanout
//
// and with -chapters and -lines to change the size of the fan-out.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dispatchkit/dispatch"
	"github.com/dispatchkit/dispatch/flow"
	_ "github.com/dispatchkit/dispatch/local" // local mode: a Dispatch server in-process when none is configured
)

// Counts maps a word to its number of occurrences.
type Counts map[string]int

// Summary is the result of the book workflow.
type Summary struct {
	Chapters int
	Lines    int
	Words    int
	Distinct int
	Top      []WordCount // most frequent first
}

// WordCount is one entry of the summary's top list.
type WordCount struct {
	Word  string
	Count int
}

// out is where the program reports progress; functions run concurrently,
// and a log.Logger serializes its writes.
var out = log.New(os.Stdout, "", 0)

// progress counts the count calls that completed, to report every 50. It
// is for display only: a call that is retried is counted again.
var progress struct {
	done  atomic.Int64
	total atomic.Int64
}

// Count counts the words of one line: the leaves of the fan-out.
var Count = dispatch.Func("count", func(ctx context.Context, line string) (Counts, error) {
	c := Counts{}
	for _, w := range strings.Fields(line) {
		c[strings.ToLower(strings.Trim(w, ".,;:!?"))]++
	}
	if n := progress.done.Add(1); n%50 == 0 || n == progress.total.Load() {
		out.Printf("  %d/%d lines counted\n", n, progress.total.Load())
	}
	return c, nil
})

// Merge adds up counts: the reduce step, one call per chapter and one for
// the book.
var Merge = dispatch.Func("merge", func(ctx context.Context, parts []Counts) (Counts, error) {
	total := Counts{}
	for _, p := range parts {
		for w, n := range p {
			total[w] += n
		}
	}
	return total, nil
})

// Chapter counts the words of a chapter: it gathers one count call per
// line, then merges their counts.
var Chapter = dispatch.Flow("chapter", func(ctx *flow.Ctx, lines []string) flow.Step[Counts] {
	return dispatch.Gather(Count, lines, chapterCounted)
})

var chapterCounted = flow.Then("chapter.counted", func(ctx *flow.Ctx, counts []Counts) flow.Step[Counts] {
	out.Printf("chapter %s: %d lines counted, merging\n", ctx.Info().DispatchID, len(counts))
	return dispatch.Await(Merge, counts, flow.Return[Counts]())
})

// Book counts the words of a book: it gathers one chapter workflow per
// chapter (each of which gathers its lines), merges the chapters' counts,
// and summarizes.
var Book = dispatch.Flow("book", func(ctx *flow.Ctx, chapters [][]string) flow.Step[Summary] {
	lines := 0
	for _, c := range chapters {
		lines += len(c)
	}
	out.Printf("book: %d chapters, %d lines: gathering %d chapter workflows (dispatch id %s)\n", len(chapters), lines, len(chapters), ctx.Info().DispatchID)
	return dispatch.Gather(Chapter, chapters, bookCounted.With(Summary{Chapters: len(chapters), Lines: lines}))
})

var bookCounted = flow.ThenWith("book.counted", func(ctx *flow.Ctx, s Summary, chapters []Counts) flow.Step[Summary] {
	out.Printf("book: %d chapters counted, merging\n", len(chapters))
	return dispatch.Await(Merge, chapters, bookMerged.With(s))
})

var bookMerged = flow.ThenWith("book.merged", func(ctx *flow.Ctx, s Summary, total Counts) flow.Step[Summary] {
	return flow.Done(summarize(s, total))
})

// summarize fills s from the counts of the whole book.
func summarize(s Summary, total Counts) Summary {
	s.Distinct = len(total)
	for w, n := range total {
		s.Words += n
		s.Top = append(s.Top, WordCount{w, n})
	}
	sort.Slice(s.Top, func(i, j int) bool {
		if s.Top[i].Count != s.Top[j].Count {
			return s.Top[i].Count > s.Top[j].Count
		}
		return s.Top[i].Word < s.Top[j].Word
	})
	s.Top = s.Top[:min(5, len(s.Top))]
	return s
}

func main() {
	chapters := flag.Int("chapters", 4, "number of chapters (one chapter workflow each)")
	lines := flag.Int("lines", 50, "number of lines per chapter (one count call each)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Stdout, book(*chapters, *lines)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run serves the functions, dispatches the book workflow and waits for its
// summary. With no DISPATCH_API_URL, New starts a local Dispatch server in
// this process.
func run(ctx context.Context, w io.Writer, chapters [][]string, opts ...dispatch.Option) error {
	out.SetOutput(w)
	total := 0
	for _, c := range chapters {
		total += len(c)
	}
	progress.done.Store(0)
	progress.total.Store(int64(total))

	d, err := dispatch.New(opts...)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Start(); err != nil {
		return err
	}
	start := time.Now()
	s, err := Book.DispatchAndWait(ctx, chapters)
	if err != nil {
		return err
	}
	out.Printf("done in %s: %d words (%d distinct) in %d lines of %d chapters\n",
		time.Since(start).Round(time.Millisecond), s.Words, s.Distinct, s.Lines, s.Chapters)
	var top strings.Builder // one line: each Print of out ends a line
	for _, wc := range s.Top {
		fmt.Fprintf(&top, " %s=%d", wc.Word, wc.Count)
	}
	out.Printf("top words:%s\n", top.String())
	return nil
}

// book makes up a book of chapters×lines lines, the same every time.
func book(chapters, lines int) [][]string {
	vocabulary := strings.Fields("the a durable call of function dispatch retries and workflow resumes on any machine " +
		"gather fans out many calls then reduces their results into one answer while state is kept safe")
	r := rand.New(rand.NewPCG(1, 2))
	b := make([][]string, chapters)
	for c := range b {
		b[c] = make([]string, lines)
		for l := range b[c] {
			words := make([]string, 5+r.IntN(10))
			for i := range words {
				words[i] = vocabulary[r.IntN(len(vocabulary))]
			}
			b[c][l] = strings.Join(words, " ") + "."
		}
	}
	return b
}
