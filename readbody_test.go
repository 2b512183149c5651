package dispatch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"testing/iotest"
	"time"

	"github.com/matryer/is"
)

func TestReadAll(t *testing.T) {
	body := bytes.Repeat([]byte("dispatch"), 100) // 800 bytes
	tests := []struct {
		name    string
		r       io.Reader
		n       int64 // announced length
		limit   int64
		want    []byte
		wantErr error
	}{
		{name: "announced", r: bytes.NewReader(body), n: 800, limit: 1000, want: body},
		{name: "unknown length", r: bytes.NewReader(body), n: -1, limit: 1000, want: body},
		{name: "one byte at a time", r: iotest.OneByteReader(bytes.NewReader(body)), n: 800, limit: 1000, want: body},
		{name: "shorter than announced", r: bytes.NewReader(body[:500]), n: 800, limit: 1000, want: body[:500], wantErr: io.ErrUnexpectedEOF},
		{name: "longer than announced", r: bytes.NewReader(body), n: 500, limit: 1000, want: body},
		{name: "announced over the limit", r: bytes.NewReader(body), n: 800, limit: 700, want: body},
		{name: "error after the body", r: io.MultiReader(bytes.NewReader(body), iotest.ErrReader(errors.New("boom"))), n: 800, limit: 1000, want: body, wantErr: errors.New("boom")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			got, err := readAll(tt.r, tt.n, tt.limit)
			is.Equal(got, tt.want)
			if tt.wantErr == nil {
				is.NoErr(err)
			} else {
				is.True(err != nil)
				is.Equal(err.Error(), tt.wantErr.Error())
			}
		})
	}
}

// BenchmarkReadBody is the endpoint's read of a request body of a few
// sizes (a RunRequest is a few hundred bytes to megabytes of poll
// state), into a buffer of its announced length ("sized") or grown by
// io.ReadAll as before ("readall").
func BenchmarkReadBody(b *testing.B) {
	for _, size := range []int{512, 4 << 10, 64 << 10, 1 << 20} {
		body := bytes.Repeat([]byte{1}, size)
		for _, way := range []string{"sized", "readall"} {
			b.Run(way+"/"+strconv.Itoa(size), func(b *testing.B) {
				w := httptest.NewRecorder()
				b.ReportAllocs()
				for b.Loop() {
					rd := http.MaxBytesReader(w, io.NopCloser(bytes.NewReader(body)), 16<<20)
					var err error
					if way == "sized" {
						_, err = readAll(rd, int64(size), 16<<20)
					} else {
						_, err = io.ReadAll(rd)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestRunCancelledWhenClientGoes checks that a run's context is cancelled
// when the client closes its connection, for a body read to its announced
// length: net/http watches the connection once the body is read to its
// end, which readAll reaches.
func TestRunCancelledWhenClientGoes(t *testing.T) {
	is := is.New(t)
	started, cancelled := make(chan struct{}), make(chan struct{})
	hold, err := FuncSafely(uniqueName("roottest.hold"), func(ctx context.Context, s string) (string, error) {
		close(started)
		<-ctx.Done()
		close(cancelled)
		return "", ctx.Err()
	})
	is.NoErr(err)
	d := newTest(t)
	addr := serveLoopback(t, d)

	conn, err := net.Dial("tcp", addr)
	is.NoErr(err)
	body := runBody(t, hold.Name(), "held")
	_, err = fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/proto\r\nContent-Length: %d\r\n\r\n%s", runPath, addr, len(body), body)
	is.NoErr(err)
	const guard = 10 * time.Second // a failure, not a measure
	select {
	case <-started:
	case <-time.After(guard):
		t.Fatalf("the run did not start within %v", guard)
	}
	is.NoErr(conn.Close())
	select {
	case <-cancelled:
	case <-time.After(guard):
		t.Fatalf("the run's context was not cancelled within %v of the client closing its connection", guard)
	}
}
