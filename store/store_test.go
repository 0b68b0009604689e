package store_test

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/catalog-pipeline/pipeline/catalog"
	"github.com/catalog-pipeline/pipeline/store"
	bolt "go.etcd.io/bbolt"
)

// prov is the provider key the tests' roots hang from.
const prov = store.ProviderPrefix + "p"

// later is a refresh time far enough in the future that nothing scheduled
// for it is due while a test runs.
var later = time.Now().Add(time.Hour).Truncate(time.Second)

func openDB(t testing.TB) *store.DB {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "sub", "catalog.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Whatever a test did, the search index must equal a rebuild
		// from the served entities (benchmarks skip the walk).
		if _, bench := t.(*testing.B); !bench {
			if err := db.CheckIndex(); err != nil {
				t.Error(err)
			}
		}
		db.Close()
	})
	return db
}

// ent builds an entity for ref "kind:namespace/name", with optional spec
// fields (shared with the package's internal tests).
func ent(ref string, spec ...string) json.RawMessage { return store.EntityJSON(ref, spec...) }

func sha(b []byte) string {
	s := sha1.Sum(b)
	return hex.EncodeToString(s[:])
}

// child is ref emitted under location key key.
func child(ref, key string, spec ...string) store.Child {
	e := ent(ref, spec...)
	return store.Child{Ref: ref, Entity: e, Hash: sha(e), LocationKey: key}
}

func rel(src, typ, dst string) store.Relation {
	return store.Relation{Source: src, Type: typ, Target: dst}
}

// ok is a successful outcome for ref with result hash hash.
func ok(ref, hash string, rels []store.Relation, kids ...store.Child) *store.Outcome {
	return &store.Outcome{Ref: ref, OK: true, Processed: ent(ref), ResultHash: hash,
		Relations: rels, Children: kids, NextUpdate: later}
}

// failed is a failed outcome for ref.
func failed(ref, hash string, errs ...catalog.SerializedError) *store.Outcome {
	return &store.Outcome{Ref: ref, OK: false, ResultHash: hash, Errors: errs, NextUpdate: later}
}

func commit(t testing.TB, db *store.DB, outs ...*store.Outcome) store.CommitStats {
	t.Helper()
	st, err := db.Commit(outs)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func applyRoots(t testing.TB, db *store.DB, roots ...store.Child) store.CommitStats {
	t.Helper()
	st, err := db.ApplyRoots(prov, "p", roots)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// served is the part of a final entity the tests look at.
type served struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name string            `json:"name"`
		UID  string            `json:"uid"`
		Etag string            `json:"etag"`
		Ann  map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec      map[string]any `json:"spec"`
	Relations []servedRel    `json:"relations"`
	Status    *struct {
		Items []map[string]any `json:"items"`
	} `json:"status"`
}

type servedRel struct {
	Type      string `json:"type"`
	TargetRef string `json:"targetRef"`
}

// final returns the served entity of ref, its raw JSON and etag; body is nil
// when ref is not served.
func final(t testing.TB, db *store.DB, ref string) (*served, []byte, string) {
	t.Helper()
	body, etag, err := db.Final(ref)
	if err != nil {
		t.Fatal(err)
	}
	if body == nil {
		return nil, nil, etag
	}
	var s served
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatalf("final %s: %v\n%s", ref, err, body)
	}
	return &s, body, etag
}

func mustFinal(t testing.TB, db *store.DB, ref string) (*served, []byte, string) {
	t.Helper()
	s, body, etag := final(t, db, ref)
	if s == nil {
		t.Fatalf("%s is not served", ref)
	}
	return s, body, etag
}

func state(t testing.TB, db *store.DB, ref string) *store.State {
	t.Helper()
	st, err := db.State(ref)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// stateJSON is the stored state of ref, to prove that nothing moved.
func stateJSON(t testing.TB, db *store.DB, ref string) string {
	t.Helper()
	b, err := json.Marshal(state(t, db, ref))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func due(t testing.TB, db *store.DB, horizon time.Time) []string {
	t.Helper()
	sts, err := db.Claim(horizon, 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	refs := []string{}
	for _, st := range sts {
		refs = append(refs, st.Ref)
	}
	return refs
}

func nextUpdate(t testing.TB, db *store.DB, ref string) time.Time {
	t.Helper()
	at, found, err := db.NextUpdate(ref)
	if err != nil {
		t.Fatal(err)
	}
	if !found {
		t.Fatalf("%s has no queue entry", ref)
	}
	return at
}

func isDueNow(t testing.TB, db *store.DB, ref string) bool {
	t.Helper()
	return !nextUpdate(t, db, ref).After(time.Now())
}

func parents(t testing.TB, db *store.DB, ref string) []string {
	t.Helper()
	p, err := db.Parents(ref)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func children(t testing.TB, db *store.DB, ref string) []string {
	t.Helper()
	c, err := db.Children(ref)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func errorRefs(t testing.TB, db *store.DB) []string {
	t.Helper()
	refs := []string{}
	if err := db.ForEachError(func(st *store.State) error {
		refs = append(refs, st.Ref)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return refs
}

// gone asserts that nothing is left of ref: state, final, uid mapping, queue
// entry, edges.
func gone(t testing.TB, db *store.DB, ref, uid string) {
	t.Helper()
	if st := state(t, db, ref); st != nil {
		t.Errorf("%s: state survives", ref)
	}
	if s, _, _ := final(t, db, ref); s != nil {
		t.Errorf("%s: still served", ref)
	}
	if _, found, _ := db.NextUpdate(ref); found {
		t.Errorf("%s: still queued", ref)
	}
	if uid != "" {
		if r, _ := db.RefByUID(uid); r != "" {
			t.Errorf("%s: uid %s still maps to %q", ref, uid, r)
		}
	}
	if p := parents(t, db, ref); len(p) != 0 {
		t.Errorf("%s: parents survive: %v", ref, p)
	}
	if c := children(t, db, ref); len(c) != 0 {
		t.Errorf("%s: child edges survive: %v", ref, c)
	}
}

func eq[T any](t testing.TB, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %#v, want %#v", what, got, want)
	}
}

// --- opening -------------------------------------------------------------

func craft(t *testing.T, path, version string) {
	t.Helper()
	putAt(t, path, "meta", "version", []byte(version))
}

// putAt puts key → value into a bucket of a closed file's root bucket,
// creating the bucket if it is missing.
func putAt(t *testing.T, path, bucket, key string, value []byte) {
	t.Helper()
	updateFile(t, path, func(root *bolt.Bucket) error {
		b, err := root.CreateBucketIfNotExists([]byte(bucket))
		if err != nil {
			return err
		}
		return b.Put([]byte(key), value)
	})
}

// updateFile runs fn on the root bucket of the closed catalog file at
// path (created if need be), in one write transaction.
func updateFile(t *testing.T, path string, fn func(root *bolt.Bucket) error) {
	t.Helper()
	b, err := bolt.Open(path, 0o644, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Update(func(tx *bolt.Tx) error {
		root, err := tx.CreateBucketIfNotExists([]byte("v1"))
		if err != nil {
			return err
		}
		return fn(root)
	}); err != nil {
		t.Fatal(err)
	}
}

// readMeta reads the schema version of the closed file at path and
// whether it has the bucket named bucket.
func readMeta(t *testing.T, path, bucket string) (version string, has bool) {
	t.Helper()
	b, err := bolt.Open(path, 0o644, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_ = b.View(func(tx *bolt.Tx) error {
		root := tx.Bucket([]byte("v1"))
		if root == nil {
			return nil
		}
		if m := root.Bucket([]byte("meta")); m != nil {
			version = string(m.Get([]byte("version")))
		}
		has = root.Bucket([]byte(bucket)) != nil
		return nil
	})
	return version, has
}

// reopen closes db, the file at path, and opens it again, as a restart
// of the process would.
func reopen(t *testing.T, db *store.DB, path string) *store.DB {
	t.Helper()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return openAt(t, path)
}

// openAt opens (or creates) the catalog file at path, failing the test
// when it cannot; the caller closes it.
func openAt(t *testing.T, path string) *store.DB {
	t.Helper()
	db, err := store.Open(path, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// filePageSize is the page size the closed file at path was created with.
func filePageSize(t *testing.T, path string) int {
	t.Helper()
	b, err := bolt.Open(path, 0o644, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	return b.Info().PageSize
}

func TestOpenSchemaVersion(t *testing.T) {
	// The current version is whatever a fresh file gets.
	fresh := filepath.Join(t.TempDir(), "deep", "er", "c.db")
	db, err := store.Open(fresh, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "Path", db.Path(), fresh)
	if db.Size() <= 0 {
		t.Errorf("Size = %d", db.Size())
	}
	db.Close()
	cur, hasState := readMeta(t, fresh, "state")
	if cur == "" || !hasState {
		t.Fatalf("fresh file: version %q, state bucket %v", cur, hasState)
	}
	// New files get large pages (store.go's pageSize explains why).
	eq(t, "fresh file's page size", filePageSize(t, fresh), 32<<10)

	cases := []struct {
		name    string
		version string
		wantErr string
		// stored is the version on file afterwards; "" means unchanged.
		stored string
	}{
		{name: "same version opens", version: cur},
		// Version 5 lacks only the stitchq bucket of deferred stitching.
		{name: "version 5 is upgraded in place", version: "5", stored: cur},
		{name: "version 4 is refused", version: "4", wantErr: `schema version "4" is not supported`},
		{name: "newer version is refused", version: "999", wantErr: `schema version "999" is not supported`},
		{name: "garbage version is refused", version: "zero", wantErr: `schema version "zero" is not supported`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.db")
			craft(t, path, tc.version)
			db, err := store.Open(path, store.Options{NoSync: true})
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Open: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Open error = %v, want it to contain %q", err, tc.wantErr)
			}
			if db != nil {
				db.Close()
			}
			v, hasState := readMeta(t, path, "state")
			want := tc.stored
			if want == "" {
				want = tc.version
			}
			eq(t, "stored version", v, want)
			// Files made with bbolt's default pages keep them.
			eq(t, "page size", filePageSize(t, path), os.Getpagesize())
			// A refused file is left as it was: no bucket was created.
			eq(t, "state bucket exists", hasState, tc.wantErr == "")
		})
	}
}

func TestOpenLockedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	db := openAt(t, path)
	defer db.Close()
	start := time.Now()
	db2, err := store.Open(path, store.Options{NoSync: true, Timeout: 100 * time.Millisecond})
	if err == nil {
		db2.Close()
		t.Fatal("second Open of a locked file succeeded")
	}
	if !strings.Contains(err.Error(), "locked by another process") {
		t.Errorf("error = %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("second Open took %v despite a 100ms timeout", d)
	}
}

// --- roots ---------------------------------------------------------------

func TestApplyRootsCreatesDueRoots(t *testing.T) {
	db := openDB(t)
	r1, r2 := child("location:default/r1", "url:1"), child("location:default/r2", "url:2")
	st := applyRoots(t, db, r2, r1)
	eq(t, "stats", st, store.CommitStats{Created: 2})

	eq(t, "due now", due(t, db, time.Now()), []string{r1.Ref, r2.Ref})
	for _, r := range []store.Child{r1, r2} {
		s := state(t, db, r.Ref)
		if s == nil {
			t.Fatalf("%s: no state", r.Ref)
		}
		eq(t, r.Ref+" pipeline", s.Pipeline, "p")
		eq(t, r.Ref+" location key", s.LocationKey, r.LocationKey)
		eq(t, r.Ref+" unprocessed", string(s.Unprocessed), string(r.Entity))
		eq(t, r.Ref+" unprocessed hash", s.UnprocessedHash, r.Hash)
		eq(t, r.Ref+" parents", parents(t, db, r.Ref), []string{prov})
		if s.UID == "" || s.Processed != nil || s.ResultHash != "" {
			t.Errorf("%s: fresh state %+v", r.Ref, s)
		}
		if got, _ := db.RefByUID(s.UID); got != r.Ref {
			t.Errorf("RefByUID(%s) = %q", s.UID, got)
		}
		if f, _, _ := final(t, db, r.Ref); f != nil {
			t.Errorf("%s is served before it was processed", r.Ref)
		}
	}
	eq(t, "children of provider", children(t, db, prov), []string{r1.Ref, r2.Ref})
	provs, err := db.Providers()
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "providers", provs, []string{prov})
}

func TestApplyRootsIsIdempotent(t *testing.T) {
	db := openDB(t)
	r1, r2 := child("location:default/r1", "url:1"), child("location:default/r2", "url:2")
	applyRoots(t, db, r1, r2)
	commit(t, db, ok(r1.Ref, "h1", nil)) // r1 processed and scheduled for later
	before := map[string]string{r1.Ref: stateJSON(t, db, r1.Ref), r2.Ref: stateJSON(t, db, r2.Ref)}
	uid := state(t, db, r1.Ref).UID
	_, _, etag := mustFinal(t, db, r1.Ref)

	// The cost of a write transaction that changes nothing.
	w0 := db.WriteTxCount()
	commit(t, db)
	empty := db.WriteTxCount() - w0

	w0 = db.WriteTxCount()
	st := applyRoots(t, db, r2, r1)
	if d := db.WriteTxCount() - w0; d > empty {
		t.Errorf("re-applying the same roots wrote %d pages, an empty transaction writes %d", d, empty)
	}
	eq(t, "stats", st, store.CommitStats{})
	for ref, want := range before {
		eq(t, ref+" state", stateJSON(t, db, ref), want)
	}
	eq(t, "r1 next update", nextUpdate(t, db, r1.Ref), later)
	if _, _, e := mustFinal(t, db, r1.Ref); e != etag {
		t.Errorf("etag moved: %s → %s", etag, e)
	}

	// A changed root is updated and due again at once.
	r1b := child(r1.Ref, "url:1", "changed", "yes")
	st = applyRoots(t, db, r1b, r2)
	eq(t, "stats after change", st, store.CommitStats{})
	eq(t, "unprocessed", string(state(t, db, r1.Ref).Unprocessed), string(r1b.Entity))
	if !isDueNow(t, db, r1.Ref) {
		t.Errorf("changed root is not due")
	}
	eq(t, "uid kept", state(t, db, r1.Ref).UID, uid)
}

// forest builds:
//
//	provider:p ─ r1 ─ c1 ─ g1
//	           │    └ shared
//	           └ r2 ─ shared
//
// r1, c1 and g1 each own one relation whose source is r2.
func forest(t testing.TB, db *store.DB) map[string]string {
	t.Helper()
	applyRoots(t, db, child("location:default/r1", "url:1"), child("location:default/r2", "url:2"))
	commit(t, db,
		ok("location:default/r1", "r1", []store.Relation{rel("location:default/r2", "x", "component:default/from-r1")},
			child("component:default/c1", "url:1"), child("component:default/shared", "url:shared")),
		ok("location:default/r2", "r2", nil, child("component:default/shared", "url:shared")))
	commit(t, db,
		ok("component:default/c1", "c1", []store.Relation{rel("location:default/r2", "x", "component:default/from-c1")},
			child("component:default/g1", "url:1")),
		ok("component:default/shared", "shared", nil))
	commit(t, db, ok("component:default/g1", "g1", []store.Relation{rel("location:default/r2", "x", "component:default/from-g1")}))
	uids := map[string]string{}
	for _, ref := range []string{"location:default/r1", "location:default/r2", "component:default/c1", "component:default/g1", "component:default/shared"} {
		uids[ref] = state(t, db, ref).UID
	}
	return uids
}

func TestApplyRootsRemoval(t *testing.T) {
	const (
		r1, r2, c1, g1, shared = "location:default/r1", "location:default/r2", "component:default/c1", "component:default/g1", "component:default/shared"
	)
	cases := []struct {
		name        string
		keep        []string
		wantGone    []string
		wantKept    []string
		wantDeleted int
		wantR2Rels  []servedRel
	}{
		{
			name: "nothing removed", keep: []string{r1, r2},
			wantKept: []string{r1, r2, c1, g1, shared},
			wantR2Rels: []servedRel{{"x", "component:default/from-c1"}, {"x", "component:default/from-g1"},
				{"x", "component:default/from-r1"}},
		},
		{
			name: "r1 removed with its subtree, shared survives through r2", keep: []string{r2},
			wantGone: []string{r1, c1, g1}, wantKept: []string{r2, shared}, wantDeleted: 3,
			wantR2Rels: []servedRel{},
		},
		{
			name: "r2 removed, shared survives through r1", keep: []string{r1},
			wantGone: []string{r2}, wantKept: []string{r1, c1, g1, shared}, wantDeleted: 1,
		},
		{
			name: "all roots removed", keep: nil,
			wantGone: []string{r1, r2, c1, g1, shared}, wantDeleted: 5,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := openDB(t)
			uids := forest(t, db)
			var roots []store.Child
			for _, r := range tc.keep {
				roots = append(roots, child(r, "url:"+strings.TrimPrefix(r, "location:default/r")))
			}
			st := applyRoots(t, db, roots...)
			eq(t, "deleted", st.Deleted, tc.wantDeleted)
			eq(t, "created", st.Created, 0)
			for _, ref := range tc.wantGone {
				gone(t, db, ref, uids[ref])
			}
			for _, ref := range tc.wantKept {
				if state(t, db, ref) == nil {
					t.Errorf("%s was deleted", ref)
				}
				mustFinal(t, db, ref)
				if r, _ := db.RefByUID(uids[ref]); r != ref {
					t.Errorf("uid of %s maps to %q", ref, r)
				}
			}
			if slices.Contains(tc.wantKept, shared) {
				var want []string
				for _, r := range tc.keep {
					want = append(want, r)
				}
				eq(t, "parents of shared", parents(t, db, shared), want)
			}
			if tc.wantR2Rels != nil {
				f, _, _ := mustFinal(t, db, r2)
				eq(t, "relations of r2", f.Relations, tc.wantR2Rels)
			}
			if len(tc.keep) == 0 {
				if c := children(t, db, prov); len(c) != 0 {
					t.Errorf("provider still has children %v", c)
				}
				if p, _ := db.Providers(); len(p) != 0 {
					t.Errorf("providers = %v", p)
				}
				if d := due(t, db, later.Add(time.Hour)); len(d) != 0 {
					t.Errorf("queue still holds %v", d)
				}
			}
		})
	}
}

// --- commit: served entity ---------------------------------------------

func TestCommitServesSortedDedupedRelations(t *testing.T) {
	const a, b = "component:default/a", "component:default/b"
	steps := []struct {
		name  string
		outs  []*store.Outcome
		wantA []servedRel
		wantB []servedRel
	}{
		{
			name: "a and b emit, with duplicates within and across origins",
			outs: []*store.Outcome{
				ok(a, "a1", []store.Relation{
					rel(a, "partOf", "system:default/s"),
					rel(a, "dependsOn", "component:default/z"),
					rel(a, "dependsOn", "component:default/b"),
					rel(a, "ownedBy", "group:default/g"),
					rel(a, "dependsOn", "component:default/b"),
					rel(b, "dependencyOf", a),
				}),
				ok(b, "b1", []store.Relation{
					rel(a, "dependsOn", "component:default/b"),
					rel(a, "hasPart", "component:default/x"),
					rel(b, "dependencyOf", a),
				}),
			},
			wantA: []servedRel{
				{"dependsOn", "component:default/b"},
				{"dependsOn", "component:default/z"},
				{"hasPart", "component:default/x"},
				{"ownedBy", "group:default/g"},
				{"partOf", "system:default/s"},
			},
			wantB: []servedRel{{"dependencyOf", a}},
		},
		{
			name: "b stops emitting; a still owns its copy of the shared relation",
			outs: []*store.Outcome{ok(b, "b2", nil)},
			wantA: []servedRel{
				{"dependsOn", "component:default/b"},
				{"dependsOn", "component:default/z"},
				{"ownedBy", "group:default/g"},
				{"partOf", "system:default/s"},
			},
			wantB: []servedRel{{"dependencyOf", a}},
		},
		{
			name:  "a stops emitting too",
			outs:  []*store.Outcome{ok(a, "a2", nil)},
			wantA: []servedRel{},
			wantB: []servedRel{},
		},
	}
	db := openDB(t)
	applyRoots(t, db, child(a, "url:a"), child(b, "url:b"))
	for _, s := range steps {
		commit(t, db, s.outs...)
		fa, _, _ := mustFinal(t, db, a)
		fb, _, _ := mustFinal(t, db, b)
		eq(t, s.name+": relations of a", fa.Relations, s.wantA)
		eq(t, s.name+": relations of b", fb.Relations, s.wantB)
	}
}

func TestCommitUIDAndEtag(t *testing.T) {
	const a = "component:default/a"
	base := func() *store.Outcome {
		return ok(a, "", []store.Relation{rel(a, "ownedBy", "group:default/g")})
	}
	cases := []struct {
		name     string
		next     func() *store.Outcome
		sameEtag bool
	}{
		{name: "same outcome again", next: base, sameEtag: true},
		{name: "same outcome, relations in another order with a duplicate", sameEtag: true, next: func() *store.Outcome {
			o := base()
			o.Relations = append(o.Relations, rel(a, "ownedBy", "group:default/g"))
			return o
		}},
		{name: "same outcome, new cache and refresh keys", sameEtag: true, next: func() *store.Outcome {
			o := base()
			o.Cache = json.RawMessage(`{"s":{"k":1}}`)
			o.RefreshKeys = []string{"url:x"}
			return o
		}},
		{name: "another relation", next: func() *store.Outcome {
			o := base()
			o.Relations = append(o.Relations, rel(a, "dependsOn", "component:default/b"))
			return o
		}},
		{name: "relation removed", next: func() *store.Outcome {
			o := base()
			o.Relations = nil
			return o
		}},
		{name: "processed entity changed", next: func() *store.Outcome {
			o := base()
			o.Processed = ent(a, "lifecycle", "production")
			return o
		}},
		{name: "errors recorded", next: func() *store.Outcome {
			o := base()
			o.Errors = []catalog.SerializedError{{Name: "InputError", Message: "bad"}}
			return o
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := openDB(t)
			applyRoots(t, db, child(a, "url:a"))
			st := commit(t, db, base())
			eq(t, "first stitched", st.Stitched, 1)
			f1, body1, etag1 := mustFinal(t, db, a)
			uid := state(t, db, a).UID
			eq(t, "uid", f1.Metadata.UID, uid)
			eq(t, "served etag", f1.Metadata.Etag, etag1)
			checkEtagIsHash(t, body1, etag1)

			st = commit(t, db, tc.next())
			eq(t, "written", st.Written, 1)
			f2, body2, etag2 := mustFinal(t, db, a)
			eq(t, "uid after", f2.Metadata.UID, uid)
			eq(t, "served etag after", f2.Metadata.Etag, etag2)
			checkEtagIsHash(t, body2, etag2)
			if tc.sameEtag {
				eq(t, "etag", etag2, etag1)
				eq(t, "body", string(body2), string(body1))
				eq(t, "stitched", st.Stitched, 0)
			} else {
				if etag2 == etag1 {
					t.Errorf("etag unchanged although the served entity changed")
				}
				eq(t, "stitched", st.Stitched, 1)
			}
			if r, _ := db.RefByUID(strings.ToUpper(uid)); r != a {
				t.Errorf("RefByUID(upper) = %q", r)
			}
		})
	}
}

// checkEtagIsHash checks that etag looks like a sha1. (Which bytes it hashes
// is the store's business; the tests check that it changes exactly when the
// served entity does.)
func checkEtagIsHash(t testing.TB, body []byte, etag string) {
	t.Helper()
	if _, err := hex.DecodeString(etag); err != nil || len(etag) != 40 || strings.ToLower(etag) != etag {
		t.Errorf("etag %q is not a lowercase hex sha1", etag)
	}
	if !json.Valid(body) {
		t.Errorf("served entity is not valid JSON: %s", body)
	}
}

func TestCommitUnchangedOnlyMovesSchedule(t *testing.T) {
	const a = "component:default/a"
	db := openDB(t)
	applyRoots(t, db, child(a, "url:a"))
	first := ok(a, "same", []store.Relation{rel(a, "ownedBy", "group:default/g")}, child("component:default/kid", "url:a"))
	commit(t, db, first, ok("component:default/kid", "k", nil))
	before := stateJSON(t, db, a)
	_, body, etag := mustFinal(t, db, a)

	cases := []struct {
		name string
		out  *store.Outcome
	}{
		{name: "identical outcome", out: ok(a, "same", []store.Relation{rel(a, "ownedBy", "group:default/g")}, child("component:default/kid", "url:a"))},
		// The hash is the authority: content is not even looked at.
		{name: "different content, same hash", out: &store.Outcome{Ref: a, OK: true, ResultHash: "same",
			Processed: ent(a, "ignored", "yes"), Relations: []store.Relation{rel(a, "other", "x:y/z")}}},
		{name: "failed outcome with the same hash", out: failed(a, "same", catalog.SerializedError{Name: "E", Message: "m"})},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			next := later.Add(time.Duration(i+1) * time.Minute)
			tc.out.NextUpdate = next
			st := commit(t, db, tc.out)
			eq(t, "stats", st, store.CommitStats{Unchanged: 1})
			if !tc.out.OK {
				// A repeated failure only counts up, for the retry backoff.
				eq(t, "failures", state(t, db, a).Failures, 1)
				return
			}
			eq(t, "state", stateJSON(t, db, a), before)
			eq(t, "next update", nextUpdate(t, db, a), next)
			_, b2, e2 := mustFinal(t, db, a)
			eq(t, "etag", e2, etag)
			eq(t, "body", string(b2), string(body))
			eq(t, "children", children(t, db, a), []string{"component:default/kid"})
			eq(t, "errors", errorRefs(t, db), []string{})
		})
	}
}

// --- commit: failures and errors ------------------------------------------

func TestCommitFailureKeepsLastGood(t *testing.T) {
	const a, kid = "component:default/a", "component:default/kid"
	db := openDB(t)
	applyRoots(t, db, child(a, "url:a"))
	good := ok(a, "good", []store.Relation{rel(a, "ownedBy", "group:default/g")}, child(kid, "url:a"))
	good.Cache = json.RawMessage(`{"s":{"k":"v"}}`)
	commit(t, db, good)
	prev := state(t, db, a)
	f0, _, etag0 := mustFinal(t, db, a)

	errs := []catalog.SerializedError{
		{Name: "InputError", Message: "bad yaml"},
		{Name: "NotFoundError", Message: "no such file", Stack: "at x"},
	}
	st := commit(t, db, failed(a, "bad", errs...))
	eq(t, "written", st.Written, 1)
	eq(t, "stitched", st.Stitched, 1)
	eq(t, "deleted", st.Deleted, 0)

	s := state(t, db, a)
	eq(t, "processed kept", string(s.Processed), string(prev.Processed))
	eq(t, "cache kept", string(s.Cache), string(prev.Cache))
	eq(t, "errors", s.Errors, errs)
	eq(t, "result hash", s.ResultHash, "bad")
	eq(t, "children kept", children(t, db, a), []string{kid})
	eq(t, "next update", nextUpdate(t, db, a), later)

	f, _, etag := mustFinal(t, db, a)
	eq(t, "relations kept", f.Relations, f0.Relations)
	eq(t, "uid", f.Metadata.UID, f0.Metadata.UID)
	if etag == etag0 {
		t.Error("etag did not change although status did")
	}
	if f.Status == nil {
		t.Fatal("no status")
	}
	want := []map[string]any{
		{"type": "backstage.io/catalog-processing", "level": "error", "message": "InputError: bad yaml",
			"error": map[string]any{"name": "InputError", "message": "bad yaml"}},
		{"type": "backstage.io/catalog-processing", "level": "error", "message": "NotFoundError: no such file",
			"error": map[string]any{"name": "NotFoundError", "message": "no such file"}},
	}
	eq(t, "status.items", f.Status.Items, want)
	eq(t, "errors listed", errorRefs(t, db), []string{a})
	if sum, _ := db.Summarize(); sum.WithErrors != 1 {
		t.Errorf("WithErrors = %d", sum.WithErrors)
	}

	// A later clean run clears the status and the flag.
	st = commit(t, db, ok(a, "good2", []store.Relation{rel(a, "ownedBy", "group:default/g")}, child(kid, "url:a")))
	eq(t, "written", st.Written, 1)
	f, _, etag = mustFinal(t, db, a)
	if f.Status != nil {
		t.Errorf("status survives: %+v", f.Status)
	}
	eq(t, "etag back to the error-free one", etag, etag0)
	eq(t, "errors listed", errorRefs(t, db), []string{})
	if s := state(t, db, a); s.Errors != nil {
		t.Errorf("errors survive: %v", s.Errors)
	}
	if sum, _ := db.Summarize(); sum.WithErrors != 0 {
		t.Errorf("WithErrors = %d", sum.WithErrors)
	}
}

func TestCommitFailureBeforeFirstSuccessIsNotServed(t *testing.T) {
	const a = "component:default/a"
	db := openDB(t)
	applyRoots(t, db, child(a, "url:a"))
	commit(t, db, failed(a, "bad", catalog.SerializedError{Name: "InputError", Message: "m"}))
	if f, _, _ := final(t, db, a); f != nil {
		t.Errorf("an entity that never processed is served: %+v", f)
	}
	eq(t, "errors listed", errorRefs(t, db), []string{a})
	sum, err := db.Summarize()
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "summary", sum, store.Summary{ByKind: map[string]int{}, States: 1, WithErrors: 1})
}

func TestCommitSkipsUnknownEntities(t *testing.T) {
	db := openDB(t)
	st := commit(t, db, ok("component:default/ghost", "h", []store.Relation{rel("component:default/x", "t", "y:z/w")}))
	eq(t, "stats", st, store.CommitStats{})
	if s := state(t, db, "component:default/ghost"); s != nil {
		t.Errorf("ghost got a state")
	}
	if sum, _ := db.Summarize(); sum.Relations != 0 {
		t.Errorf("ghost's relations were stored: %+v", sum)
	}
}

func TestCommitDropsStaleOutcome(t *testing.T) {
	const p, c = "location:default/p", "component:default/c"
	v1, v2 := child(c, "url:p", "version", "1"), child(c, "url:p", "version", "2")
	cases := []struct {
		name string
		// change replaces c's unprocessed entity while c is in flight.
		change    func(t *testing.T, db *store.DB)
		inputHash string
		want      store.CommitStats
	}{
		{name: "input unchanged", inputHash: v1.Hash, want: store.CommitStats{Written: 1, Stitched: 1}},
		{name: "no input hash given", inputHash: "", want: store.CommitStats{Written: 1, Stitched: 1},
			change: func(t *testing.T, db *store.DB) { commit(t, db, ok(p, "p2", nil, v2)) }},
		{name: "parent emitted a new version", inputHash: v1.Hash, want: store.CommitStats{Stale: 1},
			change: func(t *testing.T, db *store.DB) { commit(t, db, ok(p, "p2", nil, v2)) }},
		{name: "same result hash but stale input", inputHash: v1.Hash, want: store.CommitStats{Stale: 1},
			change: func(t *testing.T, db *store.DB) { commit(t, db, ok(p, "p2", nil, v2)) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := openDB(t)
			applyRoots(t, db, child(p, "url:p"))
			commit(t, db, ok(p, "p1", nil, v1))
			commit(t, db, ok(c, "c0", nil))
			claimed := state(t, db, c)
			eq(t, "claimed input", claimed.UnprocessedHash, v1.Hash)
			if tc.change != nil {
				tc.change(t, db)
			}
			before := stateJSON(t, db, c)
			_, body, _ := mustFinal(t, db, c)
			o := ok(c, "c1", []store.Relation{rel(c, "dependsOn", "component:default/x")})
			if tc.name == "same result hash but stale input" {
				o.ResultHash = claimed.ResultHash
			}
			o.UnprocessedHash = tc.inputHash
			st := commit(t, db, o)
			eq(t, "stats", st, tc.want)
			if tc.want.Stale == 0 {
				return
			}
			eq(t, "state untouched", stateJSON(t, db, c), before)
			if !isDueNow(t, db, c) {
				t.Error("the new version is not due")
			}
			if _, b, _ := mustFinal(t, db, c); string(b) != string(body) {
				t.Error("the stale outcome was served")
			}
		})
	}
}

// --- relations across entities --------------------------------------------

func TestRelationsEmittedForAnotherSource(t *testing.T) {
	const a, b = "component:default/a", "group:default/b"
	emit := []store.Relation{rel(a, "ownedBy", b), rel(b, "ownerOf", a)}
	cases := []struct {
		name string
		// drop makes a stop owning the relations.
		drop        func(t *testing.T, db *store.DB) store.CommitStats
		wantDeleted int
	}{
		{name: "a stops emitting", drop: func(t *testing.T, db *store.DB) store.CommitStats {
			return commit(t, db, ok(a, "a2", nil))
		}},
		{name: "a is deleted", wantDeleted: 1, drop: func(t *testing.T, db *store.DB) store.CommitStats {
			st, err := db.DeleteEntity(a)
			if err != nil {
				t.Fatal(err)
			}
			return st
		}},
		{name: "a's root is removed", wantDeleted: 1, drop: func(t *testing.T, db *store.DB) store.CommitStats {
			st, err := db.ApplyRoots(prov, "p", []store.Child{child(b, "url:b")})
			if err != nil {
				t.Fatal(err)
			}
			return st
		}},
		{name: "a's failed run keeps them", drop: func(t *testing.T, db *store.DB) store.CommitStats {
			return commit(t, db, failed(a, "bad", catalog.SerializedError{Name: "E", Message: "m"}))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := openDB(t)
			applyRoots(t, db, child(a, "url:a"), child(b, "url:b"))
			commit(t, db, ok(b, "b1", nil))
			_, _, etagB := mustFinal(t, db, b)

			st := commit(t, db, ok(a, "a1", emit))
			eq(t, "stitched a and b", st.Stitched, 2)
			fb, _, etagB1 := mustFinal(t, db, b)
			eq(t, "b gains", fb.Relations, []servedRel{{"ownerOf", a}})
			if etagB1 == etagB {
				t.Error("b's etag did not change")
			}

			st = tc.drop(t, db)
			eq(t, "deleted", st.Deleted, tc.wantDeleted)
			fb, _, etagB2 := mustFinal(t, db, b)
			if tc.name == "a's failed run keeps them" {
				eq(t, "b keeps", fb.Relations, []servedRel{{"ownerOf", a}})
				eq(t, "b's etag", etagB2, etagB1)
				return
			}
			eq(t, "b loses", fb.Relations, []servedRel{})
			eq(t, "b's etag back", etagB2, etagB)
			if sum, _ := db.Summarize(); sum.Relations != 0 {
				t.Errorf("relations left: %d", sum.Relations)
			}
		})
	}
}

func TestRelationToLaterProcessedSource(t *testing.T) {
	// A relation whose source is not processed yet is kept and served once
	// the source is.
	const a, b = "component:default/a", "group:default/b"
	db := openDB(t)
	applyRoots(t, db, child(a, "url:a"), child(b, "url:b"))
	commit(t, db, ok(a, "a1", []store.Relation{rel(b, "ownerOf", a)}))
	if f, _, _ := final(t, db, b); f != nil {
		t.Fatal("b is served before processing")
	}
	commit(t, db, ok(b, "b1", nil))
	fb, _, _ := mustFinal(t, db, b)
	eq(t, "relations of b", fb.Relations, []servedRel{{"ownerOf", a}})
}

// --- children ------------------------------------------------------------

func TestChildren(t *testing.T) {
	const (
		p1, p2 = "location:default/p1", "location:default/p2"
		c, g   = "component:default/c", "component:default/g"
		d      = "component:default/d"
	)
	cases := []struct {
		name string
		// setup runs after roots p1 and p2 exist.
		setup func(t *testing.T, db *store.DB)
		// out is the outcome under test.
		out   *store.Outcome
		want  store.CommitStats
		check func(t *testing.T, db *store.DB)
	}{
		{
			name: "new child is created and due",
			out:  ok(p1, "h", nil, child(c, "url:1")),
			want: store.CommitStats{Written: 1, Created: 1, Stitched: 1},
			check: func(t *testing.T, db *store.DB) {
				s := state(t, db, c)
				eq(t, "pipeline inherited", s.Pipeline, "p")
				eq(t, "location key", s.LocationKey, "url:1")
				eq(t, "parents", parents(t, db, c), []string{p1})
				eq(t, "due", due(t, db, time.Now()), []string{c, p2})
				if f, _, _ := final(t, db, c); f != nil {
					t.Error("unprocessed child is served")
				}
			},
		},
		{
			name:  "same children again create nothing",
			setup: func(t *testing.T, db *store.DB) { commit(t, db, ok(p1, "h1", nil, child(c, "url:1"))) },
			out:   ok(p1, "h2", nil, child(c, "url:1")),
			want:  store.CommitStats{Written: 1},
			check: func(t *testing.T, db *store.DB) {
				eq(t, "children", children(t, db, p1), []string{c})
			},
		},
		{
			name: "changed child is updated and due again",
			setup: func(t *testing.T, db *store.DB) {
				commit(t, db, ok(p1, "h1", nil, child(c, "url:1")))
				commit(t, db, ok(c, "c", nil))
			},
			out:  ok(p1, "h2", nil, child(c, "url:1", "new", "field")),
			want: store.CommitStats{Written: 1},
			check: func(t *testing.T, db *store.DB) {
				eq(t, "unprocessed", string(state(t, db, c).Unprocessed), string(ent(c, "new", "field")))
				if !isDueNow(t, db, c) {
					t.Error("changed child not due")
				}
			},
		},
		{
			name: "dropped child is deleted with its subtree",
			setup: func(t *testing.T, db *store.DB) {
				commit(t, db, ok(p1, "h1", nil, child(c, "url:1")))
				commit(t, db, ok(c, "c", []store.Relation{rel(p2, "t", c)}, child(g, "url:1")))
				commit(t, db, ok(g, "g", nil), ok(p2, "p2", nil))
			},
			out: ok(p1, "h2", nil),
			// p1's served entity is unchanged; p2 lost a relation.
			want: store.CommitStats{Written: 1, Deleted: 2, Stitched: 1},
			check: func(t *testing.T, db *store.DB) {
				gone(t, db, c, "")
				gone(t, db, g, "")
				fp2, _, _ := mustFinal(t, db, p2)
				eq(t, "p2 lost c's relation", fp2.Relations, []servedRel{})
			},
		},
		{
			name: "dropped child with another parent survives",
			setup: func(t *testing.T, db *store.DB) {
				commit(t, db, ok(p1, "h1", nil, child(c, "url:c")), ok(p2, "h1", nil, child(c, "url:c")))
			},
			out:  ok(p1, "h2", nil),
			want: store.CommitStats{Written: 1},
			check: func(t *testing.T, db *store.DB) {
				eq(t, "parents", parents(t, db, c), []string{p2})
			},
		},
		{
			name:  "KeepOldChildren keeps children not emitted this time",
			setup: func(t *testing.T, db *store.DB) { commit(t, db, ok(p1, "h1", nil, child(c, "url:1"))) },
			out: func() *store.Outcome {
				o := ok(p1, "h2", nil, child(d, "url:1"))
				o.KeepOldChildren = true
				return o
			}(),
			want: store.CommitStats{Written: 1, Created: 1},
			check: func(t *testing.T, db *store.DB) {
				eq(t, "children", children(t, db, p1), []string{c, d})
			},
		},
		{
			name:  "failed run keeps children",
			setup: func(t *testing.T, db *store.DB) { commit(t, db, ok(p1, "h1", nil, child(c, "url:1"))) },
			out:   failed(p1, "bad", catalog.SerializedError{Name: "E", Message: "m"}),
			want:  store.CommitStats{Written: 1, Stitched: 1},
			check: func(t *testing.T, db *store.DB) {
				eq(t, "children", children(t, db, p1), []string{c})
			},
		},
		{
			name:  "conflict: a keyed child is not taken by another key",
			setup: func(t *testing.T, db *store.DB) { commit(t, db, ok(p1, "h1", nil, child(c, "url:1"))) },
			out:   ok(p2, "h2", nil, child(c, "url:2", "other", "content")),
			want: store.CommitStats{Written: 1, Stitched: 1,
				Conflicts: []store.Conflict{{Ref: c, Parent: p2, ExistingKey: "url:1", NewKey: "url:2"}}},
			check: func(t *testing.T, db *store.DB) {
				checkConflict(t, db, p2, c, "url:1", "url:2")
				eq(t, "child content", string(state(t, db, c).Unprocessed), string(ent(c)))
				eq(t, "parents", parents(t, db, c), []string{p1})
			},
		},
		{
			name:  "conflict: a keyed child is not taken by a NULL key",
			setup: func(t *testing.T, db *store.DB) { commit(t, db, ok(p1, "h1", nil, child(c, "url:1"))) },
			out:   ok(p2, "h2", nil, child(c, "", "other", "content")),
			want: store.CommitStats{Written: 1, Stitched: 1,
				Conflicts: []store.Conflict{{Ref: c, Parent: p2, ExistingKey: "url:1", NewKey: ""}}},
			check: func(t *testing.T, db *store.DB) {
				eq(t, "location key", state(t, db, c).LocationKey, "url:1")
				eq(t, "parents", parents(t, db, c), []string{p1})
			},
		},
		{
			name:  "a NULL-keyed child is taken over",
			setup: func(t *testing.T, db *store.DB) { commit(t, db, ok(p1, "h1", nil, child(c, ""))) },
			out:   ok(p2, "h2", nil, child(c, "url:2", "other", "content")),
			want:  store.CommitStats{Written: 1, Stitched: 1},
			check: func(t *testing.T, db *store.DB) {
				s := state(t, db, c)
				eq(t, "location key", s.LocationKey, "url:2")
				eq(t, "content", string(s.Unprocessed), string(ent(c, "other", "content")))
				eq(t, "parents", parents(t, db, c), []string{p1, p2})
				eq(t, "errors", errorRefs(t, db), []string{})
			},
		},
		{
			name:  "the same key from a second parent is shared",
			setup: func(t *testing.T, db *store.DB) { commit(t, db, ok(p1, "h1", nil, child(c, "url:c"))) },
			out:   ok(p2, "h2", nil, child(c, "url:c")),
			want:  store.CommitStats{Written: 1, Stitched: 1},
			check: func(t *testing.T, db *store.DB) {
				eq(t, "parents", parents(t, db, c), []string{p1, p2})
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := openDB(t)
			applyRoots(t, db, child(p1, "url:p1"), child(p2, "url:p2"))
			if tc.setup != nil {
				tc.setup(t, db)
			}
			st := commit(t, db, tc.out)
			eq(t, "stats", st, tc.want)
			if tc.check != nil {
				tc.check(t, db)
			}
		})
	}
}

func checkConflict(t *testing.T, db *store.DB, parent, ref, k1, k2 string) {
	t.Helper()
	s := state(t, db, parent)
	if len(s.Errors) != 1 || s.Errors[0].Name != "ConflictError" ||
		!strings.Contains(s.Errors[0].Message, ref) ||
		!strings.Contains(s.Errors[0].Message, k1) || !strings.Contains(s.Errors[0].Message, k2) {
		t.Errorf("errors of %s = %+v, want one ConflictError naming %s, %s and %s", parent, s.Errors, ref, k1, k2)
	}
	f, _, _ := mustFinal(t, db, parent)
	if f.Status == nil || len(f.Status.Items) != 1 ||
		!strings.HasPrefix(f.Status.Items[0]["message"].(string), "ConflictError: ") {
		t.Errorf("status of %s = %+v", parent, f.Status)
	}
	if !slices.Contains(errorRefs(t, db), parent) {
		t.Errorf("%s not listed by ForEachError", parent)
	}
}

func TestConflictIsRetriedUntilTheOwnerLetsGo(t *testing.T) {
	const p1, p2, c = "location:default/p1", "location:default/p2", "component:default/c"
	db := openDB(t)
	applyRoots(t, db, child(p1, "url:p1"), child(p2, "url:p2"))
	commit(t, db, ok(p1, "h1", nil, child(c, "url:1")))
	uid := state(t, db, c).UID
	commit(t, db, ok(p2, "h2", nil, child(c, "url:2")))

	// The same outcome is not "unchanged" while it conflicts.
	st := commit(t, db, ok(p2, "h2", nil, child(c, "url:2")))
	eq(t, "written again", st.Written, 1)
	eq(t, "conflicts again", len(st.Conflicts), 1)

	// p1 lets go; c is deleted; p2's identical outcome now claims it.
	st = commit(t, db, ok(p1, "h1b", nil))
	eq(t, "deleted", st.Deleted, 1)
	gone(t, db, c, uid)
	st = commit(t, db, ok(p2, "h2", nil, child(c, "url:2")))
	eq(t, "stats", st, store.CommitStats{Written: 1, Created: 1, Stitched: 1})
	eq(t, "owner", state(t, db, c).LocationKey, "url:2")
	eq(t, "errors", errorRefs(t, db), []string{})
	if f, _, _ := mustFinal(t, db, p2); f.Status != nil {
		t.Errorf("conflict still shown: %+v", f.Status)
	}
	// Now the same outcome is unchanged.
	st = commit(t, db, ok(p2, "h2", nil, child(c, "url:2")))
	eq(t, "unchanged", st, store.CommitStats{Unchanged: 1})
}

func TestRootConflictBetweenProviders(t *testing.T) {
	db := openDB(t)
	const r = "location:default/r"
	applyRoots(t, db, child(r, "url:a"))
	st, err := db.ApplyRoots(store.ProviderPrefix+"q", "q", []store.Child{child(r, "url:b")})
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "conflicts", st.Conflicts, []store.Conflict{{Ref: r, Parent: store.ProviderPrefix + "q", ExistingKey: "url:a", NewKey: "url:b"}})
	eq(t, "parents", parents(t, db, r), []string{prov})
	eq(t, "pipeline", state(t, db, r).Pipeline, "p")
}

// --- scheduling ------------------------------------------------------------

func TestClaim(t *testing.T) {
	db := openDB(t)
	base := time.Now().Add(time.Hour)
	refs := []string{"component:default/a", "component:default/b", "component:default/c", "component:default/d"}
	var roots []store.Child
	for _, r := range refs {
		roots = append(roots, child(r, "url:"+r))
	}
	applyRoots(t, db, roots...)
	// a due at +3m, b at +1m, c at +2m, d at +1m (ties sort by ref).
	at := map[string]time.Duration{refs[0]: 3, refs[1]: 1, refs[2]: 2, refs[3]: 1}
	var outs []*store.Outcome
	for _, r := range refs {
		o := ok(r, "h", nil)
		o.NextUpdate = base.Add(at[r] * time.Minute)
		outs = append(outs, o)
	}
	commit(t, db, outs...)

	cases := []struct {
		name    string
		horizon time.Time
		limit   int
		skip    []string
		want    []string
	}{
		{name: "nothing due now", horizon: time.Now(), limit: 10, want: nil},
		{name: "horizon is inclusive", horizon: base.Add(time.Minute), limit: 10, want: []string{refs[1], refs[3]}},
		{name: "earliest first", horizon: base.Add(time.Hour), limit: 10, want: []string{refs[1], refs[3], refs[2], refs[0]}},
		{name: "limit", horizon: base.Add(time.Hour), limit: 3, want: []string{refs[1], refs[3], refs[2]}},
		{name: "skip does not count against limit", horizon: base.Add(time.Hour), limit: 2, skip: []string{refs[1], refs[2]},
			want: []string{refs[3], refs[0]}},
		{name: "zero limit", horizon: base.Add(time.Hour), limit: 0, want: nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var skip func(string) bool
			if tc.skip != nil {
				skip = func(r string) bool { return slices.Contains(tc.skip, r) }
			}
			sts, err := db.Claim(tc.horizon, tc.limit, skip)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range sts {
				got = append(got, s.Ref)
				// Processed is left out: processing never reads it.
				if s.Unprocessed == nil || s.UID == "" || s.ResultHash == "" || s.Processed != nil {
					t.Errorf("claimed state of %s is not as processing needs it: %+v", s.Ref, s)
				}
			}
			eq(t, "claimed", got, tc.want)
		})
	}

	// Claim only reads: the same entities are claimable again.
	eq(t, "claim twice", due(t, db, base.Add(time.Minute)), []string{refs[1], refs[3]})

	if err := db.MarkAllDue(); err != nil {
		t.Fatal(err)
	}
	eq(t, "all due after MarkAllDue", due(t, db, time.Now()), refs)
	for _, r := range refs {
		if !isDueNow(t, db, r) {
			t.Errorf("%s not due", r)
		}
	}
	// Results are still written after MarkAllDue (it does not touch hashes).
	st := commit(t, db, ok(refs[0], "h", nil))
	eq(t, "unchanged after MarkAllDue", st.Unchanged, 1)
	eq(t, "due after one commit", due(t, db, time.Now()), refs[1:])
}

func TestNextUpdateUnknown(t *testing.T) {
	db := openDB(t)
	if _, found, err := db.NextUpdate("component:default/x"); err != nil || found {
		t.Errorf("NextUpdate of unknown = %v, %v", found, err)
	}
	if s := state(t, db, "component:default/x"); s != nil {
		t.Errorf("State of unknown = %+v", s)
	}
	if r, err := db.RefByUID("nope"); err != nil || r != "" {
		t.Errorf("RefByUID of unknown = %q, %v", r, err)
	}
}

// --- deletion --------------------------------------------------------------

func TestDeleteEntity(t *testing.T) {
	const (
		p, c, g, other = "location:default/p", "component:default/c", "component:default/g", "group:default/o"
	)
	cases := []struct {
		name        string
		target      string
		wantGone    []string
		wantKept    []string
		wantDeleted int
		wantRerun   []string
	}{
		{name: "middle of a chain", target: c, wantGone: []string{c, g}, wantKept: []string{p, other}, wantDeleted: 2, wantRerun: []string{p}},
		{name: "a leaf", target: g, wantGone: []string{g}, wantKept: []string{p, c, other}, wantDeleted: 1, wantRerun: []string{c}},
		{name: "a root", target: p, wantGone: []string{p, c, g}, wantKept: []string{other}, wantDeleted: 3},
		{name: "unknown ref", target: "component:default/none", wantKept: []string{p, c, g, other}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := openDB(t)
			applyRoots(t, db, child(p, "url:p"), child(other, "url:o"))
			commit(t, db, ok(p, "p", nil, child(c, "url:p")), ok(other, "o", nil))
			commit(t, db, ok(c, "c", []store.Relation{rel(other, "ownerOf", c)}, child(g, "url:p")))
			commit(t, db, ok(g, "g", []store.Relation{rel(other, "ownerOf", g)}))
			uids := map[string]string{}
			for _, r := range []string{p, c, g, other} {
				uids[r] = state(t, db, r).UID
			}

			st, err := db.DeleteEntity(tc.target)
			if err != nil {
				t.Fatal(err)
			}
			eq(t, "deleted", st.Deleted, tc.wantDeleted)
			for _, r := range tc.wantGone {
				gone(t, db, r, uids[r])
			}
			for _, r := range tc.wantKept {
				mustFinal(t, db, r)
				if got, _ := db.RefByUID(uids[r]); got != r {
					t.Errorf("uid of %s maps to %q", r, got)
				}
			}
			var wantRels []servedRel
			for _, r := range []string{c, g} {
				if slices.Contains(tc.wantKept, r) {
					wantRels = append(wantRels, servedRel{"ownerOf", r})
				}
			}
			if wantRels == nil {
				wantRels = []servedRel{}
			}
			fo, _, _ := mustFinal(t, db, other)
			eq(t, "relations of other", fo.Relations, wantRels)
			for _, r := range tc.wantRerun {
				if !isDueNow(t, db, r) {
					t.Errorf("parent %s is not due", r)
				}
				eq(t, r+" result hash", state(t, db, r).ResultHash, "")
			}
			if len(tc.wantRerun) == 1 {
				// The parent's next run recreates the child even with an
				// unchanged outcome, under a new uid.
				pr := tc.wantRerun[0]
				var o *store.Outcome
				if pr == p {
					o = ok(p, "p", nil, child(c, "url:p"))
				} else {
					o = ok(c, "c", []store.Relation{rel(other, "ownerOf", c)}, child(g, "url:p"))
				}
				st := commit(t, db, o)
				eq(t, "recreated", st.Created, 1)
				eq(t, "written", st.Written, 1)
				s := state(t, db, tc.target)
				if s == nil || s.UID == uids[tc.target] {
					t.Errorf("recreated %s: %+v", tc.target, s)
				}
			}
		})
	}
}

// --- summary ---------------------------------------------------------------

func TestSummarize(t *testing.T) {
	const (
		loc          = "location:default/l"
		a, b, broken = "component:default/a", "component:default/b", "component:default/broken"
		sys          = "system:default/s"
	)
	db := openDB(t)
	sum, err := db.Summarize()
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "empty", sum, store.Summary{ByKind: map[string]int{}})

	applyRoots(t, db, child(loc, "url:l"))
	commit(t, db, ok(loc, "l", []store.Relation{rel(a, "dependsOn", b)},
		child(a, "url:l"), child(b, "url:l"), child(broken, "url:l"), child(sys, "url:l")))
	commit(t, db,
		ok(a, "a", []store.Relation{rel(a, "dependsOn", b), rel(b, "dependencyOf", a), rel(a, "partOf", sys)}),
		ok(b, "b", []store.Relation{rel(b, "dependencyOf", a), rel(b, "partOf", sys)}),
		ok(sys, "s", []store.Relation{rel(sys, "hasPart", a), rel(sys, "hasPart", b)}),
		failed(broken, "x", catalog.SerializedError{Name: "InputError", Message: "m"}))

	sum, err = db.Summarize()
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "summary", sum, store.Summary{
		ByKind:     map[string]int{"location": 1, "component": 2, "system": 1},
		Entities:   4,
		States:     5,
		Relations:  6,
		WithErrors: 1,
	})
	var served []string
	if err := db.ForEachFinal("", func(ref string, body []byte) error {
		served = append(served, ref)
		if !json.Valid(body) {
			t.Errorf("%s: invalid JSON", ref)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	eq(t, "served", served, []string{a, b, loc, sys})
	served = nil
	_ = db.ForEachFinal("component:", func(ref string, _ []byte) error { served = append(served, ref); return nil })
	eq(t, "served components", served, []string{a, b})
	stop := fmt.Errorf("stop")
	if err := db.ForEachFinal("", func(string, []byte) error { return stop }); err != stop {
		t.Errorf("ForEachFinal error = %v", err)
	}
}

// --- persistence -----------------------------------------------------------

type snapshot struct {
	States   map[string]string
	Finals   map[string]string
	Next     map[string]time.Time
	Parents  map[string][]string
	Children map[string][]string
	UIDs     map[string]string
	Summary  store.Summary
	Errors   []string
	Provs    []string
}

func snap(t *testing.T, db *store.DB, refs []string) snapshot {
	s := snapshot{States: map[string]string{}, Finals: map[string]string{}, Next: map[string]time.Time{},
		Parents: map[string][]string{}, Children: map[string][]string{}, UIDs: map[string]string{}}
	for _, r := range refs {
		s.States[r] = stateJSON(t, db, r)
		_, body, etag := final(t, db, r)
		s.Finals[r] = etag + string(body)
		s.Next[r] = nextUpdate(t, db, r)
		s.Parents[r] = parents(t, db, r)
		s.Children[r] = children(t, db, r)
		uid := state(t, db, r).UID
		s.UIDs[uid], _ = db.RefByUID(uid)
	}
	var err error
	if s.Summary, err = db.Summarize(); err != nil {
		t.Fatal(err)
	}
	s.Errors = errorRefs(t, db)
	if s.Provs, err = db.Providers(); err != nil {
		t.Fatal(err)
	}
	return s
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestReopenPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	db := openAt(t, path)
	const (
		r, a, b = "location:default/r", "component:default/a", "component:default/b"
	)
	applyRoots(t, db, child(r, "url:r"))
	commit(t, db, ok(r, "r", nil, child(a, "url:r"), child(b, "url:r")))
	oa := ok(a, "a", []store.Relation{rel(a, "dependsOn", b), rel(b, "dependencyOf", a)})
	oa.Cache = json.RawMessage(`{"stage":{"k":"v"}}`)
	oa.RefreshKeys = []string{"url:x"}
	commit(t, db, oa, failed(b, "b", catalog.SerializedError{Name: "InputError", Message: "m"}))
	refs := []string{r, a, b}
	before := snap(t, db, refs)
	db = reopen(t, db, path)
	defer db.Close()
	after := snap(t, db, refs)
	eq(t, "snapshot after reopen", after, before)
	s := state(t, db, a)
	eq(t, "cache", string(s.Cache), `{"stage":{"k":"v"}}`)
	eq(t, "refresh keys", s.RefreshKeys, []string{"url:x"})
	// The result hash survived too.
	st := commit(t, db, ok(a, "a", nil))
	eq(t, "unchanged after reopen", st, store.CommitStats{Unchanged: 1})
	// b's first good run after reopening is served under its old uid.
	commit(t, db, ok(b, "b2", nil))
	if f, _, _ := mustFinal(t, db, b); f.Metadata.UID != state(t, db, b).UID || !slices.Contains(keys(before.UIDs), f.Metadata.UID) {
		t.Errorf("served uid %s", f.Metadata.UID)
	}
}

// --- stats ---------------------------------------------------------------

func TestCommitStatsAdd(t *testing.T) {
	var s store.CommitStats
	s.Add(store.CommitStats{Written: 1, Unchanged: 2, Stale: 6, Created: 3, Deleted: 4, Stitched: 5,
		Conflicts: []store.Conflict{{Ref: "a"}}})
	s.Add(store.CommitStats{Written: 10, Unchanged: 20, Stale: 60, Created: 30, Deleted: 40, Stitched: 50,
		Conflicts: []store.Conflict{{Ref: "b"}}})
	eq(t, "sum", s, store.CommitStats{Written: 11, Unchanged: 22, Stale: 66, Created: 33, Deleted: 44, Stitched: 55,
		Conflicts: []store.Conflict{{Ref: "a"}, {Ref: "b"}}})
}

// --- benchmark -------------------------------------------------------------

// BenchmarkCommit commits batches of 500 first-time outcomes, each with six
// relations (three pairs, as builtin kinds emit them) and no children, into
// a fresh file.
func BenchmarkCommit(b *testing.B) {
	const batch = 500
	db := openDB(b)
	relsOf := func(ref string, i int) []store.Relation {
		g := fmt.Sprintf("group:default/team-%d", i%50)
		s := fmt.Sprintf("system:default/sys-%d", i%20)
		d := fmt.Sprintf("component:default/c%d", (i+1)%(batch*10))
		return []store.Relation{
			rel(ref, "ownedBy", g), rel(g, "ownerOf", ref),
			rel(ref, "partOf", s), rel(s, "hasPart", ref),
			rel(ref, "dependsOn", d), rel(d, "dependencyOf", ref),
		}
	}
	var elapsed time.Duration
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		b.StopTimer()
		roots := make([]store.Child, batch)
		outs := make([]*store.Outcome, batch)
		for i := range batch {
			ref := fmt.Sprintf("component:default/c%d", n*batch+i)
			roots[i] = child(ref, "url:"+ref)
			o := ok(ref, "h", relsOf(ref, n*batch+i))
			o.Processed = ent(ref, "type", "service", "lifecycle", "production", "owner", "team")
			outs[i] = o
		}
		if _, err := db.ApplyRoots(fmt.Sprintf("%sb%d", store.ProviderPrefix, n), "p", roots); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		st, err := db.Commit(outs)
		elapsed += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		if st.Written != batch {
			b.Fatalf("written %d", st.Written)
		}
	}
	b.ReportMetric(float64(b.N*batch)/elapsed.Seconds(), "entities/s")
}

func TestCommitIsAtomic(t *testing.T) {
	const a, b = "component:default/a", "component:default/b"
	db := openDB(t)
	applyRoots(t, db, child(a, "url:a"), child(b, "url:b"))
	commit(t, db, ok(a, "a1", []store.Relation{rel(b, "ownerOf", a)}), ok(b, "b1", nil))
	before := snap(t, db, []string{a, b})

	bad := ok(b, "b2", nil)
	bad.Processed = json.RawMessage(`{"not json`)
	if _, err := db.Commit([]*store.Outcome{ok(a, "a2", nil, child("component:default/c", "url:a")), bad}); err == nil {
		t.Fatal("a batch with an undecodable entity committed")
	} else if !strings.Contains(err.Error(), b) {
		t.Errorf("error does not name %s: %v", b, err)
	}
	eq(t, "nothing of the batch was written", snap(t, db, []string{a, b}), before)
	if s := state(t, db, "component:default/c"); s != nil {
		t.Error("child of the failed batch exists")
	}
}
