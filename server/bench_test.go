package server_test

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"buf.build/gen/go/stealthrocket/dispatch-proto/connectrpc/go/dispatch/sdk/v1/sdkv1connect"
	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/rs/zerolog"

	"github.com/dispatchkit/dispatch/server"
)

// stepper is a workflow of `steps` sequential echo calls that reports
// each finished workflow on done.
func stepper(steps int, done chan<- string) fn {
	return func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
		n := 0
		if pr := req.GetPollResult(); pr != nil {
			n, _ = strconv.Atoi(string(pr.GetCoroutineState()))
			n++
		}
		if n >= steps {
			done <- req.GetDispatchId()
			return output("done"), nil
		}
		return poll(strconv.Itoa(n), 1, 1, time.Minute, child(uint64(n), "echo", "x")), nil
	}
}

// benchStores runs f against the memory and the SQLite store.
func benchStores(b *testing.B, f func(b *testing.B, bb *bundle)) {
	for _, name := range []string{"memory", "sqlite"} {
		b.Run(name, func(b *testing.B) {
			bb := setup(b, func(c *server.Config) {
				c.Logger = zerolog.Nop()
				if name == "sqlite" {
					c.Memory = false
					c.StateDir = b.TempDir()
				}
			})
			f(b, bb)
		})
	}
}

// BenchmarkAwaitStep measures one await step of a sequential workflow:
// resume, poll one call, run the call, deliver its result.
func BenchmarkAwaitStep(b *testing.B) {
	benchStores(b, func(b *testing.B, bb *bundle) {
		done := make(chan string, 1)
		bb.ep.handle("echo", echo)
		bb.ep.handle("seq", stepper(b.N, done))
		b.ResetTimer()
		bb.dispatch(b, call("seq", ""))
		<-done
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/step")
		reportHeld(b, bb)
	})
}

// BenchmarkThreeStepWorkflows measures 3-step workflows from 32 clients.
func BenchmarkThreeStepWorkflows(b *testing.B) {
	benchStores(b, func(b *testing.B, bb *bundle) {
		done := make(chan string, 1024)
		bb.ep.handle("echo", echo)
		bb.ep.handle("wf3", stepper(3, done))
		b.ResetTimer()
		sem := make(chan struct{}, 32)
		go func() {
			for range b.N {
				sem <- struct{}{}
				go func() { bb.dispatch(b, call("wf3", "")) }()
			}
		}()
		for range b.N {
			<-done
			<-sem
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "workflows/s")
		reportHeld(b, bb)
	})
}

// reportHeld reports the share of await steps committed in one
// transaction (the child's outcome held for its parent's answer).
func reportHeld(b *testing.B, bb *bundle) {
	st := bb.srv.Stats()
	b.ReportMetric(float64(st.Held-st.HeldAlone)/float64(max(st.Held, 1))*100, "%joint")
}

// BenchmarkGather10k measures a Gather of 10,000 calls, issued 1,000 per
// poll (the protocol's limit) as soon as the previous poll resumes.
func BenchmarkGather10k(b *testing.B) {
	const total, batch = 10000, 1000
	benchStores(b, func(b *testing.B, bb *bundle) {
		done := make(chan string, 1)
		bb.ep.handle("echo", echo)
		bb.ep.handle("gather", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
			issued, got := 0, 0
			if pr := req.GetPollResult(); pr != nil {
				fmt.Sscan(string(pr.GetCoroutineState()), &issued, &got)
				got += len(pr.GetResults())
			}
			if got >= total {
				done <- req.GetDispatchId()
				return output("done"), nil
			}
			var calls []*sdkv1.Call
			for i := 0; i < batch && issued < total; i++ {
				calls = append(calls, child(uint64(issued), "echo", "x"))
				issued++
			}
			return poll(fmt.Sprint(issued, got), 1, 1000, time.Minute, calls...), nil
		})
		for b.Loop() {
			bb.dispatch(b, call("gather", ""))
			<-done
		}
	})
}

// BenchmarkSuspendedMemory reports the server's heap per workflow
// suspended on a long sleep (a poll with no calls).
func BenchmarkSuspendedMemory(b *testing.B) {
	const n = 20000
	benchStores(b, func(b *testing.B, bb *bundle) {
		asleep := make(chan struct{}, n)
		bb.ep.handle("sleeper", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
			asleep <- struct{}{}
			return poll(strings.Repeat("s", 64), 1, 1, time.Hour), nil
		})
		for b.Loop() {
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			calls := make([]*sdkv1.Call, 0, 1000)
			for i := 0; i < n; i += 1000 {
				calls = calls[:0]
				for range 1000 {
					calls = append(calls, call("sleeper", "zzz"))
				}
				bb.dispatch(b, calls...)
			}
			for range n {
				<-asleep
			}
			waitFor(b, "the workflows to suspend", func() bool { return bb.srv.Live() == n && bb.srv.Suspended() == n })
			runtime.GC()
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/workflow")
		}
	})
}

// BenchmarkRecover10k reports how long a restart takes to load and set on
// their way 10,000 calls in flight (suspended workflows and their pending
// children) from the SQLite store.
func BenchmarkRecover10k(b *testing.B) {
	const n = 5000 // workflows; each has one child in flight: 10,000 calls
	dir := b.TempDir()
	ep := newTestEndpoint(b, "")
	release := make(chan struct{})
	var once sync.Once
	defer once.Do(func() { close(release) })
	started := make(chan struct{}, 2*n)
	hangEP := newTestEndpoint(b, "")
	hangEP.handle("hang", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
		started <- struct{}{}
		<-release
		return output("x"), nil
	})
	ep.handle("wf", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
		if req.GetInput() != nil {
			c := child(1, "hang", "")
			c.Endpoint = hangEP.URL()
			return poll("s", 1, 1, time.Hour, c), nil
		}
		return output("done"), nil
	})
	cfg := server.Config{Endpoint: ep.URL(), AllowEndpoints: []string{hangEP.URL()}, StateDir: dir, Logger: zerolog.Nop(), InitialConcurrency: 64, MaxConcurrency: 64}
	srv, err := server.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	bb := &bundle{srv: srv, ep: ep, client: sdkv1connect.NewDispatchServiceClient(http.DefaultClient, srv.URL())}
	for i := 0; i < n; i += 1000 {
		calls := make([]*sdkv1.Call, 1000)
		for j := range calls {
			calls[j] = call("wf", "")
		}
		bb.dispatch(b, calls...)
	}
	waitFor(b, "the calls to be in flight", func() bool { return srv.Live() == 2*n && srv.Suspended() == n })
	srv.Close()
	for b.Loop() {
		srv, err := server.New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := srv.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		<-started // the first recovered child runs
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms-to-resume")
		b.ReportMetric(float64(srv.Live()), "calls")
		srv.Close()
	}
}
