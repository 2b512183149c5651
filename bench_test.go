package dispatch

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/dispatchkit/dispatch/internal/signature"
	"google.golang.org/protobuf/proto"
)

// setupBench returns an endpoint that verifies signatures with the test key
// at testNow, and a signer to match.
func setupBench(b *testing.B) (*Dispatch, *signature.Signer) {
	b.Helper()
	priv, key := testKeys(b)
	d := newTest(b, WithVerificationKey(key.PublicBase64), WithClock(fixedClock(testNow)))
	return d, signature.NewSigner(priv, signature.WithSignerClock(fixedClock(testNow)))
}

// BenchmarkRunSigned is a signed Run of a plain function, end to end: the
// client signs the request and sends it over a real HTTP/1.1 connection
// (kept alive), the endpoint verifies it, runs the function and answers.
// Allocations of both sides are counted.
func BenchmarkRunSigned(b *testing.B) {
	d, signer := setupBench(b)
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	client := srv.Client()
	body := runBody(b, "roottest.echo", "hello")
	url := srv.URL + runPath

	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/proto")
		req.Header.Set("Accept-Encoding", "gzip") // as net/http's client asks by default, and as a scheduler may
		if err := signer.Sign(req, body); err != nil {
			b.Fatal(err)
		}
		res, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, err = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if err != nil || res.StatusCode != http.StatusOK {
			b.Fatalf("status %d, %v", res.StatusCode, err)
		}
	}
}

// reportCPU starts counting the process's CPU time, every thread's, and
// returns the function that reports it per operation (cpu-ns/op). A
// request's two sides run on two cores, so its wall time hides what it
// costs: the throughput a machine allows is its cores over this figure.
func reportCPU(b *testing.B) func() {
	start, ok := processCPU()
	return func() {
		end, ok2 := processCPU()
		if ok && ok2 && b.N > 0 {
			b.ReportMetric(float64(end-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

// BenchmarkLoopbackFloor is what one request costs on this machine before
// Dispatch does anything in it: a POST of 300 bytes answered with 100,
// over a loopback connection kept alive, with net/http on both sides (a
// Run request's transport, without signature, connect or protobuf), and
// the same exchange over a bare TCP connection (the kernel's share of it).
// A signed Run adds one Ed25519 signature and one verification to the
// first (BenchmarkEd25519 in internal/signature). README "Performance"
// adds them up to bound what a workflow over HTTP can cost.
func BenchmarkLoopbackFloor(b *testing.B) {
	const reqSize, resSize = 300, 100
	answer := make([]byte, resSize)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/proto")
		_, _ = w.Write(answer)
	}))
	defer srv.Close()
	client := srv.Client()
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	post := func() error {
		res, err := client.Post(srv.URL, "application/proto", bytes.NewReader(make([]byte, reqSize)))
		if err != nil {
			return err
		}
		n, err := io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if err == nil && n != resSize {
			err = fmt.Errorf("read %d bytes of the answer, want %d", n, resSize)
		}
		return err
	}
	// One request at a time: the latency of one, and its CPU with the
	// runtime's idle spinning, which a busy machine does not pay.
	b.Run("net/http", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			if err := post(); err != nil {
				b.Fatal(err)
			}
		}
	})
	// 32 requests at a time, as bench (b)'s clients: ns/op is the machine's
	// throughput bound, cpu-ns/op what one request costs when every core
	// is busy.
	b.Run("net/http-32", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(16) // 16 per core, 32 on two
		defer reportCPU(b)()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := post(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("tcp", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		served := make(chan error, 1)
		go func() {
			conn, err := ln.Accept()
			if err != nil {
				served <- err
				return
			}
			defer conn.Close()
			buf := make([]byte, reqSize)
			for {
				if _, err := io.ReadFull(conn, buf); err != nil {
					served <- nil // the client closed the connection
					return
				}
				if _, err := conn.Write(buf[:resSize]); err != nil {
					served <- err
					return
				}
			}
		}()
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, reqSize)
		b.ReportAllocs()
		stop := reportCPU(b)
		for b.Loop() {
			if _, err := conn.Write(buf); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(conn, buf[:resSize]); err != nil {
				b.Fatal(err)
			}
		}
		stop()
		conn.Close()
		if err := <-served; err != nil {
			b.Fatal(err)
		}
	})
}

// signedRequests returns a function making requests for body to the Run
// path, each with its own signature: the endpoint refuses replays, so a
// signature serves once. They are signed ahead, in batches, with the
// benchmark's timer stopped, so that the benchmarks below measure the
// handler alone (verification and the replay cache included).
func signedRequests(b *testing.B, signer *signature.Signer, body []byte) func() *http.Request {
	b.Helper()
	const batch = 1024
	var headers []http.Header
	return func() *http.Request {
		if len(headers) == 0 {
			b.StopTimer()
			for range batch {
				signed := httptest.NewRequest(http.MethodPost, runPath, nil)
				signed.Header.Set("Content-Type", "application/proto")
				if err := signer.Sign(signed, body); err != nil {
					b.Fatal(err)
				}
				headers = append(headers, signed.Header)
			}
			b.StartTimer()
		}
		req := httptest.NewRequest(http.MethodPost, runPath, bytes.NewReader(body))
		req.Header = headers[len(headers)-1] // read only: the handler clones the request
		headers = headers[:len(headers)-1]
		return req
	}
}

// serveRun serves req and decodes the answer.
func serveRun(tb testing.TB, h http.Handler, req *http.Request) *sdkv1.RunResponse {
	tb.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		tb.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var res sdkv1.RunResponse
	if err := proto.Unmarshal(rec.Body.Bytes(), &res); err != nil {
		tb.Fatal(err)
	}
	return &res
}

// benchServe is the loop of the handler benchmarks: it serves newReq()
// and checks the HTTP status only, so that decoding the answer is not
// measured.
func benchServe(b *testing.B, h http.Handler, newReq func() *http.Request) {
	b.Helper()
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, newReq())
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
}

// BenchmarkRunHandler is BenchmarkRunSigned without the network and the
// client: the request goes straight to the handler's ServeHTTP.
func BenchmarkRunHandler(b *testing.B) {
	d, signer := setupBench(b)
	h := d.Handler()
	newReq := signedRequests(b, signer, runBody(b, "roottest.echo", "hello"))
	if res := serveRun(b, h, newReq()); res.GetStatus() != sdkv1.Status_STATUS_OK {
		b.Fatalf("status %s", res.GetStatus())
	}
	benchServe(b, h, newReq)
}

// BenchmarkRunFlowResume resumes roottest.pipeline, a three-step flow
// (await, await, return), through the handler: "next-step" resumes the
// first await with its result (decode the state, run a continuation, encode
// the next state and poll); "exit" resumes the second await (decode, run,
// exit with the output).
func BenchmarkRunFlowResume(b *testing.B) {
	d, signer := setupBench(b)
	h := d.Handler()
	resume := func(poll *sdkv1.Poll, output int) []byte {
		body, err := proto.Marshal(&sdkv1.RunRequest{
			Function: "roottest.pipeline", DispatchId: "bench-1", RootDispatchId: "bench-1",
			Directive: &sdkv1.RunRequest_PollResult{PollResult: &sdkv1.PollResult{
				State:   &sdkv1.PollResult_TypedCoroutineState{TypedCoroutineState: poll.GetTypedCoroutineState()},
				Results: []*sdkv1.CallResult{{CorrelationId: poll.GetCalls()[0].GetCorrelationId(), DispatchId: "bench-2", Output: mustAny(b, output)}},
			}},
		})
		if err != nil {
			b.Fatal(err)
		}
		return body
	}
	first := serveRun(b, h, signedRequests(b, signer, runBody(b, "roottest.pipeline", 3))())
	step1 := resume(first.GetPoll(), 6)
	second := serveRun(b, h, signedRequests(b, signer, step1)())
	step2 := resume(second.GetPoll(), 14)

	benchmarks := []struct {
		name string
		body []byte
		want func(*sdkv1.RunResponse) bool
	}{
		{"next-step", step1, func(r *sdkv1.RunResponse) bool { return len(r.GetPoll().GetCalls()) == 1 }},
		{"exit", step2, func(r *sdkv1.RunResponse) bool { return r.GetExit().GetResult().GetOutput() != nil }},
	}
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			newReq := signedRequests(b, signer, bm.body)
			if res := serveRun(b, h, newReq()); res.GetStatus() != sdkv1.Status_STATUS_OK || !bm.want(res) {
				b.Fatalf("unexpected answer %v", res)
			}
			benchServe(b, h, newReq)
		})
	}
}
