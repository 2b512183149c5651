package dispatch_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/dispatchkit/dispatch"
)

func TestFunctionWait(t *testing.T) {
	for _, m := range sdkModes {
		t.Run(m.name, func(t *testing.T) {
			m.start(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			ok, err := ktSquare.Dispatch(ctx, 12)
			if err != nil {
				t.Fatal(err)
			}
			failed, err := ktSquare.Dispatch(ctx, -1)
			if err != nil {
				t.Fatal(err)
			}
			other, err := ktEcho.Dispatch(ctx, "not a number")
			if err != nil {
				t.Fatal(err)
			}
			tests := []struct {
				name    string
				id      string
				want    int
				wantErr func(is *is.I, err error)
			}{
				{name: "a result, typed", id: ok, want: 144},
				{name: "a failed call", id: failed, wantErr: func(is *is.I, err error) {
					var e *dispatch.Error
					is.True(errors.As(err, &e))
					is.Equal(e.Status, dispatch.StatusPermanentError)
					is.True(errors.Is(err, dispatch.ErrPermanent))
					is.True(strings.Contains(err.Error(), "roottest.keys.square ("+failed+") failed"))
					is.True(strings.Contains(e.Message, "roottest: negative"))
				}},
				{name: "a result of another type", id: other, wantErr: func(is *is.I, err error) {
					is.True(strings.Contains(err.Error(), "dispatch: result of roottest.keys.square ("+other+")"))
				}},
				{name: "an unknown id", id: "nope", wantErr: func(is *is.I, err error) {
					is.True(errors.Is(err, dispatch.ErrUnknownCall))
				}},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					is := is.New(t)
					n, err := ktSquare.Wait(ctx, tt.id)
					if tt.wantErr != nil {
						is.True(err != nil)
						tt.wantErr(is, err)
						return
					}
					is.NoErr(err)
					is.Equal(n, tt.want)
				})
			}
		})
	}
}

func TestFunctionWaitAll(t *testing.T) {
	for _, m := range sdkModes {
		t.Run(m.name, func(t *testing.T) {
			is := is.New(t)
			m.start(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()

			inputs := make([]int, 100)
			for i := range inputs {
				inputs[i] = i
			}
			inputs[42] = -1 // fails
			ids, err := ktSquare.DispatchAll(ctx, inputs...)
			is.NoErr(err)
			is.Equal(len(ids), 100)
			other, err := ktEcho.Dispatch(ctx, "not a number")
			is.NoErr(err)
			results, err := ktSquare.WaitAll(ctx, append(ids, other)...)
			is.NoErr(err)
			is.Equal(len(results), 101)
			for i, r := range results[:100] {
				is.Equal(r.ID, ids[i]) // in the order of the ids
				if i == 42 {
					var e *dispatch.Error
					is.True(errors.As(r.Err, &e)) // the call's failure, not the wait's
					continue
				}
				is.NoErr(r.Err)
				is.Equal(r.Value, i*i)
			}
			is.True(results[100].Err != nil) // does not decode: the call's outcome
			is.True(strings.Contains(results[100].Err.Error(), "dispatch: result of"))

			// Errors of the wait itself end it, with no results.
			results, err = ktSquare.WaitAll(ctx, ids[0], "nope", ids[1])
			is.True(errors.Is(err, dispatch.ErrUnknownCall))
			is.Equal(len(results), 0)
			done, stop := context.WithCancel(ctx)
			stop()
			results, err = ktSquare.WaitAll(done, ids...)
			is.True(errors.Is(err, context.Canceled))
			is.Equal(len(results), 0)
			results, err = ktSquare.WaitAll(ctx)
			is.NoErr(err)
			is.Equal(len(results), 0)
		})
	}
}
