package scheduler

import (
	"slices"
	"testing"

	"github.com/matryer/is"
)

// treeOf finds a call's live descendants, through done calls whose
// parents the store tells.
func TestTreeOf(t *testing.T) {
	// r ── x ── a (done) ── b
	//  │    └── c ── d
	//  └── y ── e
	// s (another root) ── f
	live := []*call{
		{id: "r", rootID: "r"},
		{id: "x", parentID: "r", rootID: "r"},
		{id: "b", parentID: "a", rootID: "r"},
		{id: "c", parentID: "x", rootID: "r"},
		{id: "d", parentID: "c", rootID: "r"},
		{id: "y", parentID: "r", rootID: "r"},
		{id: "e", parentID: "y", rootID: "r"},
		{id: "s", rootID: "s"},
		{id: "f", parentID: "s", rootID: "s"},
	}
	tests := []struct {
		name        string
		target      string
		parents     map[string]string // done calls, as read from the store
		want        []string
		wantMissing []string
	}{
		{name: "a root: its whole tree, through done calls", target: "r", want: []string{"b", "c", "d", "e", "r", "x", "y"}},
		{name: "a leaf: whether b is below it takes a", target: "d", wantMissing: []string{"a"}},
		{name: "a leaf", target: "d", parents: map[string]string{"a": "x"}, want: []string{"d"}},
		{name: "a done call in the way: read it", target: "x", wantMissing: []string{"a"}},
		{name: "a done call in the way, read", target: "x", parents: map[string]string{"a": "x"}, want: []string{"b", "c", "d", "x"}},
		{name: "another branch", target: "y", parents: map[string]string{"a": "x"}, want: []string{"e", "y"}},
		{name: "another root", target: "s", want: []string{"f", "s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			e := &Engine{calls: map[string]*call{}}
			for _, c := range live {
				cp := *c
				e.calls[c.id] = &cp
			}
			parents := tt.parents
			if parents == nil {
				parents = map[string]string{}
			}
			tree, missing := e.treeOf(e.calls[tt.target], parents)
			slices.Sort(missing)
			missing = slices.Compact(missing)
			is.Equal(missing, tt.wantMissing)
			var got []string
			for _, c := range tree {
				got = append(got, c.id)
			}
			slices.Sort(got)
			is.Equal(got, tt.want)
		})
	}
}
