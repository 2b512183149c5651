package scheduler

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/matryer/is"
	"google.golang.org/protobuf/proto"

	"github.com/dispatchkit/dispatch/internal/endpointpolicy"
	"github.com/dispatchkit/dispatch/internal/store"
	"github.com/dispatchkit/dispatch/internal/store/memstore"
)

// TestDialerRefuses checks the engine's dialer: whatever reached it (here
// a call the server's checks did not see), it does not connect to the
// unspecified, link-local and multicast addresses the policy forbids, and
// the call fails at once with INVALID_ARGUMENT saying why.
func TestDialerRefuses(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		body, _ := proto.Marshal(&sdkv1.RunResponse{Directive: &sdkv1.RunResponse_Exit{Exit: &sdkv1.Exit{Result: &sdkv1.CallResult{}}}})
		w.Header().Set("Content-Type", "application/proto")
		w.Write(body)
	}))
	defer srv.Close()
	port := srv.URL[strings.LastIndexByte(srv.URL, ':')+1:]
	tests := []struct {
		name     string
		patterns []string
		endpoint string
		want     string // in the call's error; "" when it reaches the endpoint
	}{
		{"loopback", []string{"loopback"}, srv.URL, ""},
		// 0.0.0.0 reaches the loopback listener on Linux: only the
		// dialer stands in the way.
		{"unspecified", []string{"loopback"}, "http://0.0.0.0:" + port, "refusing to connect to 0.0.0.0, an unspecified address"},
		{"unspecified, named by a pattern", []string{"loopback", "http://0.0.0.0:" + port}, "http://0.0.0.0:" + port, ""},
		{"unspecified, any", []string{"*"}, "http://0.0.0.0:" + port, ""},
		{"the metadata service", []string{"loopback"}, "http://169.254.169.254:" + port, "the cloud metadata service"},
		{"link-local IPv6", []string{"loopback"}, "http://[fe80::1]:" + port, "link-local"},
		{"multicast", []string{"loopback"}, "http://224.0.0.1:" + port, "multicast"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			policy, err := endpointpolicy.New(tt.patterns...)
			is.NoErr(err)
			e, err := New(Config{Store: memstore.New(), Policy: policy})
			is.NoErr(err)
			is.NoErr(e.Start(context.Background()))
			defer e.Close()
			before := hits.Load()
			row := runOnce(t, e, &sdkv1.Call{Function: "f", Endpoint: tt.endpoint})
			if tt.want == "" {
				is.Equal(sdkv1.Status(row.Status), sdkv1.Status_STATUS_OK)
				is.Equal(hits.Load(), before+1) // reached
				return
			}
			is.Equal(sdkv1.Status(row.Status), sdkv1.Status_STATUS_INVALID_ARGUMENT) // not retried
			is.Equal(row.Attempts, 1)
			var cerr sdkv1.Error
			is.NoErr(proto.Unmarshal(row.Error, &cerr))
			is.True(strings.Contains(cerr.GetMessage(), tt.want))            // says what was refused
			is.True(strings.Contains(cerr.GetMessage(), "--allow-endpoint")) // and how to allow it
			is.Equal(hits.Load(), before)                                    // never connected
		})
	}
}

// runOnce dispatches c on e and waits for its stored final row.
func runOnce(t *testing.T, e *Engine, c *sdkv1.Call) *store.Call {
	t.Helper()
	ids, err := e.Dispatch(context.Background(), []*sdkv1.Call{c})
	if err != nil {
		t.Fatal(err)
	}
	w, err := e.Watch(ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if w == nil { // finished already: its outcome is in the store
		row, err := e.cfg.Store.GetCall(context.Background(), ids[0])
		if err != nil {
			t.Fatal(err)
		}
		return row
	}
	defer w.Stop()
	select {
	case <-w.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("timed out waiting for the call")
	}
	row, err := w.Outcome()
	if err != nil {
		t.Fatal(err)
	}
	return row
}

// TestDialControl checks the dialer's hook on the addresses it is given.
func TestDialControl(t *testing.T) {
	policy, err := endpointpolicy.New("loopback", "http://[fe80::2]:8000")
	if err != nil {
		t.Fatal(err)
	}
	control := dialControl(policy)
	tests := []struct {
		address string
		ok      bool
	}{
		{"127.0.0.1:80", true},
		{"[::1]:80", true},
		{"10.0.0.1:80", true},
		{"169.254.169.254:80", false},
		{"0.0.0.0:80", false},
		{"[::]:80", false},
		{"[fe80::1%lo]:80", false},
		{"[fe80::2%eth0]:80", true}, // named by a pattern
		{"[ff02::1]:80", false},
	}
	for _, tt := range tests {
		t.Run(tt.address, func(t *testing.T) {
			is := is.New(t)
			err := control("tcp", tt.address, nil)
			is.Equal(err == nil, tt.ok)
			if !tt.ok {
				is.True(errors.Is(err, endpointpolicy.ErrForbiddenAddress))
			}
		})
	}
}
