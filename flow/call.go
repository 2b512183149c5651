package flow

import (
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
)

// Call is a call to a function, made by a flow and awaited with [Await],
// [Gather], [Any] or [Race]. T is the type of the function's result.
//
// The dispatch package builds calls to registered functions with their Call
// method; [NewCall] builds a call to any function by name, on this endpoint
// or another one.
type Call[T any] struct{ spec callSpec }

// callSpec is the untyped form of a call. The input is kept as a Go value
// until the state is serialized, so DISPATCH_TRACE shows it readably and an
// input that cannot be encoded is reported with its field path.
type callSpec struct {
	Function   string
	Endpoint   string // empty: the endpoint of the calling function
	Input      any
	Expiration time.Duration
	Version    string

	// wire is set when the call was read back from a state: its input is
	// already encoded.
	wire *sdkv1.Call
}

// NewCall returns a call to the function registered as name, with input.
// The call goes to the endpoint of the calling function unless [Call.At]
// says otherwise; T is the type its result decodes into.
func NewCall[T any](name string, input any) Call[T] {
	return Call[T]{callSpec{Function: name, Input: input}}
}

// At returns a copy of the call that goes to the endpoint at url (for a
// function served by another application).
func (c Call[T]) At(url string) Call[T] { c.spec.Endpoint = url; return c }

// WithExpiration returns a copy of the call that Dispatch abandons (with
// status TIMEOUT) if it has not completed within d.
func (c Call[T]) WithExpiration(d time.Duration) Call[T] { c.spec.Expiration = d; return c }

// WithVersion returns a copy of the call that asks for a version of the
// application, where the platform supports it.
func (c Call[T]) WithVersion(v string) Call[T] { c.spec.Version = v; return c }

// Function returns the name of the called function.
func (c Call[T]) Function() string { return c.spec.Function }

// Endpoint returns the endpoint URL the call goes to; empty means the
// calling function's own endpoint.
func (c Call[T]) Endpoint() string { return c.spec.Endpoint }

// Input returns the call's input, as given.
func (c Call[T]) Input() any { return c.spec.Input }

// Proto encodes the call for the wire (its input as a google.protobuf.Any,
// see package serde). The dispatch package uses it to dispatch calls.
func (c Call[T]) Proto() (*sdkv1.Call, error) { return c.spec.toProto(0) }
