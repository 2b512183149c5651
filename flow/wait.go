package flow

import (
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/dispatchkit/dispatch/serde"
	"google.golang.org/protobuf/types/known/anypb"
)

// mode says how a wait is satisfied by the results of its calls.
type mode uint8

const (
	modeOne   mode = iota + 1 // Await: the one result
	modeAll                   // Gather: every result, or the first error
	modeAny                   // Any: the first success, or all the errors
	modeRace                  // Race: the first result, value or error
	modeSleep                 // Sleep: no calls, the deadline
)

func (m mode) String() string {
	switch m {
	case modeOne:
		return "await"
	case modeAll:
		return "gather"
	case modeAny:
		return "any"
	case modeRace:
		return "race"
	case modeSleep:
		return "sleep"
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// errTimedOut starts the error a combinator's continuation receives when
// its [Timeout] passes first; the error is marked TIMEOUT, so that it
// matches [dispatcherr.ErrTimeout], the one sentinel of the status.
var errTimedOut = errors.New("flow: timed out")

// Await calls c and continues with k when its result is ready. This is a
// durability step: the flow suspends, its state (the frames and what they
// captured) is saved by Dispatch, and k runs when the result arrives,
// possibly in another process. An error of the call skips k unless k
// handles errors (see [Handle]).
func Await[A, T any](c Call[A], k Cont[A, T], opts ...Option) Step[T] {
	return wait(modeOne, []callSpec{c.spec}, k, opts)
}

// Gather calls every call concurrently and continues with k when all have
// succeeded, with their results in argument order (fan-out, fan-in). It
// fails with the first error to arrive; the other calls keep running and
// their results are dropped. An empty Gather continues at once with an empty
// slice. More than 1000 calls are split over several polls, at most 1000 in
// flight at a time.
func Gather[A, T any](calls []Call[A], k Cont[[]A, T], opts ...Option) Step[T] {
	return wait(modeAll, specs(calls), k, opts)
}

// Any calls every call concurrently and continues with k with the first
// successful result; the others keep running and their results are dropped.
// If every call fails, k receives an error joining all the failures in
// argument order (its status is the first failure's).
func Any[A, T any](calls []Call[A], k Cont[A, T], opts ...Option) Step[T] {
	return wait(modeAny, specs(calls), k, opts)
}

// Race calls every call concurrently and continues with k with the first
// result to arrive, value or error, like a select over the calls.
func Race[A, T any](calls []Call[A], k Cont[A, T], opts ...Option) Step[T] {
	return wait(modeRace, specs(calls), k, opts)
}

// Sleep suspends the flow for at least d, durably: the process may stop and
// the flow resumes elsewhere. d is rounded up to one second, the protocol's
// smallest wait.
func Sleep[T any](d time.Duration, k Cont[struct{}, T]) Step[T] {
	if d < time.Second {
		d = time.Second
	}
	return Bind(Step[struct{}]{waitNode{mode: modeSleep, timeout: d}}, k)
}

func wait[A, T any](m mode, calls []callSpec, k Cont[A, T], opts []Option) Step[T] {
	w := waitNode{mode: m, calls: calls}
	for _, o := range opts {
		o.apply(&w)
	}
	if w.timeout > 0 && w.timeout < time.Second {
		w.timeout = time.Second
	}
	return Bind(Step[A]{w}, k)
}

func specs[A any](calls []Call[A]) []callSpec {
	s := make([]callSpec, len(calls))
	for i, c := range calls {
		s[i] = c.spec
	}
	return s
}

// wireValue holds results read off the wire: one Any, or the list of a
// Gather in argument order.
type wireValue struct {
	one    *anypb.Any
	list   []*anypb.Any
	isList bool
}

func (w wireValue) present() bool { return w.one != nil || w.isList }

// decode decodes the results into dst, a pointer.
func (w wireValue) decode(dst any) error {
	if !w.isList {
		return serde.Unmarshal(w.one, dst)
	}
	rv := reflect.ValueOf(dst).Elem()
	switch rv.Kind() {
	case reflect.Slice:
		s := reflect.MakeSlice(rv.Type(), len(w.list), len(w.list))
		for i, a := range w.list {
			if err := serde.Unmarshal(a, s.Index(i).Addr().Interface()); err != nil {
				return fmt.Errorf("result %d: %w", i, err)
			}
		}
		rv.Set(s)
		return nil
	case reflect.Interface:
		s := make([]any, len(w.list))
		for i, a := range w.list {
			if err := serde.Unmarshal(a, &s[i]); err != nil {
				return fmt.Errorf("result %d: %w", i, err)
			}
		}
		rv.Set(reflect.ValueOf(s))
		return nil
	}
	return fmt.Errorf("cannot decode a list of %d results into %s: a Gather continues with a slice", len(w.list), rv.Type())
}

// toAny encodes the value for an exit: a list is decoded to plain Go values
// and re-encoded as one value.
func (w wireValue) toAny() (*anypb.Any, error) {
	if !w.isList {
		if w.one == nil {
			return serde.Marshal(nil)
		}
		return w.one, nil
	}
	var list []any
	if err := w.decode(&list); err != nil {
		return nil, err
	}
	return serde.Marshal(list)
}
