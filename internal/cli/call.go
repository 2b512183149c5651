package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dispatchkit/dispatch/internal/inspect"
)

// callCommand is `dispatch call ID`: one call's tree.
func callCommand(stdout, stderr io.Writer) *cobra.Command {
	var (
		src    sourceFlags
		depth  int
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "call ID",
		Short: "Show one call: its attempts, result or error, timings and children",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{fmt.Errorf("call takes one dispatch id (see \"dispatch calls\")")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := src.open(cmd.Context())
			if err != nil {
				return err
			}
			defer s.close()
			c, err := s.tree(cmd.Context(), args[0], depth)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(stdout, c)
			}
			writeTree(stdout, c, "", termWidth())
			return nil
		},
	}
	src.register(cmd.Flags())
	cmd.Flags().IntVar(&depth, "depth", 3, "levels of children to show")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func writeTree(w io.Writer, c *inspect.Call, indent string, width int) {
	line := func(format string, args ...any) {
		fmt.Fprintln(w, cut(indent+fmt.Sprintf(format, args...), width))
	}
	took := c.UpdatedAt.Sub(c.CreatedAt).Round(time.Microsecond)
	line("%s  %s  %s  attempts %d  %s", c.ID, c.Function, status(c), c.Attempts, took)
	if c.Restarts > 0 {
		line("  restarts: %d", c.Restarts)
	}
	if c.Output != "" {
		line("  output: %s", c.Output)
	}
	if c.Error != nil {
		line("  error: %s: %s", c.Error.Type, strings.ReplaceAll(c.Error.Message, "\n", " "))
	}
	for _, a := range c.AttemptLog {
		line("  #%d  %s  +%s  %s  %s", a.N, a.Status, a.Start.Sub(c.CreatedAt).Round(time.Microsecond), a.Duration, a.Outcome)
	}
	for _, k := range c.Children {
		writeTree(w, k, indent+"    ", width)
	}
	if c.MoreChildren > 0 {
		line("    … and %d more children", c.MoreChildren)
	}
}
