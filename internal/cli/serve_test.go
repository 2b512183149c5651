package cli_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/matryer/is"

	"github.com/dispatchkit/dispatch/internal/cli"
	"github.com/dispatchkit/dispatch/internal/pgtest"
	"github.com/dispatchkit/dispatch/internal/signature"
	"github.com/dispatchkit/dispatch/server"
)

const goodKey = "0123456789abcdef0123"

func TestServeRefuses(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		key     string
		signing string
		args    []string
		code    int
		want    string // in stderr
	}{
		{"no key", "", "", []string{"--state", dir}, 1,
			`dispatch: DISPATCH_API_KEY is not set: dispatch serve needs an API key; set DISPATCH_API_KEY to a secret of at least 16 characters, for example: export DISPATCH_API_KEY="$(openssl rand -hex 32)"`},
		{"test key", "test", "", []string{"--state", dir}, 1,
			`DISPATCH_API_KEY is "test", the key of dispatch test, which anyone may guess; set DISPATCH_API_KEY to a secret`},
		{"short key", "abc123", "", []string{"--state", dir}, 1,
			`DISPATCH_API_KEY has 6 characters, too short to be secret; set DISPATCH_API_KEY`},
		{"spaces", " " + goodKey, "", []string{"--state", dir}, 1,
			`DISPATCH_API_KEY starts or ends with white space`},
		{"postgres and state", goodKey, "", []string{"--state", dir, "--postgres", "postgres://u@127.0.0.1:1/db"}, 2,
			`dispatch: --postgres keeps the calls in PostgreSQL: leave out --state`},
		{"bad endpoint", goodKey, "", []string{"--state", dir, "--endpoint", "ftp://fn.example.com"}, 2,
			`dispatch: --endpoint "ftp://fn.example.com": `},
		{"endpoint with password", goodKey, "", []string{"--state", dir, "--endpoint", "https://u:secret@fn.example.com"}, 2,
			`--endpoint "https://u:xxxxx@fn.example.com"`},
		{"bad pattern", goodKey, "", []string{"--state", dir, "--allow-endpoint", "ftp://x"}, 2,
			`dispatch: --allow-endpoint: `},
		{"log format", goodKey, "", []string{"--state", dir, "--log-format", "text"}, 2,
			`dispatch: --log-format "text" is not known: want json (the default) or console`},
		{"argument", goodKey, "", []string{"http://127.0.0.1:8000"}, 2,
			`dispatch: serve takes no arguments: give the endpoint with --endpoint`},
		{"bad listen", goodKey, "", []string{"--state", dir, "--listen", "4450"}, 1,
			`Config.Addr "4450" is not host:port`},
		{"bad signing key", goodKey, "nope", []string{"--state", dir}, 1,
			`dispatch: DISPATCH_SIGNING_KEY is unreadable: `},
		{"lease TTL without postgres", goodKey, "", []string{"--state", dir, "--lease-ttl", "3s"}, 2,
			`dispatch: --lease-ttl is the lease time of the replicas of a PostgreSQL database: give --postgres too, or leave it out`},
		{"lease TTL too short", goodKey, "", []string{"--postgres", "postgres://u@127.0.0.1:1/db", "--lease-ttl", "10ms"}, 1,
			`Config.LeaseTTL (--lease-ttl) is 10ms, at least 1s`},
		{"negative retention", goodKey, "", []string{"--state", dir, "--key-retention", "-1h"}, 2,
			`--key-retention -1h0m0s is negative`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			t.Setenv("DISPATCH_API_KEY", tc.key)
			t.Setenv("DISPATCH_SIGNING_KEY", tc.signing)
			out, errOut, code := run(t, append([]string{"serve"}, tc.args...)...)
			is.Equal(out, "")
			is.Equal(code, tc.code)
			if !strings.Contains(errOut, tc.want) {
				t.Fatalf("stderr:\n%s\nwant it to contain:\n%s", errOut, tc.want)
			}
			is.True(!strings.Contains(errOut, "secret@")) // passwords are not shown
		})
	}
}

var startLineRE = regexp.MustCompile(`^dispatch serve: listening on http://(127\.0\.0\.1:\d+), default endpoint (\S+), DISPATCH_VERIFICATION_KEY=(\S+)\n$`)

func TestServeEndToEnd(t *testing.T) {
	is := is.New(t)
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	is.NoErr(err)
	t.Setenv("DISPATCH_API_KEY", goodKey)
	t.Setenv("DISPATCH_SIGNING_KEY", signature.EncodePrivateKey(priv))
	ep := newWorkflowEndpoint(t, 2, 0)
	other := newWorkflowEndpoint(t, 1, 0)
	ep.setKey(t, signature.EncodePublicKey(priv.Public().(ed25519.PublicKey)))
	other.setKey(t, signature.EncodePublicKey(priv.Public().(ed25519.PublicKey)))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	code := make(chan int, 1)
	dir := t.TempDir()
	go func() {
		code <- cli.Run(ctx, []string{"serve", "--state", dir, "--listen", "127.0.0.1:0",
			"--endpoint", ep.srv.URL, "--endpoint", other.srv.URL + "/"}, stdout, stderr)
	}()
	var m []string
	waitFor(t, "start line", func() bool {
		m = startLineRE.FindStringSubmatch(stdout.String())
		return m != nil
	})
	addr := m[1]
	is.Equal(m[2], ep.srv.URL)
	is.Equal(m[3], signature.EncodePublicKey(priv.Public().(ed25519.PublicKey))) // DISPATCH_SIGNING_KEY is used

	// The default endpoint, and the second --endpoint named by a call.
	ids := dispatchCalls(t, addr, goodKey, []*sdkv1.Call{
		{Function: "wf", Input: str("go")},
		{Function: "wf", Input: str("go"), Endpoint: other.srv.URL},
	})
	waitFor(t, "workflows", func() bool { return ep.finished() == 1 && other.finished() == 1 })
	ctxF, cancelF := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancelF()
	for _, id := range ids {
		o, err := server.FetchResult(ctxF, nil, "http://"+addr, goodKey, id, time.Second)
		is.NoErr(err)
		is.True(o != nil)
	}

	// A call naming a loopback endpoint not given by --endpoint is refused:
	// serve does not allow loopback by default.
	_, err = dispatchErr(addr, goodKey, &sdkv1.Call{Function: "wf", Input: str("go"), Endpoint: "http://127.0.0.1:1"})
	is.True(err != nil)
	is.True(strings.Contains(err.Error(), "invalid_argument"))
	// The wrong key is refused.
	_, err = dispatchErr(addr, "test", &sdkv1.Call{Function: "wf", Input: str("go")})
	is.True(err != nil)
	is.True(strings.Contains(err.Error(), "unauthenticated"))

	// A second serve on the same state directory is refused.
	out2, errOut2, code2 := run(t, "serve", "--state", dir, "--listen", "127.0.0.1:0", "--endpoint", ep.srv.URL)
	is.Equal(out2, "")
	is.Equal(code2, 1)
	if !strings.Contains(errOut2, "uses the state directory "+dir+": stop it, or give this server another state directory") {
		t.Fatalf("second serve: %s", errOut2)
	}

	cancel() // SIGTERM, as cmd/dispatch turns it into ctx's end
	is.Equal(<-code, 0)
	// Logs are JSON lines.
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	is.True(len(lines) >= 2)
	for _, l := range lines {
		var v map[string]any
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("log line %q is not JSON: %v", l, err)
		}
	}
	is.True(strings.Contains(stderr.String(), `"message":"dispatch server stopped"`))
}

// startServe starts `dispatch serve` in-process with args and returns its
// address and verification key from its start line, and a stop function
// returning the exit code.
func startServe(t *testing.T, args ...string) (addr, key string, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	code := make(chan int, 1)
	go func() {
		code <- cli.Run(ctx, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...), stdout, stderr)
	}()
	var m []string
	waitFor(t, "start line", func() bool {
		m = startLineRE.FindStringSubmatch(stdout.String())
		return m != nil
	})
	var stopped bool
	var rc int
	stop = func() int {
		if !stopped {
			stopped = true
			cancel()
			rc = <-code
		}
		return rc
	}
	t.Cleanup(func() { stop() })
	return m[1], m[3], stop
}

// TestServePostgres runs `dispatch serve --postgres`: the signing key is
// the database's (the same after a restart), a call runs, and a second
// serve on the database runs beside the first, as a replica.
func TestServePostgres(t *testing.T) {
	is := is.New(t)
	url := pgtest.URL(t)
	t.Setenv("DISPATCH_API_KEY", goodKey)
	t.Setenv("DISPATCH_SIGNING_KEY", "")
	ep := newWorkflowEndpoint(t, 1, 0)
	addr, key, stop := startServe(t, "--postgres", url, "--endpoint", ep.srv.URL)
	ep.setKey(t, key)
	ids := dispatchWorkflows(t, addr, goodKey, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	o, err := server.FetchResult(ctx, nil, "http://"+addr, goodKey, ids[0], time.Second)
	is.NoErr(err)
	is.Equal(o.Status, sdkv1.Status_STATUS_OK)

	// A second serve on the database is a replica, which waits for the
	// first's calls and takes its partitions once it stops.
	// (--advertise: the flag is taken; no request is forwarded here.)
	addr2, key2, stop2 := startServe(t, "--postgres", url, "--endpoint", ep.srv.URL, "--advertise", "http://127.0.0.1:1/")
	is.Equal(key2, key)
	o, err = server.FetchResult(ctx, nil, "http://"+addr2, goodKey, ids[0], time.Second)
	is.NoErr(err)
	is.Equal(o.Status, sdkv1.Status_STATUS_OK)
	is.Equal(stop2(), 0)

	_, errOut, code := run(t, "serve", "--listen", "127.0.0.1:0", "--advertise", "http://127.0.0.1:1", "--endpoint", ep.srv.URL)
	is.Equal(code, 2)
	is.True(strings.Contains(errOut, "--advertise")) // only with --postgres
	is.True(strings.Contains(errOut, "--postgres"))

	is.Equal(stop(), 0)
	_, key3, stop3 := startServe(t, "--postgres", url, "--endpoint", ep.srv.URL)
	is.Equal(key3, key) // the key is the database's
	is.Equal(stop3(), 0)
}
