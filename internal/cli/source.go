package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/dispatchkit/dispatch/internal/inspect"
	"github.com/dispatchkit/dispatch/internal/store"
	"github.com/dispatchkit/dispatch/internal/store/pgstore"
	"github.com/dispatchkit/dispatch/internal/store/sqlitestore"
)

// source is where `calls` and `call` read: a running server's inspection
// API, a state directory's database, or a PostgreSQL database.
type source interface {
	list(ctx context.Context, limit int, all bool) ([]*inspect.Call, error)
	tree(ctx context.Context, id string, depth int) (*inspect.Call, error)
	close() error
}

// sourceFlags are the flags that choose a source.
type sourceFlags struct {
	stateDir string
	postgres string
	apiURL   string
	apiKey   string
}

func (f *sourceFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.stateDir, "state", "", "read the state directory of a server (default $XDG_STATE_HOME/dispatch or ~/.local/state/dispatch)")
	fs.StringVar(&f.postgres, "postgres", "", "read the PostgreSQL database of a server (the --postgres URL it was given)")
	fs.StringVar(&f.apiURL, "api-url", "", "ask the running server at this URL instead (default $DISPATCH_API_URL, as exported from the banner of dispatch test)")
	fs.StringVar(&f.apiKey, "api-key", "", "API key of the server at --api-url (default $DISPATCH_API_KEY, else test)")
}

// open picks the source: --postgres, --api-url or --state (at most one of
// them), else the server named by DISPATCH_API_URL (so that the variables
// exported from the banner of `dispatch test` are enough), else the
// default state directory.
func (f *sourceFlags) open(ctx context.Context) (source, error) {
	if f.postgres != "" {
		if f.apiURL != "" || f.stateDir != "" {
			return nil, usageError{errors.New("--postgres names where to read: leave out --api-url and --state")}
		}
		st, err := pgstore.OpenReadOnly(ctx, f.postgres)
		if err != nil {
			return nil, err
		}
		return &storeSource{st: st}, nil
	}
	if f.apiURL == "" && f.stateDir == "" {
		f.apiURL = os.Getenv("DISPATCH_API_URL")
	}
	if f.apiKey == "" {
		f.apiKey = os.Getenv("DISPATCH_API_KEY")
	}
	if f.apiKey == "" {
		f.apiKey = "test"
	}
	if f.apiURL != "" {
		u, err := url.Parse(f.apiURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, usageError{fmt.Errorf("--api-url %q is not an http URL like http://127.0.0.1:4450", f.apiURL)}
		}
		return &httpSource{base: strings.TrimSuffix(f.apiURL, "/"), key: f.apiKey, client: &http.Client{Timeout: 30 * time.Second}}, nil
	}
	dir := f.stateDir
	if dir == "" {
		var err error
		if dir, err = defaultStateDir(); err != nil {
			return nil, err
		}
	}
	path := filepath.Join(dir, "dispatch.db")
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no call database in %s: pass the --state of the server, or --api-url for a server run with --memory", dir)
	}
	st, err := sqlitestore.OpenReadOnly(path)
	if err != nil {
		return nil, err
	}
	return &storeSource{st: st}, nil
}

type storeSource struct{ st store.Store }

func (s *storeSource) list(ctx context.Context, limit int, all bool) ([]*inspect.Call, error) {
	return inspect.List(ctx, s.st, store.ListOptions{Limit: limit, RootOnly: !all})
}

func (s *storeSource) tree(ctx context.Context, id string, depth int) (*inspect.Call, error) {
	c, err := inspect.Tree(ctx, s.st, id, depth)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("no call %q", id)
	}
	return c, err
}

func (s *storeSource) close() error { return s.st.Close() }

type httpSource struct {
	base, key string
	client    *http.Client
}

func (s *httpSource) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+s.key)
	res, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		return fmt.Errorf("%s: HTTP %d: %s", s.base, res.StatusCode, strings.TrimSpace(string(msg)))
	}
	return json.NewDecoder(res.Body).Decode(v)
}

func (s *httpSource) list(ctx context.Context, limit int, all bool) ([]*inspect.Call, error) {
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if all {
		q.Set("all", "1")
	}
	var out []*inspect.Call
	err := s.get(ctx, "/dispatch.local.v1/calls?"+q.Encode(), &out)
	return out, err
}

func (s *httpSource) tree(ctx context.Context, id string, depth int) (*inspect.Call, error) {
	var out inspect.Call
	err := s.get(ctx, "/dispatch.local.v1/calls/"+url.PathEscape(id)+"?depth="+strconv.Itoa(depth), &out)
	return &out, err
}

func (s *httpSource) close() error { return nil }

// termWidth is the width output is cut to: $COLUMNS, else 120.
func termWidth() int {
	if n, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && n > 20 {
		return n
	}
	return 120
}

// cut shortens s to n runes, marking the cut with "…".
func cut(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	if n <= 1 {
		return string(r[:n])
	}
	return string(r[:n-1]) + "…"
}

// age renders how long ago t was, compactly.
func age(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		return d.Round(time.Minute).String()
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
