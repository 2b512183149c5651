package status

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"

	"github.com/dispatchkit/dispatch/dispatcherr"
	"github.com/dispatchkit/dispatch/internal/errbridge"
)

// Error is an error that crossed the wire, the failure of a child call as
// its caller receives it: [dispatcherr.Error], where its documentation
// lives.
type Error = dispatcherr.Error

// errorStatus returns e.Status, or PERMANENT_ERROR if e.Status is not a
// failure (an error never has status OK), as e's Error and Is methods do.
func errorStatus(e *Error) Status {
	if e != nil && failure(e.Status) {
		return e.Status
	}
	return PermanentError
}

// errorFields returns pointers to the fields of e that only the SDK sets:
// the value as it came off the wire, and the original error rebuilt.
func errorFields(e *Error) (value *[]byte, cause *error) { return errbridge.Fields(e) }

// ToProto converts the error a function returned into the status and error
// of its response. A nil err gives OK and a nil error.
//
// The status is [Of](err). The message is err's message. The type is the
// name under which an error type of the chain was registered with
// [RegisterError], with the error encoded as the value; otherwise it is the
// Go type of the first error of the chain that is not a marker or a plain
// fmt.Errorf or errors.Join wrapper. The traceback is the stack of a
// [*PanicError] in the chain. A child call's [*Error] returned as is keeps
// its type, message, value and traceback.
func ToProto(err error) (sdkv1.Status, *sdkv1.Error) {
	if err == nil {
		return sdkv1.Status_STATUS_OK, nil
	}
	pe := &sdkv1.Error{Message: message(err)}

	var forwarded *Error
	var fallback string
	var raw []byte
	walk(err, func(e error) bool {
		if fwd, ok := e.(*Error); ok && fwd != nil {
			forwarded = fwd
			value, _ := errorFields(fwd)
			pe.Type, raw = fwd.Type, *value
			return true
		}
		if name, value, ok := encodeValue(e); ok {
			pe.Type, raw = name, value
			return true
		}
		if fallback == "" && !isWrapper(e) {
			fallback = typeName(e)
		}
		return false
	})
	if pe.Type == "" {
		pe.Type = fallback
	}
	st := Of(err)
	pe.Value = sealValue(st, raw)

	var p *PanicError
	switch {
	case errors.As(err, &p) && p != nil:
		pe.Traceback = bytes.Clone(p.Stack)
	case forwarded != nil:
		pe.Traceback = bytes.Clone(forwarded.Traceback)
	}
	return st.Proto(), pe
}

// ExitError is the answer of a function that failed with err: an Exit
// whose result carries err (see [ToProto]), under err's status.
func ExitError(err error) *sdkv1.RunResponse {
	st, pe := ToProto(err)
	return &sdkv1.RunResponse{
		Status:    st,
		Directive: &sdkv1.RunResponse_Exit{Exit: &sdkv1.Exit{Result: &sdkv1.CallResult{Error: pe}}},
	}
}

// message returns the message of err for the wire. Markers do not change
// messages; a forwarded child error sends its own message, without the
// status and type that its Error method adds, so that they do not pile up
// along a chain of calls. An Error method that panics gives a message that
// says so rather than crashing the response.
func message(err error) (msg string) {
	defer func() {
		if v := recover(); v != nil {
			msg = fmt.Sprintf("dispatch: the Error method of %T panicked: %v", err, v)
		}
	}()
	for {
		m, ok := err.(*marked)
		if !ok {
			break
		}
		err = m.err
	}
	if e, ok := err.(*Error); ok && e != nil {
		return e.Message
	}
	return err.Error()
}

// isWrapper reports whether err only adds text to the errors it wraps, as
// those of fmt.Errorf and errors.Join do, or is a marker.
func isWrapper(err error) bool {
	if _, ok := err.(*marked); ok {
		return true
	}
	switch reflect.TypeOf(err).String() {
	case "*fmt.wrapError", "*fmt.wrapErrors", "*errors.joinError":
		return true
	}
	return false
}

// typeName returns the name of err's type for the wire. The SDK's own
// types are named "dispatch.PanicError", "dispatch.ErrTimeout", ...
func typeName(err error) string {
	if _, ok := err.(*PanicError); ok {
		return panicTypeName
	}
	if _, name, ok := sentinelOf(err); ok {
		return reservedPrefix + name
	}
	if typ, ok := errbridge.TypeName(err); ok {
		return typ // ErrCanceled: "CANCELLED", as the server's cancel
	}
	name := fmt.Sprintf("%T", err)
	if name == "*errors.errorString" {
		// errors.New and fmt.Errorf without %w: the type says nothing
		// the message does not, so none is sent.
		return ""
	}
	return name
}

// FromProto converts the status and error of a response, or the error of a
// call result, into an [*Error]. It returns nil when s is OK or unspecified
// and e is nil. A nil e with a failure status still gives an Error, with
// only a status.
//
// Call results do not carry a status on the wire: pass
// STATUS_UNSPECIFIED (or use [FromWire]). The status is then the one that
// [ToProto] sealed into the error's value (errors of this SDK whose status
// is not PERMANENT_ERROR carry it there), else that of the rebuilt original
// error when there is one (a sentinel keeps its status, an
// [*HTTPStatusError] gets the status of its code), else the status named
// by the type when Dispatch made the error itself
// (type "TIMEOUT" for a call that expired), and PERMANENT_ERROR
// otherwise: a call result holds the final outcome of the call, which
// Dispatch does not retry. A status that is OK, unspecified or unknown to
// this package is treated the same way.
func FromProto(s sdkv1.Status, e *sdkv1.Error) *Error {
	st := Status(s)
	if e == nil && (s == sdkv1.Status_STATUS_OK || s == sdkv1.Status_STATUS_UNSPECIFIED) {
		return nil
	}
	err := &Error{
		Type:      e.GetType(),
		Message:   e.GetMessage(),
		Traceback: bytes.Clone(e.GetTraceback()),
	}
	sealed, raw, _ := openValue(e.GetValue())
	value, cause := errorFields(err)
	*value = bytes.Clone(raw)
	*cause = decodeValue(err.Type, *value)
	switch {
	case failure(st):
		err.Status = st
	case failure(sealed):
		err.Status = sealed
	case *cause != nil:
		err.Status = Of(*cause)
	default:
		err.Status = failureNamed(err.Type)
	}
	return err
}

// failureNamed returns the failure status whose name is typ, as errors
// made by Dispatch itself (an expired call, an endpoint that answered
// garbage) name their status as their type ("TIMEOUT"), or
// PERMANENT_ERROR for any other type.
func failureNamed(typ string) Status {
	for s := OK + 1; failure(s); s++ {
		if s.String() == typ {
			return s
		}
	}
	return PermanentError
}

// FromWire converts the error of a call result into a Go error, or nil when
// e is nil. See [FromProto] for how the status is recovered.
func FromWire(e *sdkv1.Error) error {
	if e == nil {
		return nil
	}
	return FromProto(sdkv1.Status_STATUS_UNSPECIFIED, e)
}
