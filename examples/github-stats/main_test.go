package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dispatchkit/dispatch"
	"github.com/dispatchkit/dispatch/flow/flowtest"
	"github.com/matryer/is"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestGitHubStats(t *testing.T) {
	tests := []struct {
		name     string
		api      func(t *testing.T) string // "" for the program's fake API
		throttle int
		repos    []string
		want     []string
		absent   []string
		err      string
	}{
		{"fake API throttling", nil, 3, []string{"a/one", "b/two", "c/three", "d/four"}, []string{
			"fake GitHub API at http://127.0.0.1:",
			"(made-up numbers): the first 3 requests are rate-limited",
			"  fake API: request 1 (",
			"  fake API: request 3 (",
			`: 429 Too Many Requests, Retry-After "1": THROTTLED, Dispatch will retry`,
			", attempt 2: 200 OK, ",
			"a/one", "b/two", "c/three", "d/four",
			"total",
		}, []string{"fake API: request 4 ("}, ""},
		{"fake API, no throttling", nil, 0, []string{"a/one", "b/two"}, []string{
			", attempt 1: 200 OK, ",
			"total",
		}, []string{"429 Too Many Requests", "attempt 2"}, ""}, // not "429": the API's random port may hold it
		{"GitHub's 403 rate limit", githubLike, 0, []string{"golang/go"}, []string{
			`fetch golang/go, attempt 1: 403 Forbidden, Retry-After "": THROTTLED, Dispatch will retry`,
			"fetch golang/go, attempt 2: 200 OK, 125000 stars",
			"golang/go  125000",
		}, nil, ""},
		{"unknown repository", githubLike, 0, []string{"golang/go", "no/such"}, []string{
			`fetch no/such, attempt 1: 404 Not Found, Retry-After "": NOT_FOUND, not retried`,
		}, []string{"fetch no/such, attempt 2"}, "NOT_FOUND"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			api := ""
			if tt.api != nil {
				api = tt.api(t)
			}
			var buf bytes.Buffer
			err := run(ctx, &buf, api, tt.throttle, tt.repos, dispatch.WithLocalServer(t.TempDir()))
			if tt.err != "" {
				is.True(err != nil)
				is.True(strings.Contains(err.Error(), tt.err))
			} else {
				is.NoErr(err)
			}
			got := buf.String()
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("output lacks %q:\n%s", w, got)
				}
			}
			for _, a := range tt.absent {
				if strings.Contains(got, a) {
					t.Errorf("output has %q:\n%s", a, got)
				}
			}
		})
	}
}

// githubLike serves golang/go, answering its first request like GitHub
// does when the rate limit is exhausted (403, X-RateLimit-Remaining: 0),
// and 404 for other repositories.
func githubLike(t *testing.T) string {
	var limited atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/repos/golang/go" {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintln(w, `{"message":"Not Found"}`)
			return
		}
		if !limited.Swap(true) {
			w.Header().Set("X-RateLimit-Remaining", "0")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintln(w, `{"message":"API rate limit exceeded"}`)
			return
		}
		fmt.Fprintln(w, `{"full_name":"golang/go","stargazers_count":125000,"forks_count":17000,"open_issues_count":9000}`)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestCrashEverywhere runs the workflow without a server, fetch mocked,
// once uninterrupted and once crashed at its await. The rate limit of a
// repository's first attempt is retried, as the server retries THROTTLED;
// a repository that is not found fails the workflow.
func TestCrashEverywhere(t *testing.T) {
	fetch := flowtest.MockAttempt("fetch", func(r Repo, attempt int) (Stats, error) {
		switch {
		case r.Name == "no/such":
			return Stats{}, dispatch.WithStatus(errors.New("404 Not Found"), dispatch.StatusNotFound)
		case attempt == 1 && strings.HasPrefix(r.Name, "busy/"):
			return Stats{}, dispatch.Throttled(errors.New("403 rate limit exceeded"))
		}
		return Stats{FullName: r.Name, Stars: 10 * len(r.Name)}, nil
	})
	tests := []struct {
		name    string
		repos   []string
		want    []string // full names, most stars first
		stars   int
		retries int
		err     string
	}{
		{"sorted by stars", []string{"a/b", "golang/go", "c/dd"}, []string{"golang/go", "c/dd", "a/b"}, 160, 0, ""},
		{"a rate limit is retried", []string{"busy/one", "x/y"}, []string{"busy/one", "x/y"}, 110, 1, ""},
		{"an unknown repository fails the workflow", []string{"golang/go", "no/such"}, nil, 0, 0, "NOT_FOUND"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			out.SetOutput(io.Discard)
			repos := make([]Repo, len(tt.repos))
			for i, r := range tt.repos {
				repos[i] = Repo{BaseURL: "https://api.example.com", Name: r}
			}
			s, rep, err := flowtest.CrashEverywhere(t, RepoStats, repos, fetch)
			if tt.err != "" {
				is.True(err != nil)
				is.True(strings.Contains(err.Error(), tt.err))
				return
			}
			is.NoErr(err)
			var names []string
			for _, r := range s.Repos {
				names = append(names, r.FullName)
			}
			is.Equal(names, tt.want)
			is.Equal(s.Stars, tt.stars)
			is.Equal(rep.Retries, tt.retries)
		})
	}
}
