package flow_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/dispatchkit/dispatch"
	"github.com/dispatchkit/dispatch/flow"
	"github.com/dispatchkit/dispatch/flow/flowtest"
)

// Trip is what a traveller asks for: the input of the BookTrip saga.
type Trip struct {
	Flight, Hotel, Car string
}

// Booked is one booking made, and how to undo it: the cancel_<Kind>
// function, with ID.
type Booked struct {
	Kind, ID string
}

// Booking is the environment of the saga's continuation: the trip, and
// what is booked so far, in order. It is all the saga knows after a
// suspension, on whatever instance resumes it.
type Booking struct {
	Trip   Trip
	Booked []Booked
}

// sagaSteps are the bookings of a trip, in order: each is a call of
// book_<step>.
var sagaSteps = []string{"flight", "hotel", "car"}

func (t Trip) request(step string) string {
	switch step {
	case "flight":
		return t.Flight
	case "hotel":
		return t.Hotel
	}
	return t.Car
}

// BookTrip is a saga: it books the flight, the hotel and the car, one
// after the other; when a booking fails for good, it cancels the bookings
// already made and fails. A booking that fails with a temporary error is
// not compensated: Dispatch retries it, and the saga sees only its final
// outcome.
var BookTrip = dispatch.Flow("saga.book_trip", func(ctx *flow.Ctx, t Trip) flow.Step[[]Booked] {
	return flow.Await(flow.NewCall[string]("book_flight", t.Flight), sagaBooked.With(Booking{Trip: t}))
})

// sagaBooked receives the outcome of each booking: a Handle continuation,
// so that it also receives the failure, and compensates. It awaits the
// next booking with itself, so it is assigned in init.
var sagaBooked flow.ContWith[Booking, string, []Booked]

func init() {
	sagaBooked = flow.HandleWith("saga.booked", func(ctx *flow.Ctx, b Booking, id string, err error) flow.Step[[]Booked] {
		step := sagaSteps[len(b.Booked)]
		if err != nil {
			return compensate(b, fmt.Sprintf("booking the %s failed: %v", step, err))
		}
		b.Booked = append(b.Booked, Booked{Kind: step, ID: id})
		if len(b.Booked) == len(sagaSteps) {
			return flow.Done(b.Booked)
		}
		next := sagaSteps[len(b.Booked)]
		return flow.Await(flow.NewCall[string]("book_"+next, b.Trip.request(next)), sagaBooked.With(b))
	})
}

// compensate cancels every booking made, concurrently, then fails with
// cause. The cancels must be idempotent: Dispatch retries them on temporary
// errors, and one that fails for good fails the saga with its error.
func compensate(b Booking, cause string) flow.Step[[]Booked] {
	if len(b.Booked) == 0 {
		return flow.Fail[[]Booked](dispatch.Permanent(errors.New(cause)))
	}
	calls := make([]flow.Call[string], len(b.Booked))
	for i, bk := range b.Booked {
		calls[i] = flow.NewCall[string]("cancel_"+bk.Kind, bk.ID)
	}
	return flow.Gather(calls, sagaUndone.With(cause))
}

// sagaUndone runs once every cancel succeeded. Its environment is the
// cause as a string: an error is an interface, whose value CBOR cannot be
// trusted to bring back.
var sagaUndone = flow.ThenWith("saga.undone", func(ctx *flow.Ctx, cause string, cancelled []string) flow.Step[[]Booked] {
	return flow.Fail[[]Booked](dispatch.Permanent(fmt.Errorf("%s; cancelled: %v", cause, cancelled)))
})

// sagaMocks are the booking services of the examples: book_car fails for
// good when asked for a van, book_hotel is busy on the first attempt of a
// booking at "Busy Inn".
func sagaMocks() []flowtest.Option {
	book := func(kind string) flowtest.Option {
		return flowtest.MockAttempt("book_"+kind, func(what string, attempt int) (string, error) {
			switch {
			case what == "van":
				return "", dispatch.Permanent(errors.New("no van left"))
			case what == "Busy Inn" && attempt == 1:
				return "", dispatch.Temporary(errors.New("the hotel's system is busy"))
			}
			return kind + ":" + what, nil
		})
	}
	cancel := func(kind string) flowtest.Option {
		return flowtest.Mock("cancel_"+kind, func(id string) (string, error) { return "cancelled " + id, nil })
	}
	return []flowtest.Option{book("flight"), book("hotel"), book("car"), cancel("flight"), cancel("hotel"), cancel("car")}
}

// A saga: book a flight, a hotel and a car, and undo the bookings made
// when one fails for good. The hotel that is busy once is retried by the
// server, not compensated.
func ExampleHandleWith_saga() {
	for _, trip := range []Trip{
		{Flight: "AF123", Hotel: "Grand", Car: "compact"},
		{Flight: "AF123", Hotel: "Busy Inn", Car: "compact"},
		{Flight: "AF123", Hotel: "Grand", Car: "van"},
	} {
		booked, _, err := flowtest.Run(context.Background(), BookTrip, trip, sagaMocks()...)
		fmt.Println(booked, err)
	}
	// Output:
	// [{flight flight:AF123} {hotel hotel:Grand} {car car:compact}] <nil>
	// [{flight flight:AF123} {hotel hotel:Busy Inn} {car car:compact}] <nil>
	// [] PERMANENT_ERROR: booking the car failed: PERMANENT_ERROR: no van left; cancelled: [cancelled flight:AF123 cancelled hotel:Grand]
}
