package server_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/matryer/is"

	"github.com/dispatchkit/dispatch/server"
)

func TestHealth(t *testing.T) {
	is := is.New(t)
	notStarted, err := server.New(server.Config{Memory: true})
	is.NoErr(err)
	defer notStarted.Close()
	err = notStarted.Health()
	is.True(err != nil && strings.Contains(err.Error(), "not running")) // before Start

	b := setup(t)
	is.NoErr(b.srv.Health())
	tests := []struct {
		name string
		key  string
	}{
		{"no key", ""},
		{"wrong key", "Bearer nope"},
		{"the key", "Bearer test"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			req, err := http.NewRequest(http.MethodGet, b.srv.URL()+"/dispatch.local.v1/health", nil)
			is.NoErr(err)
			if tt.key != "" {
				req.Header.Set("Authorization", tt.key)
			}
			res, err := http.DefaultClient.Do(req)
			is.NoErr(err)
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			is.Equal(res.StatusCode, http.StatusOK) // needs no key
			is.Equal(strings.TrimSpace(string(body)), `{"status":"ok"}`)
		})
	}
	is.NoErr(b.srv.Close())
	err = b.srv.Health()
	is.True(err != nil && strings.Contains(err.Error(), "not running")) // once closed
}
