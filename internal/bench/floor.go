package bench

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/dispatchkit/dispatch/internal/signature"
)

// (f) The floor of signed loopback HTTP on this machine: what the
// requests of (a) and (b) over HTTP cost before Dispatch does anything
// in them. A bare request is a POST of a RunRequest the size of the
// bench's, signed as the server signs a Run request (RFC 9421, Ed25519,
// Content-Digest), verified as the endpoint verifies it (the signature,
// then the digest of the body), and answered with a RunResponse the size
// of an exit, with net/http on both sides over a kept-alive loopback
// connection: no connect, no scheduler, no store, no function, no
// coroutine state. An await step over HTTP is two such requests in
// sequence (the child's run, then the parent's resume), and a 3-step
// workflow is seven of them plus one Dispatch request (unsigned: the
// client authenticates with its API key). So the figures bound the HTTP
// goals from below, measured in the same spell as the rows they bound:
// (a)'s p50 over HTTP cannot be under the floor's p50 per step, nor
// (b)'s rate over the most workflows per second the floor's CPU allows
// on this machine's cores.
func floor(ctx context.Context, o *runner) ([]row, error) {
	f, err := newFloorServer()
	if err != nil {
		return nil, err
	}
	defer f.close()

	// Sequential: as many steps as (a) measures, one at a time.
	steps := make([]time.Duration, 0, o.Runs*o.Steps)
	for range o.Runs * o.Steps {
		start := time.Now()
		for range 2 {
			if err := f.post(ctx, true); err != nil {
				return nil, err
			}
		}
		steps = append(steps, time.Since(start))
	}
	slices.Sort(steps)
	p50 := steps[len(steps)/2]

	// Concurrent: (b)'s clients, each sending a workflow's requests in
	// turn, as many workflows as (b) runs.
	elapsed, cpu, cpuOK, err := clients(ctx, o.Clients, o.Workflows, func(ctx context.Context, _ int) error {
		for i := range floorRequests {
			if err := f.post(ctx, i > 0); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	rows := []row{
		measured("(f) floor of (a) over HTTP: 2 bare signed requests in sequence, p50", float64(p50), msOf, "", nil),
		measured(fmt.Sprintf("(f) floor of (b) over HTTP: bare requests of 3-step workflows, %d clients", o.Clients),
			float64(o.Workflows)/elapsed.Seconds(), rateOf, "", nil),
	}
	if cpuOK {
		per := cpu / time.Duration(o.Workflows)
		rows = append(rows,
			measured(fmt.Sprintf("(f) floor of (b): CPU of a workflow's %d bare requests (%d signed)", floorRequests, floorRequests-1),
				float64(per.Microseconds()), microsOf, "", nil),
			measured(fmt.Sprintf("(f) floor of (b): the most workflows/s that CPU allows on %d CPUs", runtime.NumCPU()),
				float64(runtime.NumCPU())*float64(time.Second)/float64(max(per, 1)), rateOf, "", nil),
		)
	}
	return rows, nil
}

// floorRequests are the HTTP requests of a 3-step workflow: its Dispatch
// request, then seven Run requests (the parent's four runs and its three
// children's).
const floorRequests = 8

// floorServer is the bare endpoint of (f) and its client.
type floorServer struct {
	srv      *http.Server
	ln       net.Listener
	url      string
	client   *http.Client
	signer   *signature.Signer
	body     []byte // a RunRequest the size of the bench's
	answer   []byte // a RunResponse the size of an exit
	served   chan error
	verifier *signature.Verifier
}

func newFloorServer() (*floorServer, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("bench: (f): making a key: %w", err)
	}
	input, err := anypb.New(wrapperspb.Int64(12345))
	if err != nil {
		return nil, fmt.Errorf("bench: (f): %w", err)
	}
	body, err := proto.Marshal(&sdkv1.RunRequest{
		Function: "bench.wf3", DispatchId: "0123456789abcdefghij", ParentDispatchId: "0123456789abcdefghik",
		RootDispatchId: "0123456789abcdefghik", Directive: &sdkv1.RunRequest_Input{Input: input},
	})
	if err != nil {
		return nil, fmt.Errorf("bench: (f): %w", err)
	}
	answer, err := proto.Marshal(&sdkv1.RunResponse{Status: sdkv1.Status_STATUS_OK,
		Directive: &sdkv1.RunResponse_Exit{Exit: &sdkv1.Exit{Result: &sdkv1.CallResult{Output: input}}}})
	if err != nil {
		return nil, fmt.Errorf("bench: (f): %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("bench: (f): listening on loopback: %w", err)
	}
	f := &floorServer{
		ln:       ln,
		url:      "http://" + ln.Addr().String() + "/dispatch.sdk.v1.FunctionService/Run",
		client:   &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}},
		signer:   signature.NewSigner(priv),
		verifier: signature.NewVerifier(pub),
		body:     body,
		answer:   answer,
		served:   make(chan error, 1),
	}
	f.srv = &http.Server{Handler: http.HandlerFunc(f.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() { f.served <- f.srv.Serve(ln) }()
	return f, nil
}

// serve verifies a signed request as the endpoint does (the headers
// first, then the body's digest) and answers it.
func (f *floorServer) serve(w http.ResponseWriter, r *http.Request) {
	var signed signature.Signed
	verify := r.Header.Get("Signature") != ""
	if verify {
		var err error
		if signed, err = f.verifier.VerifyHeaders(r); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if verify {
		if err := signed.CheckBody(body); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
	}
	w.Header().Set("Content-Type", "application/proto")
	_, _ = w.Write(f.answer)
}

// post sends one bare request, signed or not, and reads its answer.
func (f *floorServer) post(ctx context.Context, signed bool) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.url, bytes.NewReader(f.body))
	if err != nil {
		return fmt.Errorf("bench: (f): %w", err)
	}
	req.Header.Set("Content-Type", "application/proto")
	if signed {
		if err := f.signer.Sign(req, f.body); err != nil {
			return fmt.Errorf("bench: (f): signing: %w", err)
		}
	}
	res, err := f.client.Do(req)
	if err != nil {
		return fmt.Errorf("bench: (f): %w", err)
	}
	defer res.Body.Close()
	n, err := io.Copy(io.Discard, res.Body)
	switch {
	case err != nil:
		return fmt.Errorf("bench: (f): reading the answer: %w", err)
	case res.StatusCode != http.StatusOK:
		return fmt.Errorf("bench: (f): the bare endpoint answered %s", res.Status)
	case n != int64(len(f.answer)):
		return fmt.Errorf("bench: (f): the answer has %d bytes, want %d", n, len(f.answer))
	}
	return nil
}

func (f *floorServer) close() {
	f.client.CloseIdleConnections()
	_ = f.srv.Close()
	<-f.served // http.ErrServerClosed
}
