// Command github-stats fetches the stars, forks and open issues of a few
// repositories from a GitHub-like API, one call per repository gathered by
// a workflow. The API rate-limits its clients: fetch classifies a 429 (or
// GitHub's 403 with X-RateLimit-Remaining: 0) as THROTTLED, so Dispatch
// retries the call later and slows down the calls to this program. Run it
// with
//
//	go run ./examples/github-stats
//
// which serves a fake API that answers 429 to its first requests, or
// against GitHub with
//
//	go run ./examples/github-stats -api https://api.github.com golang/go rust-lang/rust
//
// (GITHUB_TOKEN, if set, is sent as a bearer token).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/dispatchkit/dispatch"
	"github.com/dispatchkit/dispatch/flow"
	_ "github.com/dispatchkit/dispatch/local" // local mode: a Dispatch server in-process when none is configured
)

// Repo names a repository of the API at BaseURL: the input of fetch.
type Repo struct {
	BaseURL string
	Name    string // owner/name
}

// Stats is what fetch returns, decoded from the API's JSON.
type Stats struct {
	FullName   string `json:"full_name"`
	Stars      int    `json:"stargazers_count"`
	Forks      int    `json:"forks_count"`
	OpenIssues int    `json:"open_issues_count"`
}

// Summary is the result of the workflow.
type Summary struct {
	Repos []Stats // most stars first
	Stars int
}

// out is where the program reports what happens; functions run
// concurrently, and a log.Logger serializes its writes.
var out = log.New(os.Stdout, "", 0)

// attempts counts fetch's attempts per repository, for display.
var attempts = struct {
	sync.Mutex
	n map[string]int
}{n: map[string]int{}}

func attempt(repo string) int {
	attempts.Lock()
	defer attempts.Unlock()
	attempts.n[repo]++
	return attempts.n[repo]
}

// Fetch gets the stats of one repository. Its errors tell Dispatch what to
// do: dispatch.HTTPResponseError makes a 429 THROTTLED (retried, and the
// endpoint is slowed down), a 5xx TEMPORARY_ERROR (retried), a 404
// NOT_FOUND (not retried); GitHub's 403 for an exhausted rate limit is
// marked throttled explicitly.
var Fetch = dispatch.Func("fetch", func(ctx context.Context, r Repo) (Stats, error) {
	n := attempt(r.Name)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(r.BaseURL, "/")+"/repos/"+r.Name, nil)
	if err != nil {
		return Stats{}, err
	}
	req.Header.Set("Accept", "application/vnd.github+json")
	if tok := os.Getenv("GITHUB_TOKEN"); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		out.Printf("  fetch %s, attempt %d: %v (%s)\n", r.Name, n, err, dispatch.StatusOf(err))
		return Stats{}, err
	}
	defer res.Body.Close()
	if err := classify(res); err != nil {
		s := dispatch.StatusOf(err)
		what := "not retried"
		if s.Retried() {
			what = "Dispatch will retry"
		}
		out.Printf("  fetch %s, attempt %d: %s, Retry-After %q: %s, %s\n", r.Name, n, res.Status, res.Header.Get("Retry-After"), s, what)
		return Stats{}, err
	}
	var st Stats
	if err := json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(&st); err != nil {
		return Stats{}, fmt.Errorf("fetch %s: decoding the answer: %w", r.Name, err)
	}
	out.Printf("  fetch %s, attempt %d: %s, %d stars\n", r.Name, n, res.Status, st.Stars)
	return st, nil
})

// classify returns nil for a 2xx answer and otherwise an error whose
// status tells Dispatch whether and how to retry.
func classify(res *http.Response) error {
	err := dispatch.HTTPResponseError(res)
	if res.StatusCode == http.StatusForbidden && (res.Header.Get("X-RateLimit-Remaining") == "0" || res.Header.Get("Retry-After") != "") {
		// GitHub's rate limits answer 403, which alone means "not
		// allowed": these headers say "not now".
		return dispatch.Throttled(err)
	}
	return err
}

// RepoStats is the workflow: gather the stats of every repository, then
// summarize.
var RepoStats = dispatch.Flow("repo_stats", func(ctx *flow.Ctx, repos []Repo) flow.Step[Summary] {
	out.Printf("fetching %d repositories (dispatch id %s)\n", len(repos), ctx.Info().DispatchID)
	return dispatch.Gather(Fetch, repos, summarize)
})

var summarize = flow.Then("repo_stats.summarize", func(ctx *flow.Ctx, stats []Stats) flow.Step[Summary] {
	s := Summary{Repos: stats}
	sort.SliceStable(s.Repos, func(i, j int) bool { return s.Repos[i].Stars > s.Repos[j].Stars })
	for _, r := range stats {
		s.Stars += r.Stars
	}
	return flow.Done(s)
})

func main() {
	api := flag.String("api", "", "base URL of the API, such as https://api.github.com (default: a fake API served by this program)")
	throttle := flag.Int("throttle", 3, "number of requests the fake API answers with 429 before it answers")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: github-stats [flags] [owner/repo ...]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	repos := flag.Args()
	if len(repos) == 0 {
		repos = []string{"golang/go", "connectrpc/connect-go", "riverqueue/river", "fxamacker/cbor"}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Stdout, *api, *throttle, repos); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run serves the functions, dispatches the workflow and waits for its
// summary. With api "", it serves a fake API whose first throttle requests
// are answered 429. With no DISPATCH_API_URL, New starts a local Dispatch
// server in this process.
func run(ctx context.Context, w io.Writer, api string, throttle int, repos []string, opts ...dispatch.Option) error {
	out.SetOutput(w)
	attempts.Lock()
	clear(attempts.n)
	attempts.Unlock()
	if api == "" {
		url, stop, err := serve(fakeAPI(throttle))
		if err != nil {
			return err
		}
		defer stop()
		api = url
		out.Printf("fake GitHub API at %s (made-up numbers): the first %d requests are rate-limited\n", api, throttle)
	}

	d, err := dispatch.New(opts...)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Start(); err != nil {
		return err
	}
	in := make([]Repo, len(repos))
	for i, r := range repos {
		in[i] = Repo{BaseURL: api, Name: r}
	}
	start := time.Now()
	s, err := RepoStats.DispatchAndWait(ctx, in)
	if err != nil {
		return fmt.Errorf("github-stats: %w", err)
	}
	out.Printf("done in %s:\n\n", time.Since(start).Round(time.Millisecond))
	// The tabwriter writes in pieces: fill the table, then print it at once.
	var table strings.Builder
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "repository\tstars\tforks\topen issues\t")
	for _, r := range s.Repos {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t\n", r.FullName, r.Stars, r.Forks, r.OpenIssues)
	}
	fmt.Fprintf(tw, "total\t%d\t\t\t\n", s.Stars)
	if err := tw.Flush(); err != nil {
		return err
	}
	return out.Output(1, table.String()) // reports a failed write, as the tabwriter did
}

// fakeAPI serves GET /repos/{owner}/{repo} like GitHub, with made-up
// numbers, and answers its first throttle requests with 429 and
// Retry-After, like a rate limit.
func fakeAPI(throttle int) http.Handler {
	var requests atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /repos/{owner}/{repo}", func(w http.ResponseWriter, r *http.Request) {
		n := requests.Add(1)
		name := r.PathValue("owner") + "/" + r.PathValue("repo")
		w.Header().Set("Content-Type", "application/json")
		if n <= int64(throttle) {
			out.Printf("  fake API: request %d (%s): 429, rate limit exceeded\n", n, name)
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprintln(w, `{"message":"API rate limit exceeded"}`)
			return
		}
		h := fnv.New32a()
		io.WriteString(h, name)
		x := int(h.Sum32())
		json.NewEncoder(w).Encode(Stats{FullName: name, Stars: 1000 + x%90000, Forks: 100 + x%9000, OpenIssues: x % 500})
	})
	return mux
}

// serve serves h on a random loopback port and returns its URL and a
// function that stops it.
func serve(h http.Handler) (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	return "http://" + ln.Addr().String(), func() {
		srv.Close()
		<-done
	}, nil
}
