package dispatch

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/rs/zerolog"
)

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	vectors := loadVectors(t)
	type test struct {
		name string
		env  map[string]string
		opts []Option
		want []string // in the error message
	}
	tests := []test{
		{name: "DISPATCH_API_URL set but empty", env: map[string]string{EnvAPIURL: ""}, want: []string{EnvAPIURL, "set but empty", DefaultAPIURL}},
		{name: "DISPATCH_API_URL not a URL", env: map[string]string{EnvAPIURL: "http://[::1"}, want: []string{EnvAPIURL, "not a URL"}},
		{name: "DISPATCH_API_URL host and port, no scheme", env: map[string]string{EnvAPIURL: "127.0.0.1:4450"}, want: []string{EnvAPIURL, "127.0.0.1:4450"}},
		{name: "DISPATCH_API_URL host, no scheme", env: map[string]string{EnvAPIURL: "api.dispatch.run"}, want: []string{EnvAPIURL, "not a full URL", "http://"}},
		{name: "DISPATCH_API_URL not http", env: map[string]string{EnvAPIURL: "ftp://api.dispatch.run"}, want: []string{EnvAPIURL, "not a full URL"}},
		{name: "DISPATCH_ENDPOINT_URL no scheme", env: map[string]string{EnvEndpointURL: "example.com/app"}, want: []string{EnvEndpointURL, "scheme", "host"}},
		{name: "DISPATCH_ENDPOINT_URL host and port, no scheme", env: map[string]string{EnvEndpointURL: "localhost:8000"}, want: []string{EnvEndpointURL, "localhost:8000"}},
		{name: "DISPATCH_ENDPOINT_URL no host", env: map[string]string{EnvEndpointURL: "http:///app"}, want: []string{EnvEndpointURL, "not a full URL"}},
		{name: "DISPATCH_ENDPOINT_URL relative", env: map[string]string{EnvEndpointURL: "/app"}, want: []string{EnvEndpointURL, "not a full URL"}},
		{name: "WithAPIURL no scheme", opts: []Option{WithAPIURL("api.dispatch.run")}, want: []string{"WithAPIURL", "not a full URL"}},
		{name: "WithEndpointURL no host", opts: []Option{WithEndpointURL("https://")}, want: []string{"WithEndpointURL", "not a full URL"}},
		{name: "WithPublicKey wrong size", opts: []Option{WithPublicKey(make(ed25519.PublicKey, 31))}, want: []string{"WithPublicKey", "32 bytes"}},
		{name: "WithReplayCache negative", opts: []Option{WithReplayCache(-1)}, want: []string{"WithReplayCache(-1)", "cannot be negative", "pass 0"}},
		{
			name: "every error at once",
			env:  map[string]string{EnvAPIURL: "", EnvEndpointURL: "example.com", EnvVerificationKey: "foo"},
			want: []string{EnvAPIURL, EnvEndpointURL, EnvVerificationKey},
		},
		{
			name: "an invalid option beside a valid variable",
			env:  map[string]string{EnvVerificationKey: vectors.Keys["rfc9421_test_key_ed25519"].PublicBase64},
			opts: []Option{WithVerificationKey("foo")},
			want: []string{"WithVerificationKey"},
		},
	}
	for _, key := range vectors.InvalidVerificationKeys {
		tests = append(tests,
			test{name: "DISPATCH_VERIFICATION_KEY " + key, env: map[string]string{EnvVerificationKey: key}, want: []string{EnvVerificationKey}},
			test{name: "WithVerificationKey " + key, opts: []Option{WithVerificationKey(key)}, want: []string{"WithVerificationKey"}},
		)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			d, err := New(append([]Option{env(tt.env), WithZerolog(zerolog.Nop())}, tt.opts...)...)
			is.True(err != nil) // New must fail
			is.True(d == nil)
			msg := err.Error()
			is.True(strings.HasPrefix(msg, "dispatch: "))
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
		})
	}
}

func TestConfigVerificationKeyFormats(t *testing.T) {
	t.Parallel()
	vectors := loadVectors(t)
	for name, key := range vectors.Keys {
		raw, err := base64.StdEncoding.DecodeString(key.PublicBase64)
		if err != nil {
			t.Fatalf("key %s: %v", name, err)
		}
		formats := []struct {
			name  string
			value string
		}{
			{"PEM", key.PublicPEM},
			{"PEM on one line", key.PublicPEMEscaped},
			{"base64", key.PublicBase64},
			{"base64 with spaces around", " " + key.PublicBase64 + "\n"},
		}
		for _, f := range formats {
			if f.value == "" {
				continue // not every key of the file has every format
			}
			t.Run(name+"/"+f.name, func(t *testing.T) {
				t.Parallel()
				for _, from := range []struct {
					name string
					opts []Option
				}{
					{"variable", []Option{env(remote(map[string]string{EnvVerificationKey: f.value}))}},
					{"option", []Option{env(remote(nil)), WithVerificationKey(f.value)}},
				} {
					is := is.New(t)
					d, err := New(append(from.opts, WithZerolog(zerolog.Nop()))...)
					is.NoErr(err) // from the variable or the option
					defer d.Close()
					is.True(d.verifier != nil)
					is.Equal([]byte(d.cfg.verificationKey), raw)
				}
			})
		}
	}
}

func TestConfigSources(t *testing.T) {
	t.Parallel()
	_, key := testKeys(t)
	raw, _ := base64.StdEncoding.DecodeString(key.PublicBase64)
	var traceBuf bytes.Buffer
	tests := []struct {
		name            string
		env             map[string]string
		opts            []Option
		apiKey, apiURL  string
		endpointURL     string
		verificationKey []byte
		trace           any // the trace writer
	}{
		{
			// An API key alone: the platform's URL, not local mode.
			name:   "defaults",
			env:    map[string]string{EnvAPIKey: "k"},
			apiKey: "k", apiURL: DefaultAPIURL,
		},
		{
			name: "environment",
			env: map[string]string{
				EnvAPIKey: "env-key", EnvAPIURL: "http://127.0.0.1:4450", EnvEndpointURL: "http://127.0.0.1:8000",
				EnvVerificationKey: key.PublicBase64, EnvTrace: "1",
			},
			apiKey: "env-key", apiURL: "http://127.0.0.1:4450", endpointURL: "http://127.0.0.1:8000",
			verificationKey: raw, trace: os.Stdout,
		},
		{
			name: "options win over the environment, even over wrong values",
			env: map[string]string{
				EnvAPIKey: "env-key", EnvAPIURL: "", EnvEndpointURL: "not a URL",
				EnvVerificationKey: "foo", EnvTrace: "1",
			},
			opts: []Option{
				WithAPIKey("opt-key"), WithAPIURL("https://dispatch.example.com"), WithEndpointURL("https://app.example.com/app"),
				WithVerificationKey(key.PublicPEM), WithTrace(&traceBuf),
			},
			apiKey: "opt-key", apiURL: "https://dispatch.example.com", endpointURL: "https://app.example.com/app",
			verificationKey: raw, trace: &traceBuf,
		},
		{
			name:            "WithPublicKey",
			opts:            []Option{WithAPIKey("k"), WithPublicKey(raw)},
			apiKey:          "k",
			apiURL:          DefaultAPIURL,
			verificationKey: raw,
		},
		{
			name:   "WithTrace(nil) turns DISPATCH_TRACE off",
			env:    map[string]string{EnvAPIKey: "k", EnvTrace: "true"},
			opts:   []Option{WithTrace(nil)},
			apiKey: "k", apiURL: DefaultAPIURL,
		},
		{name: "DISPATCH_TRACE=0", env: map[string]string{EnvAPIKey: "k", EnvTrace: "0"}, apiKey: "k", apiURL: DefaultAPIURL},
		{name: "DISPATCH_TRACE=false", env: map[string]string{EnvAPIKey: "k", EnvTrace: "false"}, apiKey: "k", apiURL: DefaultAPIURL},
		{name: "DISPATCH_TRACE empty", env: map[string]string{EnvAPIKey: "k", EnvTrace: ""}, apiKey: "k", apiURL: DefaultAPIURL},
		{name: "DISPATCH_TRACE=yes", env: map[string]string{EnvAPIKey: "k", EnvTrace: "yes"}, apiKey: "k", apiURL: DefaultAPIURL, trace: os.Stdout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			d, err := New(append([]Option{env(tt.env), WithZerolog(zerolog.Nop())}, tt.opts...)...)
			is.NoErr(err)
			defer d.Close()
			is.True(d.local == nil)                                     // not in local mode
			is.Equal(d.cfg.apiKey, tt.apiKey)                           // API key
			is.Equal(d.cfg.apiURL, tt.apiURL)                           // API URL
			is.Equal(d.EndpointURL(), tt.endpointURL)                   // endpoint URL
			is.Equal([]byte(d.cfg.verificationKey), tt.verificationKey) // verification key
			is.Equal(d.verifier != nil, tt.verificationKey != nil)
			is.Equal(d.rt.flowConfig.Trace == nil, tt.trace == nil) // trace on or off
			if tt.trace != nil {
				is.Equal(any(d.rt.flowConfig.Trace), tt.trace) // trace writer
			}
			is.Equal(d.cfg.maxRequestBytes, int64(DefaultMaxRequestBytes))
			is.Equal(d.cfg.bodyTimeout, DefaultBodyTimeout)
		})
	}
}

// TestConfigMissingVerificationKeyWarns checks that an endpoint without a
// verification key says so at start-up, and again when it serves requests
// unverified, at most once a minute (of its clock); with a key, it never
// does.
func TestConfigMissingVerificationKeyWarns(t *testing.T) {
	t.Parallel()
	_, key := testKeys(t)
	tests := []struct {
		name     string
		opts     []Option
		requests []time.Duration // when requests are served, after testNow
		warnings int             // about the missing key, start-up included
	}{
		{name: "no key, one request", requests: []time.Duration{0}, warnings: 2},
		{
			name:     "no key, requests over three minutes",
			requests: []time.Duration{0, time.Second, 30 * time.Second, 59 * time.Second, time.Minute, 61 * time.Second, 119 * time.Second, 200 * time.Second},
			warnings: 1 + 3, // at 0, 60 s and 200 s
		},
		{name: "no key, no request", warnings: 1},
		{name: "key", opts: []Option{WithVerificationKey(key.PublicBase64)}, requests: []time.Duration{0, time.Minute, 2 * time.Minute}, warnings: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			var buf syncBuffer
			var now atomic.Pointer[time.Time]
			now.Store(&testNow)
			clock := func() time.Time { return *now.Load() }
			d, err := New(append([]Option{env(remote(nil)), WithClock(clock), WithZerolog(zerolog.New(&buf).Level(zerolog.DebugLevel))}, tt.opts...)...)
			is.NoErr(err)
			defer d.Close()
			h := d.Handler()
			for _, at := range tt.requests {
				at := testNow.Add(at)
				now.Store(&at)
				req := httptest.NewRequest(http.MethodPost, runPath, bytes.NewReader(runBody(t, "roottest.echo", "x")))
				req.Header.Set("Content-Type", "application/proto")
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if tt.opts == nil {
					is.Equal(rec.Code, http.StatusOK) // accepted unverified
				} else {
					is.Equal(rec.Code, http.StatusUnauthorized) // unsigned
				}
			}
			var warnings []string
			for line := range strings.Lines(buf.String()) {
				if strings.Contains(line, `"level":"warn"`) && strings.Contains(line, EnvVerificationKey) {
					warnings = append(warnings, line)
				}
			}
			is.Equal(len(warnings), tt.warnings) // warnings about the missing key
			for _, w := range warnings[min(1, len(warnings)):] {
				is.True(strings.Contains(w, "served a request without checking its signature")) // says what happened
				is.True(strings.Contains(w, "WithVerificationKey"))                             // and how to fix it
			}
		})
	}
}

func TestDispatchWithoutAPIKey(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	d := newTest(t, WithEndpointURL("http://127.0.0.1:8000"))
	_, err := d.Dispatch(t.Context(), rtEcho.Call("x"))
	is.True(errors.Is(err, ErrNoAPIKey))
	is.True(strings.Contains(err.Error(), EnvAPIKey))
}

// TestWithLogger checks that the logs of an instance reach the slog.Logger
// given to WithLogger, as records at their level with their fields, and,
// in local mode, the logs of the embedded server too.
func TestWithLogger(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		opts  []Option
		level slog.Level
		want  []map[string]string // records that must be there, by some of their keys (a message by its start)
		not   []string            // messages that must not
	}{
		{
			name:  "no verification key: a warning",
			opts:  []Option{env(remote(nil))},
			level: slog.LevelInfo,
			want:  []map[string]string{{"level": "WARN", "msg": "dispatch: no verification key (DISPATCH_VERIFICATION_KEY): requests to this endpoint are accepted without checking their signature; set it to the key printed by `dispatch test` or given by the platform"}},
		},
		{
			name:  "local mode: the embedded server logs too",
			opts:  []Option{noEnv(), WithLocalServer("")},
			level: slog.LevelInfo,
			want: []map[string]string{
				{"level": "INFO", "msg": "dispatch server started"},
				{"level": "WARN", "msg": "dispatch: no DISPATCH_API_URL or DISPATCH_API_KEY: running a local Dispatch server in this process at http://127.0.0.1:"},
			},
		},
		{
			name:  "the handler's level filters",
			opts:  []Option{noEnv(), WithLocalServer("")},
			level: slog.LevelWarn,
			not:   []string{"dispatch server started"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			var buf syncBuffer
			l := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: tt.level}))
			d, err := New(append(tt.opts, WithLogger(l))...)
			is.NoErr(err)
			d.Close()
			var recs []map[string]any
			for line := range strings.Lines(buf.String()) {
				var r map[string]any
				is.NoErr(json.Unmarshal([]byte(line), &r)) // one JSON record per line, from slog
				recs = append(recs, r)
			}
			for _, w := range tt.want {
				found := slices.ContainsFunc(recs, func(r map[string]any) bool {
					for k, v := range w {
						got, _ := r[k].(string)
						if !strings.HasPrefix(got, v) {
							return false
						}
					}
					return true
				})
				if !found {
					t.Errorf("no record %v in:\n%s", w, buf.String())
				}
			}
			for _, msg := range tt.not {
				is.True(!strings.Contains(buf.String(), msg)) // below the level
			}
			if strings.HasPrefix(tt.name, "local mode") {
				// The server's fields are attributes.
				is.True(slices.ContainsFunc(recs, func(r map[string]any) bool {
					return r["msg"] == "dispatch server started" && r["addr"] != nil && r["endpoint"] != nil
				}))
			}
		})
	}
}
