package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"buf.build/gen/go/stealthrocket/dispatch-proto/connectrpc/go/dispatch/sdk/v1/sdkv1connect"
	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"connectrpc.com/connect"
	"github.com/matryer/is"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/dispatchkit/dispatch/internal/pgtest"
	"github.com/dispatchkit/dispatch/internal/signature"
	"github.com/dispatchkit/dispatch/server"
)

// The replica tests run `dispatch serve --postgres` as real processes on
// one database (built without -race: the race detector would slow them
// past the lease time on this machine), kill them with SIGKILL or restart
// them with SIGINT under load, and check, at the endpoint, that every
// workflow finishes with its result, that no call is lost or made twice,
// and count the Run requests made again (at least once).
//
// Some steps are held at the endpoint until the test lets them go (a
// gate), so that calls are surely in flight at every kill and restart,
// whatever the speed of the machine, and the kills surely come mid-run.

// fanWidth is the number of steps of a "fan" Gather.
const fanWidth = 100

// replicaEndpoint serves the functions of the replica tests, verifying
// every request's signature, and counts the Run requests of every call:
//
//   - "wf" is a three-step workflow: step k gets "IN/k", and the workflow
//     returns the steps' outputs joined with commas: "IN/0!,IN/1!,IN/2!";
//   - "fan" is a Gather of fanWidth steps that returns how many results
//     it got, "fan=100" (a result delivered twice would make it more);
//   - "step" returns its input with "!". A step whose input has the
//     suffix "/held" waits for the gate (or for its request to end: the
//     replica that sent it died).
type replicaEndpoint struct {
	srv  *httptest.Server
	gate chan struct{} // closed to let the held steps go

	mu       sync.Mutex
	verifier *signature.Verifier
	calls    map[string]bool   // calls run (their dispatch id, a step's input)
	runs     map[string]int    // Run requests per call (its dispatch id, a step's input) and state (see Run)
	exits    map[string]string // outputs of the finished "wf" and "fan"
	held     int               // steps waiting at the gate now
	steps    int               // step runs answered
	sigErrs  int
	gated    bool
}

// wfState is the coroutine state of "wf" and "fan".
type wfState struct {
	In   string   `json:"in"`
	Outs []string `json:"outs,omitempty"`
	N    int      `json:"n,omitempty"` // fan: results so far
}

func newReplicaEndpoint(t *testing.T) *replicaEndpoint {
	e := &replicaEndpoint{gate: make(chan struct{}), calls: map[string]bool{}, runs: map[string]int{}, exits: map[string]string{}}
	path, h := sdkv1connect.NewFunctionServiceHandler(e)
	mux := http.NewServeMux()
	mux.Handle(path, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		e.mu.Lock()
		v := e.verifier
		e.mu.Unlock()
		if v == nil || v.Verify(r, body) != nil {
			e.mu.Lock()
			e.sigErrs++
			e.mu.Unlock()
			http.Error(rw, "bad signature", http.StatusUnauthorized)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		h.ServeHTTP(rw, r)
	}))
	e.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		e.open()
		e.srv.Close()
	})
	return e
}

func (e *replicaEndpoint) setKey(t *testing.T, key string) {
	t.Helper()
	pub, err := signature.ParsePublicKey(key)
	if err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	e.verifier = signature.NewVerifier(pub)
	e.mu.Unlock()
}

// open lets the held steps go, and those to come.
func (e *replicaEndpoint) open() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.gated {
		e.gated = true
		close(e.gate)
	}
}

// finished returns how many workflows ("wf" and "fan") exited.
func (e *replicaEndpoint) finished() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.exits)
}

// waiting returns the steps held at the gate now.
func (e *replicaEndpoint) waiting() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.held
}

// stepRuns returns the step runs answered.
func (e *replicaEndpoint) stepRuns() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.steps
}

// reruns returns the Run requests made again (beyond the first of each
// call and state), and the number of calls run.
func (e *replicaEndpoint) reruns() (extra, calls int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, n := range e.runs {
		extra += n - 1
	}
	return extra, len(e.calls)
}

func exitWith(s string) *connect.Response[sdkv1.RunResponse] {
	return connect.NewResponse(&sdkv1.RunResponse{
		Status:    sdkv1.Status_STATUS_OK,
		Directive: &sdkv1.RunResponse_Exit{Exit: &sdkv1.Exit{Result: &sdkv1.CallResult{Output: str(s)}}},
	})
}

func pollWith(st wfState, calls []*sdkv1.Call, want int32) *connect.Response[sdkv1.RunResponse] {
	b, _ := json.Marshal(st)
	return connect.NewResponse(&sdkv1.RunResponse{
		Status: sdkv1.Status_STATUS_OK,
		Directive: &sdkv1.RunResponse_Poll{Poll: &sdkv1.Poll{
			State:      &sdkv1.Poll_CoroutineState{CoroutineState: b},
			Calls:      calls,
			MinResults: want, MaxResults: want, MaxWait: durationpb.New(10 * time.Minute),
		}},
	})
}

func inputString(req *sdkv1.RunRequest) string {
	var w wrapperspb.StringValue
	if err := req.GetInput().UnmarshalTo(&w); err != nil {
		return ""
	}
	return w.GetValue()
}

func outputString(r *sdkv1.CallResult) string {
	var w wrapperspb.StringValue
	if err := r.GetOutput().UnmarshalTo(&w); err != nil {
		return "(" + err.Error() + ")"
	}
	return w.GetValue()
}

// heldMark ends the input of a held workflow, whose last step (a "wf"'s)
// or last child (a "fan"'s) waits at the gate; heldSuffix ends the input
// of that step.
const (
	heldMark   = "-held"
	heldSuffix = "/held"
)

func (e *replicaEndpoint) Run(ctx context.Context, req *connect.Request[sdkv1.RunRequest]) (*connect.Response[sdkv1.RunResponse], error) {
	m := req.Msg
	// A Run request is the same as another if it has the same call and
	// coroutine state: a run made again (a workflow resumes once per
	// step, each time with a new state). A step is known by its input,
	// which is unique, rather than by its dispatch id: a step started
	// early, before the commit that creates it, and cut by a kill ran
	// under an id that was never stored; the workflow made it again
	// under another (an orphan run, at least once, see "Early start" in
	// the scheduler's documentation).
	call := m.GetDispatchId()
	if m.GetFunction() == "step" {
		call = "step " + inputString(m)
	}
	e.mu.Lock()
	e.calls[call] = true
	e.runs[call+"\x00"+string(m.GetPollResult().GetCoroutineState())]++
	e.mu.Unlock()
	var st wfState
	if pr := m.GetPollResult(); pr != nil {
		if err := json.Unmarshal(pr.GetCoroutineState(), &st); err != nil {
			return nil, connect.NewError(connect.CodeInvalidArgument, err)
		}
	} else {
		st.In = inputString(m)
	}
	exit := func(out string) (*connect.Response[sdkv1.RunResponse], error) {
		e.mu.Lock()
		e.exits[m.GetDispatchId()] = out
		e.mu.Unlock()
		return exitWith(out), nil
	}
	// held names the input of the step of a held workflow that waits.
	held := func(in string, last bool) string {
		if last && strings.HasSuffix(st.In, heldMark) {
			return in + heldSuffix
		}
		return in
	}
	switch m.GetFunction() {
	case "step":
		in := inputString(m)
		if strings.HasSuffix(in, heldSuffix) {
			e.mu.Lock()
			e.held++
			e.mu.Unlock()
			select {
			case <-e.gate:
			case <-ctx.Done(): // the replica died or stopped: it runs again
			}
			e.mu.Lock()
			e.held--
			e.mu.Unlock()
			if ctx.Err() != nil {
				return nil, connect.NewError(connect.CodeUnavailable, ctx.Err())
			}
			in = strings.TrimSuffix(in, heldSuffix)
		}
		e.mu.Lock()
		e.steps++
		e.mu.Unlock()
		return exitWith(in + "!"), nil
	case "wf":
		for _, r := range m.GetPollResult().GetResults() {
			st.Outs = append(st.Outs, outputString(r))
		}
		if len(st.Outs) == 3 {
			return exit(st.Outs[0] + "," + st.Outs[1] + "," + st.Outs[2])
		}
		k := len(st.Outs)
		in := held(fmt.Sprintf("%s/%d", st.In, k), k == 2)
		return pollWith(st, []*sdkv1.Call{{CorrelationId: uint64(k), Function: "step", Input: str(in)}}, 1), nil
	case "fan":
		if m.GetPollResult() == nil {
			calls := make([]*sdkv1.Call, fanWidth)
			for i := range calls {
				in := held(fmt.Sprintf("%s/%d", st.In, i), i == fanWidth-1)
				calls[i] = &sdkv1.Call{CorrelationId: uint64(i), Function: "step", Input: str(in)}
			}
			return pollWith(st, calls, fanWidth), nil
		}
		st.N += len(m.GetPollResult().GetResults())
		if st.N >= fanWidth {
			return exit(fmt.Sprintf("fan=%d", st.N))
		}
		return pollWith(st, nil, int32(fanWidth-st.N)), nil // the rest of the results
	}
	return nil, connect.NewError(connect.CodeNotFound, nil)
}

// replica is a `dispatch serve` process.
type replica struct {
	cmd    *exec.Cmd
	addr   string
	key    string
	stderr *syncBuffer
	exited chan struct{} // closed once the process has exited
}

// replicaSet starts `dispatch serve` processes on one database.
type replicaSet struct {
	t   *testing.T
	bin string
	url string
	ep  *replicaEndpoint
}

// replicaLeaseTTL keeps failovers short: the partitions of a killed
// replica wait that long for another.
const replicaLeaseTTL = "2s"

func newReplicaSet(t *testing.T) *replicaSet {
	t.Helper()
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "dispatch")
	build := exec.Command("go", "build", "-o", bin, "github.com/dispatchkit/dispatch/cmd/dispatch")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("building dispatch: %v", err)
	}
	return &replicaSet{t: t, bin: bin, url: pgtest.URL(t), ep: newReplicaEndpoint(t)}
}

// start starts a replica and waits for its start line.
func (rs *replicaSet) start() *replica {
	t := rs.t
	t.Helper()
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	cmd := exec.Command(rs.bin, "serve", "--listen", "127.0.0.1:0", "--postgres", rs.url,
		"--endpoint", rs.ep.srv.URL, "--log-format", "json", "--lease-ttl", replicaLeaseTTL,
		// The tests hold up to 200 steps' requests in flight at the
		// endpoint's gate, and a replica's partitions share one limit per
		// endpoint: starting it at the most leaves room for the rest to
		// progress, even after a timeout under load halved it. The limit is
		// the cluster's, split between the live replicas (three here, four
		// while a rolling restart's new one overlaps): 4096 leaves each
		// replica 1024 at least, as before the split.
		"--initial-concurrency", "4096", "--max-concurrency", "4096")
	cmd.Env = append(os.Environ(), "DISPATCH_API_KEY="+goodKey, "DISPATCH_SIGNING_KEY=")
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	r := &replica{cmd: cmd, stderr: stderr}
	go func() {
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	var m []string
	waitFor(t, "the start line of dispatch serve", func() bool {
		select {
		case <-exited:
			t.Fatalf("dispatch serve exited: %s", stderr.String())
		default:
		}
		m = startLineRE.FindStringSubmatch(stdout.String())
		return m != nil
	})
	r.addr, r.key, r.exited = m[1], m[3], exited
	rs.ep.setKey(t, r.key)
	return r
}

// kill kills the replica with SIGKILL.
func (r *replica) kill(t *testing.T) {
	t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-r.exited
}

// stop interrupts the replica (SIGINT) and checks that it exits cleanly.
func (r *replica) stop(t *testing.T) {
	t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	<-r.exited
	if !r.cmd.ProcessState.Success() {
		t.Fatalf("dispatch serve did not exit cleanly on SIGINT: %v\n%s", r.cmd.ProcessState, r.stderr.String())
	}
}

// load is the calls of a run and the output each must return.
type load struct {
	want map[string]string // dispatch id -> output
}

// dispatchLoad dispatches n three-step workflows and g Gathers of
// fanWidth, in requests of 100 spread over the replicas; every tenth
// workflow, and every Gather, is held (see replicaEndpoint).
func dispatchLoad(t *testing.T, reps []*replica, tag string, n, g int) *load {
	t.Helper()
	l := &load{want: map[string]string{}}
	var calls []*sdkv1.Call
	var wants []string
	for i := range n {
		in := fmt.Sprintf("%s-%d", tag, i)
		if i%10 == 0 {
			in += heldMark
		}
		calls = append(calls, &sdkv1.Call{Function: "wf", Input: str(in)})
		wants = append(wants, fmt.Sprintf("%s/0!,%s/1!,%s/2!", in, in, in))
	}
	for i := range g {
		calls = append(calls, &sdkv1.Call{Function: "fan", Input: str(fmt.Sprintf("%s-fan-%d%s", tag, i, heldMark))})
		wants = append(wants, fmt.Sprintf("fan=%d", fanWidth))
	}
	for i := 0; i < len(calls); i += 100 {
		j := min(i+100, len(calls))
		ids := dispatchRetry(t, reps[(i/100)%len(reps)].addr, calls[i:j])
		for k, id := range ids {
			l.want[id] = wants[i+k]
		}
	}
	return l
}

// dispatchRetry dispatches calls to the replica at addr, again while it
// answers unavailable (it owns no partition yet, as just after a start
// while the others give theirs back; nothing was recorded then).
func dispatchRetry(t *testing.T, addr string, calls []*sdkv1.Call) []string {
	t.Helper()
	client := sdkv1connect.NewDispatchServiceClient(http.DefaultClient, "http://"+addr)
	var ids []string
	waitForLong(t, "a Dispatch request to be taken", time.Minute, func() bool {
		req := connect.NewRequest(&sdkv1.DispatchRequest{Calls: calls})
		req.Header().Set("Authorization", "Bearer "+goodKey)
		res, err := client.Dispatch(context.Background(), req)
		if connect.CodeOf(err) == connect.CodeUnavailable {
			t.Logf("Dispatch at %s, tried again: %v", addr, err)
			return false
		}
		if err != nil {
			t.Fatalf("Dispatch at %s: %v", addr, err)
		}
		ids = res.Msg.GetDispatchIds()
		return true
	})
	if len(ids) != len(calls) {
		t.Fatalf("Dispatch returned %d ids for %d calls", len(ids), len(calls))
	}
	return ids
}

// add adds the calls of m to l.
func (l *load) add(m *load) {
	for id, w := range m.want {
		l.want[id] = w
	}
}

// check waits until every call of l has finished at the endpoint, then
// checks its outcome, read from replica r (which may not run it), and that
// the endpoint saw each call of l, and none other: want calls in all.
func (l *load) check(t *testing.T, ep *replicaEndpoint, r *replica, want int) {
	t.Helper()
	waitForLong(t, "every workflow to finish", 2*time.Minute, func() bool { return ep.finished() >= len(l.want) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for id, out := range l.want {
		o, err := server.FetchResult(ctx, nil, "http://"+r.addr, goodKey, id, 10*time.Second)
		if err != nil {
			t.Fatalf("the result of call %s: %v", id, err)
		}
		if o.Status != sdkv1.Status_STATUS_OK {
			t.Fatalf("call %s: status %v, want OK", id, o.Status)
		}
		var w wrapperspb.StringValue
		if err := o.Result.GetOutput().UnmarshalTo(&w); err != nil {
			t.Fatalf("the output of call %s: %v", id, err)
		}
		if w.GetValue() != out {
			t.Fatalf("call %s returned %q, want %q", id, w.GetValue(), out)
		}
		if got := ep.exitOf(id); got != out {
			t.Fatalf("call %s exited at the endpoint with %q, want %q", id, got, out)
		}
	}
	extra, calls := ep.reruns()
	if calls != want {
		t.Fatalf("the endpoint ran %d calls, want %d: calls lost or made twice", calls, want)
	}
	if n := ep.finished(); n != len(l.want) {
		t.Fatalf("%d workflows exited at the endpoint, want %d", n, len(l.want))
	}
	t.Logf("%d calls run, %d Run requests made again (at least once), no signature refused", calls, extra)
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if ep.sigErrs != 0 {
		t.Fatalf("%d requests had a bad signature", ep.sigErrs)
	}
}

// exitOf returns the output call id exited with at the endpoint.
func (e *replicaEndpoint) exitOf(id string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.exits[id]
}

// callsOf is the number of calls of n workflows and g Gathers.
func callsOf(n, g int) int { return n*4 + g*(fanWidth+1) }

// waitForLong is waitFor with a deadline of its own.
func waitForLong(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// countLog returns how many lines of the JSON logs of reps have the
// message msg.
func countLog(reps []*replica, msg string) int {
	n := 0
	for _, r := range reps {
		n += strings.Count(r.stderr.String(), `"message":"`+msg+`"`)
	}
	return n
}

// logSummary logs how many warnings and errors the replicas reps
// logged, by message: what an operator would see of the kills.
func logSummary(t *testing.T, reps []*replica) {
	t.Helper()
	counts := map[string]int{}
	for _, r := range reps {
		for line := range strings.SplitSeq(r.stderr.String(), "\n") {
			var e struct{ Level, Message string }
			if json.Unmarshal([]byte(line), &e) != nil || (e.Level != "warn" && e.Level != "error") {
				continue
			}
			counts[e.Level+": "+e.Message]++
		}
	}
	if len(counts) == 0 {
		t.Logf("the %d replicas logged no warning nor error", len(reps))
	}
	for m, n := range counts {
		t.Logf("logged %d× %s", n, m)
	}
}

// TestReplicasKill runs 2,000 three-step workflows and 20 Gathers of 100
// on three `dispatch serve` processes sharing one database, kills one with
// SIGKILL mid-run, then another once the first's partitions are taken
// over: the last one takes their partitions over too, and every workflow
// finishes with the right result, none lost, none made twice.
func TestReplicasKill(t *testing.T) {
	is := is.New(t)
	rs := newReplicaSet(t)
	reps := []*replica{rs.start(), rs.start(), rs.start()}
	is.Equal(reps[1].key, reps[0].key) // one signing key, the database's
	is.Equal(reps[2].key, reps[0].key)
	const n, g = 2000, 20
	l := dispatchLoad(t, reps, "kill", n, g)

	// Mid-run: a third of the workflows done, and held steps in flight
	// (at each replica, almost surely: 200 held workflows over 12
	// partitions), whose Run requests the kill cuts.
	waitForLong(t, "a third of the workflows", time.Minute, func() bool {
		return rs.ep.finished() >= n/3 && rs.ep.waiting() >= 50
	})
	acquired := countLog(reps[1:], "acquired partition")
	reps[0].kill(t)
	t.Logf("first kill: %d of %d finished, %d steps held", rs.ep.finished(), len(l.want), rs.ep.waiting())
	// The other two take its 4 partitions once its leases expire.
	waitForLong(t, "the first replica's partitions to be taken over", time.Minute, func() bool {
		return countLog(reps[1:], "acquired partition") >= acquired+4
	})
	at := rs.ep.stepRuns()
	waitForLong(t, "progress after the first kill", time.Minute, func() bool { return rs.ep.stepRuns() >= at+100 })

	acquired = countLog(reps[2:], "acquired partition")
	reps[1].kill(t)
	t.Logf("second kill: %d of %d finished, %d steps held", rs.ep.finished(), len(l.want), rs.ep.waiting())
	is.True(rs.ep.finished() < len(l.want)) // the held workflows are not done
	waitForLong(t, "the second replica's partitions to be taken over", time.Minute, func() bool {
		return countLog(reps[2:], "acquired partition") >= acquired+6
	})
	rs.ep.open()

	l.check(t, rs.ep, reps[2], callsOf(n, g))
	extra, _ := rs.ep.reruns()
	is.True(extra > 0) // the held steps in flight at the kills ran again
	reps[2].stop(t)
	logSummary(t, reps)
}

// TestReplicasRollingRestart restarts each of three replicas in turn,
// with SIGINT, while workflows run and more are dispatched: nothing is
// lost, none made twice.
func TestReplicasRollingRestart(t *testing.T) {
	rs := newReplicaSet(t)
	reps := []*replica{rs.start(), rs.start(), rs.start()}
	all := slices.Clone(reps) // the stopped ones too, for their logs
	const n, g, more = 600, 6, 200
	l := dispatchLoad(t, reps, "roll", n, g)
	waitForLong(t, "steps held", time.Minute, func() bool { return rs.ep.waiting() >= 20 })
	for i := range reps {
		at := rs.ep.finished()
		reps[i].stop(t)
		t.Logf("stopped replica %d: %d of %d finished, %d steps held", i, rs.ep.finished(), len(l.want), rs.ep.waiting())
		reps[i] = rs.start()
		all = append(all, reps[i])
		l.add(dispatchLoad(t, reps, fmt.Sprintf("roll%d", i), more, 0))
		waitForLong(t, "progress after a restart", time.Minute, func() bool { return rs.ep.finished() > at+more/2 })
	}
	rs.ep.open()
	l.check(t, rs.ep, reps[0], callsOf(n+3*more, g))
	for _, r := range reps {
		r.stop(t)
	}
	logSummary(t, all)
}
