package registry_test

import (
	"strings"
	"testing"

	"github.com/dispatchkit/dispatch/internal/registry"
	"github.com/matryer/is"
)

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"publish", true}, {"order.charged", true}, {"_x1", true}, {"List<int>", true},
		{"", false}, {"1st", false}, {"has space", false}, {"a-b", false}, {"é", false},
		{strings.Repeat("x", registry.MaxNameBytes), true}, {strings.Repeat("x", registry.MaxNameBytes+1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is.New(t).Equal(registry.ValidName(tt.name), tt.ok)
		})
	}
}

func TestRegistry(t *testing.T) {
	is := is.New(t)
	var r registry.Registry[int] // the zero value is ready
	is.Equal(r.Names(), []string{})
	is.True(r.Add("b", 2))
	is.True(r.Add("a", 1))
	is.True(!r.Add("b", 3)) // taken: nothing changes
	v, ok := r.Get("b")
	is.True(ok)
	is.Equal(v, 2)
	_, ok = r.Get("c")
	is.True(!ok)
	is.Equal(r.Names(), []string{"a", "b"})
}

func TestShort(t *testing.T) {
	tests := []struct{ name, want string }{
		{"publish", "publish"},
		{strings.Repeat("x", 40), strings.Repeat("x", 40)},
		{strings.Repeat("x", 41), strings.Repeat("x", 32) + "..."},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			is.New(t).Equal(registry.Short(tt.name), tt.want)
		})
	}
}
