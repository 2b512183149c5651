package dispatch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"buf.build/gen/go/stealthrocket/dispatch-proto/connectrpc/go/dispatch/sdk/v1/sdkv1connect"
	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"connectrpc.com/connect"
	"github.com/dispatchkit/dispatch/internal/signature"
)

// Handler returns the endpoint Dispatch calls: an http.Handler serving
// FunctionService.Run over Connect, gRPC and gRPC-Web. Mount it on any mux
// under any prefix: it answers requests whose path ends with
// /dispatch.sdk.v1.FunctionService/Run and verifies their signature against
// the path as sent, prefix included.
//
// Errors of the request itself are HTTP/Connect errors: invalid_argument
// (400) for a body that is not a RunRequest or names no function,
// unauthenticated (401) for missing or malformed signature headers,
// permission_denied (403) for a signature that does not verify,
// not_found (404) for a function that is not registered, and
// resource_exhausted (413) for a body over the size limit, and
// deadline_exceeded for a body that does not arrive within the body
// timeout (30 s, [WithBodyTimeout]: only reading the body is bounded, not
// the run). A function's own failure is not one of them: it is a 200 with a
// non-OK status.
//
// Raw protobuf is served too, for peers that send the RunRequest without
// Connect or gRPC framing (dispatch-py's mock servers): a body with
// Content-Type application/grpc or application/grpc+proto that does not
// start with a gRPC message prefix, or one with Content-Type
// application/octet-stream or none. They are answered in kind: 200, the
// request's Content-Type (application/octet-stream for none) and the bare
// RunResponse, whose poll state is in the untyped coroutine_state bytes
// (the peers that send raw requests predate typed_coroutine_state); errors
// have the HTTP status of their code and a Connect JSON body. The
// signature covers the body as sent, and the Content-Type field, so a
// signed request has one (it may be empty).
//
// Signed requests are accepted once: a replay of one already served is
// refused with permission_denied (see "Replays" in the package
// documentation).
func (d *Dispatch) Handler() http.Handler {
	d.markServing()
	svc := &functionService{rt: d.rt}
	_, h := sdkv1connect.NewFunctionServiceHandler(svc, connect.WithReadMaxBytes(int(d.cfg.maxRequestBytes)),
		connect.WithCompressMinBytes(compressMinBytes))
	return &endpoint{d: d, next: h, errw: connect.NewErrorWriter()}
}

// compressMinBytes is the smallest RunResponse the endpoint compresses
// for a scheduler that accepts gzip (net/http's client asks for it unless
// told otherwise). Most answers are a poll or an output of a few hundred
// bytes, where setting up gzip costs more than it saves: about 60 µs of
// CPU per request, a fifth of a signed Run (BenchmarkRunSigned). A large
// coroutine state or output is still compressed.
const compressMinBytes = 4 << 10

type endpoint struct {
	d    *Dispatch
	next http.Handler
	errw *connect.ErrorWriter
}

func (e *endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// A body must arrive within the body timeout whoever reads it: this
	// handler, or net/http, which reads what is left of an HTTP/1.x body
	// after the answer (up to 256 KB, to keep the connection) and would
	// otherwise wait for a client that stalls for as long as it likes, a
	// goroutine and a connection held (another path, a body over a small
	// limit). readBody clears the deadline once the body is read.
	deadline := r.Body != nil && r.Body != http.NoBody && setReadDeadline(w, time.Now().Add(e.d.cfg.bodyTimeout))
	if !strings.HasSuffix(r.URL.Path, sdkv1connect.FunctionServiceRunProcedure) {
		http.NotFound(w, r)
		return
	}
	contentType := r.Header.Get("Content-Type")
	limit := e.d.cfg.maxRequestBytes
	if r.ContentLength > limit {
		e.tooLarge(w, r, limit, rawUnread(r, contentType))
		return
	}
	// The signature covers the headers and the digest of the body, not the
	// body itself: a request that is not signed by the verification key is
	// refused before its body is read (up to the limit, 16 MB by default).
	var signed signature.Signed
	if v := e.d.verifier; v != nil {
		var err error
		if signed, err = v.VerifyHeaders(r); err != nil {
			e.refuse(w, r, rawUnread(r, contentType), err)
			return
		}
	}
	body, err := e.readBody(w, r, limit, deadline)
	if err != nil {
		// body is what arrived of the request's body, not all of it: its
		// style is judged with its length unknown (-1), so that a gRPC
		// request cut short (its prefix announces more) is answered in
		// gRPC's style.
		raw := rawStyle(contentType, body, -1)
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			e.tooLarge(w, r, limit, raw)
		case errors.Is(err, os.ErrDeadlineExceeded):
			e.fail(w, r, raw, connect.NewError(connect.CodeDeadlineExceeded, fmt.Errorf("dispatch: the request body did not arrive within %v (WithBodyTimeout)", e.d.cfg.bodyTimeout)))
		default:
			e.fail(w, r, raw, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("dispatch: reading the request body: %w", err)))
		}
		return
	}
	raw := rawStyle(contentType, body, int64(len(body)))
	if e.d.verifier != nil {
		if err := signed.CheckBody(body); err != nil {
			e.refuse(w, r, raw, err)
			return
		}
	} else {
		e.d.warnUnverified()
	}
	if len(body) == 0 {
		// Connect unary reads no body as an empty RunRequest (which names no
		// function: invalid_argument), but gRPC and gRPC-Web read it as no
		// message at all (unimplemented). PROTOCOL.md wants invalid_argument
		// for every protocol.
		e.fail(w, r, raw, connect.NewError(connect.CodeInvalidArgument, errors.New("dispatch: the request has no body: want a RunRequest")))
		return
	}
	if raw {
		e.serveRaw(w, r, contentType, body)
		return
	}
	// A shallow copy with its own URL routes the request to the connect
	// handler's path (the endpoint may be mounted under any prefix); the
	// headers are not modified, so they are not cloned.
	r2 := new(http.Request)
	*r2 = *r
	u := *r.URL
	u.Path, u.RawPath = sdkv1connect.FunctionServiceRunProcedure, ""
	r2.URL = &u
	r2.Body = io.NopCloser(bytes.NewReader(body))
	r2.ContentLength = int64(len(body))
	e.next.ServeHTTP(w, r2)
}

// readBody reads the body of r, up to limit bytes, within the body
// timeout, whose read deadline ServeHTTP set (deadline reports whether it
// could). The deadline is set for the body only (per stream on HTTP/2),
// and cleared once it is read, so that it does not cut the run short
// (http.Server.ReadTimeout, connection-wide, would); net/http clears it
// too once an HTTP/1.x body is read, other servers may not. A
// ResponseWriter that cannot set one (a test recorder, some middleware)
// reads without.
//
// When the body cannot be read, the deadline stays and an HTTP/1.x
// connection is closed after the answer: net/http would otherwise read
// what is left of the body before answering, and wait for it.
//
// A body whose length is announced (Dispatch's always is) is read into a
// buffer of that length, made once, rather than grown by io.ReadAll (a
// copy per growth: for a 64 KB poll state, 19 allocations and 138 KB
// against 5 and 66 KB, BenchmarkReadBody), and then to its end, as
// io.ReadAll read it: net/http watches the connection, to cancel the run's
// context when the client goes away, once the body has reached its end
// (TestRunCancelledWhenClientGoes).
func (e *endpoint) readBody(w http.ResponseWriter, r *http.Request, limit int64, deadline bool) ([]byte, error) {
	body, err := readAll(http.MaxBytesReader(w, r.Body, limit), r.ContentLength, limit)
	if err != nil {
		if r.ProtoMajor == 1 {
			w.Header().Set("Connection", "close")
		}
		return body, err
	}
	if deadline {
		setReadDeadline(w, time.Time{})
	}
	return body, nil
}

// readAll reads rd to its end, into a buffer of n bytes when n, the
// announced length, is known (0 < n <= limit).
func readAll(rd io.Reader, n, limit int64) ([]byte, error) {
	if n <= 0 || n > limit {
		return io.ReadAll(rd)
	}
	body := make([]byte, n)
	m, err := io.ReadFull(rd, body)
	if err != nil {
		return body[:m], err
	}
	var one [1]byte
	switch k, err := rd.Read(one[:]); {
	case k > 0:
		// More than announced: net/http does not let this happen; read
		// the rest as io.ReadAll would, up to the limit.
		rest, err := io.ReadAll(rd)
		return append(append(body, one[0]), rest...), err
	case err != nil && err != io.EOF:
		return body, err
	}
	return body, nil
}

// setReadDeadline sets the read deadline of the connection of w, as
// http.ResponseController does (through Unwrap methods), and reports
// whether it could. It does not use ResponseController because that
// allocates an error wrapping http.ErrNotSupported on every call for a
// writer that cannot.
func setReadDeadline(w http.ResponseWriter, t time.Time) bool {
	for {
		switch x := w.(type) {
		case interface{ SetReadDeadline(time.Time) error }:
			return x.SetReadDeadline(t) == nil
		case interface{ Unwrap() http.ResponseWriter }:
			w = x.Unwrap()
		default:
			return false
		}
	}
}

// refuse answers a request whose signature does not verify:
// unauthenticated for a missing or malformed signature, permission_denied
// for one that is refused (a replay among them).
func (e *endpoint) refuse(w http.ResponseWriter, r *http.Request, raw bool, err error) {
	code := connect.CodePermissionDenied
	if errors.Is(err, signature.ErrMissing) {
		code = connect.CodeUnauthenticated
	}
	e.d.log.Warn().Err(err).Str("path", r.URL.Path).Msg("dispatch: rejected a request")
	e.fail(w, r, raw, connect.NewError(code, err))
}

func (e *endpoint) fail(w http.ResponseWriter, r *http.Request, raw bool, err *connect.Error) {
	if raw {
		writeRawError(w, err)
		return
	}
	_ = e.errw.Write(w, r, err)
}

// tooLarge answers 413 to a Connect unary or raw request (its error body is
// JSON), and resource_exhausted in the protocol's own framing otherwise.
func (e *endpoint) tooLarge(w http.ResponseWriter, r *http.Request, limit int64, raw bool) {
	err := connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("dispatch: request body over the limit of %d bytes (WithMaxRequestBytes)", limit))
	ct := r.Header.Get("Content-Type")
	if raw || strings.HasPrefix(ct, "application/proto") || strings.HasPrefix(ct, "application/json") {
		writeRawError(w, err)
		return
	}
	_ = e.errw.Write(w, r, err)
}

// functionService implements FunctionService.Run over the registry.
type functionService struct {
	sdkv1connect.UnimplementedFunctionServiceHandler
	rt *runtime
}

func (s *functionService) Run(ctx context.Context, req *connect.Request[sdkv1.RunRequest]) (*connect.Response[sdkv1.RunResponse], error) {
	res, err := s.rt.run(ctx, req.Msg)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(res), nil
}

// run runs the function req names; the error is that of the request (no
// function named, or not registered here), whatever the protocol.
func (rt *runtime) run(ctx context.Context, req *sdkv1.RunRequest) (*sdkv1.RunResponse, *connect.Error) {
	name := req.GetFunction()
	if name == "" {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("dispatch: the RunRequest names no function"))
	}
	fn, ok := lookupFunction(name)
	if !ok {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("dispatch: no function %q is registered here (registered: %s)", name, strings.Join(Functions(), ", ")))
	}
	return fn.serve(ctx, rt, req), nil
}
