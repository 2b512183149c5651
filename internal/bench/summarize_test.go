package bench

import (
	"fmt"
	"testing"

	"github.com/matryer/is"
)

func TestSummarize(t *testing.T) {
	unit := func(v float64) string { return fmt.Sprintf("%g u", v) }
	kilo := func(v float64) string {
		if v >= 1000 {
			return fmt.Sprintf("%g k", v/1000)
		}
		return fmt.Sprintf("%g u", v)
	}
	atMost2 := func(v float64) bool { return v <= 2 }
	mk := func(v float64) row { return measured("x", v, unit, "<= 2", atMost2) }
	tests := []struct {
		name   string
		rounds [][]row
		value  string
		met    string
	}{
		{"one round as it is", [][]row{{mk(3)}}, "3 u", "no"},
		{"median and range, unit once", [][]row{{mk(3)}, {mk(1)}, {mk(2)}}, "2 u (1–3)", "yes"},
		{"met by the median", [][]row{{mk(1)}, {mk(5)}, {mk(3)}}, "3 u (1–5)", "no"},
		{"units that differ kept", [][]row{
			{measured("x", 900, kilo, "", nil)}, {measured("x", 1500, kilo, "", nil)}, {measured("x", 1200, kilo, "", nil)},
		}, "1.2 k (900 u–1.5 k)", ""},
		{"a row without a number keeps the last text", [][]row{
			{{what: "x", value: "n/a"}}, {{what: "x", value: "n/a, later"}},
		}, "n/a, later", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			got := summarize(tt.rounds)
			is.Equal(len(got), 1)
			is.Equal(got[0].value, tt.value)
			is.Equal(got[0].met, tt.met)
		})
	}
}
