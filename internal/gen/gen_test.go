package gen

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2/hclparse"
	"go.yaml.in/yaml/v3"
)

func TestWriteIsDeterministic(t *testing.T) {
	o := Options{N: 500, Seed: 42, EntitiesPerFile: 37}
	a, b := t.TempDir(), t.TempDir()
	sa, err := Write(a, o)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := Write(b, o)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(sa) != fmt.Sprint(sb) {
		t.Errorf("stats differ: %+v vs %+v", sa, sb)
	}
	fa, fb := readDir(t, a), readDir(t, b)
	if !slices.Equal(sortedKeys(fa), sortedKeys(fb)) {
		t.Fatalf("file sets differ: %v vs %v", sortedKeys(fa), sortedKeys(fb))
	}
	for name, content := range fa {
		if !bytes.Equal(content, fb[name]) {
			t.Errorf("%s differs between two runs with the same seed", name)
		}
	}

	// Another seed gives another catalog of the same size.
	c := t.TempDir()
	sc, err := Write(c, Options{N: 500, Seed: 43, EntitiesPerFile: 37})
	if err != nil {
		t.Fatal(err)
	}
	if sc.Entities != sa.Entities {
		t.Errorf("seed changed the entity count: %d vs %d", sc.Entities, sa.Entities)
	}
	if bytes.Equal(readDir(t, c)["entities-0000.yaml"], fa["entities-0000.yaml"]) {
		t.Error("seeds 42 and 43 produced the same first file")
	}
}

func TestWriteKindMix(t *testing.T) {
	for _, n := range []int{1000, 2345} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			dir := t.TempDir()
			st, err := Write(dir, Options{N: n, Seed: 7})
			if err != nil {
				t.Fatal(err)
			}
			if st.Entities != n {
				t.Errorf("Entities = %d, want %d", st.Entities, n)
			}
			want := map[string]float64{
				"Group": shareGroup, "User": shareUser, "Domain": shareDomain, "System": shareSystem,
				"Component": 0.45, "API": shareAPI, "Resource": shareResource,
			}
			sum := 0
			for kind, k := range st.ByKind {
				sum += k
				if kind == "Location" {
					if k != 1 {
						t.Errorf("%d Locations, want 1", k)
					}
					continue
				}
				share, ok := want[kind]
				if !ok {
					t.Errorf("unexpected kind %s", kind)
					continue
				}
				if got := float64(k) / float64(st.Entities); math.Abs(got-share) > 0.01 {
					t.Errorf("%s: %d entities (%.3f), want share %.2f", kind, k, got, share)
				}
			}
			if sum != st.Entities {
				t.Errorf("ByKind sums to %d, Entities is %d", sum, st.Entities)
			}
			got := parseCatalog(t, dir)
			if len(got.entities) != st.Entities {
				t.Errorf("parsed %d entities, Stats says %d", len(got.entities), st.Entities)
			}
			for kind, k := range st.ByKind {
				if got.byKind[kind] != k {
					t.Errorf("parsed %d %s, Stats says %d", got.byKind[kind], kind, k)
				}
			}
			if got.files != st.Files {
				t.Errorf("parsed %d YAML files, Stats says %d", got.files, st.Files)
			}
		})
	}
}

// TestWriteCatalogIsValid parses every file, checks each entity against the
// rules the builtin kinds enforce, and resolves every ref.
func TestWriteCatalogIsValid(t *testing.T) {
	dir := t.TempDir()
	st, err := Write(dir, Options{N: 3000, Seed: 1, EntitiesPerFile: 250})
	if err != nil {
		t.Fatal(err)
	}
	cat := parseCatalog(t, dir)

	// The Location lists exactly the entity files, sorted.
	var want []string
	for _, f := range cat.entityFiles {
		want = append(want, "./"+f)
	}
	slices.Sort(want)
	if !slices.Equal(cat.targets, want) {
		t.Errorf("Location targets %v\nwant %v", cat.targets, want)
	}
	if !slices.IsSorted(cat.targets) {
		t.Errorf("targets not sorted: %v", cat.targets)
	}

	for _, e := range cat.entities {
		checkEntity(t, e)
	}

	// Every ref resolves, and the distinct relations match Stats.
	edges := map[string]bool{}
	for _, e := range cat.entities {
		for _, r := range refsOf(e) {
			target, err := parseRef(r.value, r.defaultKind, "default")
			if err != nil {
				t.Errorf("%s: %s: %v", e.ref, r.field, err)
				continue
			}
			if !cat.refs[target] {
				t.Errorf("%s: %s points at %s, which was not generated", e.ref, r.field, target)
			}
			// Store each relation in one canonical direction so that a
			// relation declared from both ends counts once.
			src, typ, dst := e.ref, r.relation, target
			if rev, ok := canonical[typ]; ok {
				src, typ, dst = dst, rev, src
			}
			edges[src+" "+typ+" "+dst] = true
		}
	}
	if len(edges) != st.Relations {
		t.Errorf("found %d distinct relations, Stats.Relations = %d", len(edges), st.Relations)
	}
	avg := 2 * float64(len(edges)) / float64(len(cat.entities))
	t.Logf("%d entities, %d relations both ways, %.2f per entity", len(cat.entities), 2*len(edges), avg)
	if avg < 5 || avg > 8 {
		t.Errorf("%.2f relations per entity (both directions), want between 5 and 8", avg)
	}
}

func TestWritePipelineHCL(t *testing.T) {
	dir := t.TempDir()
	if _, err := Write(dir, Options{N: MinN, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(dir, "pipeline.hcl"), "../../pipelines/example.hcl"} {
		f, diags := hclparse.NewParser().ParseHCLFile(path)
		if diags.HasErrors() {
			t.Errorf("%s: %s", path, diags.Error())
			continue
		}
		src := string(f.Bytes)
		for _, s := range []string{`allow_files`, `location "file"`, `stage "placeholders" {}`,
			`stage "builtin-kinds" {}`, `stage "file" {}`, `stage "url" {}`, `stage "annotate-location" {}`} {
			if !strings.Contains(src, s) {
				t.Errorf("%s lacks %s", path, s)
			}
		}
	}
	src, _ := os.ReadFile(filepath.Join(dir, "pipeline.hcl"))
	for _, s := range []string{`pipeline "generated"`, `allow_files = ["."]`, `target = "./catalog-info.yaml"`} {
		if !strings.Contains(string(src), s) {
			t.Errorf("pipeline.hcl lacks %s", s)
		}
	}
}

func TestWriteRejectsBadOptions(t *testing.T) {
	for _, o := range []Options{{N: MinN - 1}, {N: 100, EntitiesPerFile: -1}} {
		if _, err := Write(t.TempDir(), o); err == nil {
			t.Errorf("Write(%+v) succeeded", o)
		}
	}
	// The smallest catalog still has every kind.
	st, err := Write(t.TempDir(), Options{N: MinN})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"Group", "User", "Domain", "System", "Component", "API", "Resource", "Location"} {
		if st.ByKind[k] == 0 {
			t.Errorf("N=%d: no %s", MinN, k)
		}
	}
}

func BenchmarkWrite10k(b *testing.B) {
	dir := b.TempDir()
	var st Stats
	for b.Loop() {
		var err error
		if st, err = Write(dir, Options{N: 10_000, Seed: 1}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(st.Entities)*float64(b.N)/b.Elapsed().Seconds(), "entities/s")
}

// --- helpers: a small, independent reader of the generated catalog ---

type entity struct {
	file, kind, name, namespace string
	ref                         string // kind:namespace/name, lowercased
	doc                         map[string]any
}

type parsed struct {
	entities    []entity
	byKind      map[string]int
	refs        map[string]bool
	targets     []string // of the root Location
	entityFiles []string
	files       int
}

func readDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, de := range des {
		b, err := os.ReadFile(filepath.Join(dir, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[de.Name()] = b
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// parseCatalog decodes every YAML file of dir as a stream of mappings.
func parseCatalog(t *testing.T, dir string) parsed {
	t.Helper()
	p := parsed{byKind: map[string]int{}, refs: map[string]bool{}}
	files := readDir(t, dir)
	for _, name := range sortedKeys(files) {
		if !strings.HasSuffix(name, ".yaml") {
			continue
		}
		p.files++
		if name != "catalog-info.yaml" {
			p.entityFiles = append(p.entityFiles, name)
		}
		dec := yaml.NewDecoder(bytes.NewReader(files[name]))
		for i := 0; ; i++ {
			var node yaml.Node
			err := dec.Decode(&node)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: document %d: %v", name, i, err)
			}
			if len(node.Content) != 1 || node.Content[0].Kind != yaml.MappingNode {
				t.Fatalf("%s: document %d is not a mapping", name, i)
			}
			var doc map[string]any
			if err := node.Decode(&doc); err != nil {
				t.Fatalf("%s: document %d: %v", name, i, err)
			}
			e := entity{file: name, doc: doc}
			e.kind, _ = doc["kind"].(string)
			md, _ := doc["metadata"].(map[string]any)
			e.name, _ = md["name"].(string)
			e.namespace, _ = md["namespace"].(string)
			if e.namespace == "" {
				e.namespace = "default"
			}
			e.ref = strings.ToLower(e.kind + ":" + e.namespace + "/" + e.name)
			if p.refs[e.ref] {
				t.Errorf("%s: %s defined twice", name, e.ref)
			}
			p.refs[e.ref] = true
			p.byKind[e.kind]++
			p.entities = append(p.entities, e)
			if e.kind == "Location" {
				spec, _ := doc["spec"].(map[string]any)
				for _, x := range asList(spec["targets"]) {
					s, _ := x.(string)
					p.targets = append(p.targets, s)
				}
			}
		}
	}
	return p
}

func asList(v any) []any { l, _ := v.([]any); return l }

var (
	nameRE      = regexp.MustCompile(`^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`)
	namespaceRE = regexp.MustCompile(`^[a-z0-9]+(?:-+[a-z0-9]+)*$`)
	tagRE       = regexp.MustCompile(`^[a-z0-9:+#]+(-[a-z0-9:+#]+)*$`)
)

// required lists the spec fields each builtin kind must have.
var required = map[string][]string{
	"Component": {"type", "lifecycle", "owner"},
	"API":       {"type", "lifecycle", "owner", "definition"},
	"Resource":  {"type", "owner"},
	"System":    {"owner"},
	"Domain":    {"owner"},
	"Group":     {"type", "children"},
	"User":      {"memberOf"},
	"Location":  {},
}

func checkEntity(t *testing.T, e entity) {
	t.Helper()
	if e.doc["apiVersion"] != "backstage.io/v1alpha1" {
		t.Errorf("%s: apiVersion %v", e.ref, e.doc["apiVersion"])
	}
	for k := range e.doc {
		if !slices.Contains([]string{"apiVersion", "kind", "metadata", "spec"}, k) {
			t.Errorf("%s: unexpected root key %s", e.ref, k)
		}
	}
	if len(e.name) > 63 || !nameRE.MatchString(e.name) || e.name != strings.ToLower(e.name) {
		t.Errorf("%s: bad name %q", e.ref, e.name)
	}
	if !namespaceRE.MatchString(e.namespace) {
		t.Errorf("%s: bad namespace %q", e.ref, e.namespace)
	}
	md := e.doc["metadata"].(map[string]any)
	for _, tag := range asList(md["tags"]) {
		s, _ := tag.(string)
		if len(s) > 63 || !tagRE.MatchString(s) {
			t.Errorf("%s: bad tag %q", e.ref, s)
		}
	}
	for _, l := range asList(md["links"]) {
		m, _ := l.(map[string]any)
		if u, _ := m["url"].(string); !strings.HasPrefix(u, "https://") {
			t.Errorf("%s: bad link %v", e.ref, l)
		}
	}
	spec, ok := e.doc["spec"].(map[string]any)
	if !ok {
		t.Errorf("%s: no spec", e.ref)
		return
	}
	fields, ok := required[e.kind]
	if !ok {
		t.Errorf("%s: unknown kind", e.ref)
	}
	for _, f := range fields {
		switch v := spec[f].(type) {
		case string:
			if v == "" {
				t.Errorf("%s: spec.%s is empty", e.ref, f)
			}
		case []any:
		default:
			t.Errorf("%s: spec.%s missing or of type %T", e.ref, f, v)
		}
	}
	if e.kind == "API" {
		text, _ := spec["definition"].(string)
		var def map[string]any
		if err := yaml.Unmarshal([]byte(text), &def); err != nil || def["openapi"] == nil {
			t.Errorf("%s: definition is not OpenAPI: %v", e.ref, err)
		}
	}
}

type refField struct {
	field, value, defaultKind, relation string
}

// relationFields maps kind and spec field to the default kind of the target
// and the forward relation type (reference §3.5).
var relationFields = map[string]map[string][2]string{
	"Component": {"owner": {"group", "ownedBy"}, "system": {"system", "partOf"},
		"subcomponentOf": {"component", "partOf"}, "providesApis": {"api", "providesApi"},
		"consumesApis": {"api", "consumesApi"}, "dependsOn": {"", "dependsOn"}},
	"API":      {"owner": {"group", "ownedBy"}, "system": {"system", "partOf"}},
	"Resource": {"owner": {"group", "ownedBy"}, "system": {"system", "partOf"}, "dependsOn": {"", "dependsOn"}},
	"System":   {"owner": {"group", "ownedBy"}, "domain": {"domain", "partOf"}},
	"Domain":   {"owner": {"group", "ownedBy"}, "subdomainOf": {"domain", "partOf"}},
	"Group":    {"parent": {"group", "childOf"}, "children": {"group", "parentOf"}, "members": {"user", "hasMember"}},
	"User":     {"memberOf": {"group", "memberOf"}},
}

// canonical maps a relation type to its reverse where the reverse is the
// direction edges are stored in.
var canonical = map[string]string{"parentOf": "childOf", "hasMember": "memberOf"}

func refsOf(e entity) []refField {
	spec, _ := e.doc["spec"].(map[string]any)
	var out []refField
	for field, def := range relationFields[e.kind] {
		switch v := spec[field].(type) {
		case string:
			out = append(out, refField{field, v, def[0], def[1]})
		case []any:
			for _, x := range v {
				s, _ := x.(string)
				out = append(out, refField{field, s, def[0], def[1]})
			}
		}
	}
	return out
}

// parseRef parses [kind:][namespace/]name into the lowercased full form.
func parseRef(s, defaultKind, defaultNamespace string) (string, error) {
	kind, rest := defaultKind, s
	if i := strings.IndexAny(s, ":/"); i >= 0 && s[i] == ':' {
		kind, rest = s[:i], s[i+1:]
	}
	ns, name := defaultNamespace, rest
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		ns, name = rest[:i], rest[i+1:]
	}
	if kind == "" || ns == "" || name == "" {
		return "", fmt.Errorf("incomplete ref %q", s)
	}
	return strings.ToLower(kind + ":" + ns + "/" + name), nil
}
