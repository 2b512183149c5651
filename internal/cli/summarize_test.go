package cli

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
	row := func(v float64) benchRow { return measured("x", v, unit, "<= 2", atMost2) }
	tests := []struct {
		name   string
		rounds [][]benchRow
		value  string
		met    string
	}{
		{"one round as it is", [][]benchRow{{row(3)}}, "3 u", "no"},
		{"median and range, unit once", [][]benchRow{{row(3)}, {row(1)}, {row(2)}}, "2 u (1–3)", "yes"},
		{"met by the median", [][]benchRow{{row(1)}, {row(5)}, {row(3)}}, "3 u (1–5)", "no"},
		{"units that differ kept", [][]benchRow{
			{measured("x", 900, kilo, "", nil)}, {measured("x", 1500, kilo, "", nil)}, {measured("x", 1200, kilo, "", nil)},
		}, "1.2 k (900 u–1.5 k)", ""},
		{"a row without a number keeps the last text", [][]benchRow{
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
