package dispatch

import (
	"bytes"
	"io"
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
	for b.Loop() {
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/proto")
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
