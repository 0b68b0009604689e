package store_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/catalog-pipeline/pipeline/store"
)

// benchCatalog serves n synthetic entities with a realistic mix of kinds
// (45% components), spec.type values, owners, tags and six relations per
// component, committed like the engine does: 500 per transaction, in ref
// order.
func benchCatalog(b *testing.B, n int) *store.DB {
	b.Helper()
	db := openDB(b)
	kinds := []struct {
		kind  string
		share int
		types []string
	}{
		{"Component", 45, []string{"service", "website", "library"}},
		{"API", 15, []string{"openapi", "grpc", "asyncapi", "graphql"}},
		{"Resource", 10, []string{"database", "s3-bucket", "queue"}},
		{"System", 5, nil},
		{"Group", 10, []string{"team", "department"}},
		{"User", 15, nil},
	}
	type ent struct {
		ref  string
		doc  json.RawMessage
		rels []store.Relation
	}
	ents := make([]ent, 0, n)
	for i := range n {
		k := kinds[0]
		for slot, j := i%100, 0; ; j++ {
			if slot < kinds[j].share {
				k = kinds[j]
				break
			}
			slot -= kinds[j].share
		}
		name := fmt.Sprintf("e%06d", (i*7919)%1000003)
		ref := fmt.Sprintf("%s:default/%s", lowerASCII(k.kind), name)
		owner := fmt.Sprintf("group:default/team-%d", i%60)
		spec := map[string]any{"owner": owner, "lifecycle": []string{"production", "experimental", "deprecated"}[i%3]}
		if k.types != nil {
			spec["type"] = k.types[i%len(k.types)]
		}
		meta := map[string]any{"name": name, "namespace": "default", "title": "Entity " + name,
			"description": "Synthetic entity for the query benchmarks.",
			"tags":        []string{"tag-" + fmt.Sprint(i%25), "lang-" + fmt.Sprint(i%7)},
			"annotations": map[string]string{"backstage.io/managed-by-location": fmt.Sprintf("url:https://git.example/catalog-%d.yaml", i%200)}}
		doc, _ := json.Marshal(map[string]any{"apiVersion": "backstage.io/v1alpha1", "kind": k.kind, "metadata": meta, "spec": spec})
		sys := fmt.Sprintf("system:default/sys-%d", i%40)
		dep := fmt.Sprintf("component:default/e%06d", ((i+1)*7919)%1000003)
		rels := []store.Relation{rel(ref, "ownedBy", owner), rel(owner, "ownerOf", ref)}
		if k.kind == "Component" {
			rels = append(rels, rel(ref, "partOf", sys), rel(sys, "hasPart", ref), rel(ref, "dependsOn", dep), rel(dep, "dependencyOf", ref))
		}
		ents = append(ents, ent{ref, doc, rels})
	}
	slices.SortFunc(ents, func(a, b ent) int {
		if a.ref < b.ref {
			return -1
		}
		return 1
	})
	roots := make([]store.Child, len(ents))
	for i, e := range ents {
		roots[i] = store.Child{Ref: e.ref, Entity: e.doc, Hash: "h", LocationKey: "url:bench"}
	}
	if _, err := db.ApplyRoots(store.ProviderPrefix+"bench", "p", roots); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < len(ents); i += 500 {
		var outs []*store.Outcome
		for _, e := range ents[i:min(i+500, len(ents))] {
			o := ok(e.ref, "h", e.rels)
			o.Processed = e.doc
			outs = append(outs, o)
		}
		if _, err := db.Commit(outs); err != nil {
			b.Fatal(err)
		}
	}
	return db
}

func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}

const benchEntities = 20000

// BenchmarkPage measures the by-query shapes of the performance goals on
// 20k entities: kind=component limit=100 with its total (the first page
// a client asks for), the same ordered by name, a selective filter, a
// second page through a cursor, and a whole cursor walk of the components.
func BenchmarkPage(b *testing.B) {
	db := benchCatalog(b, benchEntities)
	comp := store.Eq{Key: "kind", Value: "component"}
	page := func(b *testing.B, q store.PageQuery, wantItems int) {
		b.Helper()
		b.ReportAllocs()
		for b.Loop() {
			res, err := db.Page(q)
			if err != nil {
				b.Fatal(err)
			}
			if len(res.Items) != wantItems {
				b.Fatalf("%d items", len(res.Items))
			}
		}
	}
	b.Run("kind=component/limit=100/total", func(b *testing.B) {
		page(b, store.PageQuery{Filter: comp, Limit: 100, WithTotal: true}, 100)
	})
	b.Run("kind=component/limit=100", func(b *testing.B) {
		page(b, store.PageQuery{Filter: comp, Limit: 100}, 100)
	})
	b.Run("kind=component/order=name/limit=100/total", func(b *testing.B) {
		page(b, store.PageQuery{Filter: comp, OrderField: "metadata.name", Limit: 100, WithTotal: true}, 100)
	})
	b.Run("kind=component/order=name/limit=100", func(b *testing.B) {
		page(b, store.PageQuery{Filter: comp, OrderField: "metadata.name", Limit: 100}, 100)
	})
	b.Run("spec.owner=team-7/limit=100/total", func(b *testing.B) {
		page(b, store.PageQuery{Filter: store.Eq{Key: "spec.owner", Value: "group:default/team-7"}, Limit: 100, WithTotal: true}, 100)
	})
	b.Run("all/limit=100/total", func(b *testing.B) {
		page(b, store.PageQuery{Limit: 100, WithTotal: true}, 100)
	})
	b.Run("kind=component/after/limit=100", func(b *testing.B) {
		first, err := db.Page(store.PageQuery{Filter: comp, Limit: 100})
		if err != nil {
			b.Fatal(err)
		}
		after := first.Items[99].Sort
		page(b, store.PageQuery{Filter: comp, Limit: 100, After: &after}, 100)
	})
	b.Run("fulltext=title/limit=100", func(b *testing.B) {
		page(b, store.PageQuery{Filter: comp, FullTextTerm: "entity e0", FullTextFields: []string{"metadata.title"}, Limit: 100}, 100)
	})
	b.Run("walk-components/limit=500", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var after *store.Position
			n := 0
			for {
				res, err := db.Page(store.PageQuery{Filter: comp, Limit: 500, After: after})
				if err != nil {
					b.Fatal(err)
				}
				n += len(res.Items)
				if !res.More {
					break
				}
				p := res.Items[len(res.Items)-1].Sort
				after = &p
			}
			if n != benchEntities*45/100 {
				b.Fatalf("walked %d", n)
			}
		}
	})
	b.Run("by-name", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if body, _, err := db.Final("component:default/e007919"); err != nil || body == nil {
				b.Fatal("not found", err)
			}
		}
	})
}

// BenchmarkFacets measures entity-facets on 20k entities: spec.type
// unfiltered (from the facet counts), filtered by kind, and a path whose
// facet is computed from the rows.
func BenchmarkFacets(b *testing.B) {
	db := benchCatalog(b, benchEntities)
	run := func(b *testing.B, paths []string, filter store.Expr) {
		b.ReportAllocs()
		for b.Loop() {
			f, err := db.Facets(paths, filter)
			if err != nil {
				b.Fatal(err)
			}
			if len(f[paths[0]]) == 0 {
				b.Fatal("empty facet")
			}
		}
	}
	b.Run("spec.type", func(b *testing.B) { run(b, []string{"spec.type"}, nil) })
	b.Run("kind+spec.type+tags", func(b *testing.B) { run(b, []string{"kind", "spec.type", "metadata.tags"}, nil) })
	b.Run("spec.type/kind=component", func(b *testing.B) {
		run(b, []string{"spec.type"}, store.Eq{Key: "kind", Value: "component"})
	})
	b.Run("spec.type/spec.owner=team-7", func(b *testing.B) {
		run(b, []string{"spec.type"}, store.Eq{Key: "spec.owner", Value: "group:default/team-7"})
	})
	b.Run("metadata.name", func(b *testing.B) { run(b, []string{"metadata.name"}, nil) })
}
