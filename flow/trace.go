package flow

import (
	"fmt"

	"github.com/dispatchkit/dispatch/trace"
)

// dump prints the frames to the trace writer, as Go values, so that a value
// that cannot be encoded is still shown. saveErr is the error that kept the
// state from being saved, if any: the send calls of this suspension were
// then not sent, and the dump says so.
func (m *machine) dump(send int, saveErr error) {
	w := m.wait
	s := trace.Snapshot{
		Function:   m.c.info.Function,
		DispatchID: m.c.info.DispatchID,
		Event:      "suspend",
		Queued:     len(w.pending) - send,
	}
	detail := fmt.Sprintf("waits on %s: %d calls, %d sent, %d results in", mode(w.Mode), w.N, w.Sent+send, w.arrived())
	if saveErr != nil {
		s.Failure = "the state could not be saved, so the call fails and no call was sent: " + saveErr.Error()
		detail = fmt.Sprintf("waits on %s: %d calls, %d sent before, %d not sent, %d results in", mode(w.Mode), w.N, w.Sent, send, w.arrived())
	}
	if mode(w.Mode) == modeSleep {
		detail = fmt.Sprintf("waits on sleep until %s", w.deadline().UTC().Format("2006-01-02T15:04:05.000Z07:00"))
	} else if d := w.deadline(); !d.IsZero() {
		detail += ", timeout at " + d.UTC().Format("15:04:05.000Z07:00")
	}
	// Frames are numbered from the top as in error messages; the top one
	// receives the results of the wait, so the wait is its detail.
	for i := len(m.stack) - 1; i >= 0; i-- {
		f := m.stack[i]
		s.Frames = append(s.Frames, trace.Frame{Name: f.def.name, Env: f.env})
	}
	if len(s.Frames) == 0 {
		s.Frames = append(s.Frames, trace.Frame{Name: "(wait)"})
	}
	s.Frames[0].Detail = detail
	for i, c := range w.pending[:send] {
		p := trace.Pending{CorrelationID: w.Base + uint64(w.Sent+i), Function: c.Function, Endpoint: c.Endpoint, Input: c.Input}
		if c.wire != nil {
			p.Input = c.wire.GetInput()
		}
		s.Pending = append(s.Pending, p)
	}
	_ = trace.Dump(m.c.cfg.Trace, s)
}
