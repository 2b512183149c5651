package dispatch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"buf.build/gen/go/stealthrocket/dispatch-proto/connectrpc/go/dispatch/sdk/v1/sdkv1connect"
	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"connectrpc.com/connect"
	"github.com/dispatchkit/dispatch/internal/signature"
	"github.com/dispatchkit/dispatch/serde"
	"github.com/matryer/is"
	"google.golang.org/protobuf/proto"
)

// pyMock behaves like the mock Dispatch server of dispatch-py v0.5.1
// (python -m dispatch.test; src/dispatch/test/service.py, client.py and
// server.py of that release), written again in Go from its behaviour:
//
//   - DispatchService over gRPC only, on cleartext HTTP/2; a call needs
//     "authorization: Bearer <key>";
//   - each call is queued as a RunRequest with only function and input (no
//     dispatch ids, no times), and sent to the endpoint one at a time as
//     POST {endpoint}/dispatch.sdk.v1.FunctionService/Run, Content-Type
//     application/grpc+proto, the protobuf body without gRPC framing,
//     signed (RFC 9421, Ed25519) with the static dev key and no nonce, over
//     HTTP/1.1; the answer must be a 2xx (raise_for_status) whose body is
//     the bare RunResponse;
//   - a status of its retry set is retried, and so is an HTTP error; a
//     poll registers a poller that keeps poll.coroutine_state (the untyped
//     bytes: its protos predate typed_coroutine_state) and queues the
//     poll's calls; a child's exit gives its result, with the call's
//     correlation id, to its poller, which is resumed only once all its
//     children are done, with RunRequest{function, poll_result{
//     coroutine_state, results}}; a tail call runs in the same call.
//
// Unlike the original it does not pause 150 ms after every pass over the
// queue, only after a pass that had to retry, and it records the final
// result of each root call so that a test can observe it.
type pyMock struct {
	sdkv1connect.UnimplementedDispatchServiceHandler
	apiKey   string
	endpoint string
	signer   *signature.Signer
	client   *http.Client

	mu      sync.Mutex
	nextID  int
	queue   []mockRun
	parents map[string]*mockPoller // by child dispatch id
	final   map[string]*sdkv1.CallResult
	failure error         // what the original would have died of (an assertion)
	retries int           // passes over the queue that had to retry
	changed chan struct{} // closed and replaced when final or failure change
	work    chan struct{} // a call was queued (buffered, 1)
	stop    chan struct{}
	done    chan struct{}
}

type mockRun struct {
	id  string
	req *sdkv1.RunRequest
}

type mockPoller struct {
	id, function string
	state        []byte
	waiting      map[string]*sdkv1.Call
	results      []*sdkv1.CallResult
}

// mockRetry is the original's default set of statuses to retry.
var mockRetry = map[sdkv1.Status]bool{
	sdkv1.Status_STATUS_THROTTLED: true, sdkv1.Status_STATUS_TIMEOUT: true, sdkv1.Status_STATUS_TEMPORARY_ERROR: true,
	sdkv1.Status_STATUS_DNS_ERROR: true, sdkv1.Status_STATUS_TCP_ERROR: true, sdkv1.Status_STATUS_TLS_ERROR: true,
	sdkv1.Status_STATUS_HTTP_ERROR: true,
}

// startPyMock starts a mock that requires apiKey and sends runs to
// endpoint, and returns the URL of its DispatchService. It stops at the end
// of the test.
func startPyMock(t *testing.T, apiKey, endpoint string) (*pyMock, string) {
	t.Helper()
	dev := loadVectors(t).Keys["static_dev_key"]
	priv, err := signature.ParsePrivateKey(dev.PrivateSeedBase64)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{} // HTTP/1.1, as httpx
	m := &pyMock{
		apiKey:   apiKey,
		endpoint: strings.TrimSuffix(endpoint, "/"),
		signer:   signature.NewSigner(priv, signature.WithoutNonce()),
		client:   &http.Client{Transport: tr},
		parents:  map[string]*mockPoller{},
		final:    map[string]*sdkv1.CallResult{},
		changed:  make(chan struct{}),
		work:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	go m.loop()
	t.Cleanup(func() {
		close(m.stop)
		<-m.done
		tr.CloseIdleConnections()
	})
	_, h := sdkv1connect.NewDispatchServiceHandler(m)
	return m, grpcOnly(t, h)
}

func (m *pyMock) Dispatch(ctx context.Context, req *connect.Request[sdkv1.DispatchRequest]) (*connect.Response[sdkv1.DispatchResponse], error) {
	if auth := req.Header().Get("Authorization"); auth != "Bearer "+m.apiKey {
		return nil, connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("Invalid authorization header. Expected 'Bearer %s', got %q", m.apiKey, auth))
	}
	res := &sdkv1.DispatchResponse{}
	m.mu.Lock()
	for _, c := range req.Msg.GetCalls() {
		id := m.newID()
		res.DispatchIds = append(res.DispatchIds, id)
		m.queue = append(m.queue, mockRun{id, &sdkv1.RunRequest{Function: c.GetFunction(), Directive: &sdkv1.RunRequest_Input{Input: c.GetInput()}}})
	}
	m.mu.Unlock()
	select {
	case m.work <- struct{}{}:
	default:
	}
	return connect.NewResponse(res), nil
}

// newID is the original's id: a counter in 32 hex digits. Called with mu.
func (m *pyMock) newID() string {
	m.nextID++
	return fmt.Sprintf("%032x", m.nextID)
}

func (m *pyMock) loop() {
	defer close(m.done)
	for {
		m.mu.Lock()
		queue := m.queue
		m.queue = nil
		m.mu.Unlock()
		if len(queue) == 0 {
			select {
			case <-m.work:
				continue
			case <-m.stop:
				return
			}
		}
		retried := false
		var next []mockRun
		for _, r := range queue {
			res, err := m.run(r.req)
			if err != nil {
				// The original re-queues the call and gives up the pass.
				next = append(next, r)
				retried = true
				continue
			}
			next, retried = m.handle(r, res, next, retried)
		}
		m.mu.Lock()
		m.queue = append(next, m.queue...)
		if retried {
			m.retries++
		}
		m.mu.Unlock()
		if retried {
			select {
			case <-time.After(150 * time.Millisecond): // the original's pause
			case <-m.stop:
				return
			}
		}
	}
}

// run sends req to the endpoint as the original's EndpointClient does.
func (m *pyMock) run(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
	body, err := proto.Marshal(req)
	if err != nil {
		return nil, err
	}
	r, err := http.NewRequest(http.MethodPost, m.endpoint+"/dispatch.sdk.v1.FunctionService/Run", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	r.Header.Set("Content-Type", "application/grpc+proto")
	if err := m.signer.Sign(r, body); err != nil {
		return nil, err
	}
	res, err := m.client.Do(r)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	if res.StatusCode < 200 || res.StatusCode > 299 { // raise_for_status
		return nil, fmt.Errorf("HTTP %d: %s", res.StatusCode, out)
	}
	var msg sdkv1.RunResponse // RunResponse.FromString
	if err := proto.Unmarshal(out, &msg); err != nil {
		return nil, err
	}
	return &msg, nil
}

// handle does what the original does with an answer.
func (m *pyMock) handle(r mockRun, res *sdkv1.RunResponse, next []mockRun, retried bool) ([]mockRun, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case mockRetry[res.GetStatus()]:
		return append(next, r), true
	case res.GetPoll() != nil:
		poll := res.GetPoll()
		p := &mockPoller{id: r.id, function: r.req.GetFunction(), state: poll.GetCoroutineState(), waiting: map[string]*sdkv1.Call{}}
		for _, c := range poll.GetCalls() {
			child := m.newID()
			next = append(next, mockRun{child, &sdkv1.RunRequest{Function: c.GetFunction(), Directive: &sdkv1.RunRequest_Input{Input: c.GetInput()}}})
			m.parents[child] = p
			p.waiting[child] = c
		}
	case res.GetExit() == nil:
		// The original asserts there is an exit and dies on this request.
		m.fail(fmt.Errorf("pyMock: the answer to %s (%s) has neither a poll nor an exit: %v", r.id, r.req.GetFunction(), res))
	case res.GetExit().GetTailCall() != nil:
		tc := res.GetExit().GetTailCall()
		next = append(next, mockRun{r.id, &sdkv1.RunRequest{Function: tc.GetFunction(), Directive: &sdkv1.RunRequest_Input{Input: tc.GetInput()}}})
	default:
		result := res.GetExit().GetResult()
		p, ok := m.parents[r.id]
		if !ok {
			m.final[r.id] = result
			m.notify()
			break
		}
		result.CorrelationId = p.waiting[r.id].GetCorrelationId()
		p.results = append(p.results, result)
		delete(m.parents, r.id)
		delete(p.waiting, r.id)
		if len(p.waiting) == 0 {
			next = append(next, mockRun{p.id, &sdkv1.RunRequest{Function: p.function, Directive: &sdkv1.RunRequest_PollResult{PollResult: &sdkv1.PollResult{
				State:   &sdkv1.PollResult_CoroutineState{CoroutineState: p.state},
				Results: p.results,
			}}}})
		}
	}
	return next, retried
}

// fail and notify are called with mu.
func (m *pyMock) fail(err error) {
	m.failure = errors.Join(m.failure, err)
	m.notify()
}

func (m *pyMock) notify() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// wait returns the final results of ids, once they all have one, or fails
// the test if the mock fails or the deadline passes first.
func (m *pyMock) wait(t *testing.T, ids []string, deadline time.Duration) []*sdkv1.CallResult {
	t.Helper()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	for {
		m.mu.Lock()
		failure, changed := m.failure, m.changed
		var results []*sdkv1.CallResult
		for _, id := range ids {
			if r, ok := m.final[id]; ok {
				results = append(results, r)
			}
		}
		m.mu.Unlock()
		if failure != nil {
			t.Fatal(failure)
		}
		if len(results) == len(ids) {
			return results
		}
		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("pyMock: %d of %d calls done after %v", len(results), len(ids), deadline)
		}
	}
}

// TestEndpointUnderPyMock runs a Go endpoint and client under a server that
// behaves like dispatch-py v0.5.1's mock: the client dispatches over gRPC,
// the mock sends unframed application/grpc+proto Run requests signed with
// the static dev key, and a plain function and workflows (Await, Gather)
// reach their results.
func TestEndpointUnderPyMock(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	dev := loadVectors(t).Keys["static_dev_key"]
	mux := http.NewServeMux()
	endpoint := httptest.NewServer(mux)
	t.Cleanup(endpoint.Close)
	mock, apiURL := startPyMock(t, "test", endpoint.URL)

	d := newTest(t,
		WithAPIURL(apiURL),
		WithAPIKey("test"),
		WithProtocol(ProtocolGRPC),
		WithVerificationKey(dev.PublicBase64),
		WithEndpointURL(endpoint.URL),
	)
	mux.Handle("/", d.Handler())

	ids, err := d.Dispatch(t.Context(),
		rtDouble.Call(21),                     // a plain function
		rtPipeline.Call(3),                    // two awaits in a row
		rtSum.Call([]int{10, 20, 30, 40, 50}), // a gather of five
	)
	is.NoErr(err)
	is.Equal(ids, []string{fmt.Sprintf("%032x", 1), fmt.Sprintf("%032x", 2), fmt.Sprintf("%032x", 3)})
	results := mock.wait(t, ids, 30*time.Second)

	decode := func(r *sdkv1.CallResult, v any) {
		t.Helper()
		if e := r.GetError(); e != nil {
			t.Fatalf("call failed: %s: %s", e.GetType(), e.GetMessage())
		}
		is.NoErr(serde.Unmarshal(r.GetOutput(), v))
	}
	var doubled, piped int
	var sum []int
	decode(results[0], &doubled)
	decode(results[1], &piped)
	decode(results[2], &sum)
	is.Equal(doubled, 42)                          // double(21)
	is.Equal(piped, 17)                            // 2*(2*3+1) + 3
	is.Equal(sum, []int{20, 40, 60, 80, 100, 300}) // the doubles, then their sum
	// The bodies of the calls differ (the mock signs without a nonce: a
	// second identical body in the same second would be refused as a
	// replay and retried), so no call had to be retried.
	mock.mu.Lock()
	defer mock.mu.Unlock()
	is.Equal(mock.retries, 0)
}
