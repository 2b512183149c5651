package vectors

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"testing"

	"github.com/matryer/is"
)

// TestCopyMatchesShared checks that the embedded copy is still the
// maintained file, byte for byte, when shared/ is beside the clone. On a
// bare clone (CI) there is nothing to compare with, and the test says so.
func TestCopyMatchesShared(t *testing.T) {
	is := is.New(t)
	dir, err := os.Getwd()
	is.NoErr(err)
	path, err := FindShared(dir)
	is.NoErr(err)
	if path == "" {
		t.Logf("no %s in any parent of %s: compared nothing (the embedded copy is used as is)", SharedPath, dir)
		return
	}
	shared, err := os.ReadFile(path)
	is.NoErr(err)
	copied, err := os.ReadFile(CopyPath)
	is.NoErr(err)
	is.True(bytes.Equal(copied, Data)) // the embedded bytes are the file's
	if !bytes.Equal(Data, shared) {
		t.Fatalf("vectors: internal/vectors/%s differs from %s; copy the file again, from the repository root: cp %s internal/vectors/%s", CopyPath, path, path, CopyPath)
	}
	t.Logf("%s is identical to %s", CopyPath, path)
}

// TestFindShared finds the shared vectors in the directory or any parent,
// and reports none when no parent has them.
func TestFindShared(t *testing.T) {
	tests := []struct {
		name   string
		files  []string // created under the temporary root
		start  string   // where the search starts, under the root
		expect string   // the path found, under the root; "" for none under it
	}{
		{"in the directory", []string{SharedPath}, ".", SharedPath},
		{"in the parent", []string{SharedPath}, "repo", SharedPath},
		{"in a grandparent", []string{SharedPath}, "repo/internal", SharedPath},
		{"nearest first", []string{SharedPath, "repo/" + SharedPath}, "repo/internal", "repo/" + SharedPath},
		{"in a sibling only", []string{"other/" + SharedPath}, "repo/internal", ""},
		{"shared without the vectors", []string{"shared/README"}, "repo", ""},
		{"shared is a file", []string{"shared"}, "repo", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			root := t.TempDir()
			// Should a parent of the temporary directory have the vectors,
			// the search ends there rather than with nothing.
			above, err := FindShared(root)
			is.NoErr(err)
			for _, f := range tt.files {
				is.NoErr(os.MkdirAll(filepath.Join(root, filepath.Dir(f)), 0o755))
				is.NoErr(os.WriteFile(filepath.Join(root, f), []byte("{}"), 0o644))
			}
			start := filepath.Join(root, tt.start)
			is.NoErr(os.MkdirAll(start, 0o755))
			got, err := FindShared(start)
			is.NoErr(err)
			want := above
			if tt.expect != "" {
				want = filepath.Join(root, tt.expect)
			}
			is.Equal(got, want)
		})
	}
}

// TestLoad decodes the embedded copy into complete vectors.
func TestLoad(t *testing.T) {
	is := is.New(t)
	f := Load(t)
	is.True(len(f.Signatures) > 0)
	is.True(len(f.Digests) > 0)
	is.True(len(f.InvalidVerificationKeys) > 0)
	for name := range f.Keys {
		is.Equal(len(f.PublicKey(t, name)), ed25519.PublicKeySize)   // every key's public key decodes
		is.Equal(len(f.PrivateKey(t, name)), ed25519.PrivateKeySize) // and its private key
	}
	is.True(Load(t) != f) // every call gets its own File
}
