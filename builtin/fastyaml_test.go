package builtin

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/catalog-pipeline/pipeline/internal/gen"
)

// agree fails t when parseFast accepts data and yaml.v3 (parseSlow) reads
// it differently: other entities, other lines, or any error. It returns
// whether the fast path accepted data.
func agree(t testing.TB, data string) bool {
	t.Helper()
	fast, ok := parseFast([]byte(data))
	if !ok {
		return false
	}
	slow, errs := parseSlow([]byte(data), "f.yaml")
	if len(errs) > 0 {
		t.Fatalf("fast path accepted what yaml.v3 refuses (%v):\n%s", errs, data)
	}
	if len(fast) != len(slow) {
		t.Fatalf("fast path read %d entities, yaml.v3 %d:\n%s", len(fast), len(slow), data)
	}
	for i := range fast {
		if fast[i].Line != slow[i].Line || !reflect.DeepEqual(fast[i].Entity, slow[i].Entity) {
			fj, _ := fast[i].Entity.MarshalJSON()
			sj, _ := slow[i].Entity.MarshalJSON()
			t.Fatalf("entity %d differs:\nfast (line %d) %s\nslow (line %d) %s\ninput:\n%s",
				i, fast[i].Line, fj, slow[i].Line, sj, data)
		}
	}
	return true
}

// TestParseFastAgrees holds the fast path to yaml.v3 on the forms it takes
// and checks that it leaves the others to yaml.v3 (fast: false).
func TestParseFastAgrees(t *testing.T) {
	for _, tc := range fastCases {
		t.Run(tc.name, func(t *testing.T) {
			if got := agree(t, tc.data); got != tc.fast {
				t.Errorf("fast path took it: %v, want %v", got, tc.fast)
			}
		})
	}
}

var fastCases = []struct {
	name string
	data string
	fast bool // whether the fast path takes it
}{
	{"entity", "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: a\n  tags:\n    - go\n    - web\nspec:\n  type: service\n  owner: team-a\n", true},
	{"documents and comments", "# head\n---\nkind: A # trailing\nmetadata:\n  # inside\n  name: a\n\n---\n---   \n\nkind: B\nmetadata: {}\n--- # c\n", true},
	{"scalars resolve like yaml.v3", "kind: A\nspec:\n  i: 12\n  n: -3\n  f: 1.5\n  e: 1e3\n  b: true\n  B: False\n  y: yes\n  z: ~\n  nl: null\n  empty:\n  d: 2024-01-02\n  v: 1.2.3\n  u: 1_000\n  s: '12'\n  q: \"true\"\n  m: <<\n", true},
	{"rare scalars go to yaml.v3", "kind: A\nspec:\n  hex: 0x1F\n", false},
	{"infinity goes to yaml.v3", "kind: A\nspec:\n  x: .inf\n", false},
	{"quoted keys and values", "kind: A\nspec:\n  \"200\": 'it''s'\n  '404': \"a # not a comment\"\n  x: ''\n  y: \"\"\n", true},
	{"escape goes to yaml.v3", "kind: A\nspec:\n  x: \"a\\nb\"\n", false},
	{"sequence at the key's column", "kind: A\nspec:\n  list:\n  - a\n  - b\n  next: 1\n", true},
	{"compact mappings in sequences", "kind: A\nspec:\n  links:\n    - url: https://x.example/a\n      title: A\n    -   url: b\n        n: 2\n    - title: c\n      deep:\n        - 1\n        -\n        - - x\n", false},
	{"compact mappings", "kind: A\nspec:\n  links:\n    - url: https://x.example/a\n      title: A\n    -   url: b\n        n: 2\n    -\n      k: v\n    -\n    - x\n", true},
	{"literal block scalars", "kind: A\nspec:\n  clip: |\n    a\n\n      b\n    c\n\n\n  strip: |-\n    x\n  keep: |+\n    y\n\n  after: 1\n  last: |\n    z\n    # not a comment\n  # a comment\n", true},
	{"literal with spaces at the very end", "kind: A\nspec:\n  x: |+\n    a\n\n ", true},
	{"literal at the end", "kind: A\nspec:\n  keep: |+\n    y\n\n", true},
	{"literal without a final newline goes to yaml.v3", "kind: A\nspec:\n  x: |\n    y", false},
	{"literal with leading blank line goes to yaml.v3", "kind: A\nspec:\n  x: |\n\n    y\n", false},
	{"folded goes to yaml.v3", "kind: A\nspec:\n  x: >\n    y\n", false},
	{"flow sequences of scalars", "kind: A\nspec:\n  x: [a, 'b c', \"d\", 1, true, ~]\n  y: [ ]\n  z: [a,b] # c\n  l:\n    - [x]\n", true},
	{"flow mapping goes to yaml.v3", "kind: A\nspec:\n  x: {a: 1}\n", false},
	{"nested flow goes to yaml.v3", "kind: A\nspec:\n  x: [a, [b]]\n", false},
	{"flow trailing comma goes to yaml.v3", "kind: A\nspec:\n  x: [a, b, ]\n", false},
	{"flow colon goes to yaml.v3", "kind: A\nspec:\n  x: [a: b]\n", false},
	{"unterminated flow goes to yaml.v3", "kind: A\nspec:\n  x: [a, b\n", false},
	{"empty flow", "kind: A\nspec:\n  x: []\n  y: {} # c\n", true},
	{"anchors go to yaml.v3", "kind: A\nspec:\n  x: &a 1\n  y: *a\n", false},
	{"multi-line plain goes to yaml.v3", "kind: A\nspec:\n  x: a\n    b\n", false},
	{"duplicate key goes to yaml.v3", "kind: A\nkind: B\n", false},
	{"tab goes to yaml.v3", "kind: A\nspec:\n  x: a\tb\n", false},
	{"CRLF goes to yaml.v3", "kind: A\r\nspec: {}\r\n", false},
	{"second colon goes to yaml.v3", "kind: A\nspec:\n  x: a: b\n", false},
	{"colons inside plain", "kind: A\nspec:\n  url: http://x:8080/a\n  k:v: w\n  t: a -b # c\n", true},
	{"scalar root goes to yaml.v3", "just text\n", false},
	{"sequence root goes to yaml.v3", "- a\n", false},
	{"indented root", "  kind: A\n  spec:\n    x: 1\n", true},
	{"less indented line goes to yaml.v3", "  kind: A\nspec: 1\n", false},
	{"bad indentation goes to yaml.v3", "kind: A\nspec:\n    x: 1\n  y: 2\n", false},
	{"scalar on the next line goes to yaml.v3", "kind: A\nspec:\n  x:\n    1\n", false},
	{"utf-8", "kind: A\nmetadata:\n  title: Zürich — 東京\n", true},
	{"byte order mark goes to yaml.v3", "\ufeffkind: A\n", false},
	{"document end marker goes to yaml.v3", "kind: A\n...\n", false},
	{"directive goes to yaml.v3", "%YAML 1.2\n---\nkind: A\n", false},
	{"bad metadata goes to yaml.v3", "kind: A\nmetadata: 1\n", false},
	{"empty data", "", true},
	{"only comments", "# nothing\n\n", true},
	{"no final newline", "kind: A\nspec:\n  x: 1", true},
}

// TestParseFastTakesGeneratedCatalogs checks that the catalogs the
// benchmarks ingest (and the repository's own) go through the fast path,
// and that it reads them as yaml.v3 does.
func TestParseFastTakesGeneratedCatalogs(t *testing.T) {
	dir := t.TempDir()
	if _, err := gen.Write(dir, gen.Options{N: 3000, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	repo, _ := filepath.Glob("../testdata/catalog/*.yaml")
	files = append(files, repo...)
	if len(files) < 10 {
		t.Fatalf("only %d files", len(files))
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !agree(t, string(data)) && strings.HasPrefix(f, dir) {
			t.Errorf("%s: the fast path left a generated file to yaml.v3", f)
		}
	}
}

// TestParseFastRandom renders random documents in varied block styles,
// some of them damaged, and holds the fast path to yaml.v3 on every one it
// takes; it also checks that it takes most undamaged ones.
func TestParseFastRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	taken, clean := 0, 0
	const n = 4000
	for i := range n {
		doc := randomStream(rng)
		damaged := i%2 == 1
		if damaged {
			doc = damage(rng, doc)
		}
		ok := agree(t, doc)
		if !damaged {
			clean++
			if ok {
				taken++
			}
		}
	}
	t.Logf("the fast path took %d of %d undamaged documents", taken, clean)
	if taken < clean/2 {
		t.Error("the fast path should take at least half")
	}
}

// FuzzParseFast holds the fast path to yaml.v3 on arbitrary input.
func FuzzParseFast(f *testing.F) {
	for _, tc := range fastCases {
		f.Add(tc.data)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		f.Add(randomStream(rng))
	}
	f.Fuzz(func(t *testing.T, data string) { agree(t, data) })
}

// randomStream renders one to three random entity documents.
func randomStream(rng *rand.Rand) string {
	var b strings.Builder
	for d := range 1 + rng.IntN(3) {
		if d > 0 || rng.IntN(3) == 0 {
			b.WriteString(pick(rng, "---\n", "--- # doc\n", "---\n\n"))
		}
		r := &render{rng: rng, b: &b, step: 1 + rng.IntN(4)}
		r.entries(0, map[string]any{
			"kind": "Component",
			"metadata": map[string]any{
				"name": fmt.Sprintf("n%d", rng.IntN(100)),
				"tags": []any{"a", fmt.Sprintf("t%d", rng.IntN(9))},
			},
			"spec": randomMap(rng, 3),
		}, false)
	}
	return b.String()
}

func pick(rng *rand.Rand, s ...string) string { return s[rng.IntN(len(s))] }

func randomMap(rng *rand.Rand, depth int) map[string]any {
	m := map[string]any{}
	for range rng.IntN(5) {
		m[randomKey(rng)] = randomValue(rng, depth-1)
	}
	return m
}

func randomValue(rng *rand.Rand, depth int) any {
	if depth <= 0 {
		return randomScalar(rng)
	}
	switch rng.IntN(6) {
	case 0:
		return randomMap(rng, depth)
	case 1:
		a := make([]any, rng.IntN(4))
		for i := range a {
			a[i] = randomValue(rng, depth-1)
		}
		return a
	}
	return randomScalar(rng)
}

func randomKey(rng *rand.Rand) string {
	return pick(rng, "a", "b", "name", "url", "x y", "200", "true", "~", "k:v", "a#b", "-k",
		"with space ", "é", "1.5", "null", "<<")
}

func randomScalar(rng *rand.Rand) any {
	switch rng.IntN(12) {
	case 0, 1:
		return pick(rng, "1", "-2", "3.25", "1e3", "0x1F", "0o17", "1_000", ".inf", "-.Inf", ".nan",
			"true", "False", "yes", "no", "on", "~", "null", "", "2024-01-02", "2001-12-14t21:59:43.10-05:00",
			"12:30", "1.2.3", "+1", "-", "--", "---", "?", "? x", ":", "- x", "#", "a #b", "a# b",
			"a: b", "a:", "a:b", "[x]", "{}", "[]", "*x", "&x", "!x", "|", ">", "'", "\"", "it's",
			"say \"hi\"", "back\\slash", "%x", "@x", "`x", " lead", "trail ", "ä", "\u2028", "tab\tx")
	case 2, 3:
		return pick(rng, "line1\nline2\n", "one\n", "a\n\nb\n", "keep\n\n", "strip",
			"x\n  more\n", "# not comment\n", "a\n\n\n")
	case 4, 5:
		return rng.IntN(1000)
	}
	return fmt.Sprintf("word%d", rng.IntN(50))
}

// render writes values in block style, choosing among the ways YAML
// allows for each.
type render struct {
	rng  *rand.Rand
	b    *strings.Builder
	step int // indentation step
}

// entries writes m's entries at column col; the first one's indentation is
// already written when firstInline (after a sequence's dash).
func (r *render) entries(col int, m map[string]any, firstInline bool) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys) // map order would make the test differ from run to run
	first := true
	for _, k := range keys {
		if !first || !firstInline {
			r.b.WriteString(strings.Repeat(" ", col))
		}
		first = false
		r.b.WriteString(r.key(k))
		r.b.WriteString(":")
		r.after(col, m[k], true)
		if r.rng.IntN(8) == 0 {
			r.b.WriteString(pick(r.rng, "\n", "# c\n", strings.Repeat(" ", col+1)+"# c\n"))
		}
	}
}

// after writes what follows "key:" or "-" at column col.
func (r *render) after(col int, v any, inMap bool) {
	switch v := v.(type) {
	case map[string]any:
		if len(v) == 0 {
			r.b.WriteString(pick(r.rng, " {}\n", " {} # e\n"))
			return
		}
		r.b.WriteString(pick(r.rng, "\n", " # c\n"))
		r.entries(col+r.step, v, false)
	case []any:
		if len(v) == 0 {
			r.b.WriteString(" []\n")
			return
		}
		if flat(v) && r.rng.IntN(2) == 0 {
			r.b.WriteString(" [")
			for i, x := range v {
				if i > 0 {
					r.b.WriteString(pick(r.rng, ",", ", ", " , "))
				}
				r.b.WriteString(r.flowItem(fmt.Sprint(x)))
			}
			r.b.WriteString("]\n")
			return
		}
		r.b.WriteString("\n")
		c := col + r.step
		if inMap && r.rng.IntN(3) == 0 {
			c = col
		}
		for _, x := range v {
			r.b.WriteString(strings.Repeat(" ", c) + "-")
			if m, ok := x.(map[string]any); ok && len(m) > 0 && r.rng.IntN(2) == 0 {
				pad := 1 + r.rng.IntN(2)
				r.b.WriteString(strings.Repeat(" ", pad))
				r.entries(c+1+pad, m, true)
				continue
			}
			r.after(c, x, false)
		}
	case string:
		r.b.WriteString(" " + r.scalar(col, v))
	case nil:
		r.b.WriteString("\n")
	default:
		r.b.WriteString(fmt.Sprintf(" %v\n", v))
	}
}

// flowItem renders a one-line string as an item of a flow sequence.
func (r *render) flowItem(s string) string { return r.maybeQuoted(s, 4) }

// maybeQuoted renders s single-quoted, double-quoted (without escaping:
// the fast path must refuse what that breaks) or plain, each of the first
// two with a chance of one in n.
func (r *render) maybeQuoted(s string, n int) string {
	switch r.rng.IntN(n) {
	case 0:
		return "'" + strings.ReplaceAll(s, "'", "''") + "'"
	case 1:
		return `"` + s + `"`
	}
	return s
}

// flat says whether a holds only one-line scalars, which can be written
// as a flow sequence.
func flat(a []any) bool {
	for _, x := range a {
		switch x := x.(type) {
		case map[string]any, []any:
			return false
		case string:
			if strings.Contains(x, "\n") {
				return false
			}
		}
	}
	return true
}

func (r *render) key(k string) string { return r.maybeQuoted(k, 6) }

// scalar renders a string and its line break; multi-line ones as literal
// block scalars with the chomping their trailing newlines need.
func (r *render) scalar(col int, s string) string {
	if strings.Contains(s, "\n") {
		body := strings.TrimRight(s, "\n")
		trailing := len(s) - len(body)
		header := "|-"
		switch {
		case trailing == 1:
			header = "|"
		case trailing > 1:
			header = "|+"
		}
		ind := strings.Repeat(" ", col+r.step)
		var b strings.Builder
		b.WriteString(header + "\n")
		for _, l := range strings.Split(body, "\n") {
			if l != "" {
				b.WriteString(ind)
			}
			b.WriteString(l + "\n")
		}
		if trailing > 1 {
			b.WriteString(strings.Repeat("\n", trailing-1))
		}
		return b.String()
	}
	switch r.rng.IntN(4) {
	case 0:
		return "'" + strings.ReplaceAll(s, "'", "''") + "'\n"
	case 1:
		return `"` + s + "\"\n"
	}
	return s + pick(r.rng, "\n", " # c\n")
}

// damage makes one to three small edits to doc: a byte removed, inserted
// or changed, a line's indentation moved, a line repeated.
func damage(rng *rand.Rand, doc string) string {
	for range 1 + rng.IntN(3) {
		if doc == "" {
			return doc
		}
		i := rng.IntN(len(doc))
		switch rng.IntN(5) {
		case 0:
			doc = doc[:i] + doc[i+1:]
		case 1:
			doc = doc[:i] + pick(rng, " ", ":", "-", "#", "\n", "'", "\"", "|", "[", "{", "a", ">", "  ", "- ", ": ", "\t") + doc[i:]
		case 2:
			doc = doc[:i] + pick(rng, " ", "x", "\n") + doc[i+1:]
		case 3:
			lines := strings.Split(doc, "\n")
			j := rng.IntN(len(lines))
			if rng.IntN(2) == 0 {
				lines[j] = " " + lines[j]
			} else {
				lines[j] = strings.TrimPrefix(lines[j], " ")
			}
			doc = strings.Join(lines, "\n")
		default:
			lines := strings.Split(doc, "\n")
			j := rng.IntN(len(lines))
			lines = append(lines[:j+1], lines[j:]...)
			doc = strings.Join(lines, "\n")
		}
	}
	return doc
}
