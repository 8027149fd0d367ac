package billing

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Every action constant the package declares (Audit* string constants, and
// the ledger's Entry* types as ledger.<type>) is in AuditActions, so the
// audit log can be filtered by each action it records. Reads the package's
// source: a new constant fails here until it is listed.
func TestAuditActionsComplete(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	seen := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			d, ok := n.(*ast.GenDecl)
			if !ok || d.Tok != token.CONST {
				return true
			}
			for _, sp := range d.Specs {
				vs := sp.(*ast.ValueSpec)
				for i, id := range vs.Names {
					if i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						continue
					}
					v, _ := strconv.Unquote(lit.Value)
					var action string
					switch {
					case strings.HasPrefix(id.Name, "Audit"):
						action = v
					case strings.HasPrefix(id.Name, "Entry") && name == "ledger.go":
						action = "ledger." + v
					default:
						continue
					}
					seen++
					if !slices.Contains(AuditActions, action) {
						t.Errorf("%s (%s = %q, %s) is not in AuditActions: the audit log can't be filtered by it", action, id.Name, v, name)
					}
				}
			}
			return false
		})
	}
	if seen < 30 {
		t.Fatalf("found only %d action constants: the test reads the wrong files", seen)
	}
	for i, a := range AuditActions {
		if slices.Index(AuditActions, a) != i {
			t.Errorf("%s is listed twice", a)
		}
	}
}
