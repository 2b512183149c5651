package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/dispatchkit/dispatch/internal/inspect"
)

// callsCommand is `dispatch calls`: recent calls, newest first.
func callsCommand(stdout, stderr io.Writer) *cobra.Command {
	var (
		src    sourceFlags
		limit  int
		all    bool
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "calls",
		Short: "List recent calls (id, function, status, attempts, age)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := src.open(cmd.Context())
			if err != nil {
				return err
			}
			defer s.close()
			calls, err := s.list(cmd.Context(), limit, all)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(stdout, calls)
			}
			writeCallTable(stdout, calls, time.Now(), termWidth())
			return nil
		},
	}
	src.register(cmd.Flags())
	cmd.Flags().IntVarP(&limit, "limit", "n", 20, "number of calls")
	cmd.Flags().BoolVarP(&all, "all", "a", false, "include child calls, not only root calls")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// status renders a call's state and status in one word or two.
func status(c *inspect.Call) string {
	switch {
	case c.State == "done":
		return c.Status
	case c.Status != "":
		return c.State + " (" + c.Status + ")"
	}
	return c.State
}

func writeCallTable(w io.Writer, calls []*inspect.Call, now time.Time, width int) {
	if len(calls) == 0 {
		fmt.Fprintln(w, "no calls")
		return
	}
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tFUNCTION\tSTATUS\tATTEMPTS\tAGE")
	for _, c := range calls {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.ID, cut(c.Function, 32), cut(status(c), 28), strconv.Itoa(c.Attempts), age(now, c.CreatedAt))
	}
	tw.Flush()
	for _, line := range strings.SplitAfter(b.String(), "\n") {
		if line == "" {
			continue
		}
		fmt.Fprintln(w, cut(strings.TrimRight(line, " \n"), width))
	}
}
