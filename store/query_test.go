package store_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/catalog-pipeline/pipeline/catalog"
	"github.com/catalog-pipeline/pipeline/store"
)

// fixture is an entity to serve: its ref, the kind as written, extra
// metadata and spec fields, and the relations it emits.
type fixture struct {
	ref  string
	kind string
	meta map[string]any
	spec map[string]any
	rels []store.Relation
}

// doc is the processed JSON of f.
func (f fixture) doc() json.RawMessage {
	_, rest, _ := strings.Cut(f.ref, ":")
	ns, name, _ := strings.Cut(rest, "/")
	meta := map[string]any{"name": name, "namespace": ns}
	maps.Copy(meta, f.meta)
	e := map[string]any{"apiVersion": "backstage.io/v1alpha1", "kind": f.kind, "metadata": meta}
	if f.spec != nil {
		e["spec"] = f.spec
	}
	b, err := json.Marshal(e)
	if err != nil {
		panic(err)
	}
	return b
}

// serve makes the fixtures root entities and commits one successful run
// of each, so that they are stitched and indexed.
func serve(t testing.TB, db *store.DB, fs ...fixture) {
	t.Helper()
	var roots []store.Child
	var outs []*store.Outcome
	for _, f := range fs {
		roots = append(roots, child(f.ref, "url:"+f.ref))
		o := ok(f.ref, sha(f.doc()), f.rels)
		o.Processed = f.doc()
		outs = append(outs, o)
	}
	applyRoots(t, db, roots...)
	commit(t, db, outs...)
}

const (
	compA  = "component:default/a"
	compB  = "component:default/b"
	compC  = "component:default/c"
	compD  = "component:other/d"
	apiA   = "api:default/a"
	teamA  = "group:default/team-a"
	sysS   = "system:default/s"
	teamBR = "group:default/team-b"
)

// catalogFixtures is the small catalog most query tests run on.
func catalogFixtures() []fixture {
	return []fixture{
		{ref: compA, kind: "Component", meta: map[string]any{"title": "Alpha Service", "tags": []string{"java", "Go"}},
			spec: map[string]any{"type": "Service", "lifecycle": "production", "owner": "team-a"},
			rels: []store.Relation{rel(compA, "ownedBy", teamA), rel(teamA, "ownerOf", compA), rel(compA, "partOf", sysS), rel(sysS, "hasPart", compA)}},
		{ref: compB, kind: "Component", meta: map[string]any{"title": "Beta", "tags": []string{"go"}},
			spec: map[string]any{"type": "service", "lifecycle": "experimental", "owner": "team-b"},
			rels: []store.Relation{rel(compB, "ownedBy", teamBR)}},
		{ref: compC, kind: "Component", meta: map[string]any{"title": "Gamma"},
			spec: map[string]any{"type": "website", "owner": "team-a"},
			rels: []store.Relation{rel(compC, "ownedBy", teamA), rel(teamA, "ownerOf", compC)}},
		{ref: compD, kind: "Component", meta: map[string]any{"tags": []string{"rust", "go"}},
			spec: map[string]any{"type": "library", "owner": "team-b"}},
		{ref: apiA, kind: "API", meta: map[string]any{"title": "Alpha API"},
			spec: map[string]any{"type": "openapi", "owner": "team-a", "lifecycle": "production"}},
		{ref: teamA, kind: "Group", spec: map[string]any{"type": "team"}},
		{ref: sysS, kind: "System", spec: map[string]any{"owner": "team-a"}},
	}
}

var allFixtureRefs = []string{apiA, compA, compB, compC, compD, teamA, sysS}

func sortedRefs(s store.RefSet) []string {
	return slices.Sorted(maps.Keys(s))
}

func TestMatchAndCount(t *testing.T) {
	db := openDB(t)
	serve(t, db, catalogFixtures()...)
	comps := []string{compA, compB, compC, compD}
	cases := []struct {
		name string
		expr store.Expr
		want []string
	}{
		{"nil is everything", nil, allFixtureRefs},
		{"empty All is everything", store.All{}, allFixtureRefs},
		{"empty Any is nothing", store.Any{}, nil},
		{"Eq is case-insensitive in key and value", store.Eq{Key: "KIND", Value: "COMPONENT"}, comps},
		{"Eq on a value with original case", store.Eq{Key: "spec.type", Value: "service"}, []string{compA, compB}},
		{"Eq on an array item", store.Eq{Key: "metadata.tags", Value: "GO"}, []string{compA, compB, compD}},
		{"Eq on path.item", store.Eq{Key: "metadata.tags.java", Value: "true"}, []string{compA}},
		{"Eq on a relation", store.Eq{Key: "relations.ownedBy", Value: "Group:default/team-a"}, []string{compA, compC}},
		{"Eq on the namespace", store.Eq{Key: "metadata.namespace", Value: "other"}, []string{compD}},
		{"Eq on an unknown key", store.Eq{Key: "spec.nope", Value: "x"}, nil},
		{"Eq with a zero byte", store.Eq{Key: "kind", Value: "component\x00"}, nil},
		{"Eq on a prefix of a value is no match", store.Eq{Key: "spec.type", Value: "serv"}, nil},
		{"Exists", store.Exists{Key: "spec.lifecycle"}, []string{apiA, compA, compB}},
		{"Exists on an array", store.Exists{Key: "metadata.tags"}, []string{compA, compB, compD}},
		{"Exists on a relation type", store.Exists{Key: "relations.haspart"}, []string{sysS}},
		{"In", store.In{Key: "spec.type", Values: []string{"website", "SERVICE", "service", "none"}}, []string{compA, compB, compC}},
		{"In with no values", store.In{Key: "spec.type"}, nil},
		{"HasPrefix", store.HasPrefix{Key: "metadata.title", Prefix: "ALPHA "}, []string{apiA, compA}},
		{"HasPrefix empty is any value", store.HasPrefix{Key: "metadata.title", Prefix: ""}, []string{apiA, compA, compB, compC}},
		{"Not", store.Not{Expr: store.Eq{Key: "kind", Value: "component"}}, []string{apiA, teamA, sysS}},
		{"Not of everything", store.Not{Expr: store.All{}}, nil},
		{"Not of nothing", store.Not{Expr: store.Any{}}, allFixtureRefs},
		{"Not Not", store.Not{Expr: store.Not{Expr: store.Eq{Key: "spec.owner", Value: "team-b"}}}, []string{compB, compD}},
		{"All", store.All{store.Eq{Key: "kind", Value: "component"}, store.Eq{Key: "spec.owner", Value: "team-a"}}, []string{compA, compC}},
		{"All with Not", store.All{store.Eq{Key: "kind", Value: "component"}, store.Not{Expr: store.Eq{Key: "spec.type", Value: "service"}}},
			[]string{compC, compD}},
		{"All of only Nots", store.All{store.Not{Expr: store.Exists{Key: "spec.lifecycle"}}, store.Not{Expr: store.Eq{Key: "kind", Value: "group"}}},
			[]string{compC, compD, sysS}},
		{"All with an empty member", store.All{store.Eq{Key: "kind", Value: "component"}, store.Eq{Key: "spec.type", Value: "nope"}}, nil},
		{"Any", store.Any{store.Eq{Key: "kind", Value: "api"}, store.Eq{Key: "kind", Value: "system"}, store.Eq{Key: "kind", Value: "api"}}, []string{apiA, sysS}},
		{"Any with everything", store.Any{store.Eq{Key: "kind", Value: "api"}, store.All{}}, allFixtureRefs},
		{"nested", store.Any{
			store.All{store.Eq{Key: "kind", Value: "component"}, store.Not{Expr: store.Any{store.Exists{Key: "metadata.tags"}, store.Eq{Key: "spec.type", Value: "website"}}}},
			store.All{store.Eq{Key: "kind", Value: "api"}, store.HasPrefix{Key: "spec.type", Prefix: "open"}},
		}, []string{apiA}},
		{"pointer Not", &store.Not{Expr: store.Exists{Key: "spec.owner"}}, []string{teamA}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			set, err := db.Match(tc.expr)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.want
			if want == nil {
				want = []string{}
			}
			got := sortedRefs(set)
			if got == nil {
				got = []string{}
			}
			eq(t, "Match", got, want)
			n, err := db.Count(tc.expr)
			if err != nil {
				t.Fatal(err)
			}
			eq(t, "Count", n, len(want))
		})
	}
}

type bogusExpr struct{ store.Eq }

func TestMatchUnknownExpr(t *testing.T) {
	db := openDB(t)
	serve(t, db, catalogFixtures()...)
	for _, e := range []store.Expr{bogusExpr{}, store.All{store.Eq{Key: "kind", Value: "api"}, bogusExpr{}}, store.Not{Expr: bogusExpr{}}} {
		if _, err := db.Match(e); !errors.Is(err, store.ErrUnknownExpr) {
			t.Errorf("Match(%#v) error = %v", e, err)
		}
		if _, err := db.Page(store.PageQuery{Filter: e, Limit: 1}); !errors.Is(err, store.ErrUnknownExpr) {
			t.Errorf("Page error = %v", err)
		}
		if _, err := db.Facets([]string{"kind"}, e); !errors.Is(err, store.ErrUnknownExpr) {
			t.Errorf("Facets error = %v", err)
		}
	}
}

// pageAll walks q to the end with pages of size n, checking More, and
// returns the refs and positions in order.
func pageAll(t *testing.T, db *store.DB, q store.PageQuery, n int) ([]string, []store.Position) {
	t.Helper()
	q.Limit = n
	var refs []string
	var pos []store.Position
	for range 1000 {
		res, err := db.Page(q)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range res.Items {
			refs = append(refs, it.Ref)
			pos = append(pos, it.Sort)
			var e struct {
				Metadata struct{ Name, Namespace string }
			}
			if err := json.Unmarshal(it.Body, &e); err != nil {
				t.Fatalf("%s: %v", it.Ref, err)
			}
			if !strings.HasSuffix(it.Ref, "/"+strings.ToLower(e.Metadata.Name)) {
				t.Fatalf("item %s has the body of %s", it.Ref, e.Metadata.Name)
			}
		}
		if !res.More {
			return refs, pos
		}
		if len(res.Items) != n {
			t.Fatalf("More with a short page of %d", len(res.Items))
		}
		last := res.Items[len(res.Items)-1].Sort
		q.After = &last
	}
	t.Fatal("paging does not end")
	return nil, nil
}

func TestPageOrder(t *testing.T) {
	db := openDB(t)
	serve(t, db, catalogFixtures()...)
	comp := store.Eq{Key: "kind", Value: "component"}
	cases := []struct {
		name string
		q    store.PageQuery
		want []string
		vals []string // sort values, when checked
	}{
		{name: "ref order", q: store.PageQuery{}, want: allFixtureRefs},
		{name: "ref order desc", q: store.PageQuery{Desc: true}, want: reversed(allFixtureRefs)},
		{name: "ref order with filter", q: store.PageQuery{Filter: comp}, want: []string{compA, compB, compC, compD}},
		{name: "ref order with filter desc", q: store.PageQuery{Filter: comp, Desc: true}, want: []string{compD, compC, compB, compA}},
		{name: "by name, ties by ref", q: store.PageQuery{OrderField: "metadata.name"},
			want: []string{apiA, compA, compB, compC, compD, sysS, teamA}, vals: []string{"a", "a", "b", "c", "d", "s", "team-a"}},
		{name: "by name desc, ties by ref desc", q: store.PageQuery{OrderField: "Metadata.Name", Desc: true},
			want: []string{teamA, sysS, compD, compC, compB, compA, apiA}},
		{name: "entities lacking the field are left out", q: store.PageQuery{OrderField: "spec.lifecycle"},
			want: []string{compB, apiA, compA}, vals: []string{"experimental", "production", "production"}},
		{name: "values compare lowercased", q: store.PageQuery{OrderField: "spec.type"},
			want: []string{compD, apiA, compA, compB, teamA, compC}, vals: []string{"library", "openapi", "service", "service", "team", "website"}},
		{name: "filter and order", q: store.PageQuery{Filter: comp, OrderField: "spec.type", Desc: true},
			want: []string{compC, compB, compA, compD}},
		{name: "an array sorts by its smallest value", q: store.PageQuery{OrderField: "metadata.tags"},
			want: []string{compA, compB, compD}, vals: []string{"go", "go", "go"}},
		{name: "and by its largest when descending", q: store.PageQuery{OrderField: "metadata.tags", Desc: true},
			want: []string{compD, compA, compB}, vals: []string{"rust", "java", "go"}},
		{name: "unknown order field", q: store.PageQuery{OrderField: "spec.nope"}, want: nil},
		{name: "full text on the order field", q: store.PageQuery{OrderField: "metadata.title", FullTextTerm: " ALPHA "},
			want: []string{apiA, compA}},
		{name: "full text on other fields", q: store.PageQuery{OrderField: "metadata.name", FullTextTerm: "team-", FullTextFields: []string{"spec.owner", "Spec.Type"}},
			want: []string{apiA, compA, compB, compC, compD, sysS}},
		{name: "full text on several fields", q: store.PageQuery{OrderField: "metadata.name", FullTextTerm: "team", FullTextFields: []string{"spec.owner", "Spec.Type"}},
			want: []string{apiA, compA, compB, compC, compD, sysS, teamA}},
		{name: "full text on a relation with filter", q: store.PageQuery{Filter: comp, FullTextTerm: "team-a", FullTextFields: []string{"relations.ownedby"}},
			want: []string{compA, compC}},
		{name: "full text without fields or order uses the uid", q: store.PageQuery{FullTextTerm: "no-such-uid"}, want: nil},
		{name: "full text finds nothing", q: store.PageQuery{OrderField: "metadata.title", FullTextTerm: "zeta"}, want: nil},
		{name: "filter matching nothing", q: store.PageQuery{Filter: store.Any{}, OrderField: "metadata.name"}, want: nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Every page size gives the same sequence.
			var first []string
			for _, n := range []int{1, 2, 3, 100} {
				refs, pos := pageAll(t, db, tc.q, n)
				if n == 1 {
					first = refs
					eq(t, "order", refs, tc.want)
					if tc.vals != nil {
						var vals []string
						for _, p := range pos {
							vals = append(vals, p.Value)
						}
						eq(t, "sort values", vals, tc.vals)
					}
				} else {
					eq(t, fmt.Sprintf("order with pages of %d", n), refs, first)
				}
			}
			q := tc.q
			q.WithTotal, q.Limit = true, 1
			res, err := db.Page(q)
			if err != nil {
				t.Fatal(err)
			}
			eq(t, "Total", res.Total, len(tc.want))
		})
	}
}

func reversed(s []string) []string {
	out := slices.Clone(s)
	slices.Reverse(out)
	return out
}

func TestPageFullTextDefaultsToUID(t *testing.T) {
	db := openDB(t)
	serve(t, db, catalogFixtures()...)
	uid := state(t, db, compB).UID
	res, err := db.Page(store.PageQuery{FullTextTerm: strings.ToUpper(uid[len(uid)-12:]) /* the random tail: uids are time-ordered v7 */, Limit: 10, WithTotal: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Items) != 1 || res.Items[0].Ref != compB || res.Total != 1 {
		t.Errorf("items %+v, total %d", res.Items, res.Total)
	}
}

func TestPageLimits(t *testing.T) {
	db := openDB(t)
	serve(t, db, catalogFixtures()...)
	for _, q := range []store.PageQuery{{}, {OrderField: "metadata.name"}, {Filter: store.Exists{Key: "kind"}}} {
		res, err := db.Page(q) // Limit 0
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Items) != 0 || !res.More {
			t.Errorf("limit 0: %d items, More %v", len(res.Items), res.More)
		}
	}
	if _, err := db.Page(store.PageQuery{Limit: -1}); err == nil {
		t.Error("negative limit accepted")
	}
	// A cursor at a position no entity has continues after it.
	for _, tc := range []struct {
		q    store.PageQuery
		want []string
	}{
		{store.PageQuery{After: &store.Position{Ref: "component:default/bb"}}, []string{compC, compD, teamA, sysS}},
		{store.PageQuery{After: &store.Position{Ref: "component:default/bb"}, Desc: true}, []string{compB, compA, apiA}},
		{store.PageQuery{Filter: store.Exists{Key: "kind"}, After: &store.Position{Ref: "component:default/bb"}}, []string{compC, compD, teamA, sysS}},
		{store.PageQuery{Filter: store.Exists{Key: "kind"}, After: &store.Position{Ref: "component:default/bb"}, Desc: true}, []string{compB, compA, apiA}},
		{store.PageQuery{OrderField: "spec.type", After: &store.Position{Value: "service", Ref: compA}}, []string{compB, teamA, compC}},
		{store.PageQuery{OrderField: "spec.type", After: &store.Position{Value: "s", Ref: "zzz"}}, []string{compA, compB, teamA, compC}},
		{store.PageQuery{OrderField: "spec.type", After: &store.Position{Value: "service", Ref: compB}, Desc: true}, []string{compA, apiA, compD}},
		{store.PageQuery{OrderField: "spec.type", After: &store.Position{Value: "zzz"}, Desc: true}, []string{compC, teamA, compB, compA, apiA, compD}},
	} {
		tc.q.Limit = 100
		res, err := db.Page(tc.q)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, it := range res.Items {
			got = append(got, it.Ref)
		}
		eq(t, fmt.Sprintf("after %+v desc %v", *tc.q.After, tc.q.Desc), got, tc.want)
	}
}

// TestPageCursorOverLargeSet pages through a few hundred generated entities
// with every combination of order, direction and filter, and compares the
// concatenated pages with a sort of the whole set done here.
func TestPageCursorOverLargeSet(t *testing.T) {
	db := openDB(t)
	types := []string{"service", "Website", "library", "", "SERVICE"}
	var fs []fixture
	type info struct{ ref, name, typ, kind string }
	var all []info
	for i := range 240 {
		kind := []string{"Component", "API", "Resource"}[i%3]
		ref := fmt.Sprintf("%s:ns%d/e%03d", strings.ToLower(kind), i%4, (i*37)%241)
		spec := map[string]any{}
		typ := types[i%len(types)]
		if typ != "" {
			spec["type"] = typ
		}
		// Names collide across namespaces: ties are broken by ref.
		name := fmt.Sprintf("e%03d", (i*37)%241)
		fs = append(fs, fixture{ref: ref, kind: kind, spec: spec})
		all = append(all, info{ref, name, strings.ToLower(typ), strings.ToLower(kind)})
	}
	// Roots are the complete set; processing is committed in batches.
	applyRoots(t, db, rootsOf(fs)...)
	for i := 0; i < len(fs); i += 60 {
		var outs []*store.Outcome
		for _, f := range fs[i : i+60] {
			o := ok(f.ref, "h", nil)
			o.Processed = f.doc()
			outs = append(outs, o)
		}
		commit(t, db, outs...)
	}
	for _, order := range []string{"", "metadata.name", "spec.type"} {
		for _, desc := range []bool{false, true} {
			for _, filter := range []store.Expr{nil, store.Eq{Key: "kind", Value: "component"}, store.Not{Expr: store.Eq{Key: "metadata.namespace", Value: "ns1"}}} {
				var want []info
				for _, e := range all {
					if order == "spec.type" && e.typ == "" {
						continue
					}
					switch f := filter.(type) {
					case store.Eq:
						if e.kind != f.Value {
							continue
						}
					case store.Not:
						if strings.Contains(e.ref, ":ns1/") {
							continue
						}
					}
					want = append(want, e)
				}
				key := func(e info) string {
					switch order {
					case "metadata.name":
						return e.name
					case "spec.type":
						return e.typ
					}
					return ""
				}
				slices.SortFunc(want, func(a, b info) int {
					c := strings.Compare(key(a), key(b))
					if c == 0 {
						c = strings.Compare(a.ref, b.ref)
					}
					if desc {
						c = -c
					}
					return c
				})
				var wantRefs []string
				for _, e := range want {
					wantRefs = append(wantRefs, e.ref)
				}
				for _, n := range []int{7, 50} {
					got, _ := pageAll(t, db, store.PageQuery{Filter: filter, OrderField: order, Desc: desc}, n)
					eq(t, fmt.Sprintf("order %q desc %v filter %v pages of %d", order, desc, filter, n), got, wantRefs)
				}
			}
		}
	}
}

func TestFacets(t *testing.T) {
	db := openDB(t)
	serve(t, db, catalogFixtures()...)
	type fc = store.FacetCount
	cases := []struct {
		name   string
		paths  []string
		filter store.Expr
		want   map[string][]fc
	}{
		{name: "unfiltered, by original value, sorted", paths: []string{"spec.type", "KIND"},
			want: map[string][]fc{
				"spec.type": {{"Service", 1}, {"library", 1}, {"openapi", 1}, {"service", 1}, {"team", 1}, {"website", 1}},
				"KIND":      {{"API", 1}, {"Component", 4}, {"Group", 1}, {"System", 1}},
			}},
		{name: "filtered", paths: []string{"spec.type", "spec.owner"}, filter: store.Eq{Key: "kind", Value: "component"},
			want: map[string][]fc{
				"spec.type":  {{"Service", 1}, {"library", 1}, {"service", 1}, {"website", 1}},
				"spec.owner": {{"team-a", 2}, {"team-b", 2}},
			}},
		{name: "arrays and relations", paths: []string{"metadata.tags", "relations.ownedBy", "metadata.namespace"},
			want: map[string][]fc{
				"metadata.tags":      {{"Go", 1}, {"go", 2}, {"java", 1}, {"rust", 1}},
				"relations.ownedBy":  {{teamA, 2}, {teamBR, 1}},
				"metadata.namespace": {{"default", 6}, {"other", 1}},
			}},
		{name: "filtered arrays", paths: []string{"metadata.tags"}, filter: store.Not{Expr: store.Eq{Key: "metadata.namespace", Value: "other"}},
			want: map[string][]fc{"metadata.tags": {{"Go", 1}, {"go", 1}, {"java", 1}}}},
		{name: "paths without counts come from the rows", paths: []string{"metadata.name"},
			want: map[string][]fc{"metadata.name": {{"a", 2}, {"b", 1}, {"c", 1}, {"d", 1}, {"s", 1}, {"team-a", 1}}}},
		{name: "reverse relations have no counts either", paths: []string{"relations.ownerOf", "relations.hasPart"},
			want: map[string][]fc{
				"relations.ownerOf": {{compA, 1}, {compC, 1}},
				"relations.hasPart": {{compA, 1}},
			}},
		{name: "filtered reverse relations", paths: []string{"relations.ownerOf"}, filter: store.Eq{Key: "kind", Value: "component"},
			want: map[string][]fc{"relations.ownerOf": {}}},
		{name: "filtered to nothing", paths: []string{"spec.type"}, filter: store.Any{},
			want: map[string][]fc{"spec.type": {}}},
		{name: "unknown and empty paths", paths: []string{"spec.nope", "", "spec.type\x00"},
			want: map[string][]fc{"spec.nope": {}, "": {}, "spec.type\x00": {}}},
		{name: "empty All is no filter", paths: []string{"spec.lifecycle"}, filter: store.All{},
			want: map[string][]fc{"spec.lifecycle": {{"experimental", 1}, {"production", 2}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := db.Facets(tc.paths, tc.filter)
			if err != nil {
				t.Fatal(err)
			}
			eq(t, "facets", got, tc.want)
		})
	}
	// metadata.uid has no counts either; every uid counts once.
	got, err := db.Facets([]string{"metadata.uid"}, store.Eq{Key: "kind", Value: "component"})
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "uid facet size", len(got["metadata.uid"]), 4)
}

func TestFinalByRefsAndUID(t *testing.T) {
	db := openDB(t)
	serve(t, db, catalogFixtures()...)
	bodies, err := db.FinalByRefs([]string{compB, "component:default/nope", "API:default/A", compB, ""})
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "length", len(bodies), 5)
	_, bodyB, _ := mustFinal(t, db, compB)
	_, bodyAPI, _ := mustFinal(t, db, apiA)
	eq(t, "by-refs", []string{string(bodies[0]), string(bodies[1]), string(bodies[2]), string(bodies[3]), string(bodies[4])},
		[]string{string(bodyB), "", string(bodyAPI), string(bodyB), ""})
	if bodies[1] != nil || bodies[4] != nil {
		t.Error("unknown refs are not nil")
	}

	uid := state(t, db, compC).UID
	ref, body, err := db.FinalByUID(strings.ToUpper(uid))
	if err != nil {
		t.Fatal(err)
	}
	_, bodyC, _ := mustFinal(t, db, compC)
	eq(t, "by-uid ref", ref, compC)
	eq(t, "by-uid body", string(body), string(bodyC))
	if ref, body, err := db.FinalByUID("no-such-uid"); ref != "" || body != nil || err != nil {
		t.Errorf("unknown uid: %q %q %v", ref, body, err)
	}
	// Known but never served (its only run failed): not found.
	const broken = "component:default/broken"
	applyRoots(t, db, append(rootsOf(catalogFixtures()), child(broken, "url:x"))...)
	commit(t, db, failed(broken, "f", catalog.SerializedError{Name: "InputError", Message: "bad"}))
	if ref, body, _ := db.FinalByUID(state(t, db, broken).UID); ref != "" || body != nil {
		t.Errorf("unserved entity found by uid: %q", ref)
	}
	if n, _ := db.Count(nil); n != len(allFixtureRefs) {
		t.Errorf("Count(nil) = %d with an unserved entity", n)
	}
}

func rootsOf(fs []fixture) []store.Child {
	var out []store.Child
	for _, f := range fs {
		out = append(out, child(f.ref, "url:"+f.ref))
	}
	return out
}

// TestIndexFollowsChanges restitches, re-relates, fails, orphans and deletes
// entities and checks after every step that the index equals a rebuild
// (CheckIndex), and that the answers moved.
func TestIndexFollowsChanges(t *testing.T) {
	db := openDB(t)
	fs := catalogFixtures()
	serve(t, db, fs...)
	check := func(step string) {
		t.Helper()
		if err := db.CheckIndex(); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	count := func(e store.Expr) int {
		t.Helper()
		n, err := db.Count(e)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	facet := func(path string) map[string]uint64 {
		t.Helper()
		m, err := db.FacetRows(path)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	check("initial")
	eq(t, "spec.type counts", facet("spec.type"), map[string]uint64{"Service": 1, "service": 1, "website": 1, "library": 1, "openapi": 1, "team": 1, store.ValuedKey: 6})
	eq(t, "entity count", facet(""), map[string]uint64{"": 7, store.ValuedKey: 7})

	// Change a's type case, drop a tag, add a field; b becomes a website.
	a := fs[0]
	a.spec = map[string]any{"type": "service", "lifecycle": "production", "owner": "team-a", "new": "x"}
	a.meta = map[string]any{"title": "Alpha Service", "tags": []string{"java"}}
	b := fs[1]
	b.spec = map[string]any{"type": "website", "lifecycle": "experimental", "owner": "team-b"}
	oa, ob := ok(a.ref, "a2", a.rels), ok(b.ref, "b2", b.rels)
	oa.Processed, ob.Processed = a.doc(), b.doc()
	commit(t, db, oa, ob)
	check("restitch")
	eq(t, "spec.type counts", facet("spec.type"), map[string]uint64{"service": 1, "website": 2, "library": 1, "openapi": 1, "team": 1, store.ValuedKey: 6})
	eq(t, "tags counts", facet("metadata.tags"), map[string]uint64{"java": 1, "go": 2, "rust": 1, store.ValuedKey: 3})
	eq(t, "go tag", count(store.Eq{Key: "metadata.tags.go", Value: "true"}), 2)
	eq(t, "new field", count(store.Eq{Key: "spec.new", Value: "X"}), 1)
	rows, err := db.SearchRows(a.ref)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(rows, "spec.type=service") || slices.Contains(rows, "metadata.tags=go") {
		t.Errorf("rows of a: %q", rows)
	}

	// Relations move: a is no longer owned by team-a; c gains a relation
	// emitted by another entity.
	oa = ok(a.ref, "a3", []store.Relation{rel(a.ref, "ownedBy", teamBR)})
	oa.Processed = a.doc()
	os := ok(sysS, "s2", []store.Relation{rel(compC, "partOf", sysS)})
	os.Processed = fs[6].doc()
	commit(t, db, oa, os)
	check("relations")
	eq(t, "owned by team-a", count(store.Eq{Key: "relations.ownedby", Value: teamA}), 1)
	eq(t, "owned by team-b", count(store.Eq{Key: "relations.ownedby", Value: teamBR}), 2)
	eq(t, "partOf", count(store.Exists{Key: "relations.partof"}), 1)
	eq(t, "ownedBy facet", facet("relations.ownedby"), map[string]uint64{teamA: 1, teamBR: 2, store.ValuedKey: 3})

	// A failure adds status items: not indexed, rows unchanged.
	before, _ := db.SearchRows(compC)
	commit(t, db, failed(compC, "c-failed", catalog.SerializedError{Name: "InputError", Message: "m"}))
	check("failure")
	after, _ := db.SearchRows(compC)
	eq(t, "rows after a failure", after, before)

	// Deleting entities removes their rows and counts.
	if _, err := db.DeleteEntity(compB); err != nil {
		t.Fatal(err)
	}
	check("delete")
	eq(t, "components", count(store.Eq{Key: "kind", Value: "component"}), 3)
	eq(t, "entity count", facet(""), map[string]uint64{"": 6, store.ValuedKey: 6})
	eq(t, "spec.type counts", facet("spec.type"), map[string]uint64{"service": 1, "website": 1, "library": 1, "openapi": 1, "team": 1, store.ValuedKey: 5})
	if rows, _ := db.SearchRows(compB); rows != nil {
		t.Errorf("rows of a deleted entity: %q", rows)
	}

	// The provider drops everything: the index is empty.
	applyRoots(t, db)
	check("all gone")
	eq(t, "count", count(nil), 0)
	eq(t, "facets", facet("spec.type"), map[string]uint64{})
	got, err := db.Facets([]string{"kind"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "kind facet", got, map[string][]store.FacetCount{"kind": {}})
}

func TestIndexOrphanAnnotation(t *testing.T) {
	db := openDB(t)
	db.SetKeepOrphans(true)
	const r, a = "location:default/r", "component:default/a"
	applyRoots(t, db, child(r, "url:r"))
	commit(t, db, ok(r, "r", nil, child(a, "url:r")), ok(a, "a", nil))
	orphans := store.Eq{Key: "metadata.annotations.backstage.io/orphan", Value: "true"}
	if n, _ := db.Count(orphans); n != 0 {
		t.Fatalf("orphans before: %d", n)
	}
	commit(t, db, ok(r, "r2", nil))
	if n, _ := db.Count(orphans); n != 1 {
		t.Errorf("orphans after the parent let go: %d", n)
	}
	if err := db.CheckIndex(); err != nil {
		t.Fatal(err)
	}
}
