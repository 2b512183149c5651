package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"buf.build/gen/go/stealthrocket/dispatch-proto/connectrpc/go/dispatch/sdk/v1/sdkv1connect"
	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"connectrpc.com/connect"
	"github.com/matryer/is"
	"go.uber.org/goleak"

	"github.com/dispatchkit/dispatch/internal/cli"
	"github.com/dispatchkit/dispatch/internal/inspect"
	"github.com/dispatchkit/dispatch/internal/pgtest"
)

// TestMain checks for leaked goroutines. It also clears the variables that
// `dispatch calls` and `dispatch call` read, so that those exported in a
// developer's shell (from a banner of dispatch test) do not change what the
// tests see.
func TestMain(m *testing.M) {
	os.Unsetenv("DISPATCH_API_URL")
	os.Unsetenv("DISPATCH_API_KEY")
	goleak.VerifyTestMain(pgtest.Main(m))
}

// runTest starts `dispatch test` in-process and returns its address and
// key, and a stop function returning the exit code.
func runTest(t *testing.T, args ...string) (addr, key string, stderr *syncBuffer, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	code := make(chan int, 1)
	go func() { code <- cli.Run(ctx, append([]string{"test"}, args...), stdout, stderr) }()
	addr, key = waitBanner(t, stdout)
	want := fmt.Sprintf(`Spawned a local Dispatch server on %[1]s

Dispatching function calls to the endpoint at %[2]s

The Dispatch SDK can be configured with:

  export DISPATCH_API_URL="http://%[1]s"
  export DISPATCH_API_KEY="test"
  export DISPATCH_ENDPOINT_URL="%[2]s"
  export DISPATCH_VERIFICATION_KEY="%[3]s"

`, addr, args[0], key)
	if got := stdout.String(); got != want {
		t.Fatalf("banner:\n%q\nwant:\n%q", got, want)
	}
	var once bool
	stop = func() int {
		if once {
			return 0
		}
		once = true
		cancel()
		return <-code
	}
	t.Cleanup(func() { stop() })
	return addr, key, stderr, stop
}

func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	code := cli.Run(context.Background(), args, stdout, stderr)
	return stdout.String(), stderr.String(), code
}

func TestTestCommandMemory(t *testing.T) {
	is := is.New(t)
	ep := newWorkflowEndpoint(t, 2, 0)
	addr, key, stderr, stop := runTest(t, ep.srv.URL, "--port", "0", "--memory", "-v")
	ep.setKey(t, key)
	ids := dispatchWorkflows(t, addr, "test", 3)
	waitFor(t, "workflows", func() bool { return ep.finished() == 3 })
	for _, id := range ids {
		_, err := fetchResult(t, addr, id) // the outcomes are stored
		is.NoErr(err)
	}

	out, errOut, code := run(t, "calls", "--api-url", "http://"+addr, "--json")
	is.Equal(errOut, "")
	is.Equal(code, 0)
	var calls []*inspect.Call
	is.NoErr(json.Unmarshal([]byte(out), &calls))
	is.Equal(len(calls), 3) // roots only
	out, _, code = run(t, "calls", "--api-url", "http://"+addr, "--all")
	is.Equal(code, 0)
	is.Equal(strings.Count(out, "\n"), 1+3+3*2) // header, roots, steps
	is.True(strings.Contains(out, "ATTEMPTS"))

	// The variables exported from the banner are enough: no flags.
	t.Setenv("DISPATCH_API_URL", "http://"+addr)
	t.Setenv("DISPATCH_API_KEY", "test")
	out, errOut, code = run(t, "calls", "--json")
	is.Equal(errOut, "")
	is.Equal(code, 0)
	var fromEnv []*inspect.Call
	is.NoErr(json.Unmarshal([]byte(out), &fromEnv))
	is.Equal(len(fromEnv), 3)

	out, errOut, code = run(t, "call", ids[0], "--api-url", "http://"+addr)
	is.Equal(errOut, "")
	is.Equal(code, 0)
	is.True(strings.Contains(out, ids[0]))
	is.True(strings.Contains(out, `output: "done"`))
	is.True(strings.Contains(out, "    ")) // children indented
	_, errOut, code = run(t, "call", "nope", "--api-url", "http://"+addr)
	is.Equal(code, 1)
	is.True(strings.Contains(errOut, "404"))
	_, errOut, code = run(t, "calls", "--api-url", "http://"+addr, "--api-key", "wrong")
	is.Equal(code, 1)
	is.True(strings.Contains(errOut, `expected header "Authorization: Bearer <key>"`))

	is.Equal(stop(), 0)
	is.True(strings.Contains(stderr.String(), "dispatch server stopped"))
	is.Equal(ep.sigErrs, 0)
}

func TestTestCommandStateDir(t *testing.T) {
	is := is.New(t)
	dir := t.TempDir()
	ep := newWorkflowEndpoint(t, 1, 0)
	addr, key, _, stop := runTest(t, ep.srv.URL, "--port", "0", "--state", dir)
	ep.setKey(t, key)
	ids := dispatchWorkflows(t, addr, "test", 2)
	for _, id := range ids {
		o, err := fetchResult(t, addr, id)
		is.NoErr(err)
		is.Equal(o.Status, sdkv1.Status_STATUS_OK)
	}
	is.Equal(ep.finished(), 2)
	is.Equal(stop(), 0)

	out, _, code := run(t, "calls", "--state", dir)
	is.Equal(code, 0)
	is.True(strings.Contains(out, ids[0]) && strings.Contains(out, ids[1]))
	is.True(strings.Contains(out, "OK"))
	out, _, code = run(t, "call", ids[1], "--state", dir, "--json")
	is.Equal(code, 0)
	var c inspect.Call
	is.NoErr(json.Unmarshal([]byte(out), &c))
	is.Equal(c.ID, ids[1])
	is.Equal(c.Status, "OK")
	is.Equal(len(c.Children), 1)
	is.Equal(len(c.AttemptLog), 2) // poll, then exit

	// The key is kept across restarts.
	_, key2, _, stop2 := runTest(t, ep.srv.URL, "--port", "0", "--state", dir)
	is.Equal(key2, key)
	is.Equal(stop2(), 0)
}

// TestTestCommandPostgres runs `dispatch test --postgres`, reads its calls
// with `dispatch calls` and `dispatch call` from the database, and checks
// that a restart keeps the key (kept in the database) and that a second
// server on the database runs beside the first, as a replica.
func TestTestCommandPostgres(t *testing.T) {
	is := is.New(t)
	url := pgtest.URL(t)
	ep := newWorkflowEndpoint(t, 1, 0)
	addr, key, _, stop := runTest(t, ep.srv.URL, "--port", "0", "--postgres", url)
	ep.setKey(t, key)
	ids := dispatchWorkflows(t, addr, "test", 2)
	for _, id := range ids {
		o, err := fetchResult(t, addr, id)
		is.NoErr(err)
		is.Equal(o.Status, sdkv1.Status_STATUS_OK)
	}
	is.Equal(ep.finished(), 2)

	// A second server on the database is a replica: the same key, and a
	// workflow dispatched at it is waited for at the first.
	addr2, key2, _, stop2 := runTest(t, ep.srv.URL, "--port", "0", "--postgres", url)
	is.Equal(key2, key)
	more := dispatchWorkflows(t, addr2, "test", 2)
	for _, id := range more {
		o, err := fetchResult(t, addr, id)
		is.NoErr(err)
		is.Equal(o.Status, sdkv1.Status_STATUS_OK)
	}
	is.Equal(stop2(), 0)

	// Read beside the running server, then after it stopped.
	out, _, code := run(t, "calls", "--postgres", url)
	is.Equal(code, 0)
	is.True(strings.Contains(out, ids[0]) && strings.Contains(out, ids[1]))
	is.Equal(stop(), 0)
	out, _, code = run(t, "call", ids[1], "--postgres", url, "--json")
	is.Equal(code, 0)
	var c inspect.Call
	is.NoErr(json.Unmarshal([]byte(out), &c))
	is.Equal(c.ID, ids[1])
	is.Equal(c.Status, "OK")
	is.Equal(len(c.Children), 1)
	is.Equal(len(c.AttemptLog), 2) // poll, then exit

	_, key3, _, stop3 := runTest(t, ep.srv.URL, "--port", "0", "--postgres", url)
	is.Equal(key3, key) // the key is the database's
	is.Equal(stop3(), 0)
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"test without endpoint", []string{"test"}, 2, "endpoint URL"},
		{"test with bad endpoint", []string{"test", "ftp://x", "--memory", "--port", "0"}, 1, "Config.Endpoint"},
		{"test with bad port", []string{"test", "http://x", "--memory", "--port", "70000"}, 2, "--port"},
		{"test with a bad --allow-endpoint", []string{"test", "http://127.0.0.1:1", "--memory", "--port", "0", "--allow-endpoint", "ftp://x"}, 2, `--allow-endpoint: endpoint pattern "ftp://x": the scheme must be http or https`},
		{"test with credentials in the endpoint", []string{"test", "http://u:secret@127.0.0.1:1", "--memory", "--port", "0"}, 1, "credentials"},
		{"call without id", []string{"call"}, 2, "dispatch id"},
		{"calls on empty state", []string{"calls", "--state", "/nonexistent/dir"}, 1, "no call database"},
		{"unknown command", []string{"nope"}, 1, "unknown command"},
		{"test with --postgres and --memory", []string{"test", "http://127.0.0.1:1", "--memory", "--postgres", "postgres://h/db"}, 2, "leave out --memory and --state"},
		{"test with a bad --postgres", []string{"test", "http://127.0.0.1:1", "--port", "0", "--postgres", "postgres://u:secret@h:99999/db"}, 1, "Config.Postgres (--postgres of dispatch serve and dispatch test)"},
		{"test with --lease-ttl and no --postgres", []string{"test", "http://127.0.0.1:1", "--memory", "--port", "0", "--lease-ttl", "3s"}, 2, "--lease-ttl is the lease time of the replicas of a PostgreSQL database: give --postgres too"},
		{"test with a negative --max-concurrency", []string{"test", "http://127.0.0.1:1", "--memory", "--port", "0", "--max-concurrency", "-1"}, 2, "--initial-concurrency and --max-concurrency are numbers of requests in flight"},
		{"test with --initial-concurrency above --max-concurrency", []string{"test", "http://127.0.0.1:1", "--memory", "--port", "0", "--initial-concurrency", "64", "--max-concurrency", "8"}, 2, "--initial-concurrency 64 is above --max-concurrency 8"},
		{"test with a short --lease-ttl", []string{"test", "http://127.0.0.1:1", "--port", "0", "--postgres", "postgres://h/db", "--lease-ttl", "100ms"}, 1, "Config.LeaseTTL (--lease-ttl) is 100ms, at least 1s"},
		{"calls with --postgres and --state", []string{"calls", "--postgres", "postgres://h/db", "--state", "/tmp"}, 2, "leave out --api-url and --state"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			_, errOut, code := run(t, tt.args...)
			is.Equal(code, tt.code)
			is.True(strings.Contains(errOut, tt.want))
		})
	}
}

// TestTestCommandEndpointPolicy checks the endpoints `dispatch test`
// allows: its endpoint argument and loopback by default, and those of
// --allow-endpoint. Calls elsewhere are refused, naming the flag.
func TestTestCommandEndpointPolicy(t *testing.T) {
	tests := []struct {
		name  string
		flags []string
		host  string // of the endpoint the calls name, with the endpoint's port
		ok    bool
	}{
		{"the endpoint argument", nil, "127.0.0.1", true},
		{"loopback by name", nil, "localhost", true},
		{"the unspecified address", nil, "0.0.0.0", false},
		{"the unspecified address, allowed", []string{"--allow-endpoint", "http://0.0.0.0:*"}, "0.0.0.0", true},
		{"allowed by the second flag", []string{"--allow-endpoint", "https://example.com", "--allow-endpoint", "http://0.0.0.0:*/"}, "0.0.0.0", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			ep := newWorkflowEndpoint(t, 1, 0)
			addr, key, _, stop := runTest(t, append([]string{ep.srv.URL, "--port", "0", "--memory"}, tt.flags...)...)
			ep.setKey(t, key)
			port := ep.srv.URL[strings.LastIndexByte(ep.srv.URL, ':')+1:]
			client := sdkv1connect.NewDispatchServiceClient(http.DefaultClient, "http://"+addr)
			req := connect.NewRequest(&sdkv1.DispatchRequest{Calls: []*sdkv1.Call{
				{Function: "wf", Input: str("go"), Endpoint: "http://" + tt.host + ":" + port},
			}})
			req.Header().Set("Authorization", "Bearer test")
			res, err := client.Dispatch(context.Background(), req)
			if !tt.ok {
				is.Equal(connect.CodeOf(err), connect.CodeInvalidArgument)
				is.True(strings.Contains(err.Error(), "--allow-endpoint")) // says how to allow it
				is.Equal(stop(), 0)
				return
			}
			is.NoErr(err)
			o, err := fetchResult(t, addr, res.Msg.GetDispatchIds()[0])
			is.NoErr(err)
			is.Equal(o.Status, sdkv1.Status_STATUS_OK)
			is.Equal(ep.finished(), 1)
			is.Equal(stop(), 0)
		})
	}
}
