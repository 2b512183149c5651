package trace_test

import (
	"bytes"
	"regexp"
	"testing"

	"github.com/matryer/is"
	"github.com/rs/zerolog"

	"github.com/dispatchkit/dispatch/trace"
)

func TestNewLogger(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	var buf bytes.Buffer
	log := trace.NewLogger(&buf, zerolog.InfoLevel)
	log.Debug().Msg("hidden")
	log.Info().Str("addr", "127.0.0.1:8000").Msg("endpoint listening")
	log.Warn().Msg("no verification key")
	lines := regexp.MustCompile(`^\d\d:\d\d:\d\d INF endpoint listening addr=127\.0\.0\.1:8000\n\d\d:\d\d:\d\d WRN no verification key\n$`)
	is.True(lines.MatchString(buf.String())) // one plain line per event, without colors
}

func TestNop(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	log := trace.Nop()
	log.Error().Msg("nowhere")
	is.Equal(log.GetLevel(), zerolog.Disabled)
}
