package server_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"buf.build/gen/go/stealthrocket/dispatch-proto/connectrpc/go/dispatch/sdk/v1/sdkv1connect"
	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"connectrpc.com/connect"
	"github.com/matryer/is"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/dispatchkit/dispatch/internal/pgtest"
	"github.com/dispatchkit/dispatch/internal/store"
	"github.com/dispatchkit/dispatch/server"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(pgtest.Main(m))
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  server.Config
		want string
	}{
		{"no state dir", server.Config{}, "Config.StateDir"},
		{"bad endpoint scheme", server.Config{Memory: true, Endpoint: "ftp://x"}, "Config.Endpoint"},
		{"endpoint without host", server.Config{Memory: true, Endpoint: "http://"}, "Config.Endpoint"},
		{"bad addr", server.Config{Memory: true, Addr: "nope"}, "Config.Addr"},
		{"short key", server.Config{Memory: true, SigningKey: make([]byte, 3)}, "Config.SigningKey"},
		{"negative expiration", server.Config{Memory: true, DefaultExpiration: -1}, "Config.DefaultExpiration"},
		{"too many restarts", server.Config{Memory: true, MaxRestarts: 256}, "Config.MaxRestarts is 256, at most 255"},
		{"backoff order", server.Config{Memory: true, MinBackoff: time.Second, MaxBackoff: time.Millisecond}, "Config.MaxBackoff"},
		{"negative body timeout", server.Config{Memory: true, BodyReadTimeout: -1}, "Config.BodyReadTimeout"},
		{"negative idle timeout", server.Config{Memory: true, IdleTimeout: -1}, "Config.IdleTimeout"},
		{"endpoint with credentials", server.Config{Memory: true, Endpoint: "http://user:secret@127.0.0.1:8000"}, "Config.Endpoint"},
		{"endpoint with a user", server.Config{Memory: true, Endpoint: "http://user@127.0.0.1:8000"}, "credentials"},
		{"endpoint with credentials, not http", server.Config{Memory: true, Endpoint: "ftp://user:secret@127.0.0.1:8000"}, "Config.Endpoint"},
		{"endpoint with credentials, not a URL", server.Config{Memory: true, Endpoint: "http://user:secret@127.0.0.1:bad"}, "Config.Endpoint"},
		{"endpoint with a fragment", server.Config{Memory: true, Endpoint: "http://127.0.0.1:8000/#x"}, "fragment"},
		{"invalid allow pattern", server.Config{Memory: true, AllowEndpoints: []string{"loopback", "ftp://x"}}, "Config.AllowEndpoints[1]"},
		{"allow pattern with a query", server.Config{Memory: true, AllowEndpoints: []string{"https://h/?x=1"}}, "--allow-endpoint"},
		{"postgres and memory", server.Config{Postgres: "postgres://h/db", Memory: true}, "Config.Postgres and Config.Memory are exclusive"},
		{"postgres and a state dir", server.Config{Postgres: "postgres://h/db", StateDir: "/tmp/x"}, "Config.Postgres and Config.StateDir are exclusive"},
		{"postgres and full sync", server.Config{Postgres: "postgres://h/db", FullSync: true}, "Config.Postgres and Config.FullSync are exclusive"},
		{"lease TTL without postgres", server.Config{Memory: true, LeaseTTL: 3 * time.Second}, "Config.LeaseTTL is for the replicas of a PostgreSQL database"},
		{"lease TTL too short", server.Config{Postgres: "postgres://h/db", LeaseTTL: 500 * time.Millisecond}, "Config.LeaseTTL (--lease-ttl) is 500ms, at least 1s"},
		{"lease TTL negative", server.Config{Postgres: "postgres://h/db", LeaseTTL: -time.Second}, "Config.LeaseTTL (--lease-ttl) is -1s"},
		{"advertise without postgres", server.Config{Memory: true, Advertise: "http://10.0.0.2:4450"}, "Config.Advertise is for the replicas"},
		{"replica without postgres", server.Config{Memory: true, Replica: "r1"}, "Config.Replica is for the replicas"},
		{"advertise not a URL", server.Config{Postgres: "postgres://h/db", Advertise: "10.0.0.2:4450"}, "Config.Advertise (--advertise of dispatch serve)"},
		{"postgres URL invalid", server.Config{Postgres: "postgres://u:secret@h:99999/db"}, "Config.Postgres (--postgres of dispatch serve and dispatch test): pgstore: postgres://u:xxxxx@h:99999/db is not a PostgreSQL connection URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			_, err := server.New(tt.cfg)
			is.True(err != nil)
			is.True(strings.Contains(err.Error(), tt.want))   // error names the field
			is.True(!strings.Contains(err.Error(), "secret")) // and never echoes a password
		})
	}
}

func TestAuth(t *testing.T) {
	b := setup(t)
	b.ep.handle("echo", echo)
	protocols := []struct {
		name   string
		client *http.Client
		opts   []connect.ClientOption
	}{
		{"connect", http.DefaultClient, nil},
		{"connect json", http.DefaultClient, []connect.ClientOption{connect.WithProtoJSON()}},
		{"grpc", h2cClient(), []connect.ClientOption{connect.WithGRPC()}},
		{"grpc-web", http.DefaultClient, []connect.ClientOption{connect.WithGRPCWeb()}},
	}
	headers := []struct {
		name   string
		header string
		ok     bool
	}{
		{"missing", "", false},
		{"wrong key", "Bearer nope", false},
		{"wrong scheme", "Basic " + b.srv.APIKey(), false},
		{"right", "Bearer " + b.srv.APIKey(), true},
		{"lower-case scheme", "bearer " + b.srv.APIKey(), true},
	}
	for _, p := range protocols {
		client := sdkv1connect.NewDispatchServiceClient(p.client, b.srv.URL(), p.opts...)
		for _, h := range headers {
			t.Run(p.name+"/"+h.name, func(t *testing.T) {
				is := is.New(t)
				req := connect.NewRequest(&sdkv1.DispatchRequest{Calls: []*sdkv1.Call{call("echo", "x")}})
				if h.header != "" {
					req.Header().Set("Authorization", h.header)
				}
				res, err := client.Dispatch(context.Background(), req)
				if h.ok {
					is.NoErr(err)
					is.Equal(len(res.Msg.GetDispatchIds()), 1)
					return
				}
				is.Equal(connect.CodeOf(err), connect.CodeUnauthenticated)
				is.True(strings.Contains(err.Error(), `expected header "Authorization: Bearer <key>"`))
				is.True(!strings.Contains(err.Error(), b.srv.APIKey())) // never echo the key
			})
		}
	}
	waitFor(t, "echo calls", func() bool { return b.srv.Live() == 0 })
}

func TestDispatchInvalidIsAtomic(t *testing.T) {
	tests := []struct {
		name  string
		noDef bool
		calls []*sdkv1.Call
		want  string
	}{
		{"bad function name", false, []*sdkv1.Call{call("echo", "a"), call("9bad name", "b")}, "function"},
		{"empty function", false, []*sdkv1.Call{call("echo", "a"), call("", "b")}, "function"},
		{"bad endpoint", false, []*sdkv1.Call{call("echo", "a"), {Function: "echo", Endpoint: "ftp://x"}}, "endpoint"},
		{"no endpoint and no default", true, []*sdkv1.Call{call("echo", "a")}, "endpoint"},
		{"negative expiration", false, []*sdkv1.Call{call("echo", "a"), {Function: "echo", Expiration: durationpb.New(-time.Second)}}, "expiration"},
		{"function name over 256 bytes", false, []*sdkv1.Call{call("echo", "a"), call(strings.Repeat("f", 300), "b")}, "dispatch: call 1: function name is 300 bytes, at most 256"},
		{"endpoint not allowed", false, []*sdkv1.Call{call("echo", "a"), {Function: "echo", Endpoint: "http://169.254.169.254"}}, "call 1: endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			b := setup(t, func(c *server.Config) {
				if tt.noDef {
					c.Endpoint = ""
				}
			})
			b.ep.handle("echo", echo)
			req := connect.NewRequest(&sdkv1.DispatchRequest{Calls: tt.calls})
			req.Header().Set("Authorization", "Bearer test")
			_, err := b.client.Dispatch(context.Background(), req)
			is.Equal(connect.CodeOf(err), connect.CodeInvalidArgument)
			is.True(strings.Contains(strings.ToLower(err.Error()), tt.want))
			calls, err := b.srv.Store().ListCalls(context.Background(), store.ListOptions{})
			is.NoErr(err)
			is.Equal(len(calls), 0)   // none recorded
			is.Equal(b.srv.Live(), 0) // none running
			is.Equal(b.ep.count("echo"), 0)
		})
	}
}

func TestDispatchRunRequest(t *testing.T) {
	is := is.New(t)
	other := newTestEndpoint(t, "/app")
	b := setup(t, func(c *server.Config) { c.DefaultExpiration = 42 * time.Minute }, allow(other.URL()+"/app"))
	other.handle("echo", echo)
	b.ep.handle("echo", echo)

	calls := []*sdkv1.Call{call("echo", "0"), call("echo", "1"), call("echo", "2")}
	calls[1].Endpoint = other.URL() + "/app" // call.endpoint wins, path prefix kept
	calls[2].Expiration = durationpb.New(time.Minute)
	before := time.Now()
	ids := b.dispatch(t, calls...)
	waitFor(t, "calls", func() bool { return b.ep.count("echo") == 2 && other.count("echo") == 1 })

	reqs := append(b.ep.requests("echo"), other.requests("echo")...)
	seen := map[string]bool{}
	for _, r := range reqs {
		i := strOf(r.GetInput())
		id := ids[map[string]int{"0": 0, "1": 1, "2": 2}[i]]
		is.Equal(r.GetDispatchId(), id) // ids come back in the order of the calls
		is.Equal(r.GetRootDispatchId(), id)
		is.Equal(r.GetParentDispatchId(), "")
		created := r.GetCreationTime().AsTime()
		is.True(!created.Before(before.Add(-time.Second)) && created.Before(time.Now().Add(time.Second)))
		exp := r.GetExpirationTime().AsTime().Sub(created)
		if i == "2" {
			is.Equal(exp, time.Minute)
		} else {
			is.Equal(exp, 42*time.Minute) // default expiration
		}
		seen[i] = true
	}
	is.Equal(len(seen), 3)
	is.Equal(len(other.requests("echo")), 1)
	is.Equal(strOf(other.requests("echo")[0].GetInput()), "1")
}

func TestPollChildren(t *testing.T) {
	is := is.New(t)
	b := setup(t)
	out := make(chan *sdkv1.RunRequest, 10)
	b.ep.handle("echo", echo)
	b.ep.handle("parent", gather(out, 3, 3, time.Hour, 1,
		child(11, "echo", "a"), child(12, "echo", "b"), child(13, "echo", "c")))
	ids := b.dispatch(t, call("parent", ""))

	resume := recv(t, out)
	is.Equal(stateOf(resume), "0") // state passed back
	res := resume.GetPollResult().GetResults()
	is.Equal(len(res), 3)
	got := map[uint64]string{}
	for _, r := range res {
		got[r.GetCorrelationId()] = strOf(r.GetOutput())
		is.True(r.GetDispatchId() != "")
	}
	is.Equal(got, map[uint64]string{11: "a", 12: "b", 13: "c"})
	for _, r := range b.ep.requests("echo") {
		is.Equal(r.GetParentDispatchId(), ids[0])
		is.Equal(r.GetRootDispatchId(), ids[0])
		is.True(r.GetDispatchId() != ids[0])
	}
	waitFor(t, "done", func() bool { return b.srv.Live() == 0 })
}

func TestPollMaxResults(t *testing.T) {
	is := is.New(t)
	b := setup(t)
	out := make(chan *sdkv1.RunRequest, 10)
	b.ep.handle("echo", echo)
	// min 2, max 2, three calls: the first resume has exactly 2 results,
	// the third waits for the next poll (which has no calls).
	b.ep.handle("parent", gather(out, 2, 2, time.Hour, 2,
		child(1, "echo", "a"), child(2, "echo", "b"), child(3, "echo", "c")))
	b.dispatch(t, call("parent", ""))
	first := recv(t, out).GetPollResult().GetResults()
	is.Equal(len(first), 2)
	second := recv(t, out).GetPollResult().GetResults()
	is.Equal(len(second), 1)
	seen := map[uint64]bool{}
	for _, r := range append(first, second...) {
		seen[r.GetCorrelationId()] = true
	}
	is.Equal(len(seen), 3)
	waitFor(t, "done", func() bool { return b.srv.Live() == 0 })
}

func TestPollMaxWaitAndLateResults(t *testing.T) {
	is := is.New(t)
	b := setup(t)
	out := make(chan *sdkv1.RunRequest, 10)
	release := make(chan struct{})
	b.ep.handle("slow", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
		<-release
		return output("late"), nil
	})
	b.ep.handle("parent", gather(out, 1, 10, time.Second, 2, child(7, "slow", "")))
	start := time.Now()
	b.dispatch(t, call("parent", ""))
	first := recv(t, out)
	is.True(time.Since(start) >= time.Second) // resumed by max_wait
	is.Equal(len(first.GetPollResult().GetResults()), 0)
	close(release)
	// The result that came after the parent stopped waiting is in its inbox
	// for the next poll.
	second := recv(t, out).GetPollResult().GetResults()
	is.Equal(len(second), 1)
	is.Equal(second[0].GetCorrelationId(), uint64(7))
	is.Equal(strOf(second[0].GetOutput()), "late")
	waitFor(t, "done", func() bool { return b.srv.Live() == 0 })
}

func TestDurableSleep(t *testing.T) {
	is := is.New(t)
	b := setup(t)
	out := make(chan *sdkv1.RunRequest, 1)
	b.ep.handle("sleeper", gather(out, 1, 1, time.Second, 1))
	start := time.Now()
	b.dispatch(t, call("sleeper", ""))
	r := recv(t, out)
	is.True(time.Since(start) >= time.Second)
	is.Equal(len(r.GetPollResult().GetResults()), 0)
	is.True(r.GetPollResult().GetError() == nil)
	waitFor(t, "done", func() bool { return b.srv.Live() == 0 })
}

func TestPollTypedState(t *testing.T) {
	is := is.New(t)
	b := setup(t)
	out := make(chan *sdkv1.RunRequest, 1)
	b.ep.handle("echo", echo)
	b.ep.handle("typed", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
		if req.GetInput() != nil {
			p := poll("", 1, 1, time.Hour, child(1, "echo", "x"))
			p.GetPoll().State = &sdkv1.Poll_TypedCoroutineState{TypedCoroutineState: str("frames")}
			return p, nil
		}
		out <- req
		return output("ok"), nil
	})
	b.dispatch(t, call("typed", ""))
	r := recv(t, out)
	is.Equal(strOf(r.GetPollResult().GetTypedCoroutineState()), "frames")
	is.Equal(len(r.GetPollResult().GetResults()), 1)
}

func TestPollInvalid(t *testing.T) {
	tests := []struct {
		name string
		poll func(*sdkv1.Poll)
		want string
	}{
		{"min_results negative", func(p *sdkv1.Poll) { p.MinResults = -1 }, "min_results"},
		{"max_results 1001", func(p *sdkv1.Poll) { p.MaxResults = 1001 }, "max_results"},
		{"max_results 1001, no max_wait", func(p *sdkv1.Poll) { p.MaxResults, p.MaxWait = 1001, nil }, "max_results"},
		{"min_results above max_results", func(p *sdkv1.Poll) { p.MinResults, p.MaxResults = 3, 2 }, "min_results (3) is above max_results (2)"},
		{"max_wait under 1s", func(p *sdkv1.Poll) { p.MaxWait = durationpb.New(time.Millisecond) }, "max_wait"},
		{"max_wait of 0s", func(p *sdkv1.Poll) { p.MaxWait = durationpb.New(0) }, "max_wait"},
		{"invalid call", func(p *sdkv1.Poll) { p.Calls = append(p.Calls, child(2, "bad name!", "")) }, "function"},
		{"function name over 256 bytes", func(p *sdkv1.Poll) {
			p.Calls = append(p.Calls, child(2, strings.Repeat("f", 300), ""))
		}, "call 1: function name is 300 bytes, at most 256"},
		{"endpoint not allowed", func(p *sdkv1.Poll) {
			p.Calls = append(p.Calls, &sdkv1.Call{Function: "echo", Endpoint: "http://169.254.169.254/latest/meta-data"})
		}, `call 1: endpoint "http://169.254.169.254/latest/meta-data" is not allowed`},
		{"other loopback port not allowed", func(p *sdkv1.Poll) {
			p.Calls = append(p.Calls, &sdkv1.Call{Function: "echo", Endpoint: "http://127.0.0.1:1"})
		}, "--allow-endpoint"},
		{"endpoint with credentials", func(p *sdkv1.Poll) {
			p.Calls = append(p.Calls, &sdkv1.Call{Function: "echo", Endpoint: "http://user:pw@127.0.0.1:1"})
		}, "credentials"},
		{"1001 calls", func(p *sdkv1.Poll) {
			for i := range 1000 {
				p.Calls = append(p.Calls, child(uint64(i+2), "echo", "x"))
			}
		}, "1000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			b := setup(t)
			out := make(chan *sdkv1.RunRequest, 1)
			b.ep.handle("echo", echo)
			b.ep.handle("parent", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
				if req.GetInput() != nil {
					p := poll("s", 1, 1, time.Hour, child(1, "echo", "x"))
					tt.poll(p.GetPoll())
					return p, nil
				}
				out <- req
				return output("ok"), nil
			})
			b.dispatch(t, call("parent", ""))
			r := recv(t, out)
			pe := r.GetPollResult().GetError()
			is.True(pe != nil)
			is.Equal(pe.GetType(), "INVALID_ARGUMENT")
			is.True(strings.Contains(pe.GetMessage(), tt.want))
			is.Equal(stateOf(r), "s")
			is.Equal(len(r.GetPollResult().GetResults()), 0)
			waitFor(t, "done", func() bool { return b.srv.Live() == 0 })
			is.Equal(b.ep.count("echo"), 0) // none dispatched
		})
	}
}

func TestExitResultToParent(t *testing.T) {
	is := is.New(t)
	b := setup(t)
	out := make(chan *sdkv1.RunRequest, 1)
	b.ep.handle("fails", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
		return failure(sdkv1.Status_STATUS_PERMANENT_ERROR, "boom"), nil
	})
	b.ep.handle("parent", gather(out, 1, 1, time.Hour, 1, child(5, "fails", "")))
	b.dispatch(t, call("parent", ""))
	r := recv(t, out).GetPollResult().GetResults()
	is.Equal(len(r), 1)
	is.Equal(r[0].GetCorrelationId(), uint64(5))
	is.Equal(r[0].GetError().GetMessage(), "boom") // the function's error, unchanged
	is.Equal(r[0].GetError().GetType(), "test")
	is.Equal(b.ep.count("fails"), 1) // not retried
}

func TestTailCall(t *testing.T) {
	tests := []struct {
		name   string
		status sdkv1.Status
	}{
		{"ok", sdkv1.Status_STATUS_OK},
		{"beside a permanent error", sdkv1.Status_STATUS_PERMANENT_ERROR},
		{"beside a retryable error", sdkv1.Status_STATUS_TEMPORARY_ERROR},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			b := setup(t)
			out := make(chan *sdkv1.RunRequest, 1)
			b.ep.handle("first", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
				return &sdkv1.RunResponse{Status: tt.status, Directive: &sdkv1.RunResponse_Exit{Exit: &sdkv1.Exit{
					Result:   &sdkv1.CallResult{Error: &sdkv1.Error{Type: "x", Message: "ignored"}},
					TailCall: call("second", "handed over"),
				}}}, nil
			})
			b.ep.handle("second", echo)
			b.ep.handle("parent", gather(out, 1, 1, time.Hour, 1, child(9, "first", "")))
			ids := b.dispatch(t, call("parent", ""))
			r := recv(t, out).GetPollResult().GetResults()
			is.Equal(len(r), 1)
			is.Equal(r[0].GetCorrelationId(), uint64(9))
			is.Equal(strOf(r[0].GetOutput()), "handed over")
			is.True(r[0].GetError() == nil)
			first, second := b.ep.requests("first"), b.ep.requests("second")
			is.Equal(len(first), 1)
			is.Equal(len(second), 1)
			is.Equal(second[0].GetDispatchId(), first[0].GetDispatchId()) // same dispatch id
			is.Equal(r[0].GetDispatchId(), first[0].GetDispatchId())
			is.Equal(second[0].GetParentDispatchId(), ids[0])
			is.Equal(second[0].GetRootDispatchId(), ids[0])
			is.Equal(second[0].GetCreationTime().AsTime(), first[0].GetCreationTime().AsTime())
		})
	}
}

func TestResultsDroppedAfterParentExits(t *testing.T) {
	is := is.New(t)
	b := setup(t)
	release := make(chan struct{})
	out := make(chan *sdkv1.RunRequest, 10)
	b.ep.handle("slow", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
		<-release
		return output("late"), nil
	})
	b.ep.handle("parent", gather(out, 1, 1, time.Second, 1, child(1, "slow", "")))
	b.dispatch(t, call("parent", ""))
	r := recv(t, out)
	is.Equal(len(r.GetPollResult().GetResults()), 0) // resumed by max_wait, then exits
	waitFor(t, "parent done", func() bool { return b.srv.Live() == 1 })
	close(release)
	waitFor(t, "child done", func() bool { return b.srv.Live() == 0 })
	is.Equal(b.ep.count("parent"), 2) // not resumed again
}

func TestRetries(t *testing.T) {
	retried := []sdkv1.Status{
		sdkv1.Status_STATUS_TIMEOUT, sdkv1.Status_STATUS_THROTTLED, sdkv1.Status_STATUS_TEMPORARY_ERROR,
		sdkv1.Status_STATUS_DNS_ERROR, sdkv1.Status_STATUS_TCP_ERROR, sdkv1.Status_STATUS_TLS_ERROR,
		sdkv1.Status_STATUS_HTTP_ERROR,
	}
	final := []sdkv1.Status{
		sdkv1.Status_STATUS_INVALID_ARGUMENT, sdkv1.Status_STATUS_INVALID_RESPONSE,
		sdkv1.Status_STATUS_PERMANENT_ERROR, sdkv1.Status_STATUS_UNAUTHENTICATED,
		sdkv1.Status_STATUS_PERMISSION_DENIED, sdkv1.Status_STATUS_NOT_FOUND,
	}
	type test struct {
		name    string
		fail    func(w http.ResponseWriter) // the failing answer, twice
		runs    int                         // requests until the parent is resumed
		wantErr string                      // error type delivered, "" for success
	}
	var tests []test
	for _, s := range retried {
		tests = append(tests, test{name: s.String(), fail: statusAnswer(s), runs: 3})
	}
	for _, s := range final {
		tests = append(tests, test{name: s.String(), fail: statusAnswer(s), runs: 1, wantErr: "test"})
	}
	tests = append(tests,
		test{name: "HTTP 503", fail: httpAnswer(503), runs: 3},
		test{name: "HTTP 500", fail: httpAnswer(500), runs: 3},
		test{name: "HTTP 429", fail: httpAnswer(429), runs: 3},
		test{name: "HTTP 404", fail: httpAnswer(404), runs: 1, wantErr: "NOT_FOUND"},
		test{name: "HTTP 400", fail: httpAnswer(400), runs: 1, wantErr: "INVALID_ARGUMENT"},
		test{name: "garbage", fail: garbage, runs: 1, wantErr: "INVALID_RESPONSE"},
		test{name: "no directive", fail: func(w http.ResponseWriter) { writeProto(w, &sdkv1.RunResponse{Status: sdkv1.Status_STATUS_OK}) }, runs: 1, wantErr: "INVALID_RESPONSE"},
	)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			flaky := newFlakyEndpoint(t, 2, tt.fail)
			b := setup(t, allow(flaky.srv.URL))
			out := make(chan *sdkv1.RunRequest, 1)
			c := child(3, "flaky", "v")
			c.Endpoint = flaky.srv.URL
			b.ep.handle("parent", gather(out, 1, 1, time.Hour, 1, c))
			b.dispatch(t, call("parent", ""))
			r := recv(t, out).GetPollResult().GetResults()
			is.Equal(len(r), 1)
			is.Equal(int(flaky.runs.Load()), tt.runs)
			if tt.wantErr == "" {
				is.True(r[0].GetError() == nil)
				is.Equal(strOf(r[0].GetOutput()), "v")
			} else {
				is.Equal(r[0].GetError().GetType(), tt.wantErr)
			}
		})
	}
}

func TestExpiration(t *testing.T) {
	tests := []struct {
		name    string
		handler func(w http.ResponseWriter, r *http.Request)
	}{
		{"always temporary", func(w http.ResponseWriter, r *http.Request) { statusAnswer(sdkv1.Status_STATUS_TEMPORARY_ERROR)(w) }},
		{"always 503", func(w http.ResponseWriter, r *http.Request) { httpAnswer(503)(w) }},
		{"hangs", func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body); <-r.Context().Done() }},
		{"refused", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			url := "http://127.0.0.1:1" // nothing listens there
			if tt.handler != nil {
				srv := newRawEndpoint(t, tt.handler)
				url = srv.URL
			}
			b := setup(t, allow(url))
			out := make(chan *sdkv1.RunRequest, 1)
			c := child(4, "broken", "")
			c.Endpoint = url
			c.Expiration = durationpb.New(300 * time.Millisecond)
			b.ep.handle("echo", echo)
			b.ep.handle("parent", gather(out, 1, 1, time.Hour, 1, c))
			b.dispatch(t, call("parent", ""))
			r := recv(t, out).GetPollResult().GetResults()
			is.Equal(len(r), 1)
			is.Equal(r[0].GetError().GetType(), "TIMEOUT")
			// The server keeps serving everyone else.
			out2 := make(chan *sdkv1.RunRequest, 1)
			b.ep.handle("other", gather(out2, 1, 1, time.Hour, 1, child(1, "echo", "fine")))
			b.dispatch(t, call("other", ""))
			is.Equal(strOf(recv(t, out2).GetPollResult().GetResults()[0].GetOutput()), "fine")
		})
	}
}

func TestSuspendedParentExpires(t *testing.T) {
	is := is.New(t)
	b := setup(t)
	release := make(chan struct{})
	defer close(release)
	out := make(chan *sdkv1.RunRequest, 1)
	b.ep.handle("hang", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
		<-release
		return output("x"), nil
	})
	b.ep.handle("middle", gather(nil, 1, 1, time.Hour, 1, child(1, "hang", "")))
	mid := child(2, "middle", "")
	mid.Expiration = durationpb.New(300 * time.Millisecond)
	b.ep.handle("top", gather(out, 1, 1, time.Hour, 1, mid))
	b.dispatch(t, call("top", ""))
	r := recv(t, out).GetPollResult().GetResults()
	is.Equal(len(r), 1)
	is.Equal(r[0].GetCorrelationId(), uint64(2))
	is.Equal(r[0].GetError().GetType(), "TIMEOUT")
}

// TestQueuedCallExpires checks that a call queued behind a saturated
// endpoint fails with TIMEOUT at its expiration, not when a slot frees.
func TestQueuedCallExpires(t *testing.T) {
	is := is.New(t)
	b := setup(t, func(c *server.Config) {
		c.InitialConcurrency, c.MaxConcurrency = 1, 1
		c.AttemptTimeout = time.Hour
	})
	release := make(chan struct{})
	defer close(release)
	b.ep.handle("hang", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
		<-release // holds the endpoint's one slot until the test ends
		return output("x"), nil
	})
	b.dispatch(t, call("hang", ""))
	waitFor(t, "the slot taken", func() bool { return b.ep.count("hang") == 1 })

	queued := call("hang", "queued")
	queued.Expiration = durationpb.New(200 * time.Millisecond)
	id := b.dispatch(t, queued)[0]
	// Without the expiration timer the call would wait for the slot's
	// attempt, an hour.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	o, err := b.srv.Result(ctx, id)
	is.NoErr(err) // the outcome came before the slot freed
	is.Equal(o.Status, sdkv1.Status_STATUS_TIMEOUT)
	is.Equal(o.Result.GetError().GetType(), "TIMEOUT")
	is.Equal(b.ep.count("hang"), 1) // never sent
}

func TestIncompatibleState(t *testing.T) {
	tests := []struct {
		name        string
		maxRestarts int // Config.MaxRestarts
		refuse      int // resumes answered INCOMPATIBLE_STATE
		wantErr     bool
		inputs      int // runs with the input
		runs        int // all runs of the function
	}{
		{"restarted once", 0, 1, false, 2, 4},
		{"gives up after 3 restarts", 0, 100, true, 4, 8},
		{"no restarts when negative", -1, 100, true, 1, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			b := setup(t, func(c *server.Config) { c.MaxRestarts = tt.maxRestarts })
			out := make(chan *sdkv1.RunRequest, 1)
			var mu sync.Mutex
			var refused int
			b.ep.handle("echo", echo)
			b.ep.handle("versioned", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
				if req.GetInput() != nil {
					return poll("v1", 1, 1, time.Hour, child(1, "echo", "x")), nil
				}
				mu.Lock()
				defer mu.Unlock()
				if refused < tt.refuse {
					refused++
					return &sdkv1.RunResponse{Status: sdkv1.Status_STATUS_INCOMPATIBLE_STATE}, nil
				}
				return output("resumed"), nil
			})
			b.ep.handle("parent", gather(out, 1, 1, time.Hour, 1, child(8, "versioned", "in")))
			b.dispatch(t, call("parent", ""))
			r := recv(t, out).GetPollResult().GetResults()
			is.Equal(len(r), 1)
			inputs := 0
			for _, req := range b.ep.requests("versioned") {
				if req.GetInput() != nil {
					is.Equal(strOf(req.GetInput()), "in") // the original input
					inputs++
				}
			}
			is.Equal(inputs, tt.inputs)
			is.Equal(b.ep.count("versioned"), tt.runs)
			if tt.wantErr {
				is.Equal(r[0].GetError().GetType(), "INCOMPATIBLE_STATE")
			} else {
				is.Equal(strOf(r[0].GetOutput()), "resumed")
			}
		})
	}
}

// TestFairness checks that the ready queue of an endpoint serves roots in
// turn: a root with one call does not wait behind the 300 ready calls of
// another. The endpoint runs one call at a time, and the first call of the
// big root is held until the small root's call is queued, so the order in
// which the calls start does not depend on timing.
func TestFairness(t *testing.T) {
	is := is.New(t)
	b := setup(t, func(c *server.Config) {
		c.InitialConcurrency, c.MaxConcurrency = 1, 1
	})
	const fanout = 300
	var calls []*sdkv1.Call
	for i := range fanout {
		calls = append(calls, child(uint64(i), "work", "big"))
	}
	hold := newGate(t)
	b.ep.handle("work", hold.gated(func(*sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
		return output("ok"), nil
	}))
	bigOut := make(chan *sdkv1.RunRequest, 1)
	b.ep.handle("big", gather(bigOut, fanout, 1000, time.Hour, 1, calls...))
	b.dispatch(t, call("big", ""))
	// The first call of the big root is in flight, held; its 299 others
	// are queued behind it.
	waitFor(t, "the first call of the fan-out", func() bool { return b.ep.count("work") == 1 })
	// Dispatch returns once the call is queued.
	b.dispatch(t, call("work", "small"))
	hold.open()
	is.Equal(len(recv(t, bigOut).GetPollResult().GetResults()), fanout)

	reqs := b.ep.requests("work") // in the order they started
	is.Equal(len(reqs), fanout+1)
	small := -1
	for i, r := range reqs {
		if strOf(r.GetInput()) == "small" {
			small = i
		}
	}
	// Round-robin by root: the small root waits for the call in flight
	// and at most one more turn of the big root, not for all its calls.
	t.Logf("the small root's call started after %d calls of the big one", small)
	is.True(small >= 1 && small <= 2)
}

func TestMalformedRequests(t *testing.T) {
	b := setup(t)
	b.ep.handle("echo", echo)
	tests := []struct {
		name        string
		contentType string
		body        string
		status      int
	}{
		{"garbage proto", "application/proto", "\xff\xff\xff", http.StatusBadRequest},
		{"garbage json", "application/json", "{nope", http.StatusBadRequest},
		{"wrong content type", "text/plain", "hello", http.StatusUnsupportedMediaType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			req, err := http.NewRequest("POST", b.srv.URL()+"/dispatch.sdk.v1.DispatchService/Dispatch", strings.NewReader(tt.body))
			is.NoErr(err)
			req.Header.Set("Content-Type", tt.contentType)
			req.Header.Set("Authorization", "Bearer test")
			res, err := http.DefaultClient.Do(req)
			is.NoErr(err)
			res.Body.Close()
			is.Equal(res.StatusCode, tt.status)
		})
	}
	// The server keeps serving.
	b.dispatch(t, call("echo", "still here"))
	waitFor(t, "echo", func() bool { return b.ep.count("echo") == 1 })
}

func TestStartAddrInUse(t *testing.T) {
	is := is.New(t)
	b := setup(t)
	srv, err := server.New(server.Config{Memory: true, Addr: b.srv.Addr()})
	is.NoErr(err)
	err = srv.Start(context.Background())
	is.True(err != nil)
	is.True(strings.Contains(err.Error(), "Config.Addr"))
	is.NoErr(srv.Close()) // closed already; Close stays safe
}

// A resume carries at most 8 MB of results, so that it stays under the
// request limit of SDK endpoints (16 MB): large results are spread over
// several resumes, even below min_results, and none is lost.
func TestResumeBytesBounded(t *testing.T) {
	is := is.New(t)
	b := setup(t)
	out := make(chan *sdkv1.RunRequest, 10)
	big := strings.Repeat("x", 5<<20)
	b.ep.handle("big", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
		return output(big + strOf(req.GetInput())), nil
	})
	b.ep.handle("parent", gather(out, 3, 3, time.Hour, 3,
		child(1, "big", "a"), child(2, "big", "b"), child(3, "big", "c")))
	b.dispatch(t, call("parent", ""))
	seen := map[uint64]bool{}
	for range 3 {
		res := recv(t, out).GetPollResult().GetResults()
		is.Equal(len(res), 1) // two 5 MB results do not fit in one resume
		seen[res[0].GetCorrelationId()] = true
		is.Equal(len(strOf(res[0].GetOutput())), 5<<20+1)
	}
	is.Equal(len(seen), 3)
	waitFor(t, "done", func() bool { return b.srv.Live() == 0 })
}
