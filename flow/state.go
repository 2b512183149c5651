package flow

import (
	"bytes"
	"errors"
	"fmt"
	"math/bits"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/dispatchkit/dispatch/dispatcherr"
	"github.com/dispatchkit/dispatch/serde"
	"github.com/fxamacker/cbor/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

// StateTypeURL is the type URL of the Any that carries a suspended flow's
// state in Poll.typed_coroutine_state. Its value is the CBOR state document
// described in the package documentation; the document carries its own
// format version.
const StateTypeURL = "type.googleapis.com/dispatchkit.go.v1.FlowState"

// StateVersion is the newest state format this build writes and reads.
// Every older version keeps decoding (see testdata/); a newer one is
// answered with INCOMPATIBLE_STATE.
const StateVersion = 1

// stateDoc is the CBOR state document. Integer keys and arrays keep it
// small: a suspended flow with three small frames is well under 200 bytes,
// and nothing in it grows with the number of steps already taken.
type stateDoc struct {
	Version uint64     `cbor:"1,keyasint"`
	Frames  []frameDoc `cbor:"2,keyasint,omitempty"` // continuations, bottom of the stack first
	Wait    *waitDoc   `cbor:"3,keyasint,omitempty"` // the await the flow is suspended on
	NextID  uint64     `cbor:"4,keyasint,omitempty"` // next correlation id
}

type frameDoc struct {
	_    struct{} `cbor:",toarray"`
	Name string
	Env  cbor.RawMessage // the environment's own CBOR; null without one
}

type waitDoc struct {
	Mode     uint8       `cbor:"1,keyasint"`
	Base     uint64      `cbor:"2,keyasint,omitempty"`  // correlation id of the first call
	N        int         `cbor:"3,keyasint,omitempty"`  // number of calls
	Sent     int         `cbor:"4,keyasint,omitempty"`  // calls handed to Dispatch so far
	Seen     []byte      `cbor:"5,keyasint,omitempty"`  // bitmap: calls whose result arrived
	Results  []resultDoc `cbor:"6,keyasint,omitempty"`  // results kept until the wait is satisfied
	Queue    [][]byte    `cbor:"7,keyasint,omitempty"`  // calls not sent yet (protobuf Call)
	Deadline int64       `cbor:"8,keyasint,omitempty"`  // unix nanoseconds; 0: none
	Timeout  int64       `cbor:"9,keyasint,omitempty"`  // nanoseconds, for error messages
	Types    []string    `cbor:"10,keyasint,omitempty"` // type URLs of the results, each once
}

type resultDoc struct {
	_     struct{} `cbor:",toarray"`
	Index int
	Type  int // index in waitDoc.Types; -1 for no output
	Value []byte
	Err   *errDoc
}

type errDoc struct {
	_         struct{} `cbor:",toarray"`
	Type      string
	Message   string
	Value     []byte
	Traceback []byte
}

func (e *errDoc) proto() *sdkv1.Error {
	return &sdkv1.Error{Type: e.Type, Message: e.Message, Value: e.Value, Traceback: e.Traceback}
}

func newErrDoc(e *sdkv1.Error) *errDoc {
	return &errDoc{Type: e.GetType(), Message: e.GetMessage(), Value: e.GetValue(), Traceback: e.GetTraceback()}
}

// IncompatibleStateError reports a state this build cannot resume: an
// unknown continuation, an environment that no longer decodes, a format from
// a newer build, or bytes that are not a state at all. Its status is
// INCOMPATIBLE_STATE: Dispatch restarts the call from its original input.
type IncompatibleStateError struct {
	Frame int    // index of the frame from the top of the stack; -1 if not about a frame
	Name  string // the frame's continuation name, if known
	Err   error
}

func (e *IncompatibleStateError) Error() string {
	if e.Frame < 0 {
		return "flow: incompatible state: " + e.Err.Error()
	}
	return fmt.Sprintf("flow: incompatible state: frame %d %q: %v", e.Frame, e.Name, e.Err)
}

// Unwrap returns the cause and the status sentinel, which gives the error
// its status wherever it is returned from (and makes errors.Is match
// [dispatcherr.ErrIncompatibleState]).
func (e *IncompatibleStateError) Unwrap() []error {
	return []error{e.Err, dispatcherr.ErrIncompatibleState}
}

var cborNull = []byte{0xf6}

// encodeState serializes the machine's stack and wait.
func (m *machine) encodeState() ([]byte, error) {
	doc := stateDoc{Version: StateVersion, NextID: m.nextID}
	doc.Frames = make([]frameDoc, len(m.stack))
	for i := range m.stack {
		f := &m.stack[i]
		if f.raw == nil && f.hasEnv {
			raw, err := serde.MarshalCBOR(f.env)
			if err != nil {
				return nil, fmt.Errorf("flow: frame %d %q: cannot save its environment %T: %w", len(m.stack)-1-i, f.def.name, f.env, err)
			}
			f.raw = raw
		}
		doc.Frames[i] = frameDoc{Name: f.def.name, Env: f.raw}
	}
	if w := m.wait; w != nil {
		doc.Wait = &w.waitDoc
		doc.Wait.Queue = doc.Wait.Queue[:0]
		for _, c := range w.pending {
			pc, err := c.toProto(0)
			if err != nil {
				return nil, err
			}
			b, err := proto.MarshalOptions{Deterministic: true}.Marshal(pc)
			if err != nil {
				return nil, fmt.Errorf("flow: cannot save queued call to %q: %w", c.Function, err)
			}
			doc.Wait.Queue = append(doc.Wait.Queue, b)
		}
	}
	return serde.EncMode().Marshal(&doc)
}

// decodeState reads a state written by this build or an older one.
func decodeState(data []byte) (*machine, error) {
	var doc stateDoc
	if err := serde.UnmarshalCBOR(data, &doc); err != nil {
		return nil, &IncompatibleStateError{Frame: -1, Err: fmt.Errorf("not a state document of this SDK: %w", err)}
	}
	if doc.Version == 0 || doc.Version > StateVersion {
		return nil, &IncompatibleStateError{Frame: -1, Err: fmt.Errorf("state format version %d is not supported by this build (it reads versions 1 to %d): was it written by a newer build?", doc.Version, StateVersion)}
	}
	m := &machine{nextID: doc.NextID, stack: make([]frame, len(doc.Frames))}
	for i, fd := range doc.Frames {
		top := len(doc.Frames) - 1 - i
		d, ok := lookup(fd.Name)
		if !ok {
			return nil, &IncompatibleStateError{Frame: top, Name: fd.Name, Err: errors.New("no continuation is registered under this name in this build: was it renamed or removed?")}
		}
		raw := []byte(fd.Env)
		if bytes.Equal(raw, cborNull) {
			raw = nil
		}
		env, err := d.decodeEnv(raw)
		if err != nil {
			return nil, &IncompatibleStateError{Frame: top, Name: fd.Name, Err: err}
		}
		m.stack[i] = frame{def: d, env: env, hasEnv: d.env != nil, raw: raw}
	}
	if w := doc.Wait; w != nil {
		ws, err := decodeWait(w)
		if err != nil {
			return nil, &IncompatibleStateError{Frame: -1, Err: err}
		}
		m.wait = ws
	}
	return m, nil
}

// stateFrames returns the continuation names of a state's frames, top of
// the stack first, without looking them up (see flowrun.Frames).
func stateFrames(data []byte) ([]string, error) {
	var doc stateDoc
	if err := serde.UnmarshalCBOR(data, &doc); err != nil {
		return nil, &IncompatibleStateError{Frame: -1, Err: fmt.Errorf("not a state document of this SDK: %w", err)}
	}
	names := make([]string, len(doc.Frames))
	for i, f := range doc.Frames {
		names[len(names)-1-i] = f.Name
	}
	return names, nil
}

func decodeWait(w *waitDoc) (*waitState, error) {
	if w.Mode < uint8(modeOne) || w.Mode > uint8(modeSleep) {
		return nil, fmt.Errorf("unknown wait mode %d", w.Mode)
	}
	if w.N < 0 || w.Sent < 0 || w.Sent > w.N || len(w.Seen) > (w.N+7)/8 || len(w.Queue) != w.N-w.Sent {
		return nil, fmt.Errorf("inconsistent wait: %d calls, %d sent, %d queued", w.N, w.Sent, len(w.Queue))
	}
	for _, r := range w.Results {
		// What absorb keeps: a Gather keeps successes (with the index of
		// their type), an Any keeps failures, other waits keep nothing.
		ok := r.Index >= 0 && r.Index < w.N
		switch mode(w.Mode) {
		case modeAll:
			ok = ok && r.Err == nil && r.Type >= -1 && r.Type < len(w.Types)
		case modeAny:
			ok = ok && r.Err != nil
		default:
			ok = false
		}
		if !ok {
			return nil, fmt.Errorf("inconsistent wait: a %s keeps no such result (call %d of %d, type %d of %d, error %t)",
				mode(w.Mode), r.Index, w.N, r.Type, len(w.Types), r.Err != nil)
		}
	}
	ws := &waitState{waitDoc: *w}
	for i, b := range w.Queue {
		var c sdkv1.Call
		if err := proto.Unmarshal(b, &c); err != nil {
			return nil, fmt.Errorf("queued call %d: %w", w.Sent+i, err)
		}
		ws.pending = append(ws.pending, callSpec{Function: c.Function, Endpoint: c.Endpoint, wire: &c})
	}
	ws.Queue = nil
	if len(ws.Seen) < (ws.N+7)/8 {
		ws.Seen = append(ws.Seen, make([]byte, (ws.N+7)/8-len(ws.Seen))...)
	}
	return ws, nil
}

// waitState is a wait in progress: the document plus the calls not yet
// handed to Dispatch, as Go values until they are encoded.
type waitState struct {
	waitDoc
	pending []callSpec
}

func (w *waitState) seen(i int) bool { return w.Seen[i/8]&(1<<(i%8)) != 0 }
func (w *waitState) mark(i int)      { w.Seen[i/8] |= 1 << (i % 8) }

// arrived counts the calls whose result arrived.
func (w *waitState) arrived() int {
	n := 0
	for _, b := range w.Seen {
		n += bits.OnesCount8(b)
	}
	return n
}

func (w *waitState) inFlight() int { return w.Sent - w.arrived() }

// typeIndex returns the index of url in the type table, adding it if new.
// A fan-out's results mostly share one type, so the table stays tiny.
func (w *waitState) typeIndex(url string) int {
	for i, t := range w.Types {
		if t == url {
			return i
		}
	}
	w.Types = append(w.Types, url)
	return len(w.Types) - 1
}

func (w *waitState) deadline() time.Time {
	if w.Deadline == 0 {
		return time.Time{}
	}
	return time.Unix(0, w.Deadline)
}

// toProto encodes the call for a Poll, with its correlation id.
func (s callSpec) toProto(corr uint64) (*sdkv1.Call, error) {
	if s.wire != nil {
		return &sdkv1.Call{CorrelationId: corr, Endpoint: s.wire.Endpoint, Function: s.wire.Function, Input: s.wire.Input, Expiration: s.wire.Expiration, Version: s.wire.Version}, nil
	}
	in, err := serde.Marshal(s.Input)
	if err != nil {
		return nil, fmt.Errorf("flow: call to %q: cannot encode its input %T: %w", s.Function, s.Input, err)
	}
	c := &sdkv1.Call{CorrelationId: corr, Endpoint: s.Endpoint, Function: s.Function, Input: in, Version: s.Version}
	if s.Expiration > 0 {
		c.Expiration = durationpb.New(s.Expiration)
	}
	return c, nil
}

// stateFromPollResult extracts the state bytes from a resume.
func stateFromPollResult(pr *sdkv1.PollResult) ([]byte, error) {
	switch s := pr.GetState().(type) {
	case *sdkv1.PollResult_TypedCoroutineState:
		if s.TypedCoroutineState.GetTypeUrl() != StateTypeURL {
			return nil, &IncompatibleStateError{Frame: -1, Err: fmt.Errorf("typed coroutine state has type %q, want %q", s.TypedCoroutineState.GetTypeUrl(), StateTypeURL)}
		}
		return s.TypedCoroutineState.GetValue(), nil
	case *sdkv1.PollResult_CoroutineState:
		return s.CoroutineState, nil
	}
	return nil, &IncompatibleStateError{Frame: -1, Err: errors.New("the poll result carries no coroutine state")}
}

func stateAny(b []byte) *anypb.Any { return &anypb.Any{TypeUrl: StateTypeURL, Value: b} }
