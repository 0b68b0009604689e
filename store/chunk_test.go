package store_test

import (
	"fmt"
	"testing"

	"github.com/catalog-pipeline/pipeline/store"
)

// A Location emitting more children than one transaction takes is
// committed in steps (childChunk = 5000 per step) ahead of its own
// transaction, with the same result as one transaction would have.
func TestCommitManyChildrenInSteps(t *testing.T) {
	const (
		p1, p2 = "location:default/p1", "location:default/p2"
		n      = 12001 // three steps of 5000, the last one short
	)
	kids := func(key string) []store.Child {
		out := make([]store.Child, n)
		for i := range out {
			// Reverse order: the steps must not depend on the caller sorting.
			out[i] = child(fmt.Sprintf("component:default/c%05d", n-1-i), key)
		}
		return out
	}
	tests := []struct {
		name string
		// setup runs after roots p1 and p2 exist.
		setup     func(t *testing.T, db *store.DB)
		out       func() *store.Outcome
		created   int
		conflicts int
		// txs is how many write transactions the commit takes.
		txs int
		// between, if set, writes after the step it is given (from 0).
		between func(t *testing.T, db *store.DB, step int)
		// upserts is how many children the outcome's own transaction
		// upserts again: none of those the steps put in place, unless
		// a write came between.
		upserts int
	}{
		{
			name:    "new children",
			out:     func() *store.Outcome { return ok(p1, "h", nil, kids("url:1")...) },
			created: n,
			txs:     3 + 1,
		},
		{
			name: "a write between two steps: the last transaction checks every child",
			between: func(t *testing.T, db *store.DB, step int) {
				if step == 0 {
					deleteEntity(t, db, "component:default/c00003")
				}
			},
			out:     func() *store.Outcome { return ok(p1, "h", nil, kids("url:1")...) },
			created: n + 1, // c00003 twice
			txs:     3 + 1 + 1,
			upserts: n,
		},
		{
			// The records of chunk 1 are encoded while step 0 runs, as for
			// new children: the one created meanwhile must not be
			// overwritten by its stale record.
			name: "a child created by another location between two steps stays its",
			between: func(t *testing.T, db *store.DB, step int) {
				if step == 0 {
					commit(t, db, ok(p2, "h2", nil, child("component:default/c06000", "url:2")))
				}
			},
			out:       func() *store.Outcome { return ok(p1, "h", nil, kids("url:1")...) },
			created:   n - 1,
			conflicts: 1,
			txs:       3 + 1 + 1,
			upserts:   n + 1, // p2's child too
		},
		{
			name: "a write after the last step: the last transaction checks every child",
			between: func(t *testing.T, db *store.DB, step int) {
				if step == 2 {
					deleteEntity(t, db, "component:default/c12000")
				}
			},
			out:     func() *store.Outcome { return ok(p1, "h", nil, kids("url:1")...) },
			created: n + 1,
			txs:     3 + 1 + 1,
			upserts: n,
		},
		{
			name:  "unchanged outcome takes one transaction",
			setup: func(t *testing.T, db *store.DB) { commit(t, db, ok(p1, "h", nil, kids("url:1")...)) },
			out:   func() *store.Outcome { return ok(p1, "h", nil, kids("url:1")...) },
			txs:   1,
		},
		{
			name: "stale outcome writes no child",
			out: func() *store.Outcome {
				o := ok(p1, "h", nil, kids("url:1")...)
				o.UnprocessedHash = "not what is stored"
				return o
			},
			txs: 1,
		},
		{
			name: "a child owned elsewhere is reported once",
			setup: func(t *testing.T, db *store.DB) {
				commit(t, db, ok(p2, "h", nil, child("component:default/c00007", "url:2")))
			},
			out:       func() *store.Outcome { return ok(p1, "h", nil, kids("url:1")...) },
			created:   n - 1,
			conflicts: 1,
			txs:       3 + 1,
			upserts:   1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := openDB(t)
			applyRoots(t, db, child(p1, prov), child(p2, prov))
			if tc.setup != nil {
				tc.setup(t, db)
			}
			step := 0
			if tc.between != nil {
				defer store.SetAfterChildStep(func() {
					tc.between(t, db, step)
					step++
				})()
			}
			before, upserts := db.WriteTxCount(), db.ChildUpserts()
			st := commit(t, db, tc.out())
			eq(t, "write transactions", db.WriteTxCount()-before, tc.txs)
			eq(t, "created", st.Created, tc.created)
			eq(t, "conflicts", len(st.Conflicts), tc.conflicts)
			eq(t, "children upserted by the last transaction", db.ChildUpserts()-upserts, tc.upserts)
			if tc.name == "a child created by another location between two steps stays its" {
				st, err := db.State("component:default/c06000")
				if err != nil {
					t.Fatal(err)
				}
				eq(t, "location key of the child p2 created", st.LocationKey, "url:2")
				eq(t, "children", len(children(t, db, p1)), n-1)
				return
			}
			if tc.created > 0 {
				eq(t, "children", len(children(t, db, p1)), min(tc.created, n))
				// The records encoded ahead are those a child gets in the
				// transaction: its entity, hash, key, pipeline, root, a
				// UID of its own.
				parent, err := db.State(p1)
				if err != nil {
					t.Fatal(err)
				}
				uids := map[string]bool{}
				for _, i := range []int{0, 1, 4999, 5000, 9999, 12000} {
					ref := fmt.Sprintf("component:default/c%05d", i)
					st, err := db.State(ref)
					if err != nil {
						t.Fatal(err)
					}
					want := child(ref, "url:1")
					if st == nil || string(st.Unprocessed) != string(want.Entity) || st.UnprocessedHash != want.Hash ||
						st.LocationKey != "url:1" || st.Pipeline != parent.Pipeline || st.Root != parent.Root || st.UID == "" || uids[st.UID] {
						t.Fatalf("state of %s = %+v", ref, st)
					}
					uids[st.UID] = true
				}
				eq(t, "parent served", mustFinalRef(t, db, p1), true)
			}
			if tc.name == "stale outcome writes no child" {
				eq(t, "children", len(children(t, db, p1)), 0)
			}
		})
	}
}

func deleteEntity(t *testing.T, db *store.DB, ref string) {
	t.Helper()
	if _, err := db.DeleteEntity(ref); err != nil {
		t.Fatal(err)
	}
}

func mustFinalRef(t *testing.T, db *store.DB, ref string) bool {
	t.Helper()
	f, _, _ := final(t, db, ref)
	return f != nil
}
