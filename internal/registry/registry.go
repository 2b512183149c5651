// Package registry holds things registered by a stable name: functions,
// continuations. Names follow the protocol's pattern for function names, so
// that every name reads the same in states, traces and logs.
package registry

import (
	"regexp"
	"sort"
	"sync"
)

// Pattern is the protocol's pattern for names.
const Pattern = `^[a-zA-Z_][a-zA-Z0-9_<>.]*$`

// MaxNameBytes is the length of the longest name, in bytes. A function's
// name travels with every call and every resume, and a continuation's is
// in every state that suspends in it; the server refuses longer function
// names.
const MaxNameBytes = 256

var pattern = regexp.MustCompile(Pattern)

// ValidName reports whether name matches [Pattern] and has at most
// [MaxNameBytes] bytes. Callers check the length first (see [Short]) to
// say which of the two is wrong.
func ValidName(name string) bool { return len(name) <= MaxNameBytes && pattern.MatchString(name) }

// Short returns name for a message: itself if it is short, else its first
// 32 bytes followed by "...".
func Short(name string) string {
	if len(name) <= 40 {
		return name
	}
	return name[:32] + "..."
}

// Registry maps names to values. The zero value is empty and ready; it is
// safe for concurrent use.
type Registry[T any] struct {
	mu sync.RWMutex
	m  map[string]T
}

// Add registers v under name; it reports false, and changes nothing, if the
// name is taken. Callers check the name with ValidName first, so that each
// can say what kind of name was wrong.
func (r *Registry[T]) Add(name string, v T) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.m[name]; dup {
		return false
	}
	if r.m == nil {
		r.m = map[string]T{}
	}
	r.m[name] = v
	return true
}

// Get returns the value registered under name.
func (r *Registry[T]) Get(name string) (T, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	v, ok := r.m[name]
	return v, ok
}

// Names returns the registered names, sorted.
func (r *Registry[T]) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.m))
	for n := range r.m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
