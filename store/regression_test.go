package store_test

// Regression tests for bugs found in review: an orphaned cycle outliving
// its root, Providers listing entities of kind Provider, Summarize counting
// unserved relations, and WriteTxCount counting pages.

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/catalog-pipeline/pipeline/store"
)

// Bug 1: an orphaned cycle survives the removal of its root. deleteTree
// keeps every descendant that still has *a* parent, even when that parent
// is itself in the subtree being deleted, so two Location entities that
// point at each other (a.yaml lists b.yaml and b.yaml lists a.yaml) are kept,
// served and processed forever after their root is removed. Backstage's
// eager pruning keeps only descendants still reachable from another source.
func TestBugOrphanedCycleSurvivesRootRemoval(t *testing.T) {
	const (
		r, la, lb = "location:default/generated-root", "location:default/loc-a", "location:default/loc-b"
	)
	for _, removal := range []string{"ApplyRoots", "DeleteEntity"} {
		t.Run(removal, func(t *testing.T) {
			db := openDB(t)
			applyRoots(t, db, child(r, "url:a.yaml"))
			commit(t, db, ok(r, "r", nil, child(lb, "url:a.yaml")))
			commit(t, db, ok(lb, "lb", nil, child(la, "url:b.yaml")))
			commit(t, db, ok(la, "la", nil, child(lb, "url:a.yaml")))
			eq(t, "precondition: parents of loc-b", parents(t, db, lb), []string{r, la})

			var st store.CommitStats
			var err error
			if removal == "ApplyRoots" {
				st, err = db.ApplyRoots(prov, "p", nil)
			} else {
				st, err = db.DeleteEntity(r)
			}
			if err != nil {
				t.Fatal(err)
			}
			eq(t, "deleted", st.Deleted, 3)
			for _, ref := range []string{r, la, lb} {
				if state(t, db, ref) != nil {
					t.Errorf("%s survives its root's removal", ref)
				}
			}
		})
	}
}

// Bug 2: Providers() reports entity refs of kind "provider" as provider
// keys. Root edges use "provider:<pipeline>" as parent, entity refs are
// "kind:namespace/name", so an entity of a custom kind Provider that has
// children ("provider:default/acme") is listed. engine.SyncRoots then calls
// ApplyRoots(that key, "", nil) for the "unknown pipeline", which deletes all
// of that entity's children and their subtrees on every sync.
func TestBugProvidersListsEntitiesOfKindProvider(t *testing.T) {
	const pe, kid = "provider:default/acme", "component:default/kid"
	db := openDB(t)
	applyRoots(t, db, child(pe, "url:p"))
	commit(t, db, ok(pe, "h", nil, child(kid, "url:p")))
	provs, err := db.Providers()
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "providers", provs, []string{prov})
}

// Bug 3: Summary.Relations is documented as "distinct served relations" but
// counts every stored relation, including those whose source is not served
// (dangling, or never processed successfully), such as the reverse half
// "group:default/ghost ownerOf component:default/a" of an ownedBy relation.
func TestBugSummaryCountsUnservedRelations(t *testing.T) {
	const a = "component:default/a"
	db := openDB(t)
	applyRoots(t, db, child(a, "url:a"))
	commit(t, db, ok(a, "a", []store.Relation{
		rel(a, "ownedBy", "group:default/ghost"), rel("group:default/ghost", "ownerOf", a)}))
	served := 0
	_ = db.ForEachFinal("", func(_ string, body []byte) error {
		var s struct{ Relations []json.RawMessage }
		_ = json.Unmarshal(body, &s)
		served += len(s.Relations)
		return nil
	})
	sum, err := db.Summarize()
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "Summary.Relations", sum.Relations, served)
}

// Bug 4: WriteTxCount is documented as the number of committed write
// transactions, but returns bbolt's TxStats.Write, the number of page
// writes (every dirty page, the freelist and the meta page), so one commit
// adds several and an empty write transaction adds at least one.
func TestBugWriteTxCountCountsPages(t *testing.T) {
	db := openDB(t)
	var roots []store.Child
	for i := range 200 {
		roots = append(roots, child(fmt.Sprintf("component:default/c%d", i), "url:x"))
	}
	w0 := db.WriteTxCount()
	applyRoots(t, db, roots...)
	eq(t, "write transactions for one ApplyRoots", db.WriteTxCount()-w0, 1)
}
