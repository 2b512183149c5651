package slogbridge_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/rs/zerolog"

	"github.com/dispatchkit/dispatch/internal/slogbridge"
)

// recorder is a slog.Handler that keeps the records it handles.
type recorder struct {
	level slog.Leveler
	mu    sync.Mutex
	recs  []slog.Record
}

func (r *recorder) Enabled(_ context.Context, l slog.Level) bool { return l >= r.level.Level() }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec)
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

// attrs returns the attributes of rec, by key, with their values resolved.
func attrs(rec slog.Record) (keys []string, values map[string]any) {
	values = map[string]any{}
	rec.Attrs(func(a slog.Attr) bool {
		keys = append(keys, a.Key)
		values[a.Key] = a.Value.Any()
		return true
	})
	return keys, values
}

func TestNew(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 5, 4, 3, 2, 1, 0, time.UTC)
	tests := []struct {
		name  string
		min   slog.Level // the handler's level
		log   func(l zerolog.Logger)
		level slog.Level
		msg   string
		keys  []string
		want  map[string]any
		none  bool // no record
	}{
		{
			name: "warn with fields, in order",
			min:  slog.LevelInfo,
			log: func(l zerolog.Logger) {
				l.Warn().Str("path", "/run").Int("n", 3).Bool("ok", true).Float64("f", 1.5).Msg("rejected")
			},
			level: slog.LevelWarn, msg: "rejected",
			keys: []string{"path", "n", "ok", "f"},
			want: map[string]any{"path": "/run", "n": int64(3), "ok": true, "f": 1.5},
		},
		{
			name:  "error with an error",
			min:   slog.LevelInfo,
			log:   func(l zerolog.Logger) { l.Error().Err(errors.New("boom")).Msg("dispatch failed") },
			level: slog.LevelError, msg: "dispatch failed",
			keys: []string{"error"}, want: map[string]any{"error": "boom"},
		},
		{
			name:  "info",
			min:   slog.LevelInfo,
			log:   func(l zerolog.Logger) { l.Info().Msg("serving") },
			level: slog.LevelInfo, msg: "serving",
		},
		{
			name:  "debug, enabled",
			min:   slog.LevelDebug,
			log:   func(l zerolog.Logger) { l.Debug().Msg("detail") },
			level: slog.LevelDebug, msg: "detail",
		},
		{
			name:  "trace, enabled",
			min:   slog.LevelDebug - 4,
			log:   func(l zerolog.Logger) { l.Trace().Msg("more detail") },
			level: slog.LevelDebug - 4, msg: "more detail",
		},
		{
			name: "debug, below the handler's level",
			min:  slog.LevelInfo,
			log:  func(l zerolog.Logger) { l.Debug().Msg("hidden") },
			none: true,
		},
		{
			name:  "a timestamp is the record's time",
			min:   slog.LevelInfo,
			log:   func(l zerolog.Logger) { l.Info().Time(zerolog.TimestampFieldName, at).Msg("then") },
			level: slog.LevelInfo, msg: "then",
		},
		{
			name: "context fields and nested values",
			min:  slog.LevelInfo,
			log: func(l zerolog.Logger) {
				c := l.With().Str("function", "f").Logger()
				c.Warn().Strs("ids", []string{"a", "b"}).Msg("m")
			},
			level: slog.LevelWarn, msg: "m",
			keys: []string{"function", "ids"}, want: map[string]any{"function": "f", "ids": []any{"a", "b"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			h := &recorder{level: tt.min}
			tt.log(slogbridge.New(slog.New(h)))
			if tt.none {
				is.Equal(len(h.recs), 0) // not sent
				return
			}
			is.Equal(len(h.recs), 1) // one record per event
			rec := h.recs[0]
			is.Equal(rec.Level, tt.level)
			is.Equal(rec.Message, tt.msg)
			keys, values := attrs(rec)
			is.Equal(keys, tt.keys) // the fields, in order, without level, message and time
			for k, v := range tt.want {
				is.Equal(values[k], v)
			}
			if tt.name == "a timestamp is the record's time" {
				is.True(rec.Time.Equal(at))
			} else {
				is.True(!rec.Time.IsZero())
			}
		})
	}
}

// TestLevel checks that the logger builds no event the handler would drop
// (its level is the handler's at New), and that a handler whose level is
// raised later drops what it no longer enables.
func TestLevel(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	var lv slog.LevelVar
	lv.Set(slog.LevelWarn)
	h := &recorder{level: &lv}
	l := slogbridge.New(slog.New(h))
	is.Equal(l.GetLevel(), zerolog.WarnLevel)
	l.Info().Msg("below")
	l.Warn().Msg("at")
	lv.Set(slog.LevelError)
	l.Warn().Msg("now below")
	l.Error().Msg("above")
	is.Equal(len(h.recs), 2)
	is.Equal(h.recs[0].Message, "at")
	is.Equal(h.recs[1].Message, "above")

	is.Equal(slogbridge.New(nil).GetLevel(), zerolog.Disabled) // nil: nothing
}
