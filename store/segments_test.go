package store_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/catalog-pipeline/pipeline/store"
)

// Large StitchPending batches write their new search rows to segments,
// merged back when stitching goes idle or they pile up (segments.go). The
// tests lower the thresholds so that a few entities make a "large" batch;
// openDB's cleanup checks every index against a rebuild.

const segLoc = "location:default/seg"

func segRef(i int) string { return fmt.Sprintf("component:default/c%02d", i) }

// typed is a successful outcome for ref whose entity has spec.type typ.
func typed(ref, typ string) *store.Outcome {
	o := ok(ref, "h-"+typ, nil)
	o.Processed = ent(ref, "type", typ)
	return o
}

// segCatalog registers n components under one location and processes
// them with spec.type typ, deferred: all n wait in stitchq.
func segCatalog(t *testing.T, n int, typ string) *store.DB {
	t.Helper()
	db := openDB(t)
	applyRoots(t, db, child(segLoc, prov))
	kids := make([]store.Child, n)
	outs := make([]*store.Outcome, n)
	for i := range n {
		kids[i] = child(segRef(i), "url:seg")
		outs[i] = typed(segRef(i), typ)
	}
	commit(t, db, ok(segLoc, "loc", nil, kids...))
	commitDeferred(t, db, outs...)
	return db
}

func segments(t *testing.T, db *store.DB) int {
	t.Helper()
	n, err := db.SearchSegments()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// withType lists the refs whose spec.type is typ, through the index.
func withType(t *testing.T, db *store.DB, typ string) []string {
	t.Helper()
	set, err := db.Match(store.Eq{Key: "spec.type", Value: typ})
	if err != nil {
		t.Fatal(err)
	}
	return slices.Sorted(func(yield func(string) bool) {
		for ref := range set {
			if !yield(ref) {
				return
			}
		}
	})
}

func refsUpTo(n int) []string {
	var out []string
	for i := range n {
		out = append(out, segRef(i))
	}
	return out
}

func TestStitchBatchesWriteSegments(t *testing.T) {
	for _, m := range stitchModes {
		t.Run(m.name, func(t *testing.T) {
			defer store.SetStitchPreparation(m.minPerGoroutine, m.procs, nil)()
			defer store.SetSegmentTuning(store.SegmentTuning{MinOps: 1, Max: 100, Chunk: 5, FullRatio: 4})()
			db := segCatalog(t, 12, "service")

			// Every batch but the last leaves one more segment, and
			// what it stitched is found through them.
			for call := 1; ; call++ {
				st, more := stitchPending(t, db, 4)
				if !more {
					// The merge copied every row, and says so.
					rows, err := db.SearchIndexRows()
					if err != nil {
						t.Fatal(err)
					}
					eq(t, "rows merged by the last call", st.IndexRowsMerged, rows)
					break
				}
				eq(t, fmt.Sprintf("rows merged by call %d", call), st.IndexRowsMerged, 0)
				eq(t, fmt.Sprintf("segments after call %d", call), segments(t, db), call)
				eq(t, fmt.Sprintf("services after call %d", call), withType(t, db, "service"), refsUpTo(4*call))
				checkIndex(t, db, fmt.Sprintf("call %d", call))
			}
			// The queue ran dry: the segments hold more than a quarter
			// of the rows, so they and main became one new main.
			eq(t, "segments after the burst", segments(t, db), 0)
			eq(t, "services after the burst", withType(t, db, "service"), refsUpTo(12))
			checkIndex(t, db, "compacted")

			// A smaller burst changes a few entities. Mid-burst, the
			// first one's new row is in a segment, its old one in main.
			commitDeferred(t, db, typed(segRef(0), "website"), typed(segRef(1), "website"), typed(segRef(2), "website"))
			if _, more := stitchPending(t, db, 1); !more {
				t.Fatal("the small burst ended after one call")
			}
			eq(t, "segments in the small burst", segments(t, db), 1)
			eq(t, "websites in the small burst", withType(t, db, "website"), refsUpTo(1))
			// Rows in the segment and in main are changed and deleted
			// where they are.
			commitDeferred(t, db, typed(segRef(0), "library"), typed(segRef(3), "library"))
			if _, err := db.DeleteEntity(segRef(1)); err != nil {
				t.Fatal(err)
			}
			checkIndex(t, db, "changed in place")
			// When it ends, the segments, far smaller than main, are
			// moved into it.
			var merged int
			for more := true; more; {
				var st store.CommitStats
				st, more = stitchPending(t, db, 1)
				merged += st.IndexRowsMerged
			}
			if merged == 0 {
				t.Error("the small burst's segments were not merged")
			}
			eq(t, "segments after the small burst", segments(t, db), 0)
			eq(t, "libraries", withType(t, db, "library"), []string{segRef(0), segRef(3)})
			eq(t, "websites", withType(t, db, "website"), []string{segRef(2)})
			eq(t, "services", withType(t, db, "service"), refsUpTo(12)[4:])
			checkIndex(t, db, "small burst")

			if err := db.CompactSearch(); err != nil {
				t.Fatal(err)
			}
			eq(t, "libraries after a full compaction", withType(t, db, "library"), []string{segRef(0), segRef(3)})
		})
	}
}

// TestSegmentsMergeWhenTheyPileUp: reaching maxSegments in the middle of
// a burst merges them before the next batch, which is prepared again.
func TestSegmentsMergeWhenTheyPileUp(t *testing.T) {
	defer store.SetStitchPreparation(1, 2, nil)()
	defer store.SetSegmentTuning(store.SegmentTuning{MinOps: 1, Max: 3, Chunk: 4, FullRatio: 4})()
	db := segCatalog(t, 10, "service")
	most := 0
	for call := 1; ; call++ {
		_, more := stitchPending(t, db, 1)
		n := segments(t, db)
		most = max(most, n)
		if n >= 3 {
			t.Fatalf("call %d left %d segments, the most is 3", call, n)
		}
		eq(t, fmt.Sprintf("services after call %d", call), withType(t, db, "service"), refsUpTo(min(call, 10)))
		if !more {
			break
		}
	}
	eq(t, "most segments at once", most, 2)
	// The last one, below a quarter of main's rows, was moved into it.
	eq(t, "segments at the end", segments(t, db), 0)
}

// TestSmallBatchesWriteNoSegment: below segmentMinOps (the default is
// 20,000 rows) a batch writes to the main bucket as before.
func TestSmallBatchesWriteNoSegment(t *testing.T) {
	defer store.SetSegmentTuning(store.DefaultSegmentTuning)()
	db := segCatalog(t, 12, "service")
	for more := true; more; {
		_, more = stitchPending(t, db, 4)
		eq(t, "segments", segments(t, db), 0)
	}
	tx := db.WriteTxCount()
	commitDeferred(t, db, typed(segRef(0), "service"))
	drainStitches(t, db, 4)
	eq(t, "write transactions of an unchanged entity", db.WriteTxCount()-tx, 1)
}

// TestOpenDropsUnfinishedCompaction: a compaction cut short leaves its
// partial copy; its sources are intact, so Open deletes the copy.
func TestOpenDropsUnfinishedCompaction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	db := openAt(t, path)
	applyRoots(t, db, child(segLoc, prov))
	commit(t, db, ok(segLoc, "loc", nil, child(segRef(0), "url:seg")))
	commit(t, db, typed(segRef(0), "service"))
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	updateFile(t, path, func(root *bolt.Bucket) error {
		next, err := root.CreateBucket([]byte("searchnext"))
		if err != nil {
			return err
		}
		part, err := next.CreateBucket([]byte("search"))
		if err != nil {
			return err
		}
		return part.Put([]byte("spec.type\x00service\x00component:default/c00"), []byte{3})
	})
	db = openAt(t, path)
	defer db.Close()
	eq(t, "services", withType(t, db, "service"), refsUpTo(1))
	// CheckIndex also fails while a compaction copy is left.
	checkIndex(t, db, "reopened")
}

// TestQueriesWhileSegmentsComeAndGo walks the components page by page,
// by ref and by name descending, while a burst writes segments, merges
// them when they pile up and at its end: every walk sees each component
// at most once, and never fewer than the walk before (stitching only adds
// them). Run under -race by make test.
func TestQueriesWhileSegmentsComeAndGo(t *testing.T) {
	defer store.SetStitchPreparation(1, 2, nil)()
	defer store.SetSegmentTuning(store.SegmentTuning{MinOps: 1, Max: 4, Chunk: 9, FullRatio: 4})()
	const n = 60
	db := segCatalog(t, n, "service")
	walk := func(order string, desc bool) (int, error) {
		seen := map[string]bool{}
		var after *store.Position
		for {
			p, err := db.Page(store.PageQuery{Filter: store.Eq{Key: "kind", Value: "component"},
				OrderField: order, Desc: desc, After: after, Limit: 7})
			if err != nil {
				return 0, err
			}
			for _, it := range p.Items {
				if seen[it.Ref] {
					return 0, fmt.Errorf("%s appears twice in one walk (order %q)", it.Ref, order)
				}
				seen[it.Ref] = true
			}
			if !p.More || len(p.Items) == 0 {
				return len(seen), nil
			}
			last := p.Items[len(p.Items)-1].Sort
			after = &last
		}
	}
	stop := make(chan struct{})
	errs := make(chan error, 1)
	go func() {
		defer close(errs)
		prev := map[bool]int{}
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, desc := range []bool{false, true} {
				order := ""
				if desc {
					order = "metadata.name"
				}
				got, err := walk(order, desc)
				if err == nil && got < prev[desc] {
					err = fmt.Errorf("a walk saw %d components after one saw %d", got, prev[desc])
				}
				if err != nil {
					errs <- err
					return
				}
				prev[desc] = got
			}
		}
	}()
	drainStitches(t, db, 3)
	close(stop)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	got, err := walk("", false)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "components after the burst", got, n)
	eq(t, "segments after the burst", segments(t, db), 0)
}
