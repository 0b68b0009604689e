package store_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/catalog-pipeline/pipeline/store"
)

// Deferred stitching serves, once StitchPending has run, exactly what
// synchronous commits serve, and each final entity is rebuilt once however
// many batches changed it.
func TestDeferredStitchingMatchesCommit(t *testing.T) {
	const p1 = "location:default/p1"
	group := "group:default/rockets"
	var kids []store.Child
	kids = append(kids, child(group, "url:1"))
	for i := range 6 {
		kids = append(kids, child(fmt.Sprintf("component:default/c%d", i), "url:1"))
	}
	// Batches as the engine commits them: the Location, then its children
	// two at a time, each component relating itself to the group.
	batches := [][]*store.Outcome{{ok(p1, "h", nil, kids...)}, {ok(group, "g", nil)}}
	for i := 0; i < 6; i += 2 {
		var b []*store.Outcome
		for _, j := range []int{i, i + 1} {
			c := fmt.Sprintf("component:default/c%d", j)
			b = append(b, ok(c, "c", []store.Relation{rel(c, "ownedBy", group), rel(group, "ownerOf", c)}))
		}
		batches = append(batches, b)
	}

	sync, deferred := openDB(t), openDB(t)
	for _, db := range []*store.DB{sync, deferred} {
		applyRoots(t, db, child(p1, prov))
	}
	var syncStitched int
	for _, b := range batches {
		syncStitched += commit(t, sync, b...).Stitched
		st, err := deferred.CommitDeferred(b)
		if err != nil {
			t.Fatal(err)
		}
		eq(t, "stitched by a deferred commit", st.Stitched, 0)
	}
	if f, _, _ := final(t, deferred, group); f != nil {
		t.Fatal("the group is served before StitchPending")
	}
	var stitched int
	for more := true; more; {
		st, m, err := deferred.StitchPending(3)
		if err != nil {
			t.Fatal(err)
		}
		stitched, more = stitched+st.Stitched, m
	}
	// p1, the group and six components, once each; synchronous commits
	// rebuild the group once per batch of its members.
	eq(t, "stitched", stitched, 8)
	if syncStitched <= stitched {
		t.Errorf("synchronous commits stitched %d, deferred %d: nothing saved", syncStitched, stitched)
	}
	refs := []string{p1, group}
	for i := range 6 {
		refs = append(refs, fmt.Sprintf("component:default/c%d", i))
	}
	for _, ref := range refs {
		_, a, _ := mustFinal(t, sync, ref)
		_, b, _ := mustFinal(t, deferred, ref)
		if !reflect.DeepEqual(withoutIdentity(t, a), withoutIdentity(t, b)) {
			t.Errorf("%s served differently:\n sync     %s\n deferred %s", ref, a, b)
		}
	}
	if s, _, _ := mustFinal(t, deferred, group); len(s.Relations) != 6 {
		t.Errorf("group relations = %v, want 6 ownerOf", s.Relations)
	}
	// Nothing pending: no write transaction.
	before := deferred.WriteTxCount()
	if _, more, err := deferred.StitchPending(3); err != nil || more {
		t.Fatalf("StitchPending with nothing pending: more %v, err %v", more, err)
	}
	eq(t, "write transactions with nothing pending", deferred.WriteTxCount()-before, 0)
}

// withoutIdentity decodes a served entity without its uid and etag, which
// differ between two files.
func withoutIdentity(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	md := m["metadata"].(map[string]any)
	delete(md, "uid")
	delete(md, "etag")
	return m
}
