package protocol

import (
	"go/build"
	"strings"
	"testing"
)

// TestImports keeps protocol at the bottom of the import graph: it may use
// the standard library only, never another package of this module or a
// third-party module, so every program can speak the wire format cheaply.
func TestImports(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		first, _, _ := strings.Cut(imp, "/")
		if strings.Contains(first, ".") {
			t.Errorf("protocol imports %q; only the standard library is allowed", imp)
		}
	}
}
