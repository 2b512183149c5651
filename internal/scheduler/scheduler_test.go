package scheduler

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/matryer/is"
	"go.uber.org/goleak"

	"github.com/dispatchkit/dispatch/internal/status"
	"github.com/dispatchkit/dispatch/internal/store/memstore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestFairQueue(t *testing.T) {
	is := is.New(t)
	ep := &endpoint{roots: map[string]*rootQueue{}}
	// Root "big" has 5 ready calls before "a" and "b" have one each.
	for i := range 5 {
		ep.push(&call{id: fmt.Sprintf("big%d", i), rootID: "big"})
	}
	ep.push(&call{id: "a0", rootID: "a"})
	ep.push(&call{id: "b0", rootID: "b"})
	ep.push(&call{id: "a1", rootID: "a"})
	var got []string
	for ep.ready > 0 {
		got = append(got, ep.pop().id)
	}
	is.Equal(got, []string{"big0", "a0", "b0", "big1", "a1", "big2", "big3", "big4"})
	is.Equal(len(ep.roots), 0)
	is.True(ep.pop() == nil)
}

func TestFairQueueLarge(t *testing.T) {
	is := is.New(t)
	ep := &endpoint{roots: map[string]*rootQueue{}}
	for i := range 10000 {
		ep.push(&call{id: fmt.Sprint(i), rootID: "big"})
	}
	for range 5000 {
		ep.pop()
	}
	ep.push(&call{id: "small", rootID: "small"})
	is.Equal(ep.pop().rootID, "big")
	is.Equal(ep.pop().id, "small") // served next, not after 5,000 others
}

func TestAIMD(t *testing.T) {
	is := is.New(t)
	l := &limiter{limit: 10}
	now := time.Unix(1000, 0)
	l.adaptLocked(true, now, 1, 100)
	is.Equal(l.limit, 5.0) // halved
	l.adaptLocked(true, now.Add(time.Millisecond), 1, 100)
	is.Equal(l.limit, 5.0) // once per window
	l.adaptLocked(true, now.Add(decreaseWindow), 1, 100)
	is.Equal(l.limit, 2.5)
	for range 100 {
		l.adaptLocked(false, now, 1, 100)
	}
	is.True(l.limit > 12 && l.limit < 16) // about +1 per window of answers
	for i := range 20 {
		l.adaptLocked(true, now.Add(time.Duration(i+2)*decreaseWindow), 1, 100)
	}
	is.Equal(l.limit, 1.0) // never below the minimum
	for range 100000 {
		l.adaptLocked(false, now, 1, 100)
	}
	is.Equal(l.limit, 100.0) // nor above the maximum
}

func TestBackoff(t *testing.T) {
	is := is.New(t)
	e := &Engine{cfg: Config{MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}}
	tests := []struct {
		fails  uint16
		lo, hi time.Duration
	}{
		{1, 50 * time.Millisecond, 100 * time.Millisecond},
		{2, 100 * time.Millisecond, 200 * time.Millisecond},
		{4, 400 * time.Millisecond, 800 * time.Millisecond},
		{10, 500 * time.Millisecond, time.Second},
		{60000, 500 * time.Millisecond, time.Second},
	}
	for _, tt := range tests {
		for range 50 {
			d := e.backoff(tt.fails)
			is.True(d >= tt.lo && d <= tt.hi)
		}
	}
}

func TestClassification(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		code     int
		timedOut bool
		want     sdkv1.Status
		throttle bool
	}{
		{"deadline", context.DeadlineExceeded, 0, true, sdkv1.Status_STATUS_TIMEOUT, true},
		{"dns", &net.DNSError{Err: "no such host", Name: "x"}, 0, false, sdkv1.Status_STATUS_DNS_ERROR, false},
		{"refused", &net.OpError{Op: "dial", Err: errors.New("connection refused")}, 0, false, sdkv1.Status_STATUS_TCP_ERROR, false},
		{"other transport", errors.New("malformed HTTP response"), 0, false, sdkv1.Status_STATUS_HTTP_ERROR, false},
		{"garbage 200", errors.New("unmarshal"), 200, false, sdkv1.Status_STATUS_INVALID_RESPONSE, false},
		{"400", errors.New("x"), 400, false, sdkv1.Status_STATUS_INVALID_ARGUMENT, false},
		{"401", errors.New("x"), 401, false, sdkv1.Status_STATUS_UNAUTHENTICATED, false},
		{"403", errors.New("x"), 403, false, sdkv1.Status_STATUS_PERMISSION_DENIED, false},
		{"404", errors.New("x"), 404, false, sdkv1.Status_STATUS_NOT_FOUND, false},
		{"408", errors.New("x"), 408, false, sdkv1.Status_STATUS_TIMEOUT, false},
		{"413", errors.New("x"), 413, false, sdkv1.Status_STATUS_PERMANENT_ERROR, false},
		{"429", errors.New("x"), 429, false, sdkv1.Status_STATUS_THROTTLED, true},
		{"500", errors.New("x"), 500, false, sdkv1.Status_STATUS_TEMPORARY_ERROR, false},
		{"501 of the endpoint is retried", errors.New("x"), 501, false, sdkv1.Status_STATUS_TEMPORARY_ERROR, false},
		{"503", errors.New("x"), 503, false, sdkv1.Status_STATUS_TEMPORARY_ERROR, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			o := failed(tt.err, tt.code, tt.timedOut, time.Second)
			is.Equal(o.status, tt.want)
			is.Equal(o.throttle, tt.throttle)
			is.Equal(o.err.GetType(), status.Status(tt.want).String())
		})
	}
}

func TestIDs(t *testing.T) {
	is := is.New(t)
	var g idGen
	now := time.Now()
	prev := ""
	seen := map[string]bool{}
	for range 10000 {
		id := g.next(now)
		is.Equal(len(id), 20)
		is.True(id > prev) // sortable by creation
		is.True(!seen[id])
		seen[id] = true
		prev = id
	}
}

func TestEngineLifecycle(t *testing.T) {
	is := is.New(t)
	e, err := New(Config{Store: memstore.New()})
	is.NoErr(err)
	_, err = e.Dispatch(context.Background(), nil)
	is.Equal(err, ErrClosed) // not started
	is.NoErr(e.Start(context.Background()))
	is.True(e.Start(context.Background()) != nil)
	is.NoErr(e.Close())
	is.NoErr(e.Close())
	_, err = e.Dispatch(context.Background(), []*sdkv1.Call{{Function: "f", Endpoint: "http://x"}})
	is.Equal(err, ErrClosed)
	_, err = New(Config{})
	is.True(err != nil)
}
