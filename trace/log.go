package trace

import (
	"io"
	"time"

	"github.com/rs/zerolog"
)

// NewLogger returns a logger that writes events at level and above to w as
// plain text lines, without colors, for people to read:
//
//	15:04:05 INF endpoint listening addr=127.0.0.1:8000
//
// Writes to w are serialized, so w need not be safe for concurrent use.
// For machine-readable JSON lines, use zerolog.New(w) instead.
func NewLogger(w io.Writer, level zerolog.Level) zerolog.Logger {
	out := zerolog.ConsoleWriter{
		Out:        zerolog.SyncWriter(w),
		NoColor:    true,
		TimeFormat: time.TimeOnly,
	}
	return zerolog.New(out).Level(level).With().Timestamp().Logger()
}

// Nop returns a logger that writes nothing.
func Nop() zerolog.Logger {
	return zerolog.Nop()
}
