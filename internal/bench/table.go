package bench

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// row is one line of the table.
type row struct {
	what      string
	store     string // which store the row is of, with its durability
	transport string // how the server reached the endpoint: inproc or http
	value     string
	goal      string
	met       string // "yes", "no" or "" when there is no goal

	// A measured row also has its number, how to print it and, with a
	// goal, whether a number meets it, so that rounds can be summed up.
	v      float64
	format func(float64) string
	ok     func(float64) bool
}

// measured makes the row of a figure v. ok is nil when there is no goal.
func measured(what string, v float64, format func(float64) string, goal string, ok func(float64) bool) row {
	r := row{what: what, value: format(v), goal: goal, v: v, format: format, ok: ok}
	if ok != nil {
		r.met = metIf(ok(v))
	}
	return r
}

// summarize folds the rows of several rounds of one workload into one
// row per figure: the median, with the range. Rows without a number
// (skipped, n/a) keep the last round's text.
func summarize(rounds [][]row) []row {
	last := rounds[len(rounds)-1]
	if len(rounds) == 1 {
		return last
	}
	out := make([]row, 0, len(last))
	for i, r := range last {
		var vs []float64
		for _, round := range rounds {
			if i < len(round) && round[i].what == r.what && round[i].format != nil {
				vs = append(vs, round[i].v)
			}
		}
		if r.format == nil || len(vs) != len(rounds) {
			out = append(out, r)
			continue
		}
		slices.Sort(vs)
		m := measured(r.what, vs[len(vs)/2], r.format, r.goal, r.ok)
		med, lo, hi := r.format(vs[len(vs)/2]), r.format(vs[0]), r.format(vs[len(vs)-1])
		if i := strings.IndexByte(med, ' '); i > 0 && strings.HasSuffix(lo, med[i:]) && strings.HasSuffix(hi, med[i:]) {
			// "0.71 ms (0.70–0.73)": the unit once.
			lo, hi = strings.TrimSuffix(lo, med[i:]), strings.TrimSuffix(hi, med[i:])
		}
		m.value = fmt.Sprintf("%s (%s–%s)", med, lo, hi)
		out = append(out, m)
	}
	return out
}

// Formats of the figures.
func msOf(v float64) string      { return fmtMS(time.Duration(v)) }
func secondsOf(v float64) string { return fmtSeconds(time.Duration(v)) }
func rateOf(v float64) string    { return fmt.Sprintf("%s wf/s", fmtInt(int64(v))) }
func microsOf(v float64) string  { return fmt.Sprintf("%d µs", int64(v)) }
func ratioOf(v float64) string   { return fmt.Sprintf("%.2f×", v) }

func metIf(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

func fmtMS(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

func fmtSeconds(d time.Duration) string {
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func fmtBytes(b float64) string {
	if b >= 1024 {
		return fmt.Sprintf("%.2f KB", b/1024)
	}
	return fmt.Sprintf("%.0f B", b)
}

// fmtInt writes n with thousands separators: 10,000.
func fmtInt(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
