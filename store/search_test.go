package store

import (
	"bytes"
	"maps"
	"slices"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// rowStrings renders rows as "path=value" (value "∅" for none), with
// " (orig)" when the original differs; the reserved row is left out.
func rowStrings(rows []row) []string {
	var out []string
	for _, r := range rows {
		if r.path == "" {
			continue
		}
		s := r.path + "="
		switch {
		case r.null():
			s += "∅"
		case r.orig != r.value:
			s += r.value + " (" + r.orig + ")"
		default:
			s += r.value
		}
		out = append(out, s)
	}
	return out
}

// base is what every test entity below flattens to besides its own rows.
var baseRows = []string{"apiversion=v1", "kind=component (Component)", "metadata.name=a", "metadata.namespace=default", "metadata.uid=u1"}

func TestFlatten(t *testing.T) {
	long := strings.Repeat("x", 201)
	cases := []struct {
		name string
		// extra is spliced into an entity with apiVersion, kind, metadata
		// {name, namespace, uid}; body replaces the whole entity.
		extra, body string
		want        []string
		wantBase    bool
	}{
		{name: "scalars and nesting", wantBase: true,
			extra: `"spec":{"type":"Service","n":42,"f":1.5,"big":1e21,"small":1e-7,"t":true,"no":false,"nil":null,"deep":{"a":{"b":"C"}},"empty":{},"none":[]}`,
			want: []string{"spec.big=1e+21", "spec.deep.a.b=c (C)", "spec.f=1.5", "spec.n=42", "spec.nil=∅", "spec.no=false",
				"spec.small=1e-7", "spec.t=true", "spec.type=service (Service)"}},
		{name: "arrays of strings get path.item rows", wantBase: true,
			extra: `"metadata":{"name":"a","namespace":"default","uid":"u1","tags":["Java","go"]}`,
			want:  []string{"metadata.tags=go", "metadata.tags=java (Java)", "metadata.tags.go=true", "metadata.tags.java=true"}},
		{name: "arrays of objects and nested arrays", wantBase: true,
			extra: `"spec":{"links":[{"url":"U1","title":"t"},{"url":"u2"}],"m":[["x",1],[null]]}`,
			want: []string{"spec.links.title=t", "spec.links.url=u1 (U1)", "spec.links.url=u2",
				"spec.m=1", "spec.m=x", "spec.m=∅", "spec.m.x=true"}},
		{name: "relations, status and attachments", wantBase: true,
			extra: `"relations":[{"type":"ownedBy","targetRef":"group:default/Team"},{"type":"partOf","targetRef":"system:default/s","target":{"kind":"system"}}],"status":{"items":[{"level":"error"}]},"attachments":[1]`,
			want:  []string{"relations.ownedby=group:default/team (group:default/Team)", "relations.partof=system:default/s"}},
		{name: "namespace defaults when missing",
			body: `{"apiVersion":"v1","kind":"Component","metadata":{"name":"a","uid":"u1"}}`,
			want: []string{"apiversion=v1", "kind=component (Component)", "metadata.name=a", "metadata.namespace=default", "metadata.namespace=∅", "metadata.uid=u1"}},
		{name: "namespace defaults when empty",
			body: `{"kind":"Component","metadata":{"name":"a","namespace":"","uid":"u1"}}`,
			want: []string{"kind=component (Component)", "metadata.name=a", "metadata.namespace=", "metadata.namespace=default", "metadata.uid=u1"}},
		{name: "etag is not indexed, name and uid are explicit",
			body: `{"kind":"K","metadata":{"etag":"e","namespace":"NS","title":"T"}}`,
			want: []string{"kind=k (K)", "metadata.name=∅", "metadata.namespace=ns (NS)", "metadata.title=t (T)", "metadata.uid=∅"}},
		{name: "long keys skipped, long values kept without value", wantBase: true,
			extra: `"spec":{"` + long + `":"v","v":"` + long + `","ok":"` + long[:200] + `","arr":["` + long + `"]}`,
			want:  []string{"spec.arr=∅", "spec.ok=" + long[:200], "spec.v=∅"}},
		{name: "length counts UTF-16 units", wantBase: true,
			extra: `"spec":{"e":"` + strings.Repeat("😀", 100) + `","f":"` + strings.Repeat("é", 200) + `"}`,
			want:  []string{"spec.e=" + strings.Repeat("😀", 100), "spec.f=" + strings.Repeat("é", 200)}},
		{name: "over the limit in UTF-16 units", wantBase: true,
			extra: `"spec":{"e":"` + strings.Repeat("😀", 100) + `x"}`,
			want:  []string{"spec.e=∅"}},
		{name: "keys lowercased and duplicates removed", wantBase: true,
			extra: `"spec":{"Owner":"Team","owner":"team","tags":["a","A","a"]}`,
			want:  []string{"spec.owner=team (Team)", "spec.tags=a", "spec.tags.a=true"}},
		{name: "escapes decoded, zero bytes not indexed as values", wantBase: true,
			extra: `"spec":{"q":"a\"b\\u00e9\n","z":"a\u0000b","k\u0000":"v","u":"\u00C9t\u00e9"}`,
			want:  []string{"spec.q=a\"b\\u00e9\n", "spec.u=été (Été)", "spec.z=∅"}},
		{name: "special paths only at their place", wantBase: true,
			extra: `"spec":{"status":"s","relations":"r","metadata":{"name":"n"}}`,
			want:  []string{"spec.metadata.name=n", "spec.relations=r", "spec.status=s"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := tc.body
			if body == "" {
				body = `{"apiVersion":"v1","kind":"Component","metadata":{"name":"a","namespace":"default","uid":"u1"}`
				if strings.HasPrefix(tc.extra, `"metadata"`) {
					body = `{"apiVersion":"v1","kind":"Component"`
				}
				body += "," + tc.extra + "}"
			}
			rows, err := flatten([]byte(body))
			if err != nil {
				t.Fatalf("flatten: %v\n%s", err, body)
			}
			want := tc.want
			if tc.wantBase {
				want = append(slices.Clone(baseRows), want...)
			}
			slices.Sort(want)
			got := rowStrings(rows)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("rows:\n got %q\nwant %q", got, want)
			}
			if rows[0] != (row{}) {
				t.Errorf("reserved row missing: %q", rows[0])
			}
			if !slices.IsSortedFunc(rows, compareRows) {
				t.Error("rows are not sorted")
			}
			// The index's rows of a stored entity are rebuilt by
			// flattening it again (storedRows): with a shared key cache
			// too, the same body gives the same rows.
			keys := map[string]string{}
			for range 2 {
				again, err := flattenWith([]byte(body), keys)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(again, rows) {
					t.Errorf("flattened again: %q, want %q", again, rows)
				}
			}
		})
	}
}

func TestFlattenRejectsMalformedJSON(t *testing.T) {
	for _, body := range []string{``, `[]`, `{"a":}`, `{"a":1`, `{"a":"b}`, `{"a":tru}`, `{"a":1}x`, `{"a":"` + "\x01" + `"}`,
		`{"a":[1,2}`, `{"a" 1}`, `{"relations":[{"type":"t",}]`, strings.Repeat(`{"a":`, 20000)} {
		if _, err := flatten([]byte(body)); err == nil {
			t.Errorf("flatten(%.40q) succeeded", body)
		}
	}
}

func TestJSNumber(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 1: "1", -2.5: "-2.5", 1e21: "1e+21", 1.5e-7: "1.5e-7", 123456789012345680000: "123456789012345680000",
		0.000001: "0.000001", 1e300: "1e+300"} {
		if got := jsNumber(in); got != want {
			t.Errorf("jsNumber(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestRowFlags(t *testing.T) {
	rows := []row{{}, {path: "a", value: "1", orig: "1"}, {path: "a", value: "2", orig: "2"}, {path: "a", value: nullValue},
		{path: "b", value: nullValue}, {path: "c", value: "x", orig: "x"}}
	got := rowFlags(rows, nil)
	want := []byte{rowMin | rowMax, rowMin, rowMax, 0, 0, rowMin | rowMax}
	if !bytes.Equal(got, want) {
		t.Errorf("rowFlags = %v, want %v", got, want)
	}
}

func TestMember(t *testing.T) {
	list := []string{"b", "d", "f", "h", "j", "l", "n"}
	var bl [][]byte
	for _, s := range list {
		bl = append(bl, []byte(s))
	}
	m := &member{list: bl}
	for _, q := range []string{"a", "b", "c", "d", "n", "o", "b", "b", "f", "e", "j", "z", "a", "l"} {
		_, want := slices.BinarySearch(list, q)
		if got := m.has([]byte(q)); got != want {
			t.Errorf("has(%q) = %v, want %v", q, got, want)
		}
	}
}

// TestIndexWritesOnlyChangedRows indexes an entity, then a changed version
// of it, and looks at the writes the second index queued: only rows that
// appeared, disappeared, changed their original value or their min/max
// flags are touched, and facet counts move by the difference.
func TestIndexWritesOnlyChangedRows(t *testing.T) {
	d, err := Open(t.TempDir()+"/c.db", Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	const ref = "component:default/a"
	v1 := `{"apiVersion":"v1","kind":"Component","metadata":{"name":"a","namespace":"default","uid":"u","tags":["b","c"]},"spec":{"type":"Service","owner":"x","keep":"same"}}`
	v2 := `{"apiVersion":"v1","kind":"Component","metadata":{"name":"a","namespace":"default","uid":"u","tags":["a","b"]},"spec":{"type":"service","owner":"y","keep":"same"}}`
	// A middle item has neither flag: moving it in or out of the middle
	// is a put (not a delete) of a row with flags 0.
	v3 := `{"apiVersion":"v1","kind":"Component","metadata":{"name":"a","namespace":"default","uid":"u","tags":["a","b","c"]},"spec":{"type":"service","owner":"y","keep":"same"}}`
	var ops []string
	var facets map[string]int64
	for i, body := range []string{v1, v2, v2, v3} {
		err := d.bolt.Update(func(tx *bolt.Tx) error {
			w := &writer{buckets: open(tx)}
			if err := w.index(ref, []byte(body)); err != nil {
				return err
			}
			ops = nil
			for _, op := range w.searchOps {
				path, rest, _ := strings.Cut(string(op.key()), "\x00")
				val, _, _ := strings.Cut(rest, "\x00")
				kind := "put"
				if !op.put {
					kind = "del"
				}
				ops = append(ops, kind+" "+path+"="+val)
			}
			slices.Sort(ops)
			facets = map[string]int64{}
			for k, d := range w.facetDelta {
				facets[k] = *d
			}
			return w.flushIndex()
		})
		if err != nil {
			t.Fatal(err)
		}
		switch i {
		case 0:
			if len(ops) != 13 {
				t.Errorf("first index wrote %d rows: %q", len(ops), ops)
			}
		case 1:
			want := []string{
				"del metadata.tags.c=true", "del metadata.tags=c", "del spec.owner=x",
				"put metadata.tags.a=true", "put metadata.tags=a",
				"put metadata.tags=b", // was the min, now the max: flags moved
				"put spec.owner=y",
				"put spec.type=service", // original "Service" became "service"
			}
			if !slices.Equal(ops, want) {
				t.Errorf("restitch wrote\n %q\nwant\n %q", ops, want)
			}
			// Facet keys are path ‖ 0 ‖ value ‖ 0 ‖ original; path ‖ 1
			// counts the entities with a value.
			wantFacets := map[string]int64{"metadata.tags\x00a\x00a": 1, "metadata.tags\x00c\x00c": -1,
				"metadata.tags.a\x00true\x00true": 1, "metadata.tags.c\x00true\x00true": -1,
				"metadata.tags.a\x01": 1, "metadata.tags.c\x01": -1,
				"spec.owner\x00x\x00x": -1, "spec.owner\x00y\x00y": 1, "spec.type\x00service\x00Service": -1, "spec.type\x00service\x00service": 1}
			maps.DeleteFunc(facets, func(_ string, d int64) bool { return d == 0 })
			if !maps.Equal(facets, wantFacets) {
				t.Errorf("facet changes %v, want %v", facets, wantFacets)
			}
		case 2:
			if len(ops) != 0 || len(facets) != 0 {
				t.Errorf("unchanged entity wrote %q, facets %v", ops, facets)
			}
		case 3:
			want := []string{"put metadata.tags.c=true", "put metadata.tags=b", "put metadata.tags=c"}
			if !slices.Equal(ops, want) {
				t.Errorf("adding a last tag wrote\n %q\nwant\n %q", ops, want)
			}
		}
		// Every queued put carries flags; a middle item's are 0.
		rows, _ := flatten([]byte(body))
		err = d.bolt.View(func(tx *bolt.Tx) error {
			c := open(tx).searchCursor()
			for _, r := range rows {
				key := searchKey(nil, r.path, r.value, ref)
				if k, _ := c.Seek(key); !bytes.Equal(k, key) {
					t.Errorf("step %d: row %s=%s missing", i, r.path, r.value)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// index stored each body as the final entity, which the next step
	// diffed against: the rows left equal a rebuild from the last one.
	if err := d.CheckIndex(); err != nil {
		t.Error(err)
	}
}
