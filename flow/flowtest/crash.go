package flowtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/dispatchkit/dispatch"
	"github.com/dispatchkit/dispatch/internal/status"
	"github.com/dispatchkit/dispatch/serde"
	"github.com/dispatchkit/dispatch/trace"
)

// envCrash names the job file of a process started by CrashEverywhere to
// resume a run after a crash.
const envCrash = "FLOWTEST_CRASH_JOB"

// CrashEverywhere runs the workflow fn with input in as [Run] does, then
// once per await point of that run, crashing it there: the process stops
// once the state is saved, and the run goes on in a new process, which
// knows of it only what Dispatch keeps (the state's bytes and the results
// of the calls). It checks that every crashed run makes the same calls as
// the uninterrupted one and reaches the same outcome, fails t naming the
// await point and the frame of the first difference otherwise, and returns
// what the uninterrupted run returns.
//
// The new process is the test binary itself, run again for the test that
// called CrashEverywhere (go test's -test.run, with t.Name()): everything
// of the first process is gone, package variables, caches and mocks
// included, as on another instance of the service. A workflow that keeps
// what it needs in the environments of its continuations resumes
// unchanged; one that keeps it in a package variable does not, and the
// difference shows.
//
// Call it from the goroutine of a test (t is a *testing.T or a type that
// embeds one), and make the code before it deterministic: the new process
// runs the test again from its start, up to this call (the n-th
// CrashEverywhere of the test, counted alike in both processes), and
// resumes the run there; the rest of the test then goes on with the
// outcome of the resumed run. Mocks are those of the new process, made
// afresh: a mock whose answers depend on what it saw before (a counter)
// starts over, so make them depend on their input and their attempt
// ([MockAttempt]). The outcome must not depend on the wall clock or on
// randomness either: the virtual clock is the same in both runs.
//
// The crash points are the awaits of fn itself; a child workflow it calls
// runs whole in the process that makes the call. Each crashed run costs a
// start of the test binary: a few tens of milliseconds, run
// GOMAXPROCS at a time.
func CrashEverywhere[I, O any](t testing.TB, fn *dispatch.Function[I, O], in I, opts ...Option) (O, Report, error) {
	t.Helper()
	var zero O
	w, err := registered(fn)
	if err != nil {
		return zero, Report{}, err
	}
	input, err := serde.Marshal(in)
	if err != nil {
		return zero, Report{}, fmt.Errorf("flowtest: input: %w", err)
	}
	call := nextCall(t)
	ctx := t.Context()

	job, err := loadJob()
	if err != nil {
		t.Errorf("flowtest: CrashEverywhere %q: %v", w.name, err)
		return zero, Report{}, err
	}
	if job != nil && job.Test == t.Name() && job.Call == call {
		// The new process of a crash: resume from what Dispatch kept.
		r, next, err := restore(ctx, newDriver(opts), w, job.Snapshot)
		if err != nil {
			t.Errorf("flowtest: CrashEverywhere %q: resuming after the crash at await %d: %v", w.name, job.Await, err)
			return zero, Report{}, err
		}
		out := r.loop(next)
		if err := writeRecord(job.Out, r, out); err != nil {
			t.Errorf("flowtest: CrashEverywhere %q: %v", w.name, err)
		}
		return result[O](r, out)
	}

	r := newDriver(opts).newRoot(ctx, w, input)
	var snaps [][]byte
	var snapErr error
	if job == nil {
		r.onPoll = func(r *run, next *sdkv1.RunRequest) {
			b, err := r.snapshot(next)
			if err != nil && snapErr == nil {
				snapErr = err
			}
			snaps = append(snaps, b)
		}
	}
	out := r.loop(r.first())
	o, rep, runErr := result[O](r, out)
	if job != nil {
		return o, rep, runErr // another test's process: no crashes here
	}
	if snapErr != nil {
		t.Errorf("flowtest: CrashEverywhere %q: %v", w.name, snapErr)
		return o, rep, runErr
	}
	if _, ok := t.(interface {
		Run(string, func(*testing.T)) bool
	}); !ok {
		t.Errorf("flowtest: CrashEverywhere %q: t is a %T: the crashed runs go on in the test binary run again for this test, so call it from a test (a *testing.T)", w.name, t)
		return o, rep, runErr
	}

	want := record{Outcome: recordOutcome(out), History: r.history}
	reports := crashAll(ctx, t, call, snaps)
	for k, rr := range reports {
		if msg := compare(w.name, k+1, len(snaps), want, rr); msg != "" {
			t.Error(msg)
		}
	}
	return o, rep, runErr
}

// calls counts the CrashEverywhere calls of each run of a test, so that the
// new process finds the one to resume: the n-th of the test in both. A run
// is a testing.TB, so that -count=2 counts each run from 1.
var calls = struct {
	sync.Mutex
	n map[testing.TB]int
}{n: map[testing.TB]int{}}

func nextCall(t testing.TB) int {
	calls.Lock()
	defer calls.Unlock()
	if _, ok := calls.n[t]; !ok {
		t.Cleanup(func() {
			calls.Lock()
			defer calls.Unlock()
			delete(calls.n, t)
		})
	}
	calls.n[t]++
	return calls.n[t]
}

// job is what the crashed process hands to the new one.
type job struct {
	Test     string // t.Name() of the test
	Call     int    // which CrashEverywhere of the test, from 1
	Await    int    // the await point of the crash, from 1
	Snapshot []byte // what Dispatch keeps of the run (snapshotDoc)
	Out      string // where the new process writes its record
}

func loadJob() (*job, error) {
	path := os.Getenv(envCrash)
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the job of the crashed run (%s): %w", envCrash, err)
	}
	var j job
	if err := serde.UnmarshalCBOR(b, &j); err != nil {
		return nil, fmt.Errorf("reading the job of the crashed run (%s): %w", envCrash, err)
	}
	return &j, nil
}

// snapshotDoc is what Dispatch keeps of a run at a poll: the request that
// resumes it (the state's bytes and the results delivered), the results
// it holds for later, and the server's counters. Nothing of the process
// that ran the workflow is in it.
type snapshotDoc struct {
	Next     []byte // the RunRequest
	Input    []byte // the call's input, an Any
	ID       string
	Created  int64
	Expires  int64
	Now      int64
	Inbox    []pendingDoc
	Seq      int
	Polls    int
	Restarts int
	Inflight int
	NextID   int
	Report   reportDoc
	History  []suspension
}

type pendingDoc struct {
	Result []byte // a CallResult
	At     int64
	Seq    int
}

type reportDoc struct {
	Resumes, Calls, MaxState, MaxPending, Retries, Restarts int
	States                                                  []int
	Slept                                                   int64
}

var deterministic = proto.MarshalOptions{Deterministic: true}

func (r *run) snapshot(next *sdkv1.RunRequest) ([]byte, error) {
	nb, err := deterministic.Marshal(next)
	if err != nil {
		return nil, err
	}
	ib, err := deterministic.Marshal(r.input)
	if err != nil {
		return nil, err
	}
	s := snapshotDoc{
		Next: nb, Input: ib, ID: r.id,
		Created: r.created.UnixNano(), Expires: r.expires.UnixNano(), Now: r.now.UnixNano(),
		Seq: r.seq, Polls: r.polls, Restarts: r.restarts, Inflight: r.inflight, NextID: r.d.nextID,
		Report: reportDoc{
			Resumes: r.rep.Resumes, Calls: r.rep.Calls, MaxState: r.rep.MaxState, MaxPending: r.rep.MaxPending,
			Retries: r.rep.Retries, Restarts: r.rep.Restarts, States: r.rep.States, Slept: int64(r.rep.Slept),
		},
		History: r.history,
	}
	for _, p := range r.inbox {
		b, err := deterministic.Marshal(p.res)
		if err != nil {
			return nil, err
		}
		s.Inbox = append(s.Inbox, pendingDoc{Result: b, At: p.at.UnixNano(), Seq: p.seq})
	}
	return serde.MarshalCBOR(s)
}

// restore makes a run from a snapshot, in a process that knows nothing
// else of it, and returns the request to serve next.
func restore(ctx context.Context, d *driver, w workflow, b []byte) (*run, *sdkv1.RunRequest, error) {
	var s snapshotDoc
	if err := serde.UnmarshalCBOR(b, &s); err != nil {
		return nil, nil, err
	}
	next := &sdkv1.RunRequest{}
	if err := proto.Unmarshal(s.Next, next); err != nil {
		return nil, nil, err
	}
	input := &anypb.Any{}
	if err := proto.Unmarshal(s.Input, input); err != nil {
		return nil, nil, err
	}
	d.nextID = s.NextID
	r := &run{
		d: d, ctx: ctx, w: w, root: true, id: s.ID, rootID: s.ID,
		created: time.Unix(0, s.Created), expires: time.Unix(0, s.Expires), now: time.Unix(0, s.Now), input: input,
		seq: s.Seq, polls: s.Polls, restarts: s.Restarts, inflight: s.Inflight, history: s.History,
		rep: Report{
			Resumes: s.Report.Resumes, Calls: s.Report.Calls, MaxState: s.Report.MaxState, MaxPending: s.Report.MaxPending,
			Retries: s.Report.Retries, Restarts: s.Report.Restarts, States: s.Report.States, Slept: time.Duration(s.Report.Slept),
		},
	}
	for _, p := range s.Inbox {
		res := &sdkv1.CallResult{}
		if err := proto.Unmarshal(p.Result, res); err != nil {
			return nil, nil, err
		}
		r.inbox = append(r.inbox, pending{res: res, at: time.Unix(0, p.At), seq: p.Seq})
	}
	return r, next, nil
}

// record is what a run did, for comparison: its suspensions and its
// outcome.
type record struct {
	History []suspension
	Outcome outcomeDoc
}

type outcomeDoc struct {
	Status   int32
	TypeURL  string
	Output   []byte
	ErrType  string
	ErrMsg   string
	TailCall string // the function of a tail call
}

func (a outcomeDoc) equal(b outcomeDoc) bool {
	return a.Status == b.Status && a.TypeURL == b.TypeURL && bytes.Equal(a.Output, b.Output) &&
		a.ErrType == b.ErrType && a.ErrMsg == b.ErrMsg && a.TailCall == b.TailCall
}

func recordOutcome(o outcome) outcomeDoc {
	d := outcomeDoc{Status: int32(o.status)}
	if o.tail != nil {
		d.TailCall = o.tail.GetFunction()
		return d
	}
	d.TypeURL, d.Output = o.result.GetOutput().GetTypeUrl(), o.result.GetOutput().GetValue()
	d.ErrType, d.ErrMsg = o.result.GetError().GetType(), o.result.GetError().GetMessage()
	return d
}

func writeRecord(path string, r *run, out outcome) error {
	b, err := serde.MarshalCBOR(record{History: r.history, Outcome: recordOutcome(out)})
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// crashReport is what became of one crashed run.
type crashReport struct {
	rec    *record // nil if the new process reported nothing
	err    error   // why it did not
	output string  // the new process's output, when it failed
}

// crashAll resumes each snapshot in a new process of the test binary, at
// most GOMAXPROCS at a time.
func crashAll(ctx context.Context, t testing.TB, call int, snaps [][]byte) []crashReport {
	reports := make([]crashReport, len(snaps))
	if len(snaps) == 0 {
		return reports
	}
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		for i := range reports {
			reports[i].err = fmt.Errorf("cannot find the test binary to run again: %w", err)
		}
		return reports
	}
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(snaps)) {
		wg.Go(func() {
			for k := range work {
				reports[k] = crashOne(ctx, t, exe, dir, call, k+1, snaps[k])
			}
		})
	}
	for k := range snaps {
		work <- k
	}
	close(work)
	wg.Wait()
	return reports
}

func crashOne(ctx context.Context, t testing.TB, exe, dir string, call, await int, snap []byte) crashReport {
	out := filepath.Join(dir, fmt.Sprintf("record-%d-%d.cbor", call, await))
	jb, err := serde.MarshalCBOR(job{Test: t.Name(), Call: call, Await: await, Snapshot: snap, Out: out})
	if err != nil {
		return crashReport{err: err}
	}
	jobFile := filepath.Join(dir, fmt.Sprintf("job-%d-%d.cbor", call, await))
	if err := os.WriteFile(jobFile, jb, 0o600); err != nil {
		return crashReport{err: err}
	}
	args := []string{"-test.run=" + runPattern(t.Name()), "-test.count=1"}
	if testing.Short() {
		args = append(args, "-test.short")
	}
	if dl, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if d, ok := dl.Deadline(); ok {
			args = append(args, "-test.timeout="+max(time.Until(d), time.Second).String())
		}
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = append(os.Environ(), envCrash+"="+jobFile)
	var output tailBuffer
	cmd.Stdout, cmd.Stderr = &output, &output
	runErr := cmd.Run()
	b, err := os.ReadFile(out)
	if err != nil {
		if runErr == nil {
			runErr = errors.New("it exited without resuming the run: was CrashEverywhere reached the same way?")
		}
		return crashReport{err: fmt.Errorf("the new process (%s %s) reported nothing: %w", filepath.Base(exe), strings.Join(args, " "), runErr), output: output.String()}
	}
	var rec record
	if err := serde.UnmarshalCBOR(b, &rec); err != nil {
		return crashReport{err: err}
	}
	return crashReport{rec: &rec}
}

// runPattern is the -test.run pattern that selects the test named name
// and nothing else.
func runPattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}

// compare returns what differs between the uninterrupted run and the run
// crashed at await point k of n, or "" if nothing does.
func compare(function string, k, n int, want record, got crashReport) string {
	var b strings.Builder
	fmt.Fprintf(&b, "flowtest: CrashEverywhere %q: a crash at await %d of %d", function, k, n)
	if k-1 < len(want.History) {
		fmt.Fprintf(&b, " (suspended in frame %s)", frameName(want.History[k-1]))
	}
	if got.rec == nil {
		fmt.Fprintf(&b, ": %v", got.err)
		if got.output != "" {
			fmt.Fprintf(&b, "\n\toutput of the new process:\n%s", indent(got.output, "\t\t"))
		}
		return b.String()
	}
	diverged := -1
	for j := k; j < max(len(want.History), len(got.rec.History)); j++ {
		if j >= len(want.History) || j >= len(got.rec.History) || !sameSuspension(want.History[j], got.rec.History[j]) {
			diverged = j
			break
		}
	}
	sameOutcome := want.Outcome.equal(got.rec.Outcome)
	if diverged < 0 && sameOutcome {
		return ""
	}
	b.WriteString(" changed the run, resumed in a new process from the saved state:")
	if diverged >= 0 {
		fmt.Fprintf(&b, "\n\tfirst difference at await %d, after frame %s received its results:", diverged+1, frameName(got.rec.History[diverged-1]))
		fmt.Fprintf(&b, "\n\t\twithout the crash: %s", describe(want.History, diverged))
		fmt.Fprintf(&b, "\n\t\tafter the crash:   %s", describe(got.rec.History, diverged))
	}
	if !sameOutcome {
		fmt.Fprintf(&b, "\n\toutcome without the crash: %s", describeOutcome(want.Outcome))
		fmt.Fprintf(&b, "\n\toutcome after the crash:   %s", describeOutcome(got.rec.Outcome))
	}
	b.WriteString("\n\twhat survives a crash is the state (the frames and the environments of their continuations) and the results Dispatch keeps; package variables, caches and mocks start afresh, as on another instance")
	return b.String()
}

func sameSuspension(a, b suspension) bool {
	if len(a.Frames) != len(b.Frames) || len(a.Calls) != len(b.Calls) {
		return false
	}
	for i := range a.Frames {
		if a.Frames[i] != b.Frames[i] {
			return false
		}
	}
	for i := range a.Calls {
		x, y := a.Calls[i], b.Calls[i]
		if x.Function != y.Function || x.Endpoint != y.Endpoint || x.TypeURL != y.TypeURL || !bytes.Equal(x.Input, y.Input) {
			return false
		}
	}
	return true
}

func frameName(s suspension) string {
	if len(s.Frames) == 0 {
		return "(none)"
	}
	return fmt.Sprintf("%q", s.Frames[0])
}

// describe says what the run did at await j, or that it had ended.
func describe(h []suspension, j int) string {
	if j >= len(h) {
		return "no await: the run had ended"
	}
	s := h[j]
	if len(s.Calls) == 0 {
		return fmt.Sprintf("suspended in frame %s, making no call", frameName(s))
	}
	calls := make([]string, len(s.Calls))
	for i, c := range s.Calls {
		var v any
		in := "?"
		if err := serde.Unmarshal(&anypb.Any{TypeUrl: c.TypeURL, Value: c.Input}, &v); err == nil {
			in = trace.Format(v)
		}
		calls[i] = c.Function + "(" + in + ")"
	}
	const most = 3
	more := ""
	if len(calls) > most {
		more = fmt.Sprintf(" and %d more", len(calls)-most)
		calls = calls[:most]
	}
	return fmt.Sprintf("suspended in frame %s, calling %s%s", frameName(s), strings.Join(calls, ", "), more)
}

func describeOutcome(o outcomeDoc) string {
	switch {
	case o.TailCall != "":
		return "a tail call to " + o.TailCall
	case o.ErrType != "" || o.ErrMsg != "" || o.Status != int32(sdkv1.Status_STATUS_OK):
		return fmt.Sprintf("%s: %s: %s", status.Status(o.Status), o.ErrType, o.ErrMsg)
	}
	var v any
	if err := serde.Unmarshal(&anypb.Any{TypeUrl: o.TypeURL, Value: o.Output}, &v); err != nil {
		return fmt.Sprintf("OK, a %s", o.TypeURL)
	}
	return "OK, " + trace.Format(v)
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n")
}

// tailBuffer keeps the last 16 KiB written to it; it is safe for
// concurrent writes (a process's stdout and stderr).
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

const tailBytes = 16 << 10

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > tailBytes {
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-tailBytes:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
