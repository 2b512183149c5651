package cli

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"time"

	"github.com/spf13/cobra"

	"github.com/dispatchkit/dispatch/internal/callresult"
	"github.com/dispatchkit/dispatch/internal/localapi"
)

// cancelCommand is `dispatch cancel ID`: cancel a call and its tree of
// children on a running server.
func cancelCommand(stdout, stderr io.Writer) *cobra.Command {
	var (
		apiURL string
		apiKey string
		reason string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a call and its whole tree of children on a running server",
		Long: `Cancel the call ID and every call of its tree on the running server at
--api-url: the calls stop at once (requests in flight are cancelled, calls
waiting or sleeping never run again) and fail with PERMANENT_ERROR and an
error of type CANCELLED; the parent of ID, if it has one, receives that error.
A call already finished is left as it is. The cancel is durable: a restart of
the server does not bring the calls back.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{fmt.Errorf("cancel takes one dispatch id (see \"dispatch calls\")")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if apiURL == "" {
				apiURL = os.Getenv("DISPATCH_API_URL")
			}
			if apiURL == "" {
				apiURL = "http://127.0.0.1:4450"
			}
			if apiKey == "" {
				apiKey = os.Getenv("DISPATCH_API_KEY")
			}
			if apiKey == "" {
				apiKey = "test"
			}
			if u, err := url.Parse(apiURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return usageError{fmt.Errorf("--api-url %q is not an http URL like http://127.0.0.1:4450", apiURL)}
			}
			if reason == "" {
				reason = "dispatch cancel (" + whoami() + ")"
			}
			id := args[0]
			res, err := localapi.Cancel(cmd.Context(), &http.Client{Timeout: time.Minute}, apiURL, apiKey, id, reason)
			if errors.Is(err, callresult.ErrUnknownCall) {
				return fmt.Errorf("no call %q on the server at %s (see \"dispatch calls\")", id, apiURL)
			}
			if err != nil {
				return err
			}
			if asJSON {
				status := "cancelled"
				if res.Calls == 0 {
					status = "done"
				}
				return writeJSON(stdout, localapi.CancelBody{Status: status, Calls: res.Calls})
			}
			switch res.Calls {
			case 0:
				fmt.Fprintf(stdout, "%s was already finished: nothing to cancel\n", id)
			case 1:
				fmt.Fprintf(stdout, "cancelled %s\n", id)
			default:
				fmt.Fprintf(stdout, "cancelled %s and %d calls of its tree\n", id, res.Calls-1)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&apiURL, "api-url", "", "the running server (default $DISPATCH_API_URL, else http://127.0.0.1:4450)")
	f.StringVar(&apiKey, "api-key", "", "API key of the server (default $DISPATCH_API_KEY, else test)")
	f.StringVar(&reason, "reason", "", "who cancels, for the calls' error (default \"dispatch cancel (USER on HOST)\")")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// whoami names the user and machine running the command.
func whoami() string {
	name := "unknown user"
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "an unknown host"
	}
	return name + " on " + host
}
