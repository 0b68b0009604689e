// Package golden compares test output with files under testdata/ and
// rewrites them when tests run with -update. Every test package imports it
// (at least blank), so that `go test ./... -update` is accepted by all of
// them.
package golden

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// Update is set by `go test ... -update`: golden files are rewritten from
// the current output instead of compared.
var Update = flag.Bool("update", false, "rewrite golden files under testdata/ from the current output")

// Check compares got with the golden file at path (relative to the test's
// package folder), or rewrites the file under -update.
func Check(t testing.TB, path string, got []byte) {
	t.Helper()
	if *Update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run `go test -update` to create it): %v", err)
	}
	if !bytes.Equal(want, got) {
		t.Errorf("output differs from %s (run `go test ./... -update` to accept it):\n%s", path, diff(want, got))
	}
}

// diff shows the first differing lines, enough to see what changed without
// a diff library.
func diff(want, got []byte) string {
	wl := bytes.Split(want, []byte("\n"))
	gl := bytes.Split(got, []byte("\n"))
	var b bytes.Buffer
	shown := 0
	for i := 0; i < max(len(wl), len(gl)) && shown < 10; i++ {
		var w, g []byte
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if !bytes.Equal(w, g) {
			b.WriteString("line ")
			b.WriteString(strconv.Itoa(i + 1))
			b.WriteString(":\n  want: ")
			b.Write(w)
			b.WriteString("\n  got:  ")
			b.Write(g)
			b.WriteString("\n")
			shown++
		}
	}
	return b.String()
}
