package status

import (
	"context"
	"errors"
	"net"
	"reflect"
	"syscall"
)

// Of returns the status of err: OK for nil, otherwise the status that
// Dispatch acts on when a function returns err. An explicit status in the
// chain wins (the outermost one); otherwise the error is classified by kind.
// The package documentation lists the classes and their precedence.
func Of(err error) Status {
	if err == nil {
		return OK
	}
	if s, ok := explicitOf(err); ok {
		return s
	}
	switch {
	case isTimeout(err):
		return Timeout
	case isDNS(err):
		return DNSError
	case isTLS(err):
		return TLSError
	case isTCP(err):
		return TCPError
	}
	var h *HTTPStatusError
	if errors.As(err, &h) && h != nil {
		if s := FromHTTPStatus(h.Code); s != OK {
			return s
		}
	}
	return PermanentError
}

// explicitOf returns the status of the outermost error of err's chain that
// carries one of its own: a marker, a sentinel, a child call's [*Error] or a
// [*PanicError] (in the order errors.As visits the chain). The set is
// closed: a user type cannot claim a status except through a marker.
func explicitOf(err error) (s Status, ok bool) {
	ok = walk(err, func(e error) bool {
		switch x := e.(type) {
		case *marked:
			s = x.status
		case *Error:
			s = errorStatus(x)
		case *PanicError:
			s = PermanentError
		default:
			var isSentinel bool
			s, _, isSentinel = sentinelOf(e)
			return isSentinel
		}
		return true
	})
	return s, ok
}

// walk calls f for err and every error it wraps, depth first in the order
// errors.Is visits them, until f returns true. It reports whether f did.
func walk(err error, f func(error) bool) bool {
	for err != nil {
		if f(err) {
			return true
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if walk(e, f) {
					return true
				}
			}
			return false
		default:
			return false
		}
	}
	return false
}

// isTimeout reports whether err is context.DeadlineExceeded or has an error
// in its chain whose Timeout method reports true. The latter is the method
// of net.Error, also implemented by os.ErrDeadlineExceeded and syscall.Errno
// (ETIMEDOUT).
func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	return walk(err, func(e error) bool {
		t, ok := e.(interface{ Timeout() bool })
		return ok && t.Timeout()
	})
}

func isDNS(err error) bool {
	var d *net.DNSError
	return errors.As(err, &d)
}

// isTLS reports whether err's chain holds an error type defined by
// crypto/tls or crypto/x509, such as *tls.CertificateVerificationError,
// tls.RecordHeaderError, tls.AlertError, x509.UnknownAuthorityError,
// x509.HostnameError or x509.CertificateInvalidError. Matching the package
// rather than a list of types also catches the alerts a peer sends, whose
// type crypto/tls does not export.
func isTLS(err error) bool {
	return walk(err, func(e error) bool {
		t := reflect.TypeOf(e)
		if t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch t.PkgPath() {
		case "crypto/tls", "crypto/x509":
			return true
		}
		return false
	})
}

// isTCP reports whether err is a connection failure: ECONNREFUSED,
// ECONNRESET, ECONNABORTED or EPIPE anywhere in the chain, or any
// *net.OpError.
func isTCP(err error) bool {
	for _, errno := range []syscall.Errno{syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE} {
		if errors.Is(err, errno) {
			return true
		}
	}
	var op *net.OpError
	return errors.As(err, &op)
}
