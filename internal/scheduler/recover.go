package scheduler

import (
	"context"
	"fmt"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/dispatchkit/dispatch/internal/store"
)

// recover loads the live calls of the store into memory; resume then sets
// each on its way: expired ones fail with TIMEOUT, suspended ones wait for
// the rest of their max_wait (or resume now if their inbox is full enough),
// the others are queued. It returns how many calls it recovered.
//
// When the default endpoint changed since the last start (local mode
// listens on a new random port at each run), the live calls bound to the
// previous default are moved to the new one, and the move is committed
// before recover returns, so before any of them runs. Calls that named
// another endpoint stay where they are. A call that named the previous
// default explicitly cannot be told apart and moves too.
func (e *Engine) recover(ctx context.Context) (int, error) {
	var recovered []*call
	e.mu.Lock()
	defer e.mu.Unlock()
	metaKey := e.defaultEndpointKey()
	prev, err := e.cfg.Store.Meta(ctx, metaKey)
	if err == nil && prev == "" && metaKey != store.MetaDefaultEndpoint {
		// A partition's first start: its calls were last run by a
		// single-owner server, whose default is the store's.
		prev, err = e.cfg.Store.Meta(ctx, store.MetaDefaultEndpoint)
	}
	if err != nil {
		return 0, fmt.Errorf("scheduler: reading the previous default endpoint: %w", err)
	}
	cur := e.cfg.DefaultEndpoint
	move := prev != "" && cur != "" && prev != cur
	var moved []*store.Call
	now := e.now()
	err = e.cfg.Store.Recover(ctx, func(r *store.Call, inbox []store.Result) error {
		if move && r.Endpoint == prev {
			r.Endpoint, r.UpdatedAt = cur, now
			moved = append(moved, r)
		}
		c := &call{
			id:         r.ID,
			parentID:   r.ParentID,
			rootID:     r.RootID,
			ep:         e.endpoint(r.Endpoint),
			function:   r.Function,
			version:    r.Version,
			input:      &anypb.Any{TypeUrl: r.InputType, Value: r.Input},
			corrID:     r.CorrelationID,
			created:    r.CreatedAt.UnixNano(),
			expires:    r.ExpiresAt.UnixNano(),
			gen:        r.Gen,
			parentGen:  r.ParentGen,
			attempts:   uint32(r.Attempts),
			restarts:   uint8(min(r.Restarts, 255)),
			lastStatus: sdkv1.Status(r.Status),
			state:      stNew,
		}
		if len(r.RecentAttempts) > 0 {
			if recent, err := store.DecodeAttempts(r.ID, r.RecentAttempts); err != nil {
				// Inspection data only: the call runs on without them.
				e.log.Warn().Err(err).Str("id", r.ID).Msg("dropping the recent attempts of a recovered call")
			} else {
				c.recent, c.nRecent = r.RecentAttempts, uint8(min(len(recent), maxRecentAttempts-1))
			}
		}
		if r.InputType == "" && r.Input == nil {
			c.input = nil
		}
		c.rendered = true // its row is in the store
		if len(r.Error) > 0 {
			c.lastErr = new(sdkv1.Error)
			_ = proto.Unmarshal(r.Error, c.lastErr)
		}
		if r.State == store.Suspended {
			c.polled = true
			if r.StateType != "" {
				c.stateAny = &anypb.Any{TypeUrl: r.StateType, Value: r.CoroutineState}
			} else {
				c.stateRaw = r.CoroutineState
			}
			c.minResults, c.maxResults = r.MinResults, r.MaxResults
			c.deadline = r.PollDeadline.UnixNano()
			if len(r.PollError) > 0 {
				c.pollErr = new(sdkv1.Error)
				if err := proto.Unmarshal(r.PollError, c.pollErr); err != nil {
					return fmt.Errorf("scheduler: recovering call %s: %w", r.ID, err)
				}
			}
		}
		for _, res := range inbox {
			e.seq = max(e.seq, res.Seq)
			if res.ParentGen != r.Gen {
				continue
			}
			cr := new(sdkv1.CallResult)
			if err := proto.Unmarshal(res.Data, cr); err != nil {
				return fmt.Errorf("scheduler: recovering a result of call %s: %w", r.ID, err)
			}
			c.inbox = append(c.inbox, cr)
			c.inboxIDs = append(c.inboxIDs, res.ChildID)
		}
		e.calls[c.id] = c
		recovered = append(recovered, c)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("scheduler: recovering calls: %w", err)
	}
	if cur != "" && cur != prev {
		b := &store.Batch{Calls: moved, Meta: map[string]string{metaKey: cur}}
		if err := e.cfg.Store.Apply(ctx, b); err != nil {
			return 0, fmt.Errorf("scheduler: moving calls from the previous default endpoint %s to %s: %w", prev, cur, err)
		}
	}
	if len(moved) > 0 {
		e.log.Info().Int("calls", len(moved)).Str("from", prev).Str("to", cur).
			Msgf("moved %d calls from the previous endpoint %s to %s", len(moved), prev, cur)
	}
	e.recovered = recovered
	return len(recovered), nil
}

// defaultEndpointKey is the meta key of the previous default endpoint:
// the store's, or the partition's when the engine owns one partition of a
// shared store (Config.Partitions). One value for all partitions would be
// wrong: the first partition recovered would move its calls and record the
// new default, and the others would find nothing to move.
func (e *Engine) defaultEndpointKey() string {
	if e.cfg.Partitions == 0 {
		return store.MetaDefaultEndpoint
	}
	return fmt.Sprintf("%s.p%d", store.MetaDefaultEndpoint, e.cfg.Partition)
}

// resume sets the recovered calls on their way. Called with e.mu held,
// once the committer and the timer run.
func (e *Engine) resume() {
	now := e.now().UnixNano()
	for _, c := range e.recovered {
		switch {
		case c.state != stNew:
		case now >= c.expires:
			e.expire(c, now)
		case e.refused(c, now): // failed: the policy no longer allows its endpoint
		case c.polled && c.pollErr == nil:
			c.state = stSuspended
			if now >= c.deadline {
				e.makeReady(c)
			} else {
				e.suspendOrResume(c)
			}
		default:
			e.makeReady(c)
		}
	}
	e.recovered = nil
}

// refused fails a recovered call whose endpoint the policy refuses (the
// server was restarted with a stricter one) with INVALID_ARGUMENT, and
// reports whether it did. Called with e.mu held.
func (e *Engine) refused(c *call, now int64) bool {
	if e.policy == nil {
		return false
	}
	err := e.policy.Check(c.ep.url)
	if err == nil {
		return false
	}
	cerr := serverError(sdkv1.Status_STATUS_INVALID_ARGUMENT, "dispatch: the call was recovered after a restart, and "+err.Error())
	t := time.Unix(0, now)
	e.complete(c, sdkv1.Status_STATUS_INVALID_ARGUMENT, &sdkv1.CallResult{Error: cerr}, t, &store.Batch{})
	return true
}
