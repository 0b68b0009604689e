package store_test

import (
	"fmt"
	"maps"
	"math"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/catalog-pipeline/pipeline/catalog"
	"github.com/catalog-pipeline/pipeline/store"
	bolt "go.etcd.io/bbolt"
)

// Deferred stitching (CommitDeferred, StitchPending, the stitchq bucket):
// the served entities and the search index lag behind the commits until
// StitchPending runs, and then equal what synchronous commits serve.

// --- helpers -----------------------------------------------------------------

func commitDeferred(t testing.TB, db *store.DB, outs ...*store.Outcome) store.CommitStats {
	t.Helper()
	st, err := db.CommitDeferred(outs)
	if err != nil {
		t.Fatal(err)
	}
	if st.Stitched != 0 {
		t.Errorf("CommitDeferred stitched %d entities", st.Stitched)
	}
	return st
}

func stitchPending(t testing.TB, db *store.DB, limit int) (store.CommitStats, bool) {
	t.Helper()
	st, more, err := db.StitchPending(limit)
	if err != nil {
		t.Fatalf("StitchPending(%d): %v", limit, err)
	}
	return st, more
}

// drainStitches calls StitchPending(limit) until nothing is pending and
// returns the entities stitched and the number of calls.
func drainStitches(t testing.TB, db *store.DB, limit int) (stitched, calls int) {
	t.Helper()
	for more := true; more; calls++ {
		if calls > 10000 {
			t.Fatal("StitchPending never reports the end")
		}
		var st store.CommitStats
		st, more = stitchPending(t, db, limit)
		stitched += st.Stitched
	}
	return stitched, calls
}

func stitchBacklog(t testing.TB, db *store.DB) int {
	t.Helper()
	n, err := db.StitchBacklog()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func checkIndex(t testing.TB, db *store.DB, step string) {
	t.Helper()
	if err := db.CheckIndex(); err != nil {
		t.Errorf("%s: %v", step, err)
	}
}

// servedSnapshot is every served entity of db: ref → etag ‖ body.
func servedSnapshot(t testing.TB, db *store.DB) map[string]string {
	t.Helper()
	out := map[string]string{}
	if err := db.ForEachFinal("", func(ref string, body []byte) error {
		_, etag, err := db.Final(ref)
		out[ref] = etag + string(body)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// sameServed checks that two files serve the same refs with the same
// entities, but for the uid and etag, which differ between files.
func sameServed(t *testing.T, a, b *store.DB) {
	t.Helper()
	sa, sb := servedSnapshot(t, a), servedSnapshot(t, b)
	eq(t, "served refs", slices.Sorted(maps.Keys(sb)), slices.Sorted(maps.Keys(sa)))
	for ref := range sa {
		if _, ok := sb[ref]; !ok {
			continue
		}
		_, ba, ea := mustFinal(t, a, ref)
		_, bb, eb := mustFinal(t, b, ref)
		checkEtagIsHash(t, bb, eb)
		checkEtagIsHash(t, ba, ea)
		if !reflect.DeepEqual(withoutIdentity(t, ba), withoutIdentity(t, bb)) {
			t.Errorf("%s served differently:\n sync     %s\n deferred %s", ref, ba, bb)
		}
	}
}

// fixtureOutcome is a successful run of f.
func fixtureOutcome(f fixture, hash string) *store.Outcome {
	o := ok(f.ref, hash, f.rels)
	o.Processed = f.doc()
	return o
}

// --- 1: deferred commits serve nothing new until StitchPending -------------

func TestDeferredServesOnlyAfterStitchPending(t *testing.T) {
	const (
		loc    = "location:default/loc"
		group  = "group:default/team"
		compA  = "component:default/a"
		compB  = "component:default/b"
		broken = "component:default/broken"
	)
	kids := func(refs ...string) []store.Child {
		var out []store.Child
		for _, r := range refs {
			out = append(out, child(r, "url:loc"))
		}
		return out
	}
	owned := func(c string) []store.Relation {
		return []store.Relation{rel(c, "ownedBy", group), rel(group, "ownerOf", c)}
	}
	withSpec := func(o *store.Outcome, spec ...string) *store.Outcome {
		o.Processed = ent(o.Ref, spec...)
		return o
	}
	// base is committed synchronously into both files: loc emits the
	// group and a, all three processed and served.
	base := func() [][]*store.Outcome {
		return [][]*store.Outcome{
			{ok(loc, "loc1", nil, kids(group, compA)...)},
			{ok(group, "g1", nil), ok(compA, "a1", owned(compA))},
		}
	}
	cases := []struct {
		name        string
		keepOrphans bool
		// batches are committed synchronously into one file and deferred
		// into the other.
		batches func() [][]*store.Outcome
		// fresh are refs not served before StitchPending and served after.
		fresh []string
		// changed are refs served before whose served form StitchPending
		// changes.
		changed []string
	}{
		{
			name: "new children, related to an existing group",
			batches: func() [][]*store.Outcome {
				return [][]*store.Outcome{
					{ok(loc, "loc2", nil, kids(group, compA, compB)...)},
					{ok(compB, "b1", owned(compB))},
				}
			},
			fresh:   []string{compB},
			changed: []string{group},
		},
		{
			name: "existing entity reprocessed with a new spec",
			batches: func() [][]*store.Outcome {
				return [][]*store.Outcome{{withSpec(ok(compA, "a2", owned(compA)), "type", "website")}}
			},
			changed: []string{compA},
		},
		{
			name: "relation dropped by its originator",
			batches: func() [][]*store.Outcome {
				return [][]*store.Outcome{{ok(compA, "a2", nil)}}
			},
			changed: []string{compA, group},
		},
		{
			name: "failure adds status items, keeps the last good entity",
			batches: func() [][]*store.Outcome {
				return [][]*store.Outcome{{failed(compA, "a-failed", catalog.SerializedError{Name: "InputError", Message: "bad"})}}
			},
			changed: []string{compA},
		},
		{
			name: "failure before the first success is never served",
			batches: func() [][]*store.Outcome {
				return [][]*store.Outcome{
					{ok(loc, "loc2", nil, kids(group, compA, broken)...)},
					{failed(broken, "b-failed", catalog.SerializedError{Name: "InputError", Message: "bad"})},
				}
			},
		},
		{
			name:        "orphan kept and annotated",
			keepOrphans: true,
			batches: func() [][]*store.Outcome {
				return [][]*store.Outcome{{ok(loc, "loc2", nil, kids(group)...)}}
			},
			changed: []string{compA},
		},
		{
			name: "unchanged outcomes",
			batches: func() [][]*store.Outcome {
				return [][]*store.Outcome{{ok(group, "g1", nil), ok(compA, "a1", owned(compA))}}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sync, deferred := openDB(t), openDB(t)
			for _, db := range []*store.DB{sync, deferred} {
				db.SetKeepOrphans(tc.keepOrphans)
				applyRoots(t, db, child(loc, prov))
				for _, b := range base() {
					commit(t, db, b...)
				}
			}
			before := servedSnapshot(t, deferred)
			for _, b := range tc.batches() {
				commit(t, sync, b...)
			}
			for i, b := range tc.batches() {
				commitDeferred(t, deferred, b...)
				checkIndex(t, deferred, fmt.Sprintf("after deferred batch %d", i))
			}
			// Nothing served moved: no new entity, the same bytes and etag
			// for the existing ones.
			eq(t, "served before StitchPending", servedSnapshot(t, deferred), before)
			for _, ref := range tc.fresh {
				if s, _, _ := final(t, deferred, ref); s != nil {
					t.Errorf("%s is served before StitchPending", ref)
				}
			}

			stitched, _ := drainStitches(t, deferred, 1<<20)
			eq(t, "stitched", stitched, len(tc.fresh)+len(tc.changed))
			eq(t, "backlog after StitchPending", stitchBacklog(t, deferred), 0)
			sameServed(t, sync, deferred)
			after := servedSnapshot(t, deferred)
			for _, ref := range tc.fresh {
				mustFinal(t, deferred, ref)
			}
			for _, ref := range tc.changed {
				if after[ref] == before[ref] {
					t.Errorf("%s did not change", ref)
				}
			}
			// Everything else kept its bytes and etag (and its uid).
			for ref, v := range before {
				if !slices.Contains(tc.changed, ref) && after[ref] != v {
					t.Errorf("%s changed:\n before %s\n after  %s", ref, v, after[ref])
				}
			}
			if tc.keepOrphans {
				s, _, _ := mustFinal(t, deferred, compA)
				eq(t, "orphan annotation", s.Metadata.Ann[catalog.AnnotationOrphan], "true")
			}
		})
	}
}

// --- 2: an entity changed by several batches is stitched once ---------------

func TestDeferredStitchesEachEntityOnce(t *testing.T) {
	const (
		loc   = "location:default/loc"
		group = "group:default/team"
		c1    = "component:default/c1"
		c2    = "component:default/c2"
		c3    = "component:default/c3"
	)
	owned := func(c string) []store.Relation {
		return []store.Relation{rel(c, "ownedBy", group), rel(group, "ownerOf", c)}
	}
	cases := []struct {
		name    string
		batches [][]*store.Outcome
		// wantBacklog is the queue after the deferred commits; the group
		// and each component once.
		wantBacklog   int
		wantStitched  int
		wantGroupRels []servedRel
	}{
		{
			name:          "two components in separate batches",
			batches:       [][]*store.Outcome{{ok(c1, "c1", owned(c1))}, {ok(c2, "c2", owned(c2))}},
			wantBacklog:   3,
			wantStitched:  3,
			wantGroupRels: []servedRel{{"ownerOf", c1}, {"ownerOf", c2}},
		},
		{
			name:          "three components, one a batch",
			batches:       [][]*store.Outcome{{ok(c1, "c1", owned(c1))}, {ok(c2, "c2", owned(c2))}, {ok(c3, "c3", owned(c3))}},
			wantBacklog:   4,
			wantStitched:  4,
			wantGroupRels: []servedRel{{"ownerOf", c1}, {"ownerOf", c2}, {"ownerOf", c3}},
		},
		{
			name: "a component reprocessed in a later batch",
			batches: [][]*store.Outcome{
				{ok(c1, "c1", owned(c1))},
				{ok(c2, "c2", owned(c2))},
				{ok(c1, "c1-again", append(owned(c1), rel(group, "parentOf", c1)))},
			},
			wantBacklog:   3,
			wantStitched:  3,
			wantGroupRels: []servedRel{{"ownerOf", c1}, {"ownerOf", c2}, {"parentOf", c1}},
		},
		{
			name:          "the same outcome twice",
			batches:       [][]*store.Outcome{{ok(c1, "c1", owned(c1))}, {ok(c1, "c1", owned(c1))}},
			wantBacklog:   2,
			wantStitched:  2,
			wantGroupRels: []servedRel{{"ownerOf", c1}},
		},
		{
			name:          "a relation added then removed",
			batches:       [][]*store.Outcome{{ok(c1, "c1", owned(c1))}, {ok(c1, "c1-none", nil)}},
			wantBacklog:   2,
			wantStitched:  1, // c1; the group comes back to what it served
			wantGroupRels: []servedRel{},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := openDB(t)
			applyRoots(t, db, child(loc, prov))
			commit(t, db, ok(loc, "loc", nil, child(group, "url:loc"), child(c1, "url:loc"), child(c2, "url:loc"), child(c3, "url:loc")))
			commit(t, db, ok(group, "g", nil))
			_, _, groupEtag := mustFinal(t, db, group)
			for _, b := range tc.batches {
				commitDeferred(t, db, b...)
			}
			eq(t, "backlog", stitchBacklog(t, db), tc.wantBacklog)
			if _, _, etag := mustFinal(t, db, group); etag != groupEtag {
				t.Error("the group changed before StitchPending")
			}
			stitched, calls := drainStitches(t, db, 100)
			eq(t, "stitched", stitched, tc.wantStitched)
			eq(t, "StitchPending calls", calls, 1)
			eq(t, "backlog after", stitchBacklog(t, db), 0)
			s, _, _ := mustFinal(t, db, group)
			eq(t, "group relations", s.Relations, tc.wantGroupRels)
		})
	}
}

// --- 3: limit and order ------------------------------------------------------

func TestDeferredStitchLimitAndOrder(t *testing.T) {
	// Refs whose byte order differs from the order they are committed in.
	refs := []string{
		"system:default/s", "component:default/c10", "api:default/z", "component:default/c2",
		"group:default/g", "component:default/c1", "api:default/a",
	}
	sorted := slices.Sorted(slices.Values(refs))
	for _, k := range []int{1, 2, 3, len(refs) - 1, len(refs), len(refs) + 5} {
		t.Run(fmt.Sprintf("limit %d", k), func(t *testing.T) {
			db := openDB(t)
			var roots []store.Child
			var outs []*store.Outcome
			for _, r := range refs {
				roots = append(roots, child(r, "url:"+r))
				outs = append(outs, ok(r, "h-"+r, nil))
			}
			applyRoots(t, db, roots...)
			commitDeferred(t, db, outs...)
			eq(t, "backlog", stitchBacklog(t, db), len(refs))
			done := 0
			for call := 1; ; call++ {
				if call > len(refs)+1 {
					t.Fatal("StitchPending does not end")
				}
				tx, ctx := db.WriteTxCount(), db.CompactionTxCount()
				st, more := stitchPending(t, db, k)
				// Compacting search segments (STORE_SEGMENTS=1) takes
				// transactions of its own after the batch's.
				eq(t, "write transactions of one call", db.WriteTxCount()-tx-(db.CompactionTxCount()-ctx), 1)
				n := min(k, len(refs)-done)
				done += n
				eq(t, fmt.Sprintf("call %d: stitched", call), st.Stitched, n)
				eq(t, fmt.Sprintf("call %d: more", call), more, done < len(refs))
				eq(t, fmt.Sprintf("call %d: backlog", call), stitchBacklog(t, db), len(refs)-done)
				// The first refs in key order are served, the others not.
				served := slices.Sorted(maps.Keys(servedSnapshot(t, db)))
				if served == nil {
					served = []string{}
				}
				eq(t, fmt.Sprintf("call %d: served", call), served, sorted[:done])
				if !more {
					break
				}
			}
			eq(t, "served in the end", done, len(refs))
		})
	}
}

// --- 4: nothing pending ------------------------------------------------------

func TestDeferredStitchNothingPending(t *testing.T) {
	const loc, a = "location:default/loc", "component:default/a"
	cases := []struct {
		name  string
		setup func(t *testing.T, db *store.DB)
	}{
		{name: "fresh file", setup: func(*testing.T, *store.DB) {}},
		{name: "after synchronous commits", setup: func(t *testing.T, db *store.DB) {
			applyRoots(t, db, child(loc, prov))
			commit(t, db, ok(loc, "loc", nil, child(a, "url:loc")))
			commit(t, db, ok(a, "a", nil))
		}},
		{name: "after the queue was drained", setup: func(t *testing.T, db *store.DB) {
			applyRoots(t, db, child(loc, prov))
			commitDeferred(t, db, ok(loc, "loc", nil, child(a, "url:loc")))
			commitDeferred(t, db, ok(a, "a", nil))
			drainStitches(t, db, 1)
		}},
		{name: "after deferred commits that changed nothing", setup: func(t *testing.T, db *store.DB) {
			applyRoots(t, db, child(loc, prov))
			commit(t, db, ok(loc, "loc", nil, child(a, "url:loc")))
			commitDeferred(t, db)
			commitDeferred(t, db, ok(loc, "loc", nil, child(a, "url:loc")))
			commitDeferred(t, db, ok("component:default/unknown", "x", nil))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := openDB(t)
			tc.setup(t, db)
			eq(t, "backlog", stitchBacklog(t, db), 0)
			served := servedSnapshot(t, db)
			for _, limit := range []int{1, 100} {
				tx := db.WriteTxCount()
				st, more := stitchPending(t, db, limit)
				eq(t, "write transactions", db.WriteTxCount()-tx, 0)
				eq(t, "more", more, false)
				eq(t, "stats", st, store.CommitStats{})
			}
			eq(t, "served", servedSnapshot(t, db), served)
		})
	}
}

// --- 5: deleted while pending --------------------------------------------------

func TestDeferredDeletedWhilePending(t *testing.T) {
	const (
		loc   = "location:default/loc"
		group = "group:default/team"
		c     = "component:default/c"
		n     = "component:default/new"
	)
	owned := []store.Relation{rel(c, "ownedBy", group), rel(group, "ownerOf", c)}
	cases := []struct {
		name string
		// act queues c (or n) for stitching and then deletes it.
		act    func(t *testing.T, db *store.DB)
		target string
		// wantGroupRels is what the group serves in the end.
		wantGroupRels []servedRel
	}{
		{
			name:   "DeleteEntity after a deferred commit",
			target: c,
			act: func(t *testing.T, db *store.DB) {
				commitDeferred(t, db, ok(c, "c2", owned))
				if _, err := db.DeleteEntity(c); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name:   "the parent stops emitting it in a later deferred batch",
			target: c,
			act: func(t *testing.T, db *store.DB) {
				commitDeferred(t, db, ok(c, "c2", owned))
				commitDeferred(t, db, ok(loc, "loc2", nil, child(group, "url:loc")))
			},
		},
		{
			name:   "the parent stops emitting it in the same deferred batch",
			target: c,
			act: func(t *testing.T, db *store.DB) {
				commitDeferred(t, db, ok(c, "c2", owned), ok(loc, "loc2", nil, child(group, "url:loc")))
			},
		},
		{
			name:   "the parent stops emitting it in a synchronous commit",
			target: c,
			act: func(t *testing.T, db *store.DB) {
				commitDeferred(t, db, ok(c, "c2", owned))
				commit(t, db, ok(loc, "loc2", nil, child(group, "url:loc")))
			},
		},
		{
			name:          "a new entity never served",
			target:        n,
			wantGroupRels: []servedRel{{"ownerOf", c}},
			act: func(t *testing.T, db *store.DB) {
				commitDeferred(t, db, ok(loc, "loc2", nil, child(group, "url:loc"), child(c, "url:loc"), child(n, "url:loc")))
				commitDeferred(t, db, ok(n, "n", []store.Relation{rel(group, "ownerOf", n)}))
				commitDeferred(t, db, ok(loc, "loc3", nil, child(group, "url:loc"), child(c, "url:loc")))
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := openDB(t)
			applyRoots(t, db, child(loc, prov))
			commit(t, db, ok(loc, "loc", nil, child(group, "url:loc"), child(c, "url:loc")))
			commit(t, db, ok(group, "g", nil), ok(c, "c", owned))
			uid := state(t, db, c).UID
			if tc.target == n {
				uid = ""
			}

			tc.act(t, db)
			checkIndex(t, db, "after the delete")
			if s, _, _ := final(t, db, tc.target); s != nil {
				t.Fatalf("%s is served after its deletion", tc.target)
			}
			stitchPending(t, db, 1<<20)
			eq(t, "backlog", stitchBacklog(t, db), 0)
			gone(t, db, tc.target, uid)
			checkIndex(t, db, "after StitchPending")
			// Nothing finds it, and the group lost its relation.
			set, err := db.Match(store.Eq{Key: "kind", Value: "component"})
			if err != nil {
				t.Fatal(err)
			}
			if _, found := set[tc.target]; found {
				t.Errorf("the search index still lists %s", tc.target)
			}
			if _, err := db.Page(store.PageQuery{Filter: store.Eq{Key: "kind", Value: "component"}, Limit: 10}); err != nil {
				t.Errorf("Page: %v", err)
			}
			s, _, _ := mustFinal(t, db, group)
			want := tc.wantGroupRels
			if want == nil {
				want = []servedRel{}
			}
			eq(t, "group relations", s.Relations, want)
		})
	}
}

// --- 6: schema version ---------------------------------------------------------

func TestDeferredSchemaUpgrade(t *testing.T) {
	const loc, a = "location:default/loc", "component:default/a"
	cases := []struct {
		name    string
		version string
		// drop lists the buckets the version lacks: version 5 has no
		// stitchq, versions up to 7 no relq, up to 8 no searchsegs.
		drop []string
		// staleCount adds the facet counts of a reverse relation, which
		// versions 5 and 6 kept, and of a dependsOn item, which versions
		// up to 9 kept; version 10 counts neither. Every version up to 10
		// has the searchref bucket, which 11 drops; every version up to 11
		// a search row per key, which 12 packs into blocks, and up to 12 a
		// bysource row per key, which 13 packs.
		staleCount  bool
		wantErr     []string
		wantVersion string
	}{
		{name: "version 5 without stitchq is upgraded", version: "5", drop: []string{"stitchq", "relq", "searchsegs"}, staleCount: true, wantVersion: "15"},
		{name: "version 5 with stitchq is upgraded", version: "5", drop: []string{"relq", "searchsegs"}, wantVersion: "15"},
		{name: "version 6 with counts of reverse relations is upgraded", version: "6", drop: []string{"relq", "searchsegs"}, staleCount: true, wantVersion: "15"},
		{name: "version 7 without relq is upgraded", version: "7", drop: []string{"relq", "searchsegs"}, wantVersion: "15"},
		{name: "version 8 without searchsegs is upgraded", version: "8", drop: []string{"searchsegs"}, wantVersion: "15"},
		{name: "version 9 with counts of dependsOn is upgraded", version: "9", staleCount: true, wantVersion: "15"},
		{name: "version 10 with searchref is upgraded", version: "10", wantVersion: "15"},
		{name: "version 11 with a search row per key is upgraded", version: "11", wantVersion: "15"},
		{name: "version 12 with a bysource row per key is upgraded", version: "12", wantVersion: "15"},
		{name: "version 13 without the entity dictionary is upgraded", version: "13", wantVersion: "15"},
		{name: "version 14 is upgraded", version: "14", wantVersion: "15"},
		{name: "current version opens", version: "15", wantVersion: "15"},
		{name: "version 4 is refused", version: "4", drop: []string{"stitchq", "relq", "searchsegs"},
			wantErr: []string{`"4"`, "not supported", "delete the file"}, wantVersion: "4"},
		{name: "version 16 is refused", version: "16", drop: []string{"stitchq", "relq", "searchsegs"},
			wantErr: []string{`"16"`, "not supported", "delete the file"}, wantVersion: "16"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.db")
			db, err := store.Open(path, store.Options{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			applyRoots(t, db, child(loc, prov))
			commit(t, db, ok(loc, "loc", nil, child(a, "url:loc")))
			commit(t, db, ok(a, "a", nil))
			_, body, etag := mustFinal(t, db, a)
			// An older file has no search segments (STORE_SEGMENTS=1
			// makes some): merge them before dropping their bucket.
			if err := db.CompactSearch(); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			rewriteMeta(t, path, tc.version, tc.drop...)
			if tc.version != "15" && tc.version != "14" && tc.wantErr == nil {
				// Versions up to 13 compress without the dictionary.
				if err := store.WithoutDict(path); err != nil {
					t.Fatal(err)
				}
			}
			if tc.version != "15" && tc.version != "14" && tc.version != "13" && tc.wantErr == nil {
				// Versions up to 12 store a bysource row per key, up
				// to 11 a search row per key too.
				if err := store.UnpackBlocks(path, tc.version != "12"); err != nil {
					t.Fatal(err)
				}
			}
			if tc.staleCount {
				one := []byte{0, 0, 0, 0, 0, 0, 0, 1} // a facet count of 1
				putAt(t, path, "facets", "relations.ownerof\x00component:default/a\x00component:default/a", one)
				putAt(t, path, "facets", "spec.dependson.component:default/b\x00true\x00true", one)
			}
			// Every version before 11 gets schema 10's searchref bucket,
			// and so do the refused ones, to check that refusing leaves
			// it; its values do not matter, nothing reads them.
			oldSearchRef := tc.version != "11" && tc.version != "12" && tc.version != "13" && tc.version != "14" && tc.version != "15"
			if oldSearchRef {
				putAt(t, path, "searchref", a, []byte{1})
			}

			db, err = store.Open(path, store.Options{NoSync: true})
			if tc.wantErr != nil {
				if err == nil {
					db.Close()
					t.Fatal("Open succeeded")
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("Open error %q does not mention %q", err, w)
					}
				}
				v, _ := readMeta(t, path, "")
				eq(t, "version on file", v, tc.wantVersion)
				for _, name := range tc.drop {
					if _, has := readMeta(t, path, name); has {
						t.Errorf("refusing the file created bucket %s", name)
					}
				}
				if _, has := readMeta(t, path, "searchref"); has != oldSearchRef {
					t.Errorf("refusing the file changed its searchref bucket (there: %v)", has)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			// The data survive, and deferred stitching works.
			_, b2, e2 := mustFinal(t, db, a)
			eq(t, "etag after reopening", e2, etag)
			eq(t, "body after reopening", string(b2), string(body))
			commitDeferred(t, db, ok(a, "a2", []store.Relation{rel(a, "dependsOn", loc)}))
			eq(t, "backlog", stitchBacklog(t, db), 1)
			if st, _ := stitchPending(t, db, 10); st.Stitched != 1 {
				t.Errorf("stitched %d", st.Stitched)
			}
			s, _, _ := mustFinal(t, db, a)
			eq(t, "relations", s.Relations, []servedRel{{"dependsOn", loc}})
			checkIndex(t, db, "upgraded")
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			v, _ := readMeta(t, path, "")
			eq(t, "version on file", v, tc.wantVersion)
			for _, name := range tc.drop {
				if _, has := readMeta(t, path, name); !has {
					t.Errorf("bucket %s was not created", name)
				}
			}
			if _, has := readMeta(t, path, "searchref"); has {
				t.Error("the searchref bucket of schema 10 was kept")
			}
		})
	}
}

// rewriteMeta sets the schema version of a closed file and removes the
// buckets named in drop.
func rewriteMeta(t *testing.T, path, version string, drop ...string) {
	t.Helper()
	updateFile(t, path, func(root *bolt.Bucket) error {
		for _, name := range drop {
			if err := root.DeleteBucket([]byte(name)); err != nil {
				return err
			}
		}
		return root.Bucket([]byte("meta")).Put([]byte("version"), []byte(version))
	})
}

// --- 7: the search index follows the served entities ----------------------------

// stitchModes are the ways StitchPending can build a batch: in its write
// transaction, or prepared beforehand on read transactions by one or
// several goroutines.
var stitchModes = []struct {
	name            string
	minPerGoroutine int
	procs           int
}{
	{"in the write transaction", math.MaxInt, 1},
	{"prepared by one goroutine", 1, 1},
	{"prepared by three goroutines", 1, 3},
}

func TestDeferredSearchIndexMatchesCommit(t *testing.T) {
	for _, m := range stitchModes {
		t.Run(m.name, func(t *testing.T) {
			defer store.SetStitchPreparation(m.minPerGoroutine, m.procs, nil)()
			testDeferredSearchIndexMatchesCommit(t)
		})
	}
}

func testDeferredSearchIndexMatchesCommit(t *testing.T) {
	fs := catalogFixtures()
	// A second round of runs: b becomes a website, a loses team-a, the
	// system gains a relation to c.
	changed := func() []*store.Outcome {
		a, b, s := fs[0], fs[1], fs[6]
		b.spec = map[string]any{"type": "website", "lifecycle": "experimental", "owner": "team-b"}
		a.rels = []store.Relation{rel(a.ref, "ownedBy", teamBR)}
		s.rels = []store.Relation{rel(compC, "partOf", sysS)}
		return []*store.Outcome{fixtureOutcome(a, "a2"), fixtureOutcome(b, "b2"), fixtureOutcome(s, "s2")}
	}
	comp := store.Eq{Key: "kind", Value: "component"}
	queries := []struct {
		name string
		expr store.Expr
	}{
		{"everything", nil},
		{"kind", comp},
		{"kind and type", store.All{comp, store.Eq{Key: "spec.type", Value: "website"}}},
		{"relation", store.Eq{Key: "relations.ownedBy", Value: teamA}},
		{"reverse relation", store.Exists{Key: "relations.partOf"}},
		{"not", store.Not{Expr: comp}},
	}
	compare := func(t *testing.T, sync, deferred *store.DB) {
		t.Helper()
		for _, q := range queries {
			ms, err := sync.Match(q.expr)
			if err != nil {
				t.Fatal(err)
			}
			md, err := deferred.Match(q.expr)
			if err != nil {
				t.Fatal(err)
			}
			eq(t, q.name+": Match", sortedRefs(md), sortedRefs(ms))
			for _, order := range []string{"", "spec.type", "metadata.name"} {
				pq := store.PageQuery{Filter: q.expr, OrderField: order, Limit: 100, WithTotal: true}
				ps, err := sync.Page(pq)
				if err != nil {
					t.Fatal(err)
				}
				pd, err := deferred.Page(pq)
				if err != nil {
					t.Fatal(err)
				}
				eq(t, q.name+" by "+order+": total", pd.Total, ps.Total)
				eq(t, q.name+" by "+order+": more", pd.More, ps.More)
				if len(pd.Items) != len(ps.Items) {
					t.Errorf("%s by %s: %d items, want %d", q.name, order, len(pd.Items), len(ps.Items))
					continue
				}
				for i := range ps.Items {
					eq(t, q.name+": ref", pd.Items[i].Ref, ps.Items[i].Ref)
					eq(t, q.name+": body", withoutIdentity(t, pd.Items[i].Body), withoutIdentity(t, ps.Items[i].Body))
				}
			}
		}
		paths := []string{"kind", "spec.type", "relations.ownedBy", "metadata.tags"}
		facetsSync, err := sync.Facets(paths, nil)
		if err != nil {
			t.Fatal(err)
		}
		facetsDeferred, err := deferred.Facets(paths, nil)
		if err != nil {
			t.Fatal(err)
		}
		eq(t, "facets", facetsDeferred, facetsSync)
	}

	sync, deferred := openDB(t), openDB(t)
	var outs []*store.Outcome
	for _, f := range fs {
		outs = append(outs, fixtureOutcome(f, sha(f.doc())))
	}
	serve(t, sync, fs...)
	applyRoots(t, deferred, rootsOf(fs)...)
	commitDeferred(t, deferred, outs...)
	// Nothing is served nor indexed yet.
	if n, err := deferred.Count(nil); err != nil || n != 0 {
		t.Errorf("Count before StitchPending = %d, %v", n, err)
	}
	if res, err := deferred.Page(store.PageQuery{Filter: comp, Limit: 10}); err != nil || len(res.Items) != 0 {
		t.Errorf("Page before StitchPending = %+v, %v", res, err)
	}
	drainStitches(t, deferred, 3)
	t.Run("first runs", func(t *testing.T) { compare(t, sync, deferred) })

	// The second round: until StitchPending the deferred file answers as
	// before, the index agreeing with what it serves.
	websitesBefore, err := deferred.Match(store.Eq{Key: "spec.type", Value: "website"})
	if err != nil {
		t.Fatal(err)
	}
	commit(t, sync, changed()...)
	commitDeferred(t, deferred, changed()...)
	checkIndex(t, deferred, "after the deferred second round")
	websites, err := deferred.Match(store.Eq{Key: "spec.type", Value: "website"})
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "websites before StitchPending", sortedRefs(websites), sortedRefs(websitesBefore))
	drainStitches(t, deferred, 2)
	t.Run("second runs", func(t *testing.T) { compare(t, sync, deferred) })
	websites, err = deferred.Match(store.Eq{Key: "spec.type", Value: "website"})
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "websites after StitchPending", sortedRefs(websites), []string{compB, compC})
}

// --- 8: preparation outside the write transaction -----------------------------

// A write that commits between StitchPending's preparation and its write
// transaction makes the prepared batch stale: the batch is rebuilt in the
// write transaction, so the served entity is the latest run's.
func TestStitchPendingPreparedBatchGoesStale(t *testing.T) {
	fs := catalogFixtures()
	a := fs[0]
	for _, m := range stitchModes[1:] {
		t.Run(m.name, func(t *testing.T) {
			db := openDB(t)
			applyRoots(t, db, rootsOf(fs)...)
			var outs []*store.Outcome
			for _, f := range fs {
				outs = append(outs, fixtureOutcome(f, sha(f.doc())))
			}
			commitDeferred(t, db, outs...)

			// While the batch is being written, a's run changes: a is
			// still queued, so the commit does not queue it again.
			changed := a
			changed.spec = map[string]any{"type": "website", "lifecycle": "experimental", "owner": "team-b"}
			once := false
			defer store.SetStitchPreparation(m.minPerGoroutine, m.procs, func() {
				if !once {
					once = true
					commitDeferred(t, db, fixtureOutcome(changed, "a2"))
				}
			})()
			stitched, _ := drainStitches(t, db, 1000)
			if !once {
				t.Fatal("the preparation hook never ran")
			}
			eq(t, "stitched", stitched, len(fs))
			_, body, _ := mustFinal(t, db, a.ref)
			if !strings.Contains(string(body), `"type":"website"`) {
				t.Errorf("%s is served from the stale preparation: %s", a.ref, body)
			}
			eq(t, "backlog", stitchBacklog(t, db), 0)
			checkIndex(t, db, "after the stale batch")
		})
	}
}

// While one batch is written, the next one is prepared: when nothing else
// writes, every batch is written as prepared, and the result is what the
// write transaction would have built.
func TestStitchPendingPipelinesBatches(t *testing.T) {
	fs := catalogFixtures()
	for _, m := range stitchModes {
		t.Run(m.name, func(t *testing.T) {
			defer store.SetStitchPreparation(m.minPerGoroutine, m.procs, nil)()
			sync, deferred := openDB(t), openDB(t)
			var outs []*store.Outcome
			for _, f := range fs {
				outs = append(outs, fixtureOutcome(f, sha(f.doc())))
			}
			serve(t, sync, fs...)
			applyRoots(t, deferred, rootsOf(fs)...)
			commitDeferred(t, deferred, outs...)
			stitched, calls := drainStitches(t, deferred, 2)
			eq(t, "stitched", stitched, len(fs))
			eq(t, "calls", calls, (len(fs)+1)/2)
			want := calls
			if m.minPerGoroutine > 2 {
				want = 0
			}
			eq(t, "batches written as prepared", deferred.PreparedStitchBatches(), want)
			sameServed(t, sync, deferred)
		})
	}
}

// A write between the preparation of the next batch and its write
// transaction makes that batch stale: it is rebuilt, and every entity ends
// up serving its latest run.
func TestStitchPendingPrefetchedBatchGoesStale(t *testing.T) {
	fs := catalogFixtures()
	const rounds = 6
	for _, m := range stitchModes[1:] {
		t.Run(m.name, func(t *testing.T) {
			db := openDB(t)
			applyRoots(t, db, rootsOf(fs)...)
			var outs []*store.Outcome
			for _, f := range fs {
				outs = append(outs, fixtureOutcome(f, sha(f.doc())))
			}
			commitDeferred(t, db, outs...)
			// Before every batch is written, every entity gets a new run.
			round := 0
			defer store.SetStitchPreparation(m.minPerGoroutine, m.procs, func() {
				if round == rounds {
					return
				}
				round++
				var outs []*store.Outcome
				for _, f := range fs {
					f.spec = maps.Clone(f.spec)
					if f.spec == nil {
						f.spec = map[string]any{}
					}
					f.spec["round"] = fmt.Sprint(round)
					outs = append(outs, fixtureOutcome(f, fmt.Sprintf("%s-%d", f.ref, round)))
				}
				commitDeferred(t, db, outs...)
			})()
			drainStitches(t, db, 2)
			eq(t, "rounds", round, rounds)
			for _, f := range fs {
				_, body, _ := mustFinal(t, db, f.ref)
				if !strings.Contains(string(body), fmt.Sprintf(`"round":"%d"`, rounds)) {
					t.Errorf("%s serves an earlier run: %s", f.ref, body)
				}
			}
			checkIndex(t, db, "after the stale batches")
		})
	}
}

// BenchmarkStitchPending measures draining the stitch queue after deferred
// commits of 2000 new related entities per op (on top of the earlier ops'
// entities), in batches of 500: built in the write transaction, or
// prepared on read transactions by GOMAXPROCS goroutines, the next batch
// while the current one is written.
func BenchmarkStitchPending(b *testing.B) {
	const perOp, limit = 2000, 500
	// segments: each batch of 500 (~9,000 index writes) writes a search
	// segment, as 4,000-entity batches do by default, merged at the end
	// of every drain.
	segmented := store.DefaultSegmentTuning
	segmented.MinOps = 1000
	modes := []struct {
		name            string
		minPerGoroutine int
		segments        store.SegmentTuning
	}{
		{"in-tx", math.MaxInt, store.DefaultSegmentTuning},
		{"prepared", 128, store.DefaultSegmentTuning},
		{"prepared+segments", 128, segmented},
	}
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			defer store.SetStitchPreparation(m.minPerGoroutine, runtime.GOMAXPROCS(0), nil)()
			defer store.SetSegmentTuning(m.segments)()
			db := openDB(b)
			var elapsed time.Duration
			for n := 0; n < b.N; n++ {
				b.StopTimer()
				roots := make([]store.Child, perOp)
				outs := make([]*store.Outcome, perOp)
				for i := range perOp {
					ref := fmt.Sprintf("component:default/c%07d", n*perOp+i)
					g := fmt.Sprintf("group:default/team-%d", i%50)
					roots[i] = child(ref, "url:"+ref)
					o := ok(ref, "h", []store.Relation{rel(ref, "ownedBy", g), rel(g, "ownerOf", ref),
						rel(ref, "dependsOn", fmt.Sprintf("component:default/c%07d", (n*perOp+i+1)%(perOp*(n+1))))})
					o.Processed = ent(ref, "type", "service", "lifecycle", "production", "owner", g)
					outs[i] = o
				}
				if _, err := db.ApplyRoots(fmt.Sprintf("%sb%d", store.ProviderPrefix, n), "p", roots); err != nil {
					b.Fatal(err)
				}
				commitDeferred(b, db, outs...)
				b.StartTimer()
				start := time.Now()
				if stitched, _ := drainStitches(b, db, limit); stitched < perOp {
					b.Fatalf("stitched %d of %d", stitched, perOp)
				}
				elapsed += time.Since(start)
			}
			b.ReportMetric(float64(b.N*perOp)/elapsed.Seconds(), "entities/s")
		})
	}
}

// A relation an outcome adds is gone when a later outcome of the same
// batch deletes its originator: relation rows are written at the end of
// the transaction, sorted, and two writes to one row keep their order.
func TestRelationAddedAndDroppedInOneBatch(t *testing.T) {
	const (
		loc   = "location:default/loc"
		group = "group:default/team"
		c     = "component:default/c"
	)
	for _, deferred := range []bool{false, true} {
		t.Run(fmt.Sprintf("deferred=%v", deferred), func(t *testing.T) {
			db := openDB(t)
			applyRoots(t, db, child(loc, prov))
			commit(t, db, ok(loc, "loc", nil, child(group, "url:loc"), child(c, "url:loc")))
			commit(t, db, ok(group, "g", nil), ok(c, "c", nil))
			batch := []*store.Outcome{
				ok(c, "c2", []store.Relation{rel(c, "ownedBy", group), rel(group, "ownerOf", c)}),
				ok(loc, "loc2", nil, child(group, "url:loc")),
			}
			if deferred {
				commitDeferred(t, db, batch...)
				drainStitches(t, db, 10)
			} else {
				commit(t, db, batch...)
			}
			if s, _, _ := final(t, db, c); s != nil {
				t.Fatalf("%s is served after its deletion", c)
			}
			s, _, _ := mustFinal(t, db, group)
			eq(t, "group relations", s.Relations, []servedRel{})
		})
	}
}
