package dispatch

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/dispatchkit/dispatch/flow"
	"github.com/matryer/is"
	"github.com/rs/zerolog"
)

// TestConfigurationTablesAgree checks that the configuration table of the
// package documentation and the README's say the same of each variable,
// and that the code does what they say.
func TestConfigurationTablesAgree(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		variable string
		facts    []string // in both rows
		check    func(is *is.I)
	}{
		{EnvAPIKey, []string{"WithAPIKey", "none.", "With no URL either: local mode, if the program imports package local (else New fails", "with a URL: Dispatch fails with ErrNoAPIKey"}, func(is *is.I) {
			_, err := New(noEnv(), WithZerolog(zerolog.Nop()), withLocalStarter(nil))
			is.Equal(err, errNoServer) // no server configured, local mode not linked
			d, err := New(noEnv(), WithZerolog(zerolog.Nop()), WithAPIURL(testAPIURL), WithEndpointURL("http://127.0.0.1:1"))
			is.NoErr(err)
			defer d.Close()
			_, err = d.Dispatch(context.Background(), flow.NewCall[int]("docs.f", 1))
			is.True(errors.Is(err, ErrNoAPIKey))
		}},
		{EnvAPIURL, []string{"WithAPIURL", "with no API key either: local mode", "with a key: " + DefaultAPIURL + " (DefaultAPIURL", "set but empty is an error"}, func(is *is.I) {
			d, err := New(noEnv(), WithZerolog(zerolog.Nop()), WithAPIKey("k"))
			is.NoErr(err)
			defer d.Close()
			is.Equal(d.APIURL(), DefaultAPIURL)
			_, err = New(env(map[string]string{EnvAPIURL: ""}), WithZerolog(zerolog.Nop()))
			is.True(err != nil)
		}},
		{EnvEndpointURL, []string{"WithEndpointURL", "none (local mode picks a loopback port); a full URL with scheme and host"}, nil},
		{EnvVerificationKey, []string{"WithVerificationKey", "none: requests accepted unverified, with a warning at start and at most once a minute while serving"}, nil},
		{EnvTrace, []string{"WithTrace", `off; any value but "", "0", "false" turns it on`}, nil},
		{EnvStateDir, []string{"WithLocalServer(dir)", "$XDG_STATE_HOME/dispatch/<program> or ~/.local/state/dispatch/<program>"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.variable, func(t *testing.T) {
			is := is.New(t)
			docRow := row(string(doc), "//\t"+tt.variable+" ")
			readmeRow := strings.ReplaceAll(row(string(readme), "| `"+tt.variable+"` |"), "`", "")
			is.True(docRow != "")
			is.True(readmeRow != "")
			for _, f := range tt.facts {
				if !strings.Contains(docRow, f) {
					t.Errorf("doc.go's row of %s lacks %q:\n%s", tt.variable, f, docRow)
				}
				if !strings.Contains(readmeRow, f) {
					t.Errorf("README.md's row of %s lacks %q:\n%s", tt.variable, f, readmeRow)
				}
			}
			if tt.check != nil {
				tt.check(is)
			}
		})
	}
}

// row returns the line of text that starts with prefix, or "".
func row(text, prefix string) string {
	for line := range strings.SplitSeq(text, "\n") {
		if strings.HasPrefix(line, prefix) {
			return line
		}
	}
	return ""
}
