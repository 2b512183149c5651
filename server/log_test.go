package server_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/matryer/is"
	"github.com/rs/zerolog"

	"github.com/dispatchkit/dispatch/server"
)

// TestConfigSlog checks that Config.Slog receives the server's logs, as
// records at their level with their fields, instead of Config.Logger.
func TestConfigSlog(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	var logs, zlogs syncBuffer
	srv, err := server.New(server.Config{
		Memory: true,
		Logger: zerolog.New(&zlogs), // Slog wins
		Slog:   slog.New(slog.NewJSONHandler(&logs, nil)),
	})
	is.NoErr(err)
	is.NoErr(srv.Start(context.Background()))
	is.NoErr(srv.Close())
	var msgs []string
	for line := range strings.Lines(logs.String()) {
		var r map[string]any
		is.NoErr(json.Unmarshal([]byte(line), &r)) // slog's JSON records
		msgs = append(msgs, r["msg"].(string))
		if r["msg"] == "dispatch server started" {
			is.Equal(r["level"], "INFO")
			is.Equal(r["addr"], srv.Addr()) // a field, as an attribute
		}
	}
	is.True(len(msgs) >= 2)
	is.Equal(msgs[0], "dispatch server started")
	is.Equal(msgs[len(msgs)-1], "dispatch server stopped")
	is.Equal(zlogs.String(), "") // not to Logger
}
