package builtin

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestParseEntities(t *testing.T) {
	tests := []struct {
		name  string
		data  string
		names []string // names of the entities, in order
		lines []int    // their lines
		errs  []string // substrings of the errors, in order
	}{
		{
			name: "multi-document with a bad document in the middle",
			data: `apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: first
---
- not
- an object
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: third
`,
			names: []string{"first", "third"},
			lines: []int{1, 9},
			errs:  []string{"cat.yaml:6: expected an object at the root of the document, got array"},
		},
		{
			name:  "leading, trailing and empty documents are skipped",
			data:  "---\n---\nkind: A\nmetadata: {name: a}\n---\n~\n---\n",
			names: []string{"a"},
			lines: []int{3},
		},
		{
			name: "scalar roots",
			data: "just text\n---\n42\n---\ntrue\n",
			errs: []string{
				"cat.yaml:1: expected an object at the root of the document, got string",
				"cat.yaml:3: expected an object at the root of the document, got number",
				"cat.yaml:5: expected an object at the root of the document, got boolean",
			},
		},
		{
			name: "syntax error stops the stream, documents before it load",
			data: `kind: A
metadata: {name: a}
---
kind: B
metadata:
  name: b
   bad: indentation
---
kind: C
metadata: {name: c}
`,
			names: []string{"a"},
			lines: []int{1},
			errs:  []string{"cat.yaml:7: yaml: mapping values are not allowed in this context"},
		},
		{
			name:  "field of the wrong type names the field and its line",
			data:  "kind: A\nmetadata:\n  name: a\n  labels:\n    team: 12\n---\nkind: B\nmetadata: {name: b}\n",
			names: []string{"b"},
			lines: []int{7},
			errs:  []string{"cat.yaml:5: metadata.labels.team: must be a string, got number"},
		},
		{
			name: "field path through dotted keys and arrays",
			data: "kind: A\nmetadata:\n  name: a\n  annotations:\n    backstage.io/x: ok\n    backstage.io/y: [1]\n",
			errs: []string{"cat.yaml:6: metadata.annotations.backstage.io/y: must be a string, got array"},
		},
		{
			name: "field path into an array",
			data: "kind: A\nmetadata:\n  name: a\n  links:\n    - url: https://a\n    - title: no url\n      icon: x\n",
			errs: []string{"cat.yaml:6: metadata.links[1].url: is required"},
		},
		{
			name: "duplicate keys",
			data: "kind: A\nmetadata:\n  name: a\n  name: b\n",
			errs: []string{`cat.yaml:4: yaml: mapping key "name" already defined`},
		},
		{
			name:  "JSON",
			data:  `{"apiVersion": "backstage.io/v1alpha1", "kind": "Component", "metadata": {"name": "json-one", "tags": ["a", "b"]}, "spec": {"type": "service", "n": 1.5}}`,
			names: []string{"json-one"},
			lines: []int{1},
		},
		{
			name:  "JSON indented with tabs over several lines",
			data:  "{\n\t\"kind\": \"Component\",\n\t\"metadata\": {\n\t\t\"name\": \"tabbed\"\n\t}\n}\n",
			names: []string{"tabbed"},
			lines: []int{1},
		},
		{
			name: "alias cycle is an error, not a crash",
			data: "kind: A\nmetadata: &m\n  name: a\n  self: *m\n",
			errs: []string{"cat.yaml:4: yaml: anchor \"m\" contains itself"},
		},
		{
			name: "billion laughs is refused",
			data: laughs(),
			errs: []string{"expands aliases to more than"},
		},
		{
			name: "unknown anchor",
			data: "kind: A\nmetadata: *nope\n",
			errs: []string{"cat.yaml:2: yaml: unknown anchor 'nope' referenced"},
		},
		{
			name: "collection as a key",
			data: "kind: A\n? [a, b]\n: x\n",
			errs: []string{"cat.yaml:2: yaml: mapping keys must be scalars, got an array"},
		},
		{name: "empty input", data: ""},
		{name: "only comments", data: "# nothing here\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, errs := ParseEntities([]byte(tc.data), "cat.yaml")
			var names []string
			var lines []int
			for _, pe := range got {
				names = append(names, pe.Entity.Metadata.Name)
				lines = append(lines, pe.Line)
			}
			if !reflect.DeepEqual(names, tc.names) || !reflect.DeepEqual(lines, tc.lines) {
				t.Errorf("entities %v at lines %v, want %v at %v", names, lines, tc.names, tc.lines)
			}
			if len(errs) != len(tc.errs) {
				t.Fatalf("errors %q, want %d matching %q", errs, len(tc.errs), tc.errs)
			}
			for i, err := range errs {
				if !strings.Contains(err.Error(), tc.errs[i]) {
					t.Errorf("error %d = %q, want it to contain %q", i, err, tc.errs[i])
				}
				var pe *ParseError
				if !errors.As(err, &pe) || pe.Source != "cat.yaml" {
					t.Errorf("error %d is not a *ParseError naming the source: %#v", i, err)
				}
			}
		})
	}
}

func laughs() string {
	var b strings.Builder
	b.WriteString("kind: A\nmetadata:\n  name: a\n  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	for i := 1; i < 9; i++ {
		fmt.Fprintf(&b, "  l%d: &l%d [*l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	return b.String()
}

// TestParseEntitiesValues checks that values come out JSON-shaped and as
// Backstage (YAML 1.2 core schema) reads them: dates stay strings.
func TestParseEntitiesValues(t *testing.T) {
	data := `apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: values
  annotations:
    created: 2024-01-01
  lifecycle-date: 2024-01-01T10:00:00Z
spec:
  date: 2024-01-01
  datetime: 2001-12-14t21:59:43.10-05:00
  quotedDate: "2024-01-01"
  int: 42
  negative: -7
  float: 1.5
  exp: 1e3
  hex: 0x1F
  big: 18446744073709551615
  bigger: 123456789012345678901234567890
  inf: .inf
  nan: .NaN
  yes: yes
  on: on
  t: true
  f: False
  nothing: ~
  empty:
  octalish: 012
  tagged: !!str 123
  taggedInt: !!int "12"
  custom: !thing value
  binary: !!binary aGVsbG8=
  merge:
    <<: {a: 1}
  anchors:
    base: &b {x: 1}
    copy: *b
  1: numeric key
  true: bool key
  list: [1, two, 3.0, null]
`
	got, errs := ParseEntities([]byte(data), "v.yaml")
	if len(errs) != 0 || len(got) != 1 {
		t.Fatalf("got %d entities, errors %v", len(got), errs)
	}
	e := got[0].Entity
	if e.Metadata.Annotations["created"] != "2024-01-01" {
		t.Errorf("annotation date = %#v", e.Metadata.Annotations["created"])
	}
	if v := e.Metadata.Extra["lifecycle-date"]; v != "2024-01-01T10:00:00Z" {
		t.Errorf("metadata timestamp = %#v (%T)", v, v)
	}
	want := map[string]any{
		"date":       "2024-01-01",
		"datetime":   "2001-12-14t21:59:43.10-05:00",
		"quotedDate": "2024-01-01",
		"int":        42,
		"negative":   -7,
		"float":      1.5,
		"exp":        1000.0,
		"hex":        31,
		"big":        float64(18446744073709551615),
		"bigger":     1.2345678901234568e29,
		"inf":        ".inf",
		"nan":        ".NaN",
		"yes":        "yes",
		"on":         "on",
		"t":          true,
		"f":          false,
		"nothing":    nil,
		"empty":      nil,
		"octalish":   12,
		"tagged":     "123",
		"taggedInt":  12,
		"custom":     "value",
		"binary":     "aGVsbG8=",
		"merge":      map[string]any{"<<": map[string]any{"a": 1}},
		"anchors":    map[string]any{"base": map[string]any{"x": 1}, "copy": map[string]any{"x": 1}},
		"1":          "numeric key",
		"true":       "bool key",
		"list":       []any{1, "two", 3.0, nil},
	}
	for k, w := range want {
		if g, ok := e.Spec[k]; !ok || !reflect.DeepEqual(g, w) {
			t.Errorf("spec.%s = %#v (%T), want %#v (%T)", k, g, g, w, w)
		}
	}
	for k := range e.Spec {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected spec key %q", k)
		}
	}
	// Aliased values must be copies: changing one must not change the
	// other.
	anchors := e.Spec["anchors"].(map[string]any)
	anchors["copy"].(map[string]any)["x"] = 2
	if anchors["base"].(map[string]any)["x"] != 1 {
		t.Error("alias expansion shares maps")
	}
}

// BenchmarkParseEntities parses a stream of 100 documents of two sizes:
// "typical" is the size of Backstage's own example catalog-info.yaml files,
// "rich" has annotations, labels, tags, links and relations on every entity.
// The docs/s metric is per core when run with -cpu 1.
func BenchmarkParseEntities(b *testing.B) {
	b.Run("typical", func(b *testing.B) { benchParse(b, typicalDoc) })
	b.Run("rich", func(b *testing.B) { benchParse(b, richDoc) })
}

const typicalDoc = `apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: artist-web-%[1]d
  description: The place to be, for great artists
  annotations:
    github.com/project-slug: example/artist-web-%[1]d
spec:
  type: website
  lifecycle: production
  owner: artist-relations-team
  system: artist-engagement-portal
`

const richDoc = `apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: service-%[1]d
  title: Service number %[1]d
  description: A service that does things for other services, with a long description.
  annotations:
    github.com/project-slug: example/service-%[1]d
    backstage.io/techdocs-ref: dir:.
    pagerduty.com/service-id: P%[1]dX
  labels:
    tier: "1"
  tags: [go, grpc, payments]
  links:
    - url: https://dashboard.example.com/service-%[1]d
      title: Dashboard
      icon: dashboard
spec:
  type: service
  lifecycle: production
  owner: team-%[1]d
  system: payments
  dependsOn:
    - resource:default/db-%[1]d
    - component:default/auth
  providesApis: [service-%[1]d-api]
`

func benchParse(b *testing.B, doc string) {
	var sb strings.Builder
	const n = 100
	for i := range n {
		if i > 0 {
			sb.WriteString("---\n")
		}
		fmt.Fprintf(&sb, doc, i)
	}
	data := []byte(sb.String())
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		got, errs := ParseEntities(data, "bench.yaml")
		if len(got) != n || len(errs) != 0 {
			b.Fatalf("got %d entities, %v", len(got), errs)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "docs/s")
}
