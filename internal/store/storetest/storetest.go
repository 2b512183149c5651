// Package storetest is the conformance suite every [store.Store] passes.
package storetest

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/dispatchkit/dispatch/internal/store"
)

// Opener opens a fresh store for one subtest. Reopen, if not nil, closes a
// store and opens it again on the same data (for durable stores).
type Opener struct {
	Open   func(t *testing.T) store.Store
	Reopen func(t *testing.T, s store.Store) store.Store
}

var t0 = time.Unix(1_700_000_000, 123456789)

func sample(id, parent string, created time.Time) *store.Call {
	root := id
	if parent != "" {
		root = "root-of-" + parent
	}
	return &store.Call{
		ID:             id,
		ParentID:       parent,
		RootID:         root,
		ParentGen:      2,
		Gen:            3,
		CorrelationID:  math.MaxUint64,
		Endpoint:       "http://127.0.0.1:8000/app",
		Function:       "fn." + id,
		Version:        "v1",
		InputType:      "type.googleapis.com/google.protobuf.StringValue",
		Input:          []byte{0x0a, 0x01, 'x'},
		CreatedAt:      created,
		ExpiresAt:      created.Add(time.Hour),
		UpdatedAt:      created,
		State:          store.Suspended,
		Attempts:       4,
		Restarts:       1,
		StateType:      "type.googleapis.com/x.State",
		CoroutineState: []byte("state"),
		MinResults:     1,
		MaxResults:     1000,
		PollDeadline:   created.Add(time.Minute),
		PollError:      []byte("perr"),
		Status:         6,
		Output:         []byte("out"),
		Error:          []byte("err"),
	}
}

func equalCall(is *is.I, got, want *store.Call) {
	is.Helper()
	is.Equal(got.ID, want.ID)
	is.Equal(got.ParentID, want.ParentID)
	is.Equal(got.RootID, want.RootID)
	is.Equal(got.ParentGen, want.ParentGen)
	is.Equal(got.Gen, want.Gen)
	is.Equal(got.CorrelationID, want.CorrelationID)
	is.Equal(got.Endpoint, want.Endpoint)
	is.Equal(got.Function, want.Function)
	is.Equal(got.Version, want.Version)
	is.Equal(got.InputType, want.InputType)
	is.Equal(string(got.Input), string(want.Input))
	is.True(got.CreatedAt.Equal(want.CreatedAt))
	is.True(got.ExpiresAt.Equal(want.ExpiresAt))
	is.True(got.UpdatedAt.Equal(want.UpdatedAt))
	is.Equal(got.State, want.State)
	is.Equal(got.Attempts, want.Attempts)
	is.Equal(got.Restarts, want.Restarts)
	is.Equal(got.StateType, want.StateType)
	is.Equal(string(got.CoroutineState), string(want.CoroutineState))
	is.Equal(got.MinResults, want.MinResults)
	is.Equal(got.MaxResults, want.MaxResults)
	is.True(got.PollDeadline.Equal(want.PollDeadline))
	is.Equal(string(got.PollError), string(want.PollError))
	is.Equal(got.Status, want.Status)
	is.Equal(string(got.Output), string(want.Output))
	is.Equal(string(got.Error), string(want.Error))
	is.Equal(string(got.RecentAttempts), string(want.RecentAttempts))
}

// attempt is attempt n of call id, with values that vary with n.
func attempt(id string, n int, outcome string) store.Attempt {
	return store.Attempt{
		CallID:   id,
		N:        n,
		Start:    t0.Add(time.Duration(n) * time.Second),
		Duration: time.Duration(n) * time.Millisecond,
		Status:   int32(n),
		Outcome:  outcome,
	}
}

// encode is the RecentAttempts of atts.
func encode(atts ...store.Attempt) []byte {
	var buf []byte
	for _, a := range atts {
		buf = store.AppendAttempt(buf, a)
	}
	return buf
}

func equalAttempts(is *is.I, got, want []store.Attempt) {
	is.Helper()
	is.Equal(len(got), len(want))
	for i := range got {
		is.True(got[i].Start.Equal(want[i].Start))
		g, w := got[i], want[i]
		g.Start, w.Start = time.Time{}, time.Time{}
		is.Equal(g, w)
	}
}

type recovered struct {
	calls []*store.Call
	inbox map[string][]store.Result
	byID  map[string]*store.Call
	order []string
}

func recoverAll(t *testing.T, s store.Store) recovered {
	t.Helper()
	r := recovered{inbox: map[string][]store.Result{}, byID: map[string]*store.Call{}}
	err := s.Recover(context.Background(), func(c *store.Call, in []store.Result) error {
		r.calls = append(r.calls, c)
		r.byID[c.ID] = c
		r.order = append(r.order, c.ID)
		r.inbox[c.ID] = in
		return nil
	})
	if err != nil {
		t.Fatalf("Recover: %v", err)
	}
	return r
}

// Run runs the suite.
func Run(t *testing.T, o Opener) {
	ctx := context.Background()
	apply := func(t *testing.T, s store.Store, bs ...*store.Batch) {
		t.Helper()
		if err := s.Apply(ctx, bs...); err != nil {
			t.Fatalf("Apply: %v", err)
		}
	}

	t.Run("round trip", func(t *testing.T) {
		is := is.New(t)
		s := o.Open(t)
		want := sample("a", "p", t0)
		apply(t, s, &store.Batch{Calls: []*store.Call{want}})
		got, err := s.GetCall(ctx, "a")
		is.NoErr(err)
		equalCall(is, got, want)

		zero := &store.Call{ID: "z", RootID: "z", State: store.Pending}
		apply(t, s, &store.Batch{Calls: []*store.Call{zero}})
		got, err = s.GetCall(ctx, "z")
		is.NoErr(err)
		equalCall(is, got, zero)

		_, err = s.GetCall(ctx, "missing")
		is.Equal(err, store.ErrNotFound)
	})

	t.Run("upsert", func(t *testing.T) {
		is := is.New(t)
		s := o.Open(t)
		c := sample("a", "", t0)
		apply(t, s, &store.Batch{Calls: []*store.Call{c}})
		c2 := *c
		c2.State, c2.Function, c2.Attempts, c2.Gen = store.Done, "other", 9, 7
		c2.Output, c2.CoroutineState = []byte("final"), nil
		apply(t, s, &store.Batch{Calls: []*store.Call{&c2}})
		got, err := s.GetCall(ctx, "a")
		is.NoErr(err)
		equalCall(is, got, &c2)
	})

	t.Run("rewrite", func(t *testing.T) {
		// A row marked Rewrite keeps the identity of the call (whether
		// the store writes it or not) and changes the rest; one that
		// finds no earlier row is written whole, in the same apply as
		// its first row or in a later one.
		is := is.New(t)
		s := o.Open(t)
		c := sample("a", "p", t0)
		apply(t, s, &store.Batch{Calls: []*store.Call{c}})
		c2 := *c
		c2.Rewrite = true
		c2.State, c2.Attempts, c2.Gen, c2.Status = store.Done, 9, 7, 1
		c2.ExpiresAt, c2.UpdatedAt, c2.PollDeadline = t0.Add(2*time.Hour), t0.Add(time.Second), t0.Add(3*time.Minute)
		c2.Output, c2.CoroutineState, c2.StateType, c2.PollError, c2.Error = []byte("final"), nil, "", nil, nil
		c2.MinResults, c2.MaxResults, c2.Restarts = 2, 3, 2
		c2.RecentAttempts = store.AppendAttempt(nil, store.Attempt{CallID: "a", N: 1, Start: t0, Status: 1, Outcome: "exit"})
		apply(t, s, &store.Batch{Calls: []*store.Call{&c2}})
		got, err := s.GetCall(ctx, "a")
		is.NoErr(err)
		c2.Rewrite = false
		equalCall(is, got, &c2)

		lone := sample("b", "", t0)
		lone.Rewrite = true // no earlier row
		apply(t, s, &store.Batch{Calls: []*store.Call{lone}})
		got, err = s.GetCall(ctx, "b")
		is.NoErr(err)
		lone.Rewrite = false
		equalCall(is, got, lone)

		first, next := sample("c", "", t0), sample("c", "", t0)
		next.Rewrite, next.State, next.Attempts = true, store.Pending, 5
		apply(t, s, &store.Batch{Calls: []*store.Call{first}}, &store.Batch{Calls: []*store.Call{next}})
		got, err = s.GetCall(ctx, "c")
		is.NoErr(err)
		next.Rewrite = false
		equalCall(is, got, next)
	})

	t.Run("recover live calls and inboxes", func(t *testing.T) {
		is := is.New(t)
		s := o.Open(t)
		p := sample("p", "", t0)
		c1 := sample("c1", "p", t0.Add(time.Second))
		c1.State = store.Pending
		c2 := sample("c2", "p", t0.Add(2*time.Second))
		c2.State = store.Done
		old := sample("old", "", t0.Add(-time.Hour))
		old.State = store.Done
		apply(t, s, &store.Batch{Calls: []*store.Call{c1, p, c2, old}})
		apply(t, s,
			&store.Batch{Results: []store.Result{
				{ParentID: "p", ParentGen: 3, ChildID: "c2", Seq: 2, Data: []byte("r2")},
				{ParentID: "p", ParentGen: 3, ChildID: "x", Seq: 1, Data: []byte("r1")},
			}},
			&store.Batch{Results: []store.Result{{ParentID: "p", ParentGen: 3, ChildID: "y", Seq: 3, Data: []byte("r3")}}},
		)
		r := recoverAll(t, s)
		is.Equal(r.order, []string{"p", "c1"}) // live only, oldest first
		equalCall(is, r.byID["p"], p)
		in := r.inbox["p"]
		is.Equal(len(in), 3)
		is.Equal([]string{in[0].ChildID, in[1].ChildID, in[2].ChildID}, []string{"x", "c2", "y"}) // arrival order
		is.Equal(string(in[0].Data), "r1")
		is.Equal(in[0].ParentGen, uint32(3))

		apply(t, s, &store.Batch{Delivered: []store.ResultKey{{ParentID: "p", ChildID: "c2"}}})
		r = recoverAll(t, s)
		is.Equal(len(r.inbox["p"]), 2)
		apply(t, s, &store.Batch{ClearInbox: []string{"p"}})
		r = recoverAll(t, s)
		is.Equal(len(r.inbox["p"]), 0)
	})

	t.Run("order inside one apply", func(t *testing.T) {
		is := is.New(t)
		s := o.Open(t)
		p := sample("p", "", t0)
		apply(t, s,
			&store.Batch{Calls: []*store.Call{p}, Results: []store.Result{{ParentID: "p", ChildID: "a", Seq: 1, Data: []byte("a")}}},
			&store.Batch{Delivered: []store.ResultKey{{ParentID: "p", ChildID: "a"}}},
			&store.Batch{Results: []store.Result{{ParentID: "p", ChildID: "b", Seq: 2, Data: []byte("b")}}},
		)
		r := recoverAll(t, s)
		is.Equal(len(r.inbox["p"]), 1)
		is.Equal(r.inbox["p"][0].ChildID, "b")
	})

	t.Run("cancelled apply changes nothing", func(t *testing.T) {
		is := is.New(t)
		s := o.Open(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		err := s.Apply(cctx, &store.Batch{Calls: []*store.Call{sample("a", "", t0)}})
		is.True(err != nil)
		_, err = s.GetCall(ctx, "a")
		is.Equal(err, store.ErrNotFound)
	})

	t.Run("list, children, attempts", func(t *testing.T) {
		is := is.New(t)
		s := o.Open(t)
		var b store.Batch
		for i := range 5 {
			b.Calls = append(b.Calls, sample(fmt.Sprintf("r%d", i), "", t0.Add(time.Duration(i)*time.Second)))
		}
		b.Calls = append(b.Calls,
			sample("k1", "r0", t0.Add(10*time.Second)),
			sample("k0", "r0", t0.Add(9*time.Second)))
		b.Attempts = []store.Attempt{
			{CallID: "r0", N: 1, Start: t0, Duration: time.Millisecond, Status: 6, Outcome: "retry"},
			{CallID: "r0", N: 2, Start: t0.Add(time.Second), Duration: 2 * time.Millisecond, Status: 1, Outcome: "exit"},
		}
		apply(t, s, &b)

		all, err := s.ListCalls(ctx, store.ListOptions{})
		is.NoErr(err)
		is.Equal(len(all), 7)
		is.Equal(all[0].ID, "k1") // newest first
		roots, err := s.ListCalls(ctx, store.ListOptions{RootOnly: true, Limit: 2})
		is.NoErr(err)
		is.Equal([]string{roots[0].ID, roots[1].ID}, []string{"r4", "r3"})
		before, err := s.ListCalls(ctx, store.ListOptions{RootOnly: true, Before: t0.Add(2 * time.Second)})
		is.NoErr(err)
		is.Equal(len(before), 2)

		kids, err := s.Children(ctx, "r0")
		is.NoErr(err)
		is.Equal(len(kids), 2)
		is.Equal([]string{kids[0].ID, kids[1].ID}, []string{"k0", "k1"}) // oldest first
		none, err := s.Children(ctx, "r1")
		is.NoErr(err)
		is.Equal(len(none), 0)

		atts, err := s.Attempts(ctx, "r0")
		is.NoErr(err)
		is.Equal(len(atts), 2)
		a, w := atts[1], b.Attempts[1]
		is.True(a.Start.Equal(w.Start))
		a.Start = w.Start
		is.Equal(a, w)
		is.True(atts[0].Start.Equal(t0))
	})

	t.Run("committer groups and orders", func(t *testing.T) {
		is := is.New(t)
		s := o.Open(t)
		c := store.NewCommitter(s, store.CommitterOptions{})
		var mu sync.Mutex
		var order []int
		var wg sync.WaitGroup
		const n = 200
		for i := range n {
			wg.Add(1)
			err := c.Submit(&store.Batch{Calls: []*store.Call{sample(fmt.Sprintf("c%03d", i), "", t0)}}, func(err error) {
				defer wg.Done()
				if err != nil {
					t.Errorf("commit: %v", err)
				}
				mu.Lock()
				order = append(order, i)
				mu.Unlock()
			})
			is.NoErr(err)
		}
		wg.Wait()
		for i := range n {
			is.Equal(order[i], i) // callbacks in submission order
		}
		is.NoErr(c.Commit(ctx, &store.Batch{Calls: []*store.Call{sample("last", "", t0)}}))
		_, err := s.GetCall(ctx, "last")
		is.NoErr(err) // durable once Commit returns
		is.NoErr(c.Close())
		is.Equal(c.Submit(&store.Batch{}, nil), store.ErrClosed)
		all, err := s.ListCalls(ctx, store.ListOptions{Limit: 1000})
		is.NoErr(err)
		is.Equal(len(all), n+1)
	})

	t.Run("meta", func(t *testing.T) {
		is := is.New(t)
		s := o.Open(t)
		v, err := s.Meta(ctx, store.MetaDefaultEndpoint)
		is.NoErr(err)
		is.Equal(v, "") // unset
		apply(t, s, &store.Batch{Meta: map[string]string{store.MetaDefaultEndpoint: "http://a", "other": "x"}})
		apply(t, s, &store.Batch{Meta: map[string]string{store.MetaDefaultEndpoint: "http://b"}})
		v, err = s.Meta(ctx, store.MetaDefaultEndpoint)
		is.NoErr(err)
		is.Equal(v, "http://b") // last set wins
		v, err = s.Meta(ctx, "other")
		is.NoErr(err)
		is.Equal(v, "x")
		is.True(!(&store.Batch{Meta: map[string]string{"k": "v"}}).Empty())
		if o.Reopen != nil {
			s = o.Reopen(t, s)
			v, err = s.Meta(ctx, store.MetaDefaultEndpoint)
			is.NoErr(err)
			is.Equal(v, "http://b") // durable
		}
	})

	t.Run("recent attempts", func(t *testing.T) {
		a := func(n int, outcome string) store.Attempt { return attempt("p", n, outcome) }
		tests := []struct {
			name   string
			table  []store.Attempt // Batch.Attempts
			recent []store.Attempt // in RecentAttempts, in this order
			want   []store.Attempt
		}{
			{name: "none"},
			{
				name:  "table only",
				table: []store.Attempt{a(1, "retry"), a(2, "poll")},
				want:  []store.Attempt{a(1, "retry"), a(2, "poll")},
			},
			{
				name:   "recent only",
				recent: []store.Attempt{a(1, "retry"), a(2, "poll")},
				want:   []store.Attempt{a(1, "retry"), a(2, "poll")},
			},
			{
				name:   "table then recent",
				table:  []store.Attempt{a(2, "poll"), a(1, "retry")},
				recent: []store.Attempt{a(3, "poll"), a(4, "exit")},
				want:   []store.Attempt{a(1, "retry"), a(2, "poll"), a(3, "poll"), a(4, "exit")},
			},
			{
				name:   "an N in both is the table's, once",
				table:  []store.Attempt{a(1, "retry"), a(2, "poll")},
				recent: []store.Attempt{a(2, "stale"), a(3, "exit")},
				want:   []store.Attempt{a(1, "retry"), a(2, "poll"), a(3, "exit")},
			},
			{
				name:   "recent in order of N, once",
				table:  []store.Attempt{a(1, "retry")},
				recent: []store.Attempt{a(4, "exit"), a(2, "poll"), a(3, "poll"), a(2, "again")},
				want:   []store.Attempt{a(1, "retry"), a(2, "poll"), a(3, "poll"), a(4, "exit")},
			},
			{
				name: "odd values",
				recent: []store.Attempt{
					{CallID: "p", N: 1, Outcome: ""},
					{CallID: "p", N: 2, Start: t0, Duration: -time.Second, Status: -1, Outcome: strings.Repeat("long error ", 1000)},
				},
				want: []store.Attempt{
					{CallID: "p", N: 1, Outcome: ""},
					{CallID: "p", N: 2, Start: t0, Duration: -time.Second, Status: -1, Outcome: strings.Repeat("long error ", 1000)},
				},
			},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				is := is.New(t)
				s := o.Open(t)
				p := sample("p", "", t0)
				p.RecentAttempts = encode(tt.recent...)
				other := sample("q", "", t0) // attempts of another call are not p's
				other.RecentAttempts = encode(attempt("q", 1, "exit"), attempt("q", 9, "exit"))
				apply(t, s, &store.Batch{
					Calls:    []*store.Call{p, other},
					Attempts: append(slices.Clone(tt.table), attempt("q", 2, "retry")),
				})
				got, err := s.Attempts(ctx, "p")
				is.NoErr(err)
				equalAttempts(is, got, tt.want)
				if o.Reopen != nil {
					s = o.Reopen(t, s)
					got, err = s.Attempts(ctx, "p")
					is.NoErr(err)
					equalAttempts(is, got, tt.want) // durable
				}
			})
		}
	})

	t.Run("recent attempts round trip", func(t *testing.T) {
		is := is.New(t)
		s := o.Open(t)
		p := sample("p", "", t0)
		p.RecentAttempts = encode(attempt("p", 1, "poll"), attempt("p", 2, "poll"))
		c := sample("c", "p", t0.Add(time.Second))
		c.RecentAttempts = encode(attempt("c", 1, "retry"))
		apply(t, s, &store.Batch{Calls: []*store.Call{p, c}})

		got, err := s.GetCall(ctx, "p")
		is.NoErr(err)
		equalCall(is, got, p)
		r := recoverAll(t, s)
		is.Equal(r.order, []string{"p", "c"})
		equalCall(is, r.byID["p"], p)
		equalCall(is, r.byID["c"], c)
		all, err := s.ListCalls(ctx, store.ListOptions{})
		is.NoErr(err)
		is.Equal(len(all), 2)
		equalCall(is, all[0], c) // newest first
		equalCall(is, all[1], p)
		kids, err := s.Children(ctx, "p")
		is.NoErr(err)
		is.Equal(len(kids), 1)
		equalCall(is, kids[0], c)

		// The scheduler moves the recent attempts to the table and empties
		// the row in one batch; the next attempt goes to the row again.
		moved, err := store.DecodeAttempts("p", p.RecentAttempts)
		is.NoErr(err)
		p2 := *p
		p2.RecentAttempts = nil
		apply(t, s, &store.Batch{Calls: []*store.Call{&p2}, Attempts: moved})
		got, err = s.GetCall(ctx, "p")
		is.NoErr(err)
		equalCall(is, got, &p2)
		is.Equal(len(got.RecentAttempts), 0)
		atts, err := s.Attempts(ctx, "p")
		is.NoErr(err)
		equalAttempts(is, atts, []store.Attempt{attempt("p", 1, "poll"), attempt("p", 2, "poll")})

		p3 := p2
		p3.RecentAttempts = encode(attempt("p", 3, "exit"))
		apply(t, s, &store.Batch{Calls: []*store.Call{&p3}})
		atts, err = s.Attempts(ctx, "p")
		is.NoErr(err)
		equalAttempts(is, atts, []store.Attempt{attempt("p", 1, "poll"), attempt("p", 2, "poll"), attempt("p", 3, "exit")})
		if o.Reopen != nil {
			s = o.Reopen(t, s)
			got, err = s.GetCall(ctx, "p")
			is.NoErr(err)
			equalCall(is, got, &p3) // durable
		}
	})

	t.Run("malformed recent attempts", func(t *testing.T) {
		is := is.New(t)
		s := o.Open(t)
		p := sample("p", "", t0)
		p.RecentAttempts = encode(attempt("p", 1, "poll"))
		p.RecentAttempts = p.RecentAttempts[:len(p.RecentAttempts)-1]
		apply(t, s, &store.Batch{Calls: []*store.Call{p}})
		_, err := s.Attempts(ctx, "p")
		is.True(err != nil)
		is.True(strings.Contains(err.Error(), "call p:")) // names the call
		got, err := s.GetCall(ctx, "p")
		is.NoErr(err) // the row still reads
		equalCall(is, got, p)
	})

	t.Run("idempotency keys", func(t *testing.T) {
		key := func(name string, expires time.Duration, ids ...string) store.Key {
			return store.Key{Key: name, Digest: []byte("digest of " + name), IDs: ids, CreatedAt: t0, ExpiresAt: t0.Add(expires)}
		}
		at := func(d time.Duration) time.Time { return t0.Add(d) }
		many := make([]string, 1000)
		for i := range many {
			many[i] = fmt.Sprintf("id%04d", i)
		}
		tests := []struct {
			name    string
			before  []*store.Batch // applied first, each alone
			batches []*store.Batch // then in one Apply
			want    map[string]store.Key
			absent  []string
		}{
			{
				name:    "stored with the calls it names",
				batches: []*store.Batch{{Calls: []*store.Call{sample("a", "", t0)}, Keys: []store.Key{key("order-42", time.Hour, "a")}}},
				want:    map[string]store.Key{"order-42": key("order-42", time.Hour, "a")},
				absent:  []string{"order-43"},
			},
			{
				name:    "many ids, in order",
				batches: []*store.Batch{{Keys: []store.Key{key("batch", time.Hour, many...)}}},
				want:    map[string]store.Key{"batch": key("batch", time.Hour, many...)},
			},
			{
				name:    "no ids",
				batches: []*store.Batch{{Keys: []store.Key{key("none", time.Hour)}}},
				want:    map[string]store.Key{"none": {Key: "none", Digest: []byte("digest of none"), IDs: []string{}, CreatedAt: t0, ExpiresAt: at(time.Hour)}},
			},
			{
				name:    "upsert replaces the row",
				before:  []*store.Batch{{Keys: []store.Key{key("k", time.Hour, "a", "b")}}},
				batches: []*store.Batch{{Keys: []store.Key{key("k", 2*time.Hour, "c")}}},
				want:    map[string]store.Key{"k": key("k", 2*time.Hour, "c")},
			},
			{
				name: "prune deletes the keys expired at or before it",
				before: []*store.Batch{{Keys: []store.Key{
					key("past", time.Minute, "a"), key("now", time.Hour, "b"), key("later", time.Hour+time.Nanosecond, "c"),
				}}},
				batches: []*store.Batch{{PruneKeys: at(time.Hour)}},
				want:    map[string]store.Key{"later": key("later", time.Hour+time.Nanosecond, "c")},
				absent:  []string{"past", "now"},
			},
			{
				name:    "a batch prunes before it writes its keys",
				batches: []*store.Batch{{PruneKeys: at(time.Hour), Keys: []store.Key{key("k", time.Minute, "a")}}},
				want:    map[string]store.Key{"k": key("k", time.Minute, "a")},
			},
			{
				name:    "a later batch prunes a key of an earlier one, and the row it replaced",
				before:  []*store.Batch{{Keys: []store.Key{key("k", 10*time.Hour, "old")}}},
				batches: []*store.Batch{{Keys: []store.Key{key("k", time.Minute, "new")}}, {PruneKeys: at(time.Hour)}},
				absent:  []string{"k"},
			},
			{
				name:    "a key written after a prune in the same apply stays",
				before:  []*store.Batch{{Keys: []store.Key{key("k", time.Minute, "old")}}},
				batches: []*store.Batch{{PruneKeys: at(time.Hour)}, {Keys: []store.Key{key("k", 2*time.Hour, "new")}}},
				want:    map[string]store.Key{"k": key("k", 2*time.Hour, "new")},
			},
			{
				name: "many keys in one apply",
				batches: func() []*store.Batch {
					var bs []*store.Batch
					for i := range 30 {
						bs = append(bs, &store.Batch{Keys: []store.Key{key(fmt.Sprintf("k%02d", i), time.Hour, fmt.Sprint(i))}})
					}
					return append(bs, &store.Batch{Keys: []store.Key{key("k00", time.Hour, "again")}})
				}(),
				want: map[string]store.Key{"k00": key("k00", time.Hour, "again"), "k29": key("k29", time.Hour, "29")},
			},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				is := is.New(t)
				s := o.Open(t)
				for _, b := range tt.before {
					apply(t, s, b)
				}
				apply(t, s, tt.batches...)
				check := func(s store.Store) {
					t.Helper()
					for name, want := range tt.want {
						got, err := s.Key(ctx, name)
						is.NoErr(err)
						is.Equal(got.Key, want.Key)
						is.Equal(string(got.Digest), string(want.Digest))
						is.Equal(len(got.IDs), len(want.IDs))
						is.Equal(strings.Join(got.IDs, ","), strings.Join(want.IDs, ","))
						is.True(got.CreatedAt.Equal(want.CreatedAt))
						is.True(got.ExpiresAt.Equal(want.ExpiresAt))
					}
					for _, name := range tt.absent {
						_, err := s.Key(ctx, name)
						is.Equal(err, store.ErrNoKey)
					}
				}
				check(s)
				if o.Reopen != nil {
					check(o.Reopen(t, s)) // durable
				}
			})
		}
		is := is.New(t)
		is.True(!(&store.Batch{Keys: []store.Key{key("k", time.Hour)}}).Empty())
		is.True(!(&store.Batch{PruneKeys: t0}).Empty())
	})

	t.Run("a failed apply stores no key", func(t *testing.T) {
		is := is.New(t)
		s := o.Open(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		err := s.Apply(cctx, &store.Batch{
			Calls: []*store.Call{sample("a", "", t0)},
			Keys:  []store.Key{{Key: "k", IDs: []string{"a"}, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}},
		})
		is.True(err != nil)
		_, err = s.Key(ctx, "k")
		is.Equal(err, store.ErrNoKey)
	})

	if o.Reopen != nil {
		t.Run("durable across reopen", func(t *testing.T) {
			is := is.New(t)
			s := o.Open(t)
			p := sample("p", "", t0)
			apply(t, s, &store.Batch{
				Calls:    []*store.Call{p},
				Results:  []store.Result{{ParentID: "p", ChildID: "c", Seq: 1, Data: []byte("r")}},
				Attempts: []store.Attempt{{CallID: "p", N: 1, Start: t0, Outcome: "poll"}},
			})
			s = o.Reopen(t, s)
			r := recoverAll(t, s)
			is.Equal(len(r.calls), 1)
			equalCall(is, r.calls[0], p)
			is.Equal(len(r.inbox["p"]), 1)
			atts, err := s.Attempts(ctx, "p")
			is.NoErr(err)
			is.Equal(len(atts), 1)
		})
	}
}
