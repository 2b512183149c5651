//go:build !unix

package pgtest

import "net/url"

// throwaway is not made on this system: set DISPATCH_TEST_POSTGRES.
type throwaway struct{ url *url.URL }

func startCluster() (*throwaway, error) { return nil, errNone }

func (c *throwaway) stop() error { return nil }
