package store_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/catalog-pipeline/pipeline/store"
)

// model evaluates filters naively over every entity's stored rows; the
// store must agree with it whatever path its evaluation takes (lazy
// unions, collected lists, counters, seeks or walks).
type model map[string][]store.SearchRow

func (m model) match(e store.Expr) map[string]bool {
	out := map[string]bool{}
	for ref, rows := range m {
		if m.eval(e, rows) {
			out[ref] = true
		}
	}
	return out
}

func (m model) eval(e store.Expr, rows []store.SearchRow) bool {
	has := func(key string, ok func(r store.SearchRow) bool) bool {
		for _, r := range rows {
			if r.Path == strings.ToLower(key) && ok(r) {
				return true
			}
		}
		return false
	}
	switch e := e.(type) {
	case nil:
		return true
	case store.All:
		for _, c := range e {
			if !m.eval(c, rows) {
				return false
			}
		}
		return true
	case store.Any:
		for _, c := range e {
			if m.eval(c, rows) {
				return true
			}
		}
		return false
	case store.Not:
		return !m.eval(e.Expr, rows)
	case store.Eq:
		return has(e.Key, func(r store.SearchRow) bool { return !r.Null && r.Value == strings.ToLower(e.Value) })
	case store.In:
		return has(e.Key, func(r store.SearchRow) bool {
			return !r.Null && slices.ContainsFunc(e.Values, func(v string) bool { return strings.ToLower(v) == r.Value })
		})
	case store.Exists:
		return has(e.Key, func(store.SearchRow) bool { return true })
	case store.HasPrefix:
		return has(e.Key, func(r store.SearchRow) bool { return !r.Null && strings.HasPrefix(r.Value, strings.ToLower(e.Prefix)) })
	}
	panic(fmt.Sprintf("%T", e))
}

// sortValue is an entity's sort value for path (smallest, or largest when
// desc); ok is false when it has no value there.
func (m model) sortValue(ref, path string, desc bool) (string, bool) {
	v, ok := "", false
	for _, r := range m[ref] {
		if r.Path != path || r.Null {
			continue
		}
		if !ok || (!desc && r.Value < v) || (desc && r.Value > v) {
			v, ok = r.Value, true
		}
	}
	return v, ok
}

func randomCatalog(r *rand.Rand, n int) []fixture {
	kinds := []string{"Component", "component", "API", "Resource", "Group"}
	types := []string{"service", "Service", "website", "library", "grpc", "SERVICE"}
	var fs []fixture
	for i := range n {
		kind := kinds[r.IntN(len(kinds))]
		ref := fmt.Sprintf("%s:ns%d/e%04d", strings.ToLower(kind), r.IntN(3), i)
		spec := map[string]any{}
		if r.IntN(5) > 0 {
			spec["type"] = types[r.IntN(len(types))]
		}
		if r.IntN(3) > 0 {
			spec["owner"] = fmt.Sprintf("team-%d", r.IntN(6))
		}
		if r.IntN(10) == 0 {
			spec["long"] = strings.Repeat("x", 201)
		}
		if r.IntN(4) == 0 {
			spec["lifecycle"] = nil
		}
		// A list of refs and an annotation: paths whose values have no
		// facet counts (uncountedFamilies).
		var deps []string
		for range r.IntN(3) {
			deps = append(deps, fmt.Sprintf("component:default/e%04d", r.IntN(6)))
		}
		if deps != nil {
			spec["dependsOn"] = deps
		}
		meta := map[string]any{"title": fmt.Sprintf("Title %d", r.IntN(400))}
		if r.IntN(2) == 0 {
			meta["annotations"] = map[string]string{"a.io/b": fmt.Sprintf("V%d", r.IntN(4))}
		}
		var tags []string
		for range r.IntN(4) {
			tags = append(tags, []string{"go", "Go", "java", "rust", "python"}[r.IntN(5)])
		}
		if tags != nil {
			meta["tags"] = tags
		}
		var rels []store.Relation
		for range r.IntN(3) {
			rels = append(rels, rel(ref, "ownedBy", fmt.Sprintf("group:default/team-%d", r.IntN(6))))
		}
		fs = append(fs, fixture{ref: ref, kind: kind, meta: meta, spec: spec, rels: rels})
	}
	return fs
}

func randomExpr(r *rand.Rand, depth int) store.Expr {
	keys := []string{"kind", "spec.type", "spec.owner", "metadata.tags", "metadata.namespace", "spec.lifecycle", "spec.long",
		"relations.ownedby", "metadata.title", "metadata.name", "metadata.tags.go", "spec.nope",
		"spec.dependson", "spec.dependson.component:default/e0002", "metadata.annotations.a.io/b"}
	vals := []string{"component", "Service", "website", "team-1", "team-2", "go", "JAVA", "ns1", "true", "group:default/team-3",
		"title 7", "e0001", "nope", "component:default/e0002", "v1"}
	key := keys[r.IntN(len(keys))]
	if depth > 0 && r.IntN(3) == 0 {
		var kids []store.Expr
		for range r.IntN(4) {
			kids = append(kids, randomExpr(r, depth-1))
		}
		switch r.IntN(3) {
		case 0:
			return store.All(kids)
		case 1:
			return store.Any(kids)
		default:
			return store.Not{Expr: randomExpr(r, depth-1)}
		}
	}
	switch r.IntN(5) {
	case 0:
		return store.Exists{Key: key}
	case 1:
		return store.In{Key: key, Values: []string{vals[r.IntN(len(vals))], vals[r.IntN(len(vals))]}}
	case 2:
		return store.HasPrefix{Key: key, Prefix: []string{"", "t", "se", "title 1", "team-", "e00"}[r.IntN(6)]}
	}
	return store.Eq{Key: key, Value: vals[r.IntN(len(vals))]}
}

func TestQueriesAgainstModel(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	db := openDB(t)
	fs := randomCatalog(r, 400)
	applyRoots(t, db, rootsOf(fs)...)
	for i := 0; i < len(fs); i += 100 {
		var outs []*store.Outcome
		for _, f := range fs[i : i+100] {
			o := ok(f.ref, "h", f.rels)
			o.Processed = f.doc()
			outs = append(outs, o)
		}
		commit(t, db, outs...)
	}
	m := model{}
	for _, f := range fs {
		rows, err := db.StoredRows(f.ref)
		if err != nil {
			t.Fatal(err)
		}
		m[f.ref] = rows
	}

	for i := range 300 {
		e := randomExpr(r, 3)
		want := m.match(e)
		got, err := db.Match(e)
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(map[string]bool(boolSet(got)), want) {
			t.Fatalf("%d: Match(%#v): %d refs, model %d", i, e, len(got), len(want))
		}
		if n, err := db.Count(e); err != nil || n != len(want) {
			t.Fatalf("%d: Count(%#v) = %d, %v; model %d", i, e, n, err, len(want))
		}

		// A page walk in a random order equals the model's sort.
		orders := []string{"", "metadata.title", "spec.type", "metadata.tags", "spec.long", "spec.dependson", "metadata.annotations.a.io/b"}
		order := orders[r.IntN(len(orders))]
		desc := r.IntN(2) == 0
		type ent struct{ ref, v string }
		var ents []ent
		for ref := range want {
			v, ok := "", true
			if order != "" {
				v, ok = m.sortValue(ref, order, desc)
			}
			if ok {
				ents = append(ents, ent{ref, v})
			}
		}
		slices.SortFunc(ents, func(a, b ent) int {
			c := strings.Compare(a.v, b.v)
			if c == 0 {
				c = strings.Compare(a.ref, b.ref)
			}
			if desc {
				return -c
			}
			return c
		})
		var wantRefs []string
		for _, x := range ents {
			wantRefs = append(wantRefs, x.ref)
		}
		q := store.PageQuery{Filter: e, OrderField: order, Desc: desc}
		gotRefs, _ := pageAll(t, db, q, 1+r.IntN(40))
		if !slices.Equal(gotRefs, wantRefs) {
			t.Fatalf("%d: pages of %#v by %q desc %v:\n got %q\nwant %q", i, e, order, desc, gotRefs, wantRefs)
		}
		q.WithTotal, q.Limit = true, 3
		if res, err := db.Page(q); err != nil || res.Total != len(wantRefs) {
			t.Fatalf("%d: Total of %#v by %q = %d, %v; want %d", i, e, order, res.Total, err, len(wantRefs))
		}

		// Facets over the filter, by original value.
		paths := []string{"spec.type", "metadata.tags", "metadata.title", "kind", "metadata.name",
			"spec.dependson", "metadata.annotations.a.io/b"}
		path := paths[r.IntN(len(paths))]
		wantF := map[string]int{}
		for ref := range want {
			for _, row := range m[ref] {
				if row.Path == path && !row.Null {
					wantF[row.Orig]++
				}
			}
		}
		f, err := db.Facets([]string{path}, e)
		if err != nil {
			t.Fatal(err)
		}
		gotF := map[string]int{}
		for _, c := range f[path] {
			gotF[c.Value] = c.Count
		}
		if !maps.Equal(gotF, wantF) || !slices.IsSortedFunc(f[path], func(a, b store.FacetCount) int { return strings.Compare(a.Value, b.Value) }) {
			t.Fatalf("%d: Facets(%s, %#v) = %v, model %v", i, path, e, f[path], wantF)
		}
	}
}

func boolSet(s store.RefSet) map[string]bool {
	out := map[string]bool{}
	for r := range s {
		out[r] = true
	}
	return out
}
