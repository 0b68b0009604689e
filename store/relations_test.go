package store_test

import (
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"github.com/catalog-pipeline/pipeline/store"
)

// A deferred commit logs its relation rows to relq; they reach bysource,
// in the order they were written, before anything stitches.

const (
	relLoc   = "location:default/loc"
	relGroup = "group:default/team"
	relC     = "component:default/c"
	relD     = "component:default/d"
)

// relCatalog is a location with a group and two components, all served
// without relations.
func relCatalog(t *testing.T) *store.DB {
	t.Helper()
	db := openDB(t)
	applyRoots(t, db, child(relLoc, prov))
	commit(t, db, ok(relLoc, "loc", nil, child(relGroup, "url:loc"), child(relC, "url:loc"), child(relD, "url:loc")))
	commit(t, db, ok(relGroup, "g", nil), ok(relC, "c", nil), ok(relD, "d", nil))
	return db
}

func owned(c, group string) []store.Relation {
	return []store.Relation{rel(c, "ownedBy", group), rel(group, "ownerOf", c)}
}

func relationLog(t *testing.T, db *store.DB) (records, writes int) {
	t.Helper()
	records, writes, err := db.RelationLog()
	if err != nil {
		t.Fatal(err)
	}
	return records, writes
}

func bySourceRows(t *testing.T, db *store.DB, source string) []string {
	t.Helper()
	rows, err := db.BySourceRows(source)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func TestDeferredRelationsWaitInTheLog(t *testing.T) {
	db := relCatalog(t)
	commitDeferred(t, db, ok(relC, "c2", owned(relC, relGroup)))

	records, writes := relationLog(t, db)
	eq(t, "log after the deferred commit", [2]int{records, writes}, [2]int{1, 2})
	eq(t, "group rows before stitching", bySourceRows(t, db, relGroup), []string(nil))

	drainStitches(t, db, 10)
	records, writes = relationLog(t, db)
	eq(t, "log after stitching", [2]int{records, writes}, [2]int{0, 0})
	eq(t, "group rows", bySourceRows(t, db, relGroup), []string{"ownerOf\x00" + relC + "\x00" + relC})
	eq(t, "component rows", bySourceRows(t, db, relC), []string{"ownedBy\x00" + relGroup + "\x00" + relC})
	s, _, _ := mustFinal(t, db, relGroup)
	eq(t, "group relations", s.Relations, []servedRel{{"ownerOf", relC}})
	checkIndex(t, db, "stitched")
}

// TestLoggedRelationsApplyInOrder writes the same rows again and again in
// successive deferred commits: only applying the records in order, and a
// stitching commit's own writes after them, leaves the right rows.
//
// Frames of one write each (frame=1) and records written before frames
// (plain) apply the same.
func TestLoggedRelationsApplyInOrder(t *testing.T) {
	type form struct {
		name      string
		frameSize int
		plain     bool
	}
	forms := []form{{"frames", 16 << 10, false}, {"frame=1", 1, false}, {"plain", 16 << 10, true}}
	for _, chunk := range []int{1, 1000} {
		for _, f := range forms {
			for _, mode := range stitchModes {
				for _, finish := range []string{"stitch", "commit"} {
					t.Run(fmt.Sprintf("chunk=%d/%s/%s/%s", chunk, f.name, mode.name, finish), func(t *testing.T) {
						defer store.SetRelQFrameSize(f.frameSize)()
						testLoggedRelationsApplyInOrder(t, chunk, mode.minPerGoroutine, mode.procs, finish, f.plain)
					})
				}
			}
		}
	}
}

func testLoggedRelationsApplyInOrder(t *testing.T, chunk, minPerGoroutine, procs int, finish string, plain bool) {
	defer store.SetRelQChunk(chunk, nil)()
	defer store.SetStitchPreparation(minPerGoroutine, procs, nil)()
	db := relCatalog(t)
	commitDeferred(t, db, ok(relC, "c2", owned(relC, relGroup)))
	commitDeferred(t, db, ok(relC, "c3", nil))
	commitDeferred(t, db, ok(relC, "c4", owned(relC, relGroup)))
	commitDeferred(t, db, ok(relC, "c5", nil))
	commitDeferred(t, db, ok(relD, "d2", owned(relD, relGroup)))
	if plain {
		if _, _, err := db.UnframeRelQ(); err != nil {
			t.Fatal(err)
		}
	}
	want := []servedRel{{"ownerOf", relD}}
	if finish == "commit" {
		// A commit that stitches applies the log, then its own writes,
		// which drop what the log added.
		commit(t, db, ok(relD, "d3", nil))
		want = []servedRel{}
		records, _ := relationLog(t, db)
		eq(t, "records left by the stitching commit", records, 0)
	}
	_, calls := drainStitches(t, db, 2)
	records, _ := relationLog(t, db)
	eq(t, "records left", records, 0)
	if n := db.PreparedStitchBatches(); minPerGoroutine == 1 && n != calls {
		// StitchPending applies the log before it prepares.
		t.Errorf("%d of %d batches were prepared", n, calls)
	}
	s, _, _ := mustFinal(t, db, relGroup)
	eq(t, "group relations", s.Relations, want)
	eq(t, "component c relations", mustRelations(t, db, relC), []servedRel{})
	checkIndex(t, db, "stitched")
}

// TestRelationLogIsCompressed: a transaction's relation writes, refs that
// repeat, take far fewer bytes in the log than as they are.
func TestRelationLogIsCompressed(t *testing.T) {
	db := relCatalog(t)
	var outs []*store.Outcome
	for _, ref := range []string{relC, relD} {
		var rels []store.Relation
		for i := range 40 {
			target := fmt.Sprintf("component:default/dependency-%02d", i)
			rels = append(rels, rel(ref, "dependsOn", target), rel(target, "dependencyOf", ref))
		}
		outs = append(outs, ok(ref, "x", rels))
	}
	commitDeferred(t, db, outs...)
	framed, plain, err := db.UnframeRelQ()
	if err != nil {
		t.Fatal(err)
	}
	if framed*3 > plain {
		t.Errorf("the log takes %d bytes in frames, %d as it is", framed, plain)
	}
}

func mustRelations(t *testing.T, db *store.DB, ref string) []servedRel {
	t.Helper()
	s, _, _ := mustFinal(t, db, ref)
	return s.Relations
}

// TestRelationsLoggedDuringPreparation: a deferred commit lands between
// the preparation of a batch and its write transaction; the batch is then
// stitched in the write transaction, which applies the new record first.
func TestRelationsLoggedDuringPreparation(t *testing.T) {
	db := relCatalog(t)
	commitDeferred(t, db, ok(relC, "c2", owned(relC, relGroup)))
	once := false
	defer store.SetStitchPreparation(1, 1, func() {
		if !once {
			once = true
			commitDeferred(t, db, ok(relD, "d2", owned(relD, relGroup)))
		}
	})()
	drainStitches(t, db, math.MaxInt32)
	if !once {
		t.Fatal("the hook between preparation and writing never ran")
	}
	eq(t, "group relations", mustRelations(t, db, relGroup), []servedRel{{"ownerOf", relC}, {"ownerOf", relD}})
	eq(t, "component d relations", mustRelations(t, db, relD), []servedRel{{"ownedBy", relGroup}})
	records, _ := relationLog(t, db)
	eq(t, "records left", records, 0)
	checkIndex(t, db, "stitched")
}

// TestRelationsLoggedWhileApplying: deferred commits keep logging while
// StitchPending applies the log; it applies what was there when it began
// and leaves the rest to its write transaction, which applies it first.
func TestRelationsLoggedWhileApplying(t *testing.T) {
	db := twoLoggedRecords(t)
	applied := 0
	defer store.SetRelQChunk(1, func() {
		applied++
		if applied > 10 {
			t.Fatal("applying the log does not end")
		}
		// Every applied write is followed by a new record: d drops its
		// ownerOf row, then adds it back.
		commitDeferred(t, db, ok(relD, fmt.Sprintf("d%d", applied+2), owned(relD, relGroup)[:(applied+1)%2+1]))
	})()
	defer store.SetStitchPreparation(1, 1, nil)()
	drainStitches(t, db, 100)
	// One write per transaction: the two rows of each of the two records
	// that were there when applying began.
	eq(t, "transactions applying the log", applied, 4)
	records, _ := relationLog(t, db)
	eq(t, "records left", records, 0)
	// The last commit (d4) added d's ownerOf row back.
	eq(t, "group relations", mustRelations(t, db, relGroup), []servedRel{{"ownerOf", relC}, {"ownerOf", relD}})
	eq(t, "component d relations", mustRelations(t, db, relD), []servedRel{{"ownedBy", relGroup}})
	checkIndex(t, db, "stitched")
}

// TestRelationsAppliedByACommitWhileApplying: a commit that stitches lands
// between two transactions of StitchPending's applying of the log, and
// applies the whole log itself; the transaction after it, whose writes
// were merged before that commit, must see that and write nothing.
func TestRelationsAppliedByACommitWhileApplying(t *testing.T) {
	db := twoLoggedRecords(t)
	applied := 0
	defer store.SetRelQChunk(1, func() {
		applied++
		if applied == 1 {
			// Drops d's relation, after the log's writes.
			commit(t, db, ok(relD, "d3", nil))
		}
	})()
	defer store.SetStitchPreparation(1, 1, nil)()
	drainStitches(t, db, 100)
	eq(t, "transactions applying the log", applied, 2)
	records, _ := relationLog(t, db)
	eq(t, "records left", records, 0)
	eq(t, "group relations", mustRelations(t, db, relGroup), []servedRel{{"ownerOf", relC}})
	eq(t, "component d relations", mustRelations(t, db, relD), []servedRel{})
	checkIndex(t, db, "stitched")
}

// twoLoggedRecords is relCatalog with two records in the log: c and d
// each owned by the group, two rows each.
func twoLoggedRecords(t *testing.T) *store.DB {
	t.Helper()
	db := relCatalog(t)
	commitDeferred(t, db, ok(relC, "c2", owned(relC, relGroup)))
	commitDeferred(t, db, ok(relD, "d2", owned(relD, relGroup)))
	return db
}

// TestLoggedRelationsSurviveReopening: the log is part of the file, so
// rows logged by a commit before the process stopped reach the served
// entities after it starts again.
func TestLoggedRelationsSurviveReopening(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	db := openAt(t, path)
	applyRoots(t, db, child(relLoc, prov))
	commit(t, db, ok(relLoc, "loc", nil, child(relGroup, "url:loc"), child(relC, "url:loc")))
	commit(t, db, ok(relGroup, "g", nil), ok(relC, "c", nil))
	commitDeferred(t, db, ok(relC, "c2", owned(relC, relGroup)))
	db = reopen(t, db, path)
	defer db.Close()
	records, _ := relationLog(t, db)
	eq(t, "records after reopening", records, 1)
	drainStitches(t, db, 10)
	eq(t, "group relations", mustRelations(t, db, relGroup), []servedRel{{"ownerOf", relC}})
	eq(t, "component relations", mustRelations(t, db, relC), []servedRel{{"ownedBy", relGroup}})
	checkIndex(t, db, "reopened")
}
