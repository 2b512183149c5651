package flow_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/matryer/is"

	"github.com/dispatchkit/dispatch"
	"github.com/dispatchkit/dispatch/flow/flowtest"
)

// TestSaga runs the saga of ExampleHandleWith_saga crashed at every await,
// and checks what it booked and cancelled.
func TestSaga(t *testing.T) {
	tests := []struct {
		name      string
		trip      Trip
		opts      []flowtest.Option
		booked    []string // IDs
		cancelled []string
		errHas    string
	}{
		{"everything booked", Trip{"AF1", "Grand", "compact"}, nil,
			[]string{"flight:AF1", "hotel:Grand", "car:compact"}, nil, ""},
		{"a busy hotel is retried, not compensated", Trip{"AF1", "Busy Inn", "compact"}, nil,
			[]string{"flight:AF1", "hotel:Busy Inn", "car:compact"}, nil, ""},
		{"no car: the flight and the hotel are cancelled", Trip{"AF1", "Grand", "van"}, nil,
			nil, []string{"flight:AF1", "hotel:Grand"}, "booking the car failed"},
		{"no flight: nothing to cancel", Trip{"van", "Grand", "compact"}, nil,
			nil, nil, "booking the flight failed"},
		// Without the server's retries, the busy hotel's first answer
		// reaches the saga, which compensates for nothing worse than a
		// retry would have fixed.
		{"raw outcomes: a busy hotel is compensated", Trip{"AF1", "Busy Inn", "compact"}, []flowtest.Option{flowtest.RawOutcomes()},
			nil, []string{"flight:AF1"}, "the hotel's system is busy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			var mu sync.Mutex
			var cancelled []string
			opts := append(sagaMocks(), tt.opts...)
			for _, kind := range sagaSteps {
				opts = append(opts, flowtest.Mock("cancel_"+kind, func(id string) (string, error) {
					mu.Lock()
					defer mu.Unlock()
					cancelled = append(cancelled, id)
					return "cancelled " + id, nil
				}))
			}
			booked, _, err := flowtest.CrashEverywhere(t, BookTrip, tt.trip, opts...)
			var ids []string
			for _, b := range booked {
				ids = append(ids, b.ID)
			}
			is.Equal(ids, tt.booked)
			slices.Sort(cancelled)
			is.Equal(cancelled, tt.cancelled) // by the uninterrupted run
			if tt.errHas == "" {
				is.NoErr(err)
				return
			}
			is.True(err != nil)
			is.True(strings.Contains(err.Error(), tt.errHas))
			is.Equal(dispatch.StatusOf(err), dispatch.StatusPermanentError)
		})
	}
}

// TestLoop runs the loop of ExampleThenWith_loop crashed at every await.
func TestLoop(t *testing.T) {
	tests := []struct {
		name     string
		maxPages int
		pages    int
		want     int
		errHas   string
	}{
		{"one page", 5, 1, 11, ""},
		{"four pages", 5, 4, 110, ""},
		{"as many pages as allowed", 4, 4, 110, ""},
		{"more pages than allowed", 3, 4, 0, "more pages than allowed (page 4 next, total so far 66)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			total, rep, err := flowtest.CrashEverywhere(t, SumPages, tt.maxPages, fetchPages(tt.pages))
			if tt.errHas != "" {
				var derr *dispatch.Error
				is.True(errors.As(err, &derr))
				is.True(strings.Contains(derr.Message, tt.errHas))
				return
			}
			is.NoErr(err)
			is.Equal(total, tt.want)
			is.Equal(rep.Calls, tt.pages)
			is.True(rep.MaxState <= rep.States[0]+1) // the state does not grow with the iterations
			t.Log(fmt.Sprint("states: ", rep.States))
		})
	}
}
