package dispatch

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"connectrpc.com/connect"
	"github.com/dispatchkit/dispatch/flow"
	"google.golang.org/protobuf/proto"
)

// Raw protobuf Run requests. Some Dispatch peers send the RunRequest as a
// bare protobuf body and read a bare RunResponse back, with no Connect or
// gRPC framing around it: dispatch-py v0.5.1's mock server
// (python -m dispatch.test) posts it as Content-Type application/grpc+proto
// without the 5-byte gRPC message prefix and reads the answer with
// raise_for_status and RunResponse.FromString; its later test server sends
// application/octet-stream or no Content-Type at all. The endpoint serves
// them in their own style: 200 with the request's Content-Type
// (application/octet-stream when it had none) and the raw RunResponse; a
// failed request is the HTTP status of its Connect code with a Connect JSON
// error body ({"code": ..., "message": ...}).

// rawStyle reports whether a request with contentType and body is a raw
// protobuf request. total is the length of the whole body, or -1 when body
// holds only its first bytes (it was over the limit, or its reading failed:
// it came too slowly, or the connection broke).
//
// An application/grpc body is raw when its first five bytes are not the
// gRPC prefix of a message of the body's length: a flag byte of 0 or 1
// (compressed), then the big-endian length of the rest. There is no
// ambiguity: a protobuf message never starts with 0x00 or 0x01. Its first
// byte begins the varint of a field's tag, (field number << 3) | wire type;
// field number 0 is invalid, so a one-byte tag is at least 0x08, and the
// first byte of a longer varint has its high bit set (0x80 and up). An
// empty application/grpc body has no prefix to judge: it is read as gRPC
// reads it (a request with no message) and answered invalid_argument in
// gRPC's style.
func rawStyle(contentType string, body []byte, total int64) bool {
	switch mediaType(contentType) {
	case "", "application/octet-stream":
		return true
	case "application/grpc", "application/grpc+proto":
		return total != 0 && !grpcFramed(body, total)
	}
	return false
}

// mediaType is the media type of a Content-Type, lower-cased, without its
// parameters.
func mediaType(contentType string) string {
	if contentType == "" {
		return ""
	}
	mt, _, _ := strings.Cut(contentType, ";")
	return strings.ToLower(strings.TrimSpace(mt))
}

// grpcFramed reports whether body starts with the prefix of a gRPC message
// that makes up the whole body (total bytes; -1: more than len(body)). A
// body cut short within the prefix (total -1) is taken for gRPC unless its
// first byte is no flag: no byte, or a flag byte, says nothing else.
func grpcFramed(body []byte, total int64) bool {
	if len(body) > 0 && body[0] > 1 {
		return false
	}
	if len(body) < 5 {
		return total < 0
	}
	n := int64(binary.BigEndian.Uint32(body[1:5])) + 5
	if total < 0 {
		return n > int64(len(body))
	}
	return n == total
}

// rawUnread tells the style of a request refused before its body is read
// (over the limit, or not signed by the verification key): for
// application/grpc, its first five bytes are read (within the body timeout
// ServeHTTP set, which stays for what is left) to see whether they are a
// gRPC prefix.
func rawUnread(r *http.Request, contentType string) bool {
	switch mediaType(contentType) {
	case "application/grpc", "application/grpc+proto":
	default:
		return rawStyle(contentType, nil, 0)
	}
	var head [5]byte
	n, err := io.ReadFull(r.Body, head[:])
	total := r.ContentLength // -1 when unknown
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		total = int64(n) // the whole body
	}
	return rawStyle(contentType, head[:n], total)
}

// serveRaw serves a raw protobuf Run request, verified and not empty.
func (e *endpoint) serveRaw(w http.ResponseWriter, r *http.Request, contentType string, body []byte) {
	var req sdkv1.RunRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		writeRawError(w, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("dispatch: the body is not a RunRequest (read as bare protobuf, for Content-Type %q without gRPC framing): %w", contentType, err)))
		return
	}
	res, cerr := e.d.rt.run(r.Context(), &req)
	if cerr != nil {
		writeRawError(w, cerr)
		return
	}
	untypeState(res)
	out, err := proto.Marshal(res)
	if err != nil {
		writeRawError(w, connect.NewError(connect.CodeInternal, fmt.Errorf("dispatch: cannot encode the RunResponse: %w", err)))
		return
	}
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

// untypeState moves the state of a poll from typed_coroutine_state to the
// untyped coroutine_state bytes, for raw peers: dispatch-py v0.5.1's mock
// predates typed_coroutine_state and echoes coroutine_state only, so a
// workflow would resume with no state. The bytes are the same CBOR state
// document, which a resume accepts in either field (see package flow).
func untypeState(res *sdkv1.RunResponse) {
	poll := res.GetPoll()
	if st := poll.GetTypedCoroutineState(); st != nil && st.GetTypeUrl() == flow.StateTypeURL {
		poll.State = &sdkv1.Poll_CoroutineState{CoroutineState: st.GetValue()}
	}
}

// writeRawError writes err as Connect unary does: the HTTP status of its
// code and a JSON body. resource_exhausted is 413, the status PROTOCOL.md
// gives a body over the limit.
func writeRawError(w http.ResponseWriter, err *connect.Error) {
	body, _ := json.Marshal(struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}{err.Code().String(), err.Message()})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpStatus(err.Code()))
	_, _ = w.Write(body)
}

// httpStatus is the HTTP status of a Connect code, as the Connect protocol
// maps them, but for resource_exhausted (413 here, 429 in Connect).
func httpStatus(code connect.Code) int {
	switch code {
	case connect.CodeCanceled:
		return 499
	case connect.CodeInvalidArgument, connect.CodeFailedPrecondition, connect.CodeOutOfRange:
		return http.StatusBadRequest
	case connect.CodeDeadlineExceeded:
		return http.StatusGatewayTimeout
	case connect.CodeNotFound:
		return http.StatusNotFound
	case connect.CodeAlreadyExists, connect.CodeAborted:
		return http.StatusConflict
	case connect.CodePermissionDenied:
		return http.StatusForbidden
	case connect.CodeResourceExhausted:
		return http.StatusRequestEntityTooLarge
	case connect.CodeUnimplemented:
		return http.StatusNotImplemented
	case connect.CodeUnavailable:
		return http.StatusServiceUnavailable
	case connect.CodeUnauthenticated:
		return http.StatusUnauthorized
	}
	return http.StatusInternalServerError
}
