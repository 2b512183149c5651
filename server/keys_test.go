package server_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"buf.build/gen/go/stealthrocket/dispatch-proto/connectrpc/go/dispatch/sdk/v1/sdkv1connect"
	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"connectrpc.com/connect"
	"github.com/matryer/is"
	"github.com/rs/zerolog"

	"github.com/dispatchkit/dispatch/internal/pgtest"
	"github.com/dispatchkit/dispatch/internal/store"
	"github.com/dispatchkit/dispatch/server"
)

// keyed sends a Dispatch request with the idempotency keys keys (one
// header each) through client and returns the ids and the
// Idempotent-Replayed header of the answer.
func keyed(ctx context.Context, srv *server.Server, client sdkv1connect.DispatchServiceClient, keys []string, calls ...*sdkv1.Call) ([]string, string, error) {
	req := connect.NewRequest(&sdkv1.DispatchRequest{Calls: calls})
	req.Header().Set("Authorization", "Bearer "+srv.APIKey())
	for _, k := range keys {
		req.Header().Add("Idempotency-Key", k)
	}
	res, err := client.Dispatch(ctx, req)
	if err != nil {
		return nil, "", err
	}
	return res.Msg.GetDispatchIds(), res.Header().Get("Idempotent-Replayed"), nil
}

// storedCalls is the number of calls in the server's store.
func storedCalls(t *testing.T, srv *server.Server) int {
	t.Helper()
	calls, err := srv.Store().ListCalls(context.Background(), store.ListOptions{Limit: 100000, RootOnly: false})
	if err != nil {
		t.Fatal(err)
	}
	return len(calls)
}

func TestDispatchKey(t *testing.T) {
	other := newTestEndpoint(t, "")
	other.handle("echo", echo)
	onOther := func(c *sdkv1.Call) *sdkv1.Call { c.Endpoint = other.URL(); return c }
	type send struct {
		keys         []string
		calls        []*sdkv1.Call
		wantCode     connect.Code // 0: success
		wantErr      string
		wantReplayed string // the answer's Idempotent-Replayed header
		sameAs       int    // the ids of this earlier send (1-based), or 0 for new ids
	}
	tests := []struct {
		name      string
		sends     []send
		wantCalls int // calls stored in the end
	}{
		{
			name: "the same key twice starts the calls once",
			sends: []send{
				{keys: []string{"order-42"}, calls: []*sdkv1.Call{call("echo", "a"), call("echo", "b")}, wantReplayed: "false"},
				{keys: []string{"order-42"}, calls: []*sdkv1.Call{call("echo", "a"), call("echo", "b")}, wantReplayed: "true", sameAs: 1},
			},
			wantCalls: 2,
		},
		{
			name: "other keys, other calls",
			sends: []send{
				{keys: []string{"order-42"}, calls: []*sdkv1.Call{call("echo", "a")}, wantReplayed: "false"},
				{keys: []string{"order-43"}, calls: []*sdkv1.Call{call("echo", "a")}, wantReplayed: "false"},
			},
			wantCalls: 2,
		},
		{
			name: "a key reused for other calls is refused, naming the key",
			sends: []send{
				{keys: []string{"order-42"}, calls: []*sdkv1.Call{call("echo", "a")}, wantReplayed: "false"},
				{keys: []string{"order-42"}, calls: []*sdkv1.Call{call("echo", "b")}, wantCode: connect.CodeAlreadyExists,
					wantErr: `idempotency key "order-42" was used at`},
				{keys: []string{"order-42"}, calls: []*sdkv1.Call{call("echo", "a"), call("echo", "a")}, wantCode: connect.CodeAlreadyExists,
					wantErr: "Config.KeyRetention"},
			},
			wantCalls: 1,
		},
		{
			name: "another endpoint is the same request",
			sends: []send{
				{keys: []string{"k"}, calls: []*sdkv1.Call{call("echo", "a")}, wantReplayed: "false"},
				{keys: []string{"k"}, calls: []*sdkv1.Call{onOther(call("echo", "a"))}, wantReplayed: "true", sameAs: 1},
			},
			wantCalls: 1,
		},
		{
			name: "no key, no header, new calls each time",
			sends: []send{
				{calls: []*sdkv1.Call{call("echo", "a")}},
				{calls: []*sdkv1.Call{call("echo", "a")}},
			},
			wantCalls: 2,
		},
		{
			name:  "a key and no calls",
			sends: []send{{keys: []string{"k"}, wantReplayed: "false"}, {keys: []string{"k"}, calls: []*sdkv1.Call{call("echo", "a")}, wantReplayed: "false"}},
			// The empty request recorded nothing.
			wantCalls: 1,
		},
		{
			name: "invalid keys",
			sends: []send{
				{keys: []string{""}, calls: []*sdkv1.Call{call("echo", "a")}, wantCode: connect.CodeInvalidArgument, wantErr: "header Idempotency-Key: the idempotency key is empty"},
				{keys: []string{strings.Repeat("k", 256)}, calls: []*sdkv1.Call{call("echo", "a")}, wantCode: connect.CodeInvalidArgument, wantErr: "is 256 bytes, at most 255"},
				{keys: []string{"order 42"}, calls: []*sdkv1.Call{call("echo", "a")}, wantCode: connect.CodeInvalidArgument, wantErr: "printable ASCII without spaces"},
				{keys: []string{"a", "b"}, calls: []*sdkv1.Call{call("echo", "a")}, wantCode: connect.CodeInvalidArgument, wantErr: "one key per request"},
			},
		},
		{
			name:      "the longest key",
			sends:     []send{{keys: []string{strings.Repeat("~", 255)}, calls: []*sdkv1.Call{call("echo", "a")}, wantReplayed: "false"}},
			wantCalls: 1,
		},
	}
	protocols := []struct {
		name   string
		client func(srv *server.Server) sdkv1connect.DispatchServiceClient
	}{
		{"connect", newDispatchClient},
		{"grpc", func(srv *server.Server) sdkv1connect.DispatchServiceClient {
			return sdkv1connect.NewDispatchServiceClient(h2cClient(), srv.URL(), connect.WithGRPC())
		}},
	}
	for _, p := range protocols {
		for _, tt := range tests {
			t.Run(p.name+"/"+tt.name, func(t *testing.T) {
				is := is.New(t)
				b := setup(t, allow(other.URL()))
				b.ep.handle("echo", echo)
				client := p.client(b.srv)
				var got [][]string
				for i, s := range tt.sends {
					ids, replayed, err := keyed(context.Background(), b.srv, client, s.keys, s.calls...)
					got = append(got, ids)
					if s.wantCode != 0 {
						is.Equal(connect.CodeOf(err), s.wantCode)
						is.True(strings.Contains(err.Error(), s.wantErr))
						continue
					}
					is.NoErr(err)
					is.Equal(replayed, s.wantReplayed)
					is.Equal(len(ids), len(s.calls))
					if s.sameAs > 0 {
						is.Equal(ids, got[s.sameAs-1])
					}
					for j := range i {
						if j+1 != s.sameAs && len(ids) > 0 && len(got[j]) > 0 {
							is.True(ids[0] != got[j][0]) // new calls
						}
					}
				}
				is.Equal(storedCalls(t, b.srv), tt.wantCalls)
				waitFor(t, "calls done", func() bool { return b.srv.Live() == 0 })
			})
		}
	}
}

// Many requests with one key at once start one call, and all get its id.
func TestDispatchKeyConcurrent(t *testing.T) {
	is := is.New(t)
	b := setup(t)
	b.ep.handle("echo", echo)
	const n = 64
	ids := make([][]string, n)
	replays := make([]string, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			ids[i], replays[i], errs[i] = keyed(context.Background(), b.srv, b.client, []string{"once"}, call("echo", "x"))
		})
	}
	close(start)
	wg.Wait()
	started := 0
	for i := range n {
		is.NoErr(errs[i])
		is.Equal(ids[i], ids[0])
		if replays[i] == "false" {
			started++
		}
	}
	is.Equal(started, 1) // one request started the call
	is.Equal(storedCalls(t, b.srv), 1)
	waitFor(t, "the call done", func() bool { return b.srv.Live() == 0 })
	is.Equal(b.ep.count("echo"), 1)
}

// answerLost wraps a store and signals after the first Apply that stores
// an idempotency key: a test cancels the request then, so that its answer
// is lost though the calls are stored, as a crash between the commit and
// the answer would.
//
// The first commit of a key is held (after it is stored) until the test
// has cancelled the request, so that the answer cannot reach the client
// first, however fast the server is.
type answerLost struct {
	store.Store
	once   *sync.Once    // shared by the stores of a replica's partitions
	stored chan struct{} // closed once a key is stored
	lost   chan struct{} // closed by the test once the request is cancelled
}

func (s *answerLost) Apply(ctx context.Context, batches ...*store.Batch) error {
	err := s.Store.Apply(ctx, batches...)
	for _, b := range batches {
		if err == nil && len(b.Keys) > 0 {
			s.once.Do(func() {
				close(s.stored)
				<-s.lost
			})
		}
	}
	return err
}

// A request whose answer was lost after its calls were stored (the
// client gave up, the server died) and that is sent again to a server
// restarted on the same state gets the same ids, and starts nothing.
func TestDispatchKeyAfterRestart(t *testing.T) {
	stores := []struct {
		name string
		cfg  func(t *testing.T) server.Config
	}{
		{"sqlite", func(t *testing.T) server.Config { return server.Config{StateDir: t.TempDir()} }},
		{"postgres", func(t *testing.T) server.Config { return server.Config{Postgres: pgtest.URL(t)} }},
	}
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			is := is.New(t)
			ep := newTestEndpoint(t, "")
			release := make(chan struct{})
			ep.handle("slow", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
				<-release
				return echo(req)
			})
			defer close(release)
			base := st.cfg(t)
			base.Endpoint, base.Logger = ep.URL(), zerolog.Nop()
			stored, lostCh := make(chan struct{}), make(chan struct{})
			var once sync.Once
			answerGone := sync.OnceFunc(func() { close(lostCh) })
			defer answerGone() // even if the test fails first: the committer waits for it
			cfg := base
			// A replica wraps the store of each of its partitions.
			server.WithStore(&cfg, func(s store.Store) store.Store {
				return &answerLost{Store: s, once: &once, stored: stored, lost: lostCh}
			}, 0)
			b1 := startServer(t, ep, cfg)

			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error, 1)
			go func() {
				_, _, err := keyed(ctx, b1.srv, b1.client, []string{"order-42"}, call("slow", "x"))
				errc <- err
			}()
			select {
			case <-stored:
			case <-time.After(10 * time.Second):
				t.Fatal("no batch stored the key")
			}
			cancel() // the answer is lost
			err := <-errc
			answerGone()
			is.True(errors.Is(err, context.Canceled) || connect.CodeOf(err) == connect.CodeCanceled)
			calls, err := b1.srv.Store().ListCalls(context.Background(), store.ListOptions{})
			is.NoErr(err)
			is.Equal(len(calls), 1) // stored all the same
			is.NoErr(b1.srv.Close())

			b2 := startServer(t, ep, base)
			ids, replayed, err := keyed(context.Background(), b2.srv, b2.client, []string{"order-42"}, call("slow", "x"))
			is.NoErr(err)
			is.Equal(replayed, "true")
			is.Equal(ids, []string{calls[0].ID}) // the first request's call
			is.Equal(storedCalls(t, b2.srv), 1)
		})
	}
}

// A key is forgotten once its retention has passed: it is pruned from the
// store, and a request with it starts its calls again.
func TestDispatchKeyExpires(t *testing.T) {
	is := is.New(t)
	b := setup(t, func(c *server.Config) { c.KeyRetention = 50 * time.Millisecond })
	b.ep.handle("echo", echo)
	first, replayed, err := keyed(context.Background(), b.srv, b.client, []string{"k"}, call("echo", "a"))
	is.NoErr(err)
	is.Equal(replayed, "false")
	waitFor(t, "the key pruned", func() bool {
		_, err := b.srv.Store().Key(context.Background(), "k")
		return errors.Is(err, store.ErrNoKey)
	})
	again, replayed, err := keyed(context.Background(), b.srv, b.client, []string{"k"}, call("echo", "b"))
	is.NoErr(err)
	is.Equal(replayed, "false") // other calls, no conflict: the key was forgotten
	is.True(again[0] != first[0])
	waitFor(t, "calls done", func() bool { return b.srv.Live() == 0 })
}

func TestKeyRetentionConfig(t *testing.T) {
	is := is.New(t)
	_, err := server.New(server.Config{Memory: true, KeyRetention: -time.Second})
	is.True(err != nil)
	is.True(strings.Contains(err.Error(), "Config.KeyRetention is negative"))
}
