package dispatch

import (
	"go/build"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// module is this module's path.
const module = "github.com/dispatchkit/dispatch"

// TestSDKDoesNotLinkTheServer walks the imports of the SDK's non-test
// files (this package and flow/flowtest, and every package of the module
// they import, with go/build, for this platform) and fails if they reach the server or what
// only the server needs: the server is linked by package local, on
// purpose (see local.go). It also fails on an external import outside a
// short list, so that a new dependency of the SDK is a decision; the
// imports of those external modules are not walked (none of them reaches
// the server's dependencies).
//
// It reads the source with go/build and needs no go command, so it runs
// wherever the tests do; a package it cannot read fails it.
func TestSDKDoesNotLinkTheServer(t *testing.T) {
	t.Parallel()
	forbidden := []string{
		module + "/server",
		module + "/local",
		module + "/internal/scheduler",
		module + "/internal/store",
		module + "/internal/bench",
		module + "/internal/cli",
		"modernc.org/",               // SQLite
		"cel.dev/",                   // cel-go, for protovalidate
		"github.com/antlr4-go/",      // its parser
		"buf.build/go/protovalidate", // the validator (the generated annotations are fine)
		"github.com/spf13/",          // the CLI's flags
	}
	allowed := []string{ // external modules the SDK may import
		"buf.build/gen/go/stealthrocket/dispatch-proto/",
		"connectrpc.com/connect",
		"github.com/fxamacker/cbor/v2",
		"github.com/oasisprotocol/curve25519-voi/",
		"github.com/rs/zerolog",
		"google.golang.org/protobuf/",
	}
	hasPrefix := func(path string, prefixes []string) bool {
		return slices.ContainsFunc(prefixes, func(p string) bool { return path == p || strings.HasPrefix(path, strings.TrimSuffix(p, "/")+"/") })
	}
	// The SDK's packages that nothing in it imports; the walk reaches the
	// others (flow, serde, trace, ...).
	roots := []string{module, module + "/flow/flowtest"}
	via := map[string]string{} // package: the package that imports it ("" for a root)
	for _, r := range roots {
		via[r] = ""
	}
	queue := slices.Clone(roots)
	for len(queue) > 0 {
		pkg := queue[0]
		queue = queue[1:]
		dir := filepath.Join(".", strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/"))
		p, err := build.ImportDir(dir, 0)
		if err != nil {
			t.Fatalf("reading the imports of %s (in %s): %v", pkg, dir, err)
		}
		for _, imp := range p.Imports {
			if _, seen := via[imp]; seen {
				continue
			}
			via[imp] = pkg
			switch {
			case hasPrefix(imp, forbidden):
				t.Errorf("the SDK imports %s (%s): only package local may link the server and its dependencies", imp, chain(via, imp))
			case imp == module || strings.HasPrefix(imp, module+"/"):
				queue = append(queue, imp)
			case !strings.Contains(strings.Split(imp, "/")[0], "."):
				// the standard library
			case !hasPrefix(imp, allowed):
				t.Errorf("the SDK imports %s (%s), a module outside the list of this test: make it a decision, and add it to the list if it is one", imp, chain(via, imp))
			}
		}
	}
	if len(via) < 10 {
		t.Fatalf("found only %d imports: the walk did not read the SDK", len(via))
	}
}

// chain says how the SDK reaches pkg: "dispatch -> flow -> pkg".
func chain(via map[string]string, pkg string) string {
	var path []string
	for p := pkg; p != ""; p = via[p] {
		path = append(path, strings.TrimPrefix(strings.TrimPrefix(p, module), "/"))
	}
	slices.Reverse(path)
	if path[0] == "" {
		path[0] = "dispatch"
	}
	return strings.Join(path, " -> ")
}
