package layout

import (
	"go/build"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/presenced/presenced/"

// allowed lists, for each area of the module, the areas its non-test code
// may import. Imports flow one way: protocol ← membership ← presence ←
// broker ← cmd; internal/jskv holds JetStream helpers beneath membership.
var allowed = map[string][]string{
	"protocol":      {"protocol"},
	"internal/jskv": nil,
	"membership":    {"protocol", "internal/jskv"},
	"presence":      {"protocol", "membership", "internal/jskv"},
	"broker":        {"protocol", "membership", "presence", "internal/jskv", "broker"},
	"cmd":           {"protocol", "membership", "presence", "broker", "internal/chaos"},
	// Test helpers.
	"internal/natstest": nil,
	"internal/faultnet": nil,
	"internal/tcpinfo":  nil,
	"internal/chaos":    {"protocol", "membership", "presence", "broker"},
	"internal/layout":   nil,
}

// helpers may only be imported by tests and by other test helpers, and
// by the command named for one (it runs the chaos suite by hand).
var helpers = []string{"internal/natstest", "internal/faultnet", "internal/tcpinfo", "internal/chaos"}

var helperCommands = map[string]string{"cmd/presence-chaos": "internal/chaos"}

// area is the entry of allowed that rel (a path within the module) is in.
func area(rel string) string {
	best := ""
	for a := range allowed {
		if (rel == a || strings.HasPrefix(rel, a+"/")) && len(a) > len(best) {
			best = a
		}
	}
	return best
}

func isHelper(rel string) bool {
	for _, h := range helpers {
		if rel == h || strings.HasPrefix(rel, h+"/") {
			return true
		}
	}
	// A package of test helpers within an area (compat's compattest).
	return strings.HasSuffix(rel, "test")
}

// packages walks the module and returns every Go package directory,
// relative to the module root.
func packages(t *testing.T) (root string, dirs []string) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if p != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules" || name == "data") {
			return filepath.SkipDir
		}
		if ms, _ := filepath.Glob(filepath.Join(p, "*.go")); len(ms) > 0 {
			rel, _ := filepath.Rel(root, p)
			dirs = append(dirs, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return root, dirs
}

func TestImportRules(t *testing.T) {
	root, dirs := packages(t)
	for _, rel := range dirs {
		pkg, err := build.ImportDir(filepath.Join(root, rel), 0)
		if err != nil {
			if _, ok := err.(*build.NoGoError); ok {
				continue
			}
			t.Fatalf("%s: %v", rel, err)
		}
		a := area(rel)
		if a == "" {
			t.Errorf("%s: a package outside the design's areas (protocol, membership, presence, broker, cmd, internal)", rel)
			continue
		}
		check := func(imports []string, test bool) {
			for _, imp := range imports {
				dep, ok := strings.CutPrefix(imp, module)
				if !ok {
					if rel == "protocol" && !test && strings.Contains(strings.SplitN(imp, "/", 2)[0], ".") {
						t.Errorf("protocol imports %s: the wire format uses the standard library only", imp)
					}
					continue
				}
				if isHelper(dep) && !test && !isHelper(rel) && helperCommands[rel] != dep {
					t.Errorf("%s imports the test helper %s outside its tests", rel, dep)
					continue
				}
				if test {
					if area(dep) == "cmd" {
						t.Errorf("%s's tests import %s: commands are not libraries", rel, dep)
					}
					continue
				}
				da := area(dep)
				ok = da == a && (a != "cmd" || dep == rel) // a command imports no other command
				for _, x := range allowed[a] {
					ok = ok || da == x
				}
				if !ok && !isHelper(dep) {
					t.Errorf("%s imports %s: %s may import only %v", rel, dep, a, allowed[a])
				}
			}
		}
		check(pkg.Imports, false)
		check(append(pkg.TestImports, pkg.XTestImports...), true)
	}
}

func TestPackageDocs(t *testing.T) {
	root, dirs := packages(t)
	fset := token.NewFileSet()
	for _, rel := range dirs {
		pkg, err := build.ImportDir(filepath.Join(root, rel), 0)
		if err != nil {
			if _, ok := err.(*build.NoGoError); ok {
				continue // tests only
			}
			t.Fatalf("%s: %v", rel, err)
		}
		documented := false
		for _, name := range pkg.GoFiles {
			f, err := parser.ParseFile(fset, filepath.Join(pkg.Dir, name), nil, parser.ParseComments|parser.PackageClauseOnly)
			if err != nil {
				t.Fatalf("%s: %v", rel, err)
			}
			if f.Doc != nil && strings.TrimSpace(f.Doc.Text()) != "" {
				documented = true
			}
		}
		if !documented {
			t.Errorf("%s: package %s has no package doc (add a doc.go)", rel, pkg.Name)
		}
	}
}
