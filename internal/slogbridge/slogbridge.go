// Package slogbridge sends zerolog events to a log/slog handler. The SDK
// and the server log with zerolog (the design card names it), and accept
// a *slog.Logger, the standard interface, through [New]: a zerolog.Logger
// whose writer turns each event into a slog.Record at the matching level,
// with the event's message as the record's message and its fields, in
// order, as attributes.
package slogbridge

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/rs/zerolog"
)

// New returns a zerolog.Logger whose events become records of l's
// handler: zerolog's trace, debug, info, warn and error levels map to
// slog.LevelDebug-4, LevelDebug, LevelInfo, LevelWarn and LevelError
// (fatal and panic above LevelError). Fields keep their JSON types:
// strings, booleans, integers (int64), other numbers (float64), and
// objects, arrays and null as the values encoding/json decodes. A field
// named like zerolog's own ("level", "message", "time") is taken for them.
//
// The logger's level is the lowest the handler enables when New is
// called, so that events nobody would see are not built; a handler whose
// level is lowered later (a slog.LevelVar) receives only the events at or
// above the level it had then, while raising it takes effect at once. A
// nil l gives a logger that writes nothing.
func New(l *slog.Logger) zerolog.Logger {
	if l == nil {
		return zerolog.Nop()
	}
	h := l.Handler()
	return zerolog.New(writer{h}).Level(lowest(h))
}

// lowest returns the lowest zerolog level h enables now.
func lowest(h slog.Handler) zerolog.Level {
	ctx := context.Background()
	for _, zl := range []zerolog.Level{zerolog.TraceLevel, zerolog.DebugLevel, zerolog.InfoLevel, zerolog.WarnLevel, zerolog.ErrorLevel} {
		if h.Enabled(ctx, levelOf(zl)) {
			return zl
		}
	}
	return zerolog.FatalLevel
}

// levelOf maps a zerolog level to slog's.
func levelOf(zl zerolog.Level) slog.Level {
	switch zl {
	case zerolog.TraceLevel:
		return slog.LevelDebug - 4
	case zerolog.DebugLevel:
		return slog.LevelDebug
	case zerolog.WarnLevel:
		return slog.LevelWarn
	case zerolog.ErrorLevel:
		return slog.LevelError
	case zerolog.FatalLevel:
		return slog.LevelError + 4
	case zerolog.PanicLevel:
		return slog.LevelError + 8
	}
	return slog.LevelInfo // info, and events without a level
}

// writer is zerolog's writer: it receives each event as a JSON object.
type writer struct{ h slog.Handler }

func (w writer) Write(p []byte) (int, error) { return w.WriteLevel(zerolog.NoLevel, p) }

func (w writer) WriteLevel(zl zerolog.Level, p []byte) (int, error) {
	ctx := context.Background()
	level := levelOf(zl)
	if !w.h.Enabled(ctx, level) {
		return len(p), nil
	}
	if err := w.h.Handle(ctx, record(level, p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// record makes the record of the event p at level. An event that is not a
// JSON object (zerolog writes nothing else) becomes a record whose message
// is its text.
func record(level slog.Level, p []byte) slog.Record {
	dec := json.NewDecoder(bytes.NewReader(p))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return slog.NewRecord(time.Now(), level, string(bytes.TrimSpace(p)), 0)
	}
	var msg string
	var at time.Time
	var attrs []slog.Attr
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			break
		}
		key, _ := t.(string)
		var v any
		if err := dec.Decode(&v); err != nil {
			break
		}
		switch key {
		case zerolog.LevelFieldName:
			continue
		case zerolog.MessageFieldName:
			if s, ok := v.(string); ok {
				msg = s
				continue
			}
		case zerolog.TimestampFieldName:
			if s, ok := v.(string); ok {
				if tm, err := time.Parse(zerolog.TimeFieldFormat, s); err == nil {
					at = tm
					continue
				}
			}
		}
		attrs = append(attrs, attr(key, v))
	}
	if at.IsZero() {
		at = time.Now()
	}
	r := slog.NewRecord(at, level, msg, 0)
	r.AddAttrs(attrs...)
	return r
}

// attr makes the attribute of a field decoded from JSON.
func attr(key string, v any) slog.Attr {
	switch v := v.(type) {
	case string:
		return slog.String(key, v)
	case bool:
		return slog.Bool(key, v)
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return slog.Int64(key, n)
		}
		if f, err := v.Float64(); err == nil {
			return slog.Float64(key, f)
		}
		return slog.String(key, v.String())
	}
	return slog.Any(key, v)
}
