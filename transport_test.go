package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/rs/zerolog"

	"github.com/dispatchkit/dispatch/flow"
	"github.com/dispatchkit/dispatch/internal/inspect"
	"github.com/dispatchkit/dispatch/internal/localmode"
	"github.com/dispatchkit/dispatch/internal/localserver"
	"github.com/dispatchkit/dispatch/server"
)

// The functions of TestLocalTransports. Their input is a key unique to one
// run of one case, so that the attempts they count (tpAttempt) and the
// attempt they hold (tpStuck) are those of that run only.
var (
	tpOK = Func("roottest.transport.ok", func(ctx context.Context, key string) (string, error) {
		return "ok " + key, nil
	})
	tpTemporary = Func("roottest.transport.temporary", func(ctx context.Context, key string) (string, error) {
		if tpAttempt(key) == 1 {
			return "", Temporary(&rtError{Reason: "not yet"})
		}
		return "ok at the second attempt", nil
	})
	tpPermanent = Func("roottest.transport.permanent", func(ctx context.Context, key string) (string, error) {
		return "", Permanent(&rtError{Reason: "never"})
	})
	tpPanic = Func("roottest.transport.panic", func(ctx context.Context, key string) (string, error) {
		panic("roottest: transport panic")
	})
	// tpStuck ignores its context at its first attempt, as a stuck
	// function would, until its second attempt runs: the first can end
	// only by the attempt timeout, whatever the transport, and the
	// function returns before the test ends (goleak).
	tpStuck = Func("roottest.transport.stuck", func(ctx context.Context, key string) (string, error) {
		release := tpRelease(key)
		if tpAttempt(key) == 1 {
			<-release
			return "too late", nil
		}
		close(release)
		return "ok after a timeout", nil
	})
	tpDouble = Func("roottest.transport.double", func(ctx context.Context, n int) (int, error) {
		return 2 * n, nil
	})
	// tpWorkflow awaits one call, then gathers three: two polls and their
	// resumes, then an exit.
	tpWorkflow = Flow("roottest.transport.workflow", func(ctx *flow.Ctx, key string) flow.Step[string] {
		return Await(tpOK, key, tpAwaited)
	})
	tpAwaited = flow.Then("roottest.transport.workflow.awaited", func(ctx *flow.Ctx, s string) flow.Step[string] {
		return Gather(tpDouble, []int{1, 2, len(s)}, tpGathered)
	})
	tpGathered = flow.Then("roottest.transport.workflow.gathered", func(ctx *flow.Ctx, ns []int) flow.Step[string] {
		return flow.Done(fmt.Sprint(ns))
	})
	// tpTail hands its call over to tpOK.
	tpTail = Flow("roottest.transport.tail", func(ctx *flow.Ctx, key string) flow.Step[string] {
		return flow.TailCall(tpOK.Call("tail " + key))
	})
)

var tpState = struct {
	sync.Mutex
	attempts map[string]int
	release  map[string]chan struct{}
}{attempts: map[string]int{}, release: map[string]chan struct{}{}}

// tpAttempt counts one more attempt of key and returns its number.
func tpAttempt(key string) int {
	tpState.Lock()
	defer tpState.Unlock()
	tpState.attempts[key]++
	return tpState.attempts[key]
}

// tpRelease returns the channel that releases the first attempt of key.
func tpRelease(key string) chan struct{} {
	tpState.Lock()
	defer tpState.Unlock()
	ch, ok := tpState.release[key]
	if !ok {
		ch = make(chan struct{})
		tpState.release[key] = ch
	}
	return ch
}

// tpAttemptTimeout is the embedded server's attempt timeout in
// TestLocalTransports: long enough for any answer on a loaded machine,
// short enough for tpStuck.
const tpAttemptTimeout = time.Second

// tpStarter starts local mode's server as package local does, with an
// attempt timeout and back-offs short enough for a test.
func tpStarter(ctx context.Context, c localmode.Config) (localmode.Server, error) {
	return localserver.Start(ctx, c, func(cfg *server.Config) {
		cfg.AttemptTimeout = tpAttemptTimeout
		cfg.MinBackoff = time.Millisecond
		cfg.MaxBackoff = 10 * time.Millisecond
	})
}

// tpRun is what one run of a case came to: its result or error, and the
// tree of its calls with their attempts, as the server's inspection API
// shows them.
type tpRun struct {
	Result string
	Err    string
	Status Status
	Calls  []string // one line per call, depth first (see tpTrace)
}

// tpTrace renders the call c and its descendants, one line each: the
// function, its final status, and each attempt's status and outcome.
// Children are sorted, since their order in the store is not the order
// of the calls' start. What differs between runs by nature (ids, times,
// durations) is left out.
func tpTrace(c *inspect.Call, depth int) []string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s%s %s %s:", strings.Repeat("  ", depth), c.Function, c.State, c.Status)
	for _, a := range c.AttemptLog {
		fmt.Fprintf(&b, " [%d %s %s]", a.N, a.Status, a.Outcome)
	}
	if c.Error != nil {
		fmt.Fprintf(&b, " error %s: %s", c.Error.Type, c.Error.Message)
	}
	if c.Output != "" {
		fmt.Fprintf(&b, " output %s", c.Output)
	}
	lines := []string{b.String()}
	var kids [][]string
	for _, k := range c.Children {
		kids = append(kids, tpTrace(k, depth+1))
	}
	slices.SortFunc(kids, func(a, b []string) int { return strings.Compare(strings.Join(a, "\n"), strings.Join(b, "\n")) })
	for _, k := range kids {
		lines = append(lines, k...)
	}
	return lines
}

// tpInspect fetches the call id's tree from the embedded server of d.
func tpInspect(ctx context.Context, d *Dispatch, id string) (*inspect.Call, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.local.URL()+"/dispatch.local.v1/calls/"+id+"?depth=5", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+d.local.APIKey())
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("roottest: inspecting call %s: HTTP %d", id, res.StatusCode)
	}
	var c inspect.Call
	if err := json.NewDecoder(res.Body).Decode(&c); err != nil {
		return nil, err
	}
	return &c, nil
}

// TestLocalTransports runs each outcome a call can have in local mode
// over both of its transports, in process (the default) and signed HTTP
// (DISPATCH_LOCAL_TRANSPORT=http), and checks that both come to the same
// result or error and to the same attempts, statuses and outcomes, call
// by call: a panic, a timeout or an error classified differently in
// process fails it. Each case's root statuses are checked too, so that
// both transports being wrong alike fails it as well.
func TestLocalTransports(t *testing.T) {
	tests := []struct {
		name string
		run  func(ctx context.Context, key string) (string, string, error) // the result, and the root call's id
		want []string                                                      // the root call's attempt statuses
	}{
		{"ok", tpCase(tpOK), []string{"OK"}},
		{"temporary error, then success", tpCase(tpTemporary), []string{"TEMPORARY_ERROR", "OK"}},
		{"permanent error", tpCase(tpPermanent), []string{"PERMANENT_ERROR"}},
		{"panic", tpCase(tpPanic), []string{"PERMANENT_ERROR"}},
		{"attempt timeout, then success", tpCase(tpStuck), []string{"TIMEOUT", "OK"}},
		{"await and gather", tpCase(tpWorkflow), []string{"OK", "OK", "OK"}},
		{"tail call", tpCase(tpTail), []string{"OK", "OK"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			runs := map[string]tpRun{}
			for _, transport := range []string{"inproc", "http"} {
				runs[transport] = tpRunCase(t, transport, tt.name, tt.run)
			}
			in, ht := runs["inproc"], runs["http"]
			is.Equal(in.Result, ht.Result) // same result
			is.Equal(in.Err, ht.Err)       // same error
			is.Equal(in.Status, ht.Status) // same status
			if !slices.Equal(in.Calls, ht.Calls) {
				t.Errorf("the calls differ:\ninproc:\n%s\nhttp:\n%s", strings.Join(in.Calls, "\n"), strings.Join(ht.Calls, "\n"))
			}
			t.Logf("inproc:\n%s", strings.Join(in.Calls, "\n"))
			for transport, r := range runs {
				got := tpRootStatuses(r.Calls[0])
				if !slices.Equal(got, tt.want) {
					t.Errorf("%s: root attempts %v, want %v:\n%s", transport, got, tt.want, strings.Join(r.Calls, "\n"))
				}
			}
		})
	}
}

// tpCase runs fn with the key as input.
func tpCase(fn *Function[string, string]) func(ctx context.Context, key string) (string, string, error) {
	return func(ctx context.Context, key string) (string, string, error) {
		id, err := fn.Dispatch(ctx, key)
		if err != nil {
			return "", "", err
		}
		out, err := fn.Wait(ctx, id)
		return out, id, err
	}
}

// tpRunCase runs one case in local mode on transport, on SQLite.
func tpRunCase(t *testing.T, transport, name string, run func(context.Context, string) (string, string, error)) tpRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	vars := map[string]string{}
	if transport == "http" {
		vars[EnvLocalTransport] = "http"
	}
	d, err := New(env(vars), WithZerolog(zerolog.Nop()), withLocalStarter(tpStarter), WithLocalServer(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	// The key is the same for both transports (it is in the results and
	// outputs compared) but the counters are per run: reset them.
	key := strings.ReplaceAll(name, " ", "-")
	tpState.Lock()
	delete(tpState.attempts, key)
	delete(tpState.release, key)
	tpState.Unlock()

	out, id, err := run(ctx, key)
	r := tpRun{Result: out}
	if err != nil {
		// The error names the call, whose id differs between runs.
		r.Err, r.Status = strings.ReplaceAll(err.Error(), id, "<id>"), StatusOf(err)
		var derr *Error
		if !errors.As(err, &derr) {
			t.Fatalf("%s: %v, not a call's error", transport, err)
		}
	}
	c, err := tpInspect(ctx, d, id)
	if err != nil {
		t.Fatal(err)
	}
	r.Calls = tpTrace(c, 0)
	return r
}

// tpRootStatuses returns the attempt statuses of a line of tpTrace.
func tpRootStatuses(line string) []string {
	var out []string
	for _, f := range strings.Split(line, " [")[1:] {
		fields := strings.Fields(f)
		out = append(out, fields[1])
	}
	return out
}
