// Package inspect renders stored calls for people: the JSON of the
// server's inspection API and of `dispatch calls --json`, and the trees of
// `dispatch call ID`.
package inspect

import (
	"context"
	"fmt"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/dispatchkit/dispatch/internal/status"
	"github.com/dispatchkit/dispatch/internal/store"
	"github.com/dispatchkit/dispatch/serde"
	"github.com/fxamacker/cbor/v2"
)

// Call is one call as shown to people.
type Call struct {
	ID        string    `json:"id"`
	ParentID  string    `json:"parent_id,omitempty"`
	RootID    string    `json:"root_id"`
	Function  string    `json:"function"`
	Endpoint  string    `json:"endpoint"`
	State     string    `json:"state"`            // pending, suspended, done
	Status    string    `json:"status,omitempty"` // final status, or the last failure of a live call
	Attempts  int       `json:"attempts"`
	Restarts  int       `json:"restarts,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	ExpiresAt time.Time `json:"expires_at"`
	Output    string    `json:"output,omitempty"`
	Error     *Error    `json:"error,omitempty"`

	// Filled by Tree only.
	AttemptLog   []Attempt `json:"attempt_log,omitempty"`
	Children     []*Call   `json:"children,omitempty"`
	MoreChildren int       `json:"more_children,omitempty"` // children left out
}

// Error is a call's error.
type Error struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// Attempt is one Run request of a call.
type Attempt struct {
	N        int       `json:"n"`
	Start    time.Time `json:"start"`
	Duration string    `json:"duration"`
	Status   string    `json:"status"`
	Outcome  string    `json:"outcome"`
}

// statusName renders a dispatch.sdk.v1.Status number as "TIMEOUT" (the
// names of internal/status); 0 is "".
func statusName(s int32) string {
	if s == 0 {
		return ""
	}
	return status.Status(s).String()
}

// FromStore renders a stored call.
func FromStore(c *store.Call) *Call {
	out := &Call{
		ID:        c.ID,
		ParentID:  c.ParentID,
		RootID:    c.RootID,
		Function:  c.Function,
		Endpoint:  c.Endpoint,
		State:     c.State.String(),
		Status:    statusName(c.Status),
		Attempts:  c.Attempts,
		Restarts:  c.Restarts,
		CreatedAt: c.CreatedAt,
		UpdatedAt: c.UpdatedAt,
		ExpiresAt: c.ExpiresAt,
	}
	if len(c.Output) > 0 {
		out.Output = renderAny(c.Output)
	}
	if len(c.Error) > 0 {
		var e sdkv1.Error
		if proto.Unmarshal(c.Error, &e) == nil {
			out.Error = &Error{Type: e.GetType(), Message: e.GetMessage()}
		}
	}
	return out
}

// renderAny renders a marshaled Any: JSON for types this binary knows
// (the well-known types), else its type URL and size.
func renderAny(data []byte) string {
	var a anypb.Any
	if err := proto.Unmarshal(data, &a); err != nil {
		return fmt.Sprintf("<%d bytes>", len(data))
	}
	if m, err := a.UnmarshalNew(); err == nil {
		if js, err := protojson.Marshal(m); err == nil {
			return string(js)
		}
	}
	if a.GetTypeUrl() == serde.CBORTypeURL {
		// The Go SDK's values: shown in CBOR diagnostic notation, which
		// names no Go types but shows every field.
		if d, err := cbor.Diagnose(a.GetValue()); err == nil {
			const limit = 400
			if len(d) > limit {
				d = d[:limit] + "…"
			}
			return "cbor " + d
		}
	}
	return fmt.Sprintf("<%s, %d bytes>", a.GetTypeUrl(), len(a.GetValue()))
}

// List returns recent calls, newest first.
func List(ctx context.Context, st store.Store, opts store.ListOptions) ([]*Call, error) {
	calls, err := st.ListCalls(ctx, opts)
	if err != nil {
		return nil, err
	}
	out := make([]*Call, len(calls))
	for i, c := range calls {
		out[i] = FromStore(c)
	}
	return out, nil
}

// maxChildren is the most children Tree shows of one call; the rest are
// counted in Call.MoreChildren.
const maxChildren = 100

// Tree returns the call id with its attempts and, down to depth levels,
// its children (at most maxChildren per call; the rest are counted).
func Tree(ctx context.Context, st store.Store, id string, depth int) (*Call, error) {
	c, err := st.GetCall(ctx, id)
	if err != nil {
		return nil, err
	}
	out := FromStore(c)
	atts, err := st.Attempts(ctx, id)
	if err != nil {
		return nil, err
	}
	for _, a := range atts {
		out.AttemptLog = append(out.AttemptLog, Attempt{
			N:        a.N,
			Start:    a.Start,
			Duration: a.Duration.Round(time.Microsecond).String(),
			Status:   statusName(a.Status),
			Outcome:  a.Outcome,
		})
	}
	if depth <= 0 {
		return out, nil
	}
	kids, err := st.Children(ctx, id)
	if err != nil {
		return nil, err
	}
	for i, k := range kids {
		if i == maxChildren {
			out.MoreChildren = len(kids) - i
			break
		}
		kt, err := Tree(ctx, st, k.ID, depth-1)
		if err != nil {
			return nil, err
		}
		out.Children = append(out.Children, kt)
	}
	return out, nil
}
