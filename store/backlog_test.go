package store_test

import (
	"testing"

	"github.com/catalog-pipeline/pipeline/store"
)

// StitchBacklog counts what CommitDeferred left for StitchPending.
func TestStitchBacklog(t *testing.T) {
	const p1 = "location:default/p1"
	db := openDB(t)
	applyRoots(t, db, child(p1, prov))
	backlog := func() int {
		t.Helper()
		n, err := db.StitchBacklog()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	eq(t, "backlog after synchronous commits", backlog(), 0)
	if _, err := db.CommitDeferred(nil); err != nil {
		t.Fatal(err)
	}
	o := ok(p1, "h", nil, child("component:default/a", "url:1"), child("component:default/b", "url:1"))
	if _, err := db.CommitDeferred([]*store.Outcome{o}); err != nil {
		t.Fatal(err)
	}
	// p1 itself; its new children are not processed yet, so not served,
	// but queued so that a new parent can lift an orphan mark.
	if n := backlog(); n < 1 {
		t.Fatalf("backlog %d after a deferred commit, want at least 1", n)
	}
	for more := true; more; {
		var err error
		if _, more, err = db.StitchPending(1); err != nil {
			t.Fatal(err)
		}
	}
	eq(t, "backlog after stitching", backlog(), 0)
	if f, _, _ := final(t, db, p1); f == nil {
		t.Fatal("p1 not served after stitching")
	}
}
