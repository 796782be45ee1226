package smtpd

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// The list of every reply the server can send, at the end of
// STATE-TABLE.md, is made from this package's source: every Reply literal
// and every multiline reply, with the file and function or variable that
// holds it. An auditor finds each reply code once, with where it comes
// from; a reply added to the code and not to the document fails
// TestStateTableDocument.

// sentReply is one reply found in the source.
type sentReply struct {
	code     int
	enhanced string // the enhanced status code, or how it is made
	text     string // the text, or the Go expression that makes it
	where    string // file: function or variable
}

// repliesInSource scans the package's non-test files for the replies the
// server sends.
func repliesInSource(t *testing.T) []sentReply {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var out []sentReply
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			for _, part := range declParts(d) {
				ast.Inspect(part.node, func(n ast.Node) bool {
					if r, ok := replyOf(fset, n); ok {
						r.where = name + ": " + part.name
						out = append(out, r)
					}
					return true
				})
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].code < out[j].code })
	return out
}

// declPart is a named part of a declaration: a function, a method as
// Type.Method, or one spec of a var block.
type declPart struct {
	name string
	node ast.Node
}

func declParts(d ast.Decl) []declPart {
	switch d := d.(type) {
	case *ast.FuncDecl:
		name := d.Name.Name
		if d.Recv != nil {
			t := d.Recv.List[0].Type
			if s, ok := t.(*ast.StarExpr); ok {
				t = s.X
			}
			name = t.(*ast.Ident).Name + "." + name
		}
		return []declPart{{name, d}}
	case *ast.GenDecl:
		var parts []declPart
		for _, spec := range d.Specs {
			if v, ok := spec.(*ast.ValueSpec); ok {
				parts = append(parts, declPart{v.Names[0].Name, v})
			}
		}
		return parts
	}
	return nil
}

// replyOf returns the reply that n makes: a Reply literal with a constant
// code, or a call of replyLines with one.
func replyOf(fset *token.FileSet, n ast.Node) (sentReply, bool) {
	var code ast.Expr
	var r sentReply
	switch n := n.(type) {
	case *ast.CompositeLit:
		if id, ok := n.Type.(*ast.Ident); !ok || id.Name != "Reply" {
			return r, false
		}
		for _, e := range n.Elts {
			kv := e.(*ast.KeyValueExpr)
			switch kv.Key.(*ast.Ident).Name {
			case "Code":
				code = kv.Value
			case "Enhanced":
				r.enhanced = source(fset, kv.Value)
			case "Text":
				r.text = source(fset, kv.Value)
			}
		}
	case *ast.CallExpr:
		sel, ok := n.Fun.(*ast.SelectorExpr)
		if !ok || sel.Sel.Name != "replyLines" {
			return r, false
		}
		code, r.enhanced, r.text = n.Args[0], source(fset, n.Args[1]), "lines: "+source(fset, n.Args[3])
	default:
		return r, false
	}
	lit, ok := code.(*ast.BasicLit)
	if !ok {
		return r, false // a reply made from another: Code: code
	}
	r.code, _ = strconv.Atoi(lit.Value)
	return r, true
}

// source returns an expression as written, a string literal unquoted.
func source(fset *token.FileSet, e ast.Expr) string {
	if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING {
		if s, err := strconv.Unquote(lit.Value); err == nil {
			return s
		}
	}
	src, _ := os.ReadFile(fset.Position(e.Pos()).Filename)
	expr := string(src[fset.Position(e.Pos()).Offset:fset.Position(e.End()).Offset])
	return strings.Join(strings.Fields(expr), " ")
}

// writeReplies writes the replies as the last section of STATE-TABLE.md.
func writeReplies(b *bytes.Buffer, replies []sentReply) {
	b.WriteString("\nEvery reply the server sends, found in this package's source by\n")
	b.WriteString("replies_test.go, with the file and the function or variable that makes it;\n")
	b.WriteString("the comment there says why, with its RFC section. A Go expression stands\n")
	b.WriteString("for text made at run time. A callback's replies are the callback's.\n\n")
	b.WriteString("| code | enhanced | text | where |\n| --- | --- | --- | --- |\n")
	cell := func(s string) string {
		if s == "" {
			return ""
		}
		return "`" + strings.ReplaceAll(s, "|", `\|`) + "`"
	}
	for _, r := range replies {
		fmt.Fprintf(b, "| %d | %s | %s | %s |\n", r.code, cell(r.enhanced), cell(r.text), r.where)
	}
}

// TestRepliesInSource: the scan finds replies of every class the server
// uses, so that an empty or broken scan cannot pass for a short list.
func TestRepliesInSource(t *testing.T) {
	classes := map[int]int{}
	for _, r := range repliesInSource(t) {
		classes[r.code/100]++
	}
	for class := 2; class <= 5; class++ {
		if classes[class] == 0 {
			t.Errorf("no %dyz reply found in the source: %v", class, classes)
		}
	}
}
