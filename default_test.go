package dispatch

import (
	"sync"
	"testing"

	"github.com/matryer/is"
)

// TestDefaultConcurrent checks that concurrent first calls of Default
// create one instance and all get it. In local mode a second instance
// would fail on the lock of the state directory.
//
// It is not parallel: it sets the process environment (Default reads it)
// and changes the default instance.
func TestDefaultConcurrent(t *testing.T) {
	tests := []struct {
		name string
		env  func(t *testing.T) map[string]string
	}{
		{"local mode", func(t *testing.T) map[string]string {
			return map[string]string{EnvStateDir: t.TempDir()}
		}},
		{"a separate server", func(t *testing.T) map[string]string {
			_, key := testKeys(t)
			return map[string]string{EnvAPIURL: testAPIURL, EnvVerificationKey: key.PublicBase64}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			for k, v := range tt.env(t) {
				t.Setenv(k, v)
			}
			defaultInstance.Lock()
			prev := defaultInstance.d
			defaultInstance.d = nil
			defaultInstance.Unlock()
			t.Cleanup(func() { SetDefault(prev) })

			const n = 16
			var (
				start = make(chan struct{})
				wg    sync.WaitGroup
				got   [n]*Dispatch
				errs  [n]error
			)
			for i := range n {
				wg.Go(func() {
					<-start
					got[i], errs[i] = Default()
				})
			}
			close(start)
			wg.Wait()
			// Close every distinct instance, so that a failure leaks
			// nothing either.
			seen := map[*Dispatch]bool{}
			for _, d := range got {
				if d != nil && !seen[d] {
					seen[d] = true
					t.Cleanup(func() { d.Close() })
				}
			}
			for i := range n {
				is.NoErr(errs[i])
				is.True(got[i] == got[0]) // one instance for all
			}
			is.True(got[0] != nil)
			def, err := Default()
			is.NoErr(err)
			is.True(def == got[0]) // and it is the default
		})
	}
}
