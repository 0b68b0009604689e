package store_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/catalog-pipeline/pipeline/store"
)

// TestIngestedBucketsArePacked: after a Location's children are ingested
// (committed, processed, stitched), the buckets written in key order and
// the children's state records are packed: pages left three quarters full
// or less were a sixth of a 100k catalog's file (BENCHMARKS.md, session 16).
// Processing grows each record here by ~1.35, as in the generated catalogs
// (~1.4): records packed tighter when they are new overflow their pages.
func TestIngestedBucketsArePacked(t *testing.T) {
	const n = 6000
	db := openDB(t)
	loc := "location:default/big"
	applyRoots(t, db, child(loc, prov))
	doc := func(ref string, annotations int) json.RawMessage {
		name := ref[strings.LastIndexByte(ref, '/')+1:]
		var ann []string
		for i := range annotations {
			// Digests: what a stage adds does not compress away.
			ann = append(ann, fmt.Sprintf(`"example.com/a%d":"%s"`, i, sha([]byte(fmt.Sprint(name, i)))))
		}
		return json.RawMessage(fmt.Sprintf(`{"apiVersion":"backstage.io/v1alpha1","kind":"Component","metadata":{"name":%q,"annotations":{%s},"description":"The %s service, which does what its name says and nothing else."},"spec":{"type":"service","lifecycle":"production","owner":"group:default/g%02d"}}`,
			name, strings.Join(ann, ","), name, len(name)%40))
	}
	refs := make([]string, n)
	kids := make([]store.Child, n)
	for i := range kids {
		refs[i] = fmt.Sprintf("component:default/c%05d", i)
		e := doc(refs[i], 1)
		kids[i] = store.Child{Ref: refs[i], Entity: e, Hash: sha(e), LocationKey: "url:big"}
	}
	commit(t, db, ok(loc, "h", nil, kids...))
	for start := 0; start < n; start += 500 {
		var outs []*store.Outcome
		for i, ref := range refs[start : start+500] {
			owner := fmt.Sprintf("group:default/g%02d", (start+i)%40)
			system := fmt.Sprintf("system:default/s%03d", (start+i)%300)
			dep := refs[(start+i)*7919%n]
			outs = append(outs, &store.Outcome{Ref: ref, OK: true, Processed: doc(ref, 1), ResultHash: "p",
				Relations: []store.Relation{rel(ref, "ownedBy", owner), rel(owner, "ownerOf", ref),
					rel(ref, "partOf", system), rel(system, "hasPart", ref),
					rel(ref, "dependsOn", dep), rel(dep, "dependencyOf", ref)}, NextUpdate: later})
		}
		commitDeferred(t, db, outs...)
	}
	drainStitches(t, db, 4000)
	for _, name := range []string{"state", "final", "bysource", "uids", "edges", "parents", "schedule"} {
		inuse, alloc, err := db.BucketFill(name)
		if err != nil {
			t.Fatal(err)
		}
		if fill := float64(inuse) / float64(alloc); fill < 0.8 {
			t.Errorf("%s: %d of %d bytes of its pages in use (%.0f%%), want 80%% or more", name, inuse, alloc, 100*fill)
		} else {
			t.Logf("%s: %.0f%% of %d bytes", name, 100*fill, alloc)
		}
	}
}
