package itest

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func readme(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestReadmeFirstScreen keeps the first code block to exactly two commands:
// run the server, run the tests.
func TestReadmeFirstScreen(t *testing.T) {
	r := readme(t)
	_, rest, _ := strings.Cut(r, "```sh\n")
	block, _, _ := strings.Cut(rest, "```")
	lines := strings.Split(strings.TrimSpace(block), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "go run ./cmd/hasses ") || !strings.HasPrefix(lines[1], "go test -race -timeout 30m ./...") {
		t.Errorf("first block %q, want the server command and go test -race -timeout 30m ./...", lines)
	}
	if !strings.Contains(r, "Linux only") || !strings.Contains(r, "go build -o hasses ./cmd/hasses") {
		t.Error("README does not say it builds on Linux only, or how to build the binary")
	}
}

// TestReadmeOptions checks that the options table names every option that
// `hasses -h` lists.
func TestReadmeOptions(t *testing.T) {
	_, help, _ := runHasses(t, nil, "-h")
	r := readme(t)
	_, table, _ := strings.Cut(r, "## Options")
	table, _, _ = strings.Cut(table, "\n## ")
	n := 0
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(help, -1) {
		n++
		if !regexp.MustCompile("[` ]-" + regexp.QuoteMeta(m[1]) + "[=` ]").MatchString(table) {
			t.Errorf("README's options table lacks -%s", m[1])
		}
	}
	if n < 40 {
		t.Errorf("found only %d options in the help", n)
	}
}

// TestReadmeLayout checks that the Layout section names every package and
// top-level directory with code.
func TestReadmeLayout(t *testing.T) {
	_, layout, _ := strings.Cut(readme(t), "## Layout")
	dirs := []string{"publish", "bench", "itest", "examples", "docs"}
	for _, parent := range []string{"cmd", "internal"} {
		entries, err := os.ReadDir(filepath.Join("..", parent))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.IsDir() {
				dirs = append(dirs, parent+"/"+e.Name())
			}
		}
	}
	for _, d := range dirs {
		if !strings.Contains(layout, "`"+d+"`") {
			t.Errorf("README's Layout lacks `%s`", d)
		}
	}
}

// TestReadmeGoSnippet keeps the README's Go snippet compiling: each of its
// lines is a line of publish/example_test.go, which go vet and go test
// compile.
func TestReadmeGoSnippet(t *testing.T) {
	_, rest, ok := strings.Cut(readme(t), "```go\n")
	if !ok {
		t.Fatal("README has no Go snippet")
	}
	snippet, _, _ := strings.Cut(rest, "```")
	b, err := os.ReadFile("../publish/example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	example := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		example[strings.TrimSpace(l)] = true
	}
	for _, l := range strings.Split(strings.TrimSpace(snippet), "\n") {
		if !example[strings.TrimSpace(l)] {
			t.Errorf("README's Go line %q is not in publish/example_test.go", l)
		}
	}
}

// TestGoVersionAgrees keeps go.mod's go line and the README's "Go 1.N or
// later" the same release.
func TestGoVersionAgrees(t *testing.T) {
	b, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (1\.\d+)(\.\d+)?$`).FindStringSubmatch(string(b))
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	if m[2] != "" && m[2] != ".0" {
		t.Errorf("go.mod asks for go %s%s: the README promises any %s", m[1], m[2], m[1])
	}
	if !strings.Contains(readme(t), "Go "+m[1]+" or later") {
		t.Errorf("README does not say Go %s or later, as go.mod", m[1])
	}
}
