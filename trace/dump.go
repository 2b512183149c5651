package trace

import (
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Snapshot is the state of a function's coroutine at one moment, as [Dump]
// shows it.
type Snapshot struct {
	// Function is the name the function is registered under.
	Function string
	// DispatchID is the dispatch id of the call being run.
	DispatchID string
	// Event is what is happening to the coroutine, such as "suspend" or
	// "exit".
	Event string
	// Frames are the coroutine's frames, from the top of the stack (the
	// innermost, most recent call) down to the function's entry point.
	Frames []Frame
	// Pending are the calls the coroutine waits for.
	Pending []Pending
	// Queued is the number of calls waiting to be sent: a fan-out over
	// more calls than may be in flight at once sends the rest as results
	// come in. Zero is not printed.
	Queued int
	// Failure, when not empty, says why the coroutine could not do what
	// Event says: for a suspension, why its state could not be saved. The
	// calls in Pending were then not sent, and Dump lists them as such.
	Failure string
}

// Frame is one frame of a coroutine's stack.
type Frame struct {
	// Name names the frame, such as "pipeline.transformed".
	Name string
	// Env is the state the frame keeps across the suspension, as a Go
	// value; nil if it keeps none.
	Env any
	// Detail says what the frame is doing, such as
	// "await all: 3 of 5 results"; empty if nothing needs saying.
	Detail string
}

// Pending is a call the coroutine has made and waits for.
type Pending struct {
	// CorrelationID identifies the call within the coroutine.
	CorrelationID uint64
	// Function is the name of the function called.
	Function string
	// Endpoint is the URL of the endpoint that serves Function; empty when
	// it is the endpoint of the caller.
	Endpoint string
	// Input is the call's input, as a Go value; nil if there is none.
	Input any
}

// Dump writes s to w in a layout for people to read: a header line with the
// event, the function and its dispatch id, then the frames from the top of
// the stack down, each with its env and detail, then the pending calls and
// the number of calls queued behind them, if any (a Failure is printed
// under the header, and the pending calls are then listed as not sent):
//
//	dispatch trace: suspend pipeline (id 7f3a9c2e)
//	  frames, top of stack first:
//	    0  pipeline.transformed
//	       env:    Order{ID: "o-1", Items: ["a", "b"]}
//	       detail: await all: 3 of 5 results
//	    1  pipeline
//	  pending calls: 1
//	    #1  transform2("hello")
//
// Values are rendered by [Format], so nothing in s needs to be serializable,
// and each value takes at most one line of [FormatLimit] bytes. Dump writes
// the whole dump with a single call to w.Write and returns its error.
func Dump(w io.Writer, s Snapshot) error {
	var b strings.Builder

	b.WriteString("dispatch trace:")
	if s.Event != "" {
		b.WriteString(" " + s.Event)
	}
	if s.Function != "" {
		b.WriteString(" " + s.Function)
	} else {
		b.WriteString(" (unnamed function)")
	}
	if s.DispatchID != "" {
		b.WriteString(" (id " + s.DispatchID + ")")
	}
	b.WriteString("\n")
	if s.Failure != "" {
		b.WriteString("  failed: " + indentLines(s.Failure, "          ") + "\n")
	}

	if len(s.Frames) == 0 {
		b.WriteString("  frames: none\n")
	} else {
		b.WriteString("  frames, top of stack first:\n")
		idxWidth := len(strconv.Itoa(len(s.Frames) - 1))
		indent := strings.Repeat(" ", 4+idxWidth+2)
		for i, f := range s.Frames {
			b.WriteString("    " + padLeft(strconv.Itoa(i), idxWidth) + "  " + f.Name + "\n")
			if f.Env != nil {
				b.WriteString(indent + "env:    " + Format(f.Env) + "\n")
			}
			if f.Detail != "" {
				b.WriteString(indent + "detail: " + indentLines(f.Detail, indent+"        ") + "\n")
			}
		}
	}

	pending := "pending calls"
	if s.Failure != "" {
		pending = "calls not sent"
	}
	if len(s.Pending) == 0 {
		b.WriteString("  " + pending + ": none\n")
	} else {
		b.WriteString("  " + pending + ": " + strconv.Itoa(len(s.Pending)) + "\n")
		ids := make([]string, len(s.Pending))
		calls := make([]string, len(s.Pending))
		idWidth, callWidth := 0, 0
		for i, c := range s.Pending {
			ids[i] = "#" + strconv.FormatUint(c.CorrelationID, 10)
			calls[i] = c.Function + "("
			if c.Input != nil {
				calls[i] += Format(c.Input)
			}
			calls[i] += ")"
			idWidth = max(idWidth, width(ids[i]))
			if c.Endpoint != "" {
				callWidth = max(callWidth, min(width(calls[i]), maxAlign))
			}
		}
		for i, c := range s.Pending {
			line := "    " + padRight(ids[i], idWidth) + "  " + calls[i]
			if c.Endpoint != "" {
				line = padRight(line, 4+idWidth+2+callWidth) + "  endpoint: " + c.Endpoint
			}
			b.WriteString(line + "\n")
		}
	}

	if s.Queued > 0 {
		b.WriteString("  queued calls (sent as results come in): " + strconv.Itoa(s.Queued) + "\n")
	}

	_, err := io.WriteString(w, b.String())
	return err
}

// maxAlign is the widest call that the endpoints of other calls are
// aligned after; longer calls are followed by their endpoint directly.
const maxAlign = 48

// width returns the number of characters of s.
func width(s string) int { return utf8.RuneCountInString(s) }

func padLeft(s string, n int) string {
	return strings.Repeat(" ", max(0, n-width(s))) + s
}

func padRight(s string, n int) string {
	return s + strings.Repeat(" ", max(0, n-width(s)))
}

// indentLines indents every line of s but the first with indent.
func indentLines(s, indent string) string {
	return strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+indent)
}
