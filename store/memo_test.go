package store

// Tests of State.Memo and skipped outcomes: the codec's optional trailing
// memo field, peekHashes, and the commit rules that store, keep or clear
// the memo.
//
// These tests are in package store (not store_test) because they call the
// codec (encodeState, decodeStateParts, peekHashes) and the writer
// (forceRerun) directly. The helpers of store_test.go (openDB, commit,
// state, …) live in the external test package and cannot be called from
// here, so memoFixture wraps the few DB calls these tests make.

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/catalog-pipeline/pipeline/catalog"
	bolt "go.etcd.io/bbolt"
)

// memoProvider is the provider key the fixture's roots hang from.
const memoProvider = ProviderPrefix + "memo"

// memoLater is a refresh time far enough in the future that nothing
// scheduled for it is due while a test runs.
var memoLater = time.Now().Add(time.Hour).Truncate(time.Second)

// memoDueNow is the time NextUpdate reports for an entity due at once.
var memoDueNow = time.Unix(0, dueNow)

type memoFixture struct {
	t  *testing.T
	db *DB
}

func newMemoFixture(t *testing.T) *memoFixture {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "memo.db"), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// As openDB does: the search index must equal a rebuild.
		if err := db.CheckIndex(); err != nil {
			t.Error(err)
		}
		db.Close()
	})
	return &memoFixture{t: t, db: db}
}

// memoEntity builds an entity for ref "kind:namespace/name", with optional
// spec fields.
func memoEntity(ref string, spec ...string) json.RawMessage {
	kind, rest, _ := strings.Cut(ref, ":")
	ns, name, _ := strings.Cut(rest, "/")
	s := map[string]string{}
	for i := 0; i+1 < len(spec); i += 2 {
		s[spec[i]] = spec[i+1]
	}
	b, err := json.Marshal(map[string]any{
		"apiVersion": "backstage.io/v1alpha1",
		"kind":       kind,
		"metadata":   map[string]any{"name": name, "namespace": ns},
		"spec":       s,
	})
	if err != nil {
		panic(err)
	}
	return b
}

// memoChild is ref emitted under location key key.
func memoChild(ref, key string, spec ...string) Child {
	e := memoEntity(ref, spec...)
	h := sha1.Sum(e)
	return Child{Ref: ref, Entity: e, Hash: hex.EncodeToString(h[:]), LocationKey: key}
}

// memoBytes is s as a memo; "" is no memo.
func memoBytes(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}

// roots makes refs the roots of memoProvider, each under location key
// "url:"+ref.
func (f *memoFixture) roots(refs ...string) {
	f.t.Helper()
	var cs []Child
	for _, r := range refs {
		cs = append(cs, memoChild(r, "url:"+r))
	}
	if _, err := f.db.ApplyRoots(memoProvider, "memo", cs); err != nil {
		f.t.Fatal(err)
	}
}

func (f *memoFixture) commit(outs ...*Outcome) CommitStats {
	f.t.Helper()
	st, err := f.db.Commit(outs)
	if err != nil {
		f.t.Fatal(err)
	}
	return st
}

func (f *memoFixture) state(ref string) *State {
	f.t.Helper()
	st, err := f.db.State(ref)
	if err != nil {
		f.t.Fatal(err)
	}
	return st
}

// raw is ref's state record as stored (nil when there is none).
func (f *memoFixture) raw(ref string) []byte {
	f.t.Helper()
	var v []byte
	if err := f.db.bolt.View(func(tx *bolt.Tx) error {
		v = bytes.Clone(open(tx).state.Get([]byte(ref)))
		return nil
	}); err != nil {
		f.t.Fatal(err)
	}
	return v
}

// putRaw replaces ref's state record.
func (f *memoFixture) putRaw(ref string, v []byte) {
	f.t.Helper()
	if err := f.db.bolt.Update(func(tx *bolt.Tx) error {
		return open(tx).state.Put([]byte(ref), v)
	}); err != nil {
		f.t.Fatal(err)
	}
}

// next is ref's next update; the zero time when ref is not queued.
func (f *memoFixture) next(ref string) time.Time {
	f.t.Helper()
	at, found, err := f.db.NextUpdate(ref)
	if err != nil {
		f.t.Fatal(err)
	}
	if !found {
		return time.Time{}
	}
	return at
}

// claim returns the refs Claim hands out up to horizon, in its order.
func (f *memoFixture) claim(horizon time.Time) []string {
	f.t.Helper()
	sts, err := f.db.Claim(horizon, 1<<20, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	refs := []string{}
	for _, st := range sts {
		refs = append(refs, st.Ref)
	}
	return refs
}

// queueSizes counts the keys of the queue and schedule buckets, which must
// agree (one queue entry per scheduled entity).
func (f *memoFixture) queueSizes() (queue, schedule int) {
	f.t.Helper()
	if err := f.db.bolt.View(func(tx *bolt.Tx) error {
		b := open(tx)
		queue, schedule = b.queue.Stats().KeyN, b.schedule.Stats().KeyN
		return nil
	}); err != nil {
		f.t.Fatal(err)
	}
	return queue, schedule
}

func (f *memoFixture) forceRerun(ref string) {
	f.t.Helper()
	if _, err := f.db.update(func(w *writer) error { return w.forceRerun(ref) }); err != nil {
		f.t.Fatal(err)
	}
}

func (f *memoFixture) unprocessedHash(ref string) string {
	if st := f.state(ref); st != nil {
		return st.UnprocessedHash
	}
	return ""
}

// ok is a successful outcome for ref's current input, with result hash
// hash and memo memo.
func (f *memoFixture) ok(ref, hash, memo string, kids ...Child) *Outcome {
	f.t.Helper()
	return &Outcome{Ref: ref, UnprocessedHash: f.unprocessedHash(ref), OK: true, Processed: memoEntity(ref),
		ResultHash: hash, Memo: memoBytes(memo), Children: kids, NextUpdate: memoLater}
}

// failed is a failed outcome for ref's current input.
func (f *memoFixture) failed(ref, hash string) *Outcome {
	f.t.Helper()
	return &Outcome{Ref: ref, UnprocessedHash: f.unprocessedHash(ref), ResultHash: hash,
		Errors: []catalog.SerializedError{{Name: "Error", Message: "boom"}}, NextUpdate: memoLater}
}

// skipped is the outcome the engine hands in when it skips ref's run: the
// stored result repeated, and no memo (nil keeps the stored one; the
// engine sends one only when it refreshed it).
func (f *memoFixture) skipped(ref string) *Outcome {
	f.t.Helper()
	o := &Outcome{Ref: ref, OK: true, Skipped: true, NextUpdate: memoLater}
	if st := f.state(ref); st != nil {
		o.UnprocessedHash, o.ResultHash, o.Errors = st.UnprocessedHash, st.ResultHash, st.Errors
	}
	return o
}

func memoEq[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %#v, want %#v", what, got, want)
	}
}

// fullState has every field set, so that a codec bug in any of them shows.
func fullState(memo []byte) *State {
	return &State{
		Ref:             "component:default/full",
		UID:             "0190a7a4-0000-7000-8000-000000000001",
		Pipeline:        "default",
		Root:            "url:https://example.com/catalog-info.yaml",
		Failures:        3,
		Contender:       "location:default/other",
		Unprocessed:     json.RawMessage(`{"kind":"Component","metadata":{"name":"full"}}`),
		UnprocessedHash: "uh-1",
		Processed:       json.RawMessage(`{"kind":"Component","metadata":{"name":"full","namespace":"default"}}`),
		ResultHash:      "rh-1",
		Errors: []catalog.SerializedError{
			{Name: "InputError", Message: "bad spec", Stack: "at x"},
			{Name: "Error", Message: "second"},
		},
		LocationKey: "url:https://example.com/catalog-info.yaml",
		Cache:       json.RawMessage(`{"stage":{"k":"v"}}`),
		RefreshKeys: []string{"url:a", "url:b"},
		Relations: []Relation{
			{Source: "component:default/full", Type: "ownedBy", Target: "group:default/g"},
			{Source: "group:default/g", Type: "ownerOf", Target: "component:default/full"},
		},
		Memo: memo,
	}
}

// --- codec ------------------------------------------------------------------

func TestStateCodecMemoRoundTrip(t *testing.T) {
	long := bytes.Repeat([]byte{0xab}, 300) // a two-byte length
	cases := []struct {
		name     string
		st       *State
		wantMemo []byte
	}{
		{name: "every field and a memo", st: fullState([]byte("fingerprint+sources")), wantMemo: []byte("fingerprint+sources")},
		{name: "binary memo", st: fullState([]byte{0, 0x80, 0xff, 1, 0}), wantMemo: []byte{0, 0x80, 0xff, 1, 0}},
		{name: "memo longer than 127 bytes", st: fullState(long), wantMemo: long},
		{name: "memo of a one-byte record", st: fullState([]byte{7}), wantMemo: []byte{7}},
		{name: "memo and nothing else", st: &State{Ref: "component:default/m", Memo: []byte("m")}, wantMemo: []byte("m")},
		{name: "memo without relations", st: func() *State {
			st := fullState([]byte("m"))
			st.Relations = nil
			return st
		}(), wantMemo: []byte("m")},
		{name: "no memo", st: fullState(nil), wantMemo: nil},
		{name: "empty memo decodes as nil", st: fullState([]byte{}), wantMemo: nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			enc := encodeState(tc.st)
			want := *tc.st
			want.Memo = tc.wantMemo

			got, err := decodeState(tc.st.Ref, enc)
			if err != nil {
				t.Fatal(err)
			}
			memoEq(t, "decoded", got, &want)

			// Claim's decode leaves Processed out and nothing else.
			want.Processed = nil
			got, err = decodeStateParts(tc.st.Ref, enc, false)
			if err != nil {
				t.Fatal(err)
			}
			memoEq(t, "decoded without processed", got, &want)

			uh, rh, err := peekHashes(enc)
			if err != nil {
				t.Fatal(err)
			}
			memoEq(t, "peeked unprocessed hash", string(uh), tc.st.UnprocessedHash)
			memoEq(t, "peeked result hash", string(rh), tc.st.ResultHash)

			// The decoded memo is a copy: bbolt's memory is only valid
			// inside the transaction.
			clear(enc)
			memoEq(t, "memo after the record was overwritten", got.Memo, tc.wantMemo)
		})
	}
}

// TestStateCodecRecordWithoutMemo decodes records written before the memo
// field existed: they end right after the relations list. Such a record is
// an encoding with an empty memo minus its last byte (the memo's zero
// length).
func TestStateCodecRecordWithoutMemo(t *testing.T) {
	cases := []struct {
		name string
		st   *State
	}{
		{name: "every field", st: fullState(nil)},
		{name: "no relations", st: func() *State {
			st := fullState(nil)
			st.Relations = nil
			return st
		}()},
		{name: "no errors, keys or relations", st: func() *State {
			st := fullState(nil)
			st.Errors, st.RefreshKeys, st.Relations = nil, nil, nil
			return st
		}()},
		{name: "a never processed entity", st: &State{Ref: "component:default/new", UID: "u", Pipeline: "p",
			Unprocessed: json.RawMessage(`{}`), UnprocessedHash: "uh", LocationKey: "url:x"}},
		{name: "zero state", st: &State{Ref: "component:default/zero"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			enc := encodeStateFields(tc.st)
			if enc[len(enc)-1] != 0 {
				t.Fatalf("an empty memo does not end the record with a zero length: % x", enc)
			}
			legacy := enc[:len(enc)-1]

			got, err := decodeState(tc.st.Ref, legacy)
			if err != nil {
				t.Fatal(err)
			}
			if got.Memo != nil {
				t.Errorf("memo of a record without one = %q, want nil", got.Memo)
			}
			memoEq(t, "decoded", got, tc.st)

			want := *tc.st
			want.Processed = nil
			got2, err := decodeStateParts(tc.st.Ref, legacy, false)
			if err != nil {
				t.Fatal(err)
			}
			memoEq(t, "decoded without processed", got2, &want)

			uh, rh, err := peekHashes(legacy)
			if err != nil {
				t.Fatal(err)
			}
			memoEq(t, "peeked hashes", []string{string(uh), string(rh)}, []string{tc.st.UnprocessedHash, tc.st.ResultHash})

			// Rewriting an old record adds the trailing field.
			memoEq(t, "re-encoded", encodeStateFields(got), enc)
		})
	}
}

func TestStateCodecCorruptMemo(t *testing.T) {
	withMemo := encodeStateFields(fullState([]byte("abcde")))
	legacy := encodeStateFields(fullState(nil))
	legacy = legacy[:len(legacy)-1]
	cases := []struct {
		name string
		v    []byte
	}{
		{name: "memo shorter than its length", v: withMemo[:len(withMemo)-3]},
		{name: "memo length only", v: withMemo[:len(withMemo)-5]},
		{name: "truncated memo length", v: append(slices.Clone(legacy), 0x80)},
		{name: "record cut inside the relations", v: legacy[:len(legacy)-2]},
		{name: "empty record", v: nil},
		{name: "unknown version", v: append([]byte{stateCodecCompressed + 1}, withMemo[1:]...)},
		{name: "compressed record that does not decompress", v: append([]byte{stateCodecCompressed}, withMemo[1:]...)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, processed := range []bool{true, false} {
				st, err := decodeStateParts("component:default/x", tc.v, processed)
				if !errors.Is(err, errCorrupt) {
					t.Errorf("decode (processed %v) = %+v, %v; want errCorrupt", processed, st, err)
				}
			}
		})
	}
}

// TestPeekHashes reads the hashes of records the store wrote.
func TestPeekHashes(t *testing.T) {
	const (
		a      = "component:default/a"
		p1, p2 = "location:default/p1", "location:default/p2"
		c      = "component:default/c"
	)
	cases := []struct {
		name   string
		setup  func(f *memoFixture)
		ref    string
		wantRH string
	}{
		{name: "never processed", ref: a, wantRH: ""},
		{name: "processed with a memo", ref: a, wantRH: "h1",
			setup: func(f *memoFixture) { f.commit(f.ok(a, "h1", "m1")) }},
		{name: "failed", ref: a, wantRH: "f1",
			setup: func(f *memoFixture) { f.commit(f.ok(a, "h1", "m1")); f.commit(f.failed(a, "f1")) }},
		{name: "forced to rerun", ref: a, wantRH: "",
			setup: func(f *memoFixture) { f.commit(f.ok(a, "h1", "m1")); f.forceRerun(a) }},
		{name: "conflicting children", ref: p2, wantRH: "conflict:h2",
			setup: func(f *memoFixture) {
				f.commit(f.ok(p1, "h1", "", memoChild(c, "url:1")))
				f.commit(f.ok(p2, "h2", "m2", memoChild(c, "url:2")))
			}},
		{name: "record written before the memo field", ref: a, wantRH: "h1",
			setup: func(f *memoFixture) {
				f.commit(f.ok(a, "h1", ""))
				v := f.raw(a)
				v = uncompressedState(t, v)
				f.putRaw(a, v[:len(v)-1])
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newMemoFixture(t)
			f.roots(a, p1, p2)
			if tc.setup != nil {
				tc.setup(f)
			}
			v := f.raw(tc.ref)
			uh, rh, err := peekHashes(v)
			if err != nil {
				t.Fatal(err)
			}
			st := f.state(tc.ref)
			memoEq(t, "unprocessed hash", string(uh), st.UnprocessedHash)
			memoEq(t, "unprocessed hash of the root", string(uh), memoChild(tc.ref, "url:"+tc.ref).Hash)
			memoEq(t, "result hash", string(rh), tc.wantRH)
			memoEq(t, "stored result hash", st.ResultHash, tc.wantRH)
		})
	}
	t.Run("corrupt", func(t *testing.T) {
		enc := encodeStateFields(fullState([]byte("m")))
		for _, v := range [][]byte{nil, {stateCodecCompressed + 1}, enc[:4]} {
			if _, _, err := peekHashes(v); !errors.Is(err, errCorrupt) {
				t.Errorf("peekHashes(% x) error = %v, want errCorrupt", v, err)
			}
		}
	})
}

// TestLegacyRecordInStore runs the store on a record written before the
// memo field: it is read, claimed, and upgraded by the next memo.
func TestLegacyRecordInStore(t *testing.T) {
	const a = "component:default/a"
	f := newMemoFixture(t)
	f.roots(a)
	f.commit(f.ok(a, "h1", ""))
	before := f.state(a)
	v := uncompressedState(t, f.raw(a))
	f.putRaw(a, v[:len(v)-1])

	memoEq(t, "state of the old record", f.state(a), before)
	f.forceRerun(a) // due now, ResultHash cleared: the record is rewritten
	memoEq(t, "claimed", f.claim(time.Now()), []string{a})
	if got := f.state(a); got.ResultHash != "" || got.Memo != nil {
		t.Errorf("after forceRerun: %+v", got)
	}
	f.commit(f.ok(a, "h1", ""))
	v = uncompressedState(t, f.raw(a))
	f.putRaw(a, v[:len(v)-1])
	st := f.commit(f.ok(a, "h1", "m1"))
	memoEq(t, "stats", st, CommitStats{Unchanged: 1})
	memoEq(t, "memo after the same result", f.state(a).Memo, []byte("m1"))
	memoEq(t, "upgraded record", f.raw(a), encodeState(f.state(a)))
}

// --- commit rules -----------------------------------------------------------

// TestCommitMemo checks what a commit does to the memo, the result hash and
// the schedule, outcome by outcome.
func TestCommitMemo(t *testing.T) {
	const (
		a      = "component:default/a"
		p1, p2 = "location:default/p1", "location:default/p2"
		c      = "component:default/c"
	)
	// base gives a a stored result h1 with memo m1.
	base := func(f *memoFixture) { f.commit(f.ok(a, "h1", "m1")) }
	type counts struct{ Written, Unchanged, Stale, Conflicts int }
	cases := []struct {
		name  string
		ref   string
		setup func(f *memoFixture)
		out   func(f *memoFixture) *Outcome
		want  counts
		// Expected state afterwards.
		memo     string
		hash     string
		failures int
		// rewritten: the state record changed; requeued: NextUpdate moved
		// to the outcome's; sameElse: every field but Memo is as before.
		rewritten, requeued, sameElse bool
	}{
		{name: "first success stores the memo", ref: a,
			out:  func(f *memoFixture) *Outcome { return f.ok(a, "h1", "m1") },
			want: counts{Written: 1}, memo: "m1", hash: "h1", rewritten: true, requeued: true},
		{name: "new result replaces the memo", ref: a, setup: base,
			out:  func(f *memoFixture) *Outcome { return f.ok(a, "h2", "m2") },
			want: counts{Written: 1}, memo: "m2", hash: "h2", rewritten: true, requeued: true},
		{name: "new result without a memo clears it", ref: a, setup: base,
			out:  func(f *memoFixture) *Outcome { return f.ok(a, "h2", "") },
			want: counts{Written: 1}, memo: "", hash: "h2", rewritten: true, requeued: true},
		{name: "same result, new memo: rewritten but unchanged", ref: a, setup: base,
			out:  func(f *memoFixture) *Outcome { return f.ok(a, "h1", "m2") },
			want: counts{Unchanged: 1}, memo: "m2", hash: "h1", rewritten: true, requeued: true, sameElse: true},
		{name: "same result, memo dropped: rewritten but unchanged", ref: a, setup: base,
			out:  func(f *memoFixture) *Outcome { return f.ok(a, "h1", "") },
			want: counts{Unchanged: 1}, memo: "", hash: "h1", rewritten: true, requeued: true, sameElse: true},
		{name: "same result, same memo: nothing written", ref: a, setup: base,
			out:  func(f *memoFixture) *Outcome { return f.ok(a, "h1", "m1") },
			want: counts{Unchanged: 1}, memo: "m1", hash: "h1", requeued: true, sameElse: true},
		{name: "same result and memo of a never-memoized entity", ref: a,
			setup: func(f *memoFixture) { f.commit(f.ok(a, "h1", "")) },
			out:   func(f *memoFixture) *Outcome { return f.ok(a, "h1", "") },
			want:  counts{Unchanged: 1}, memo: "", hash: "h1", requeued: true, sameElse: true},
		{name: "failure clears the memo", ref: a, setup: base,
			out:  func(f *memoFixture) *Outcome { return f.failed(a, "f1") },
			want: counts{Written: 1}, memo: "", hash: "f1", failures: 1, rewritten: true, requeued: true},
		{name: "failure carrying a memo still clears it", ref: a, setup: base,
			out: func(f *memoFixture) *Outcome {
				o := f.failed(a, "f1")
				o.Memo = []byte("m9")
				return o
			},
			want: counts{Written: 1}, memo: "", hash: "f1", failures: 1, rewritten: true, requeued: true},
		{name: "the same failure again keeps it clear", ref: a,
			setup: func(f *memoFixture) { base(f); f.commit(f.failed(a, "f1")) },
			out:   func(f *memoFixture) *Outcome { return f.failed(a, "f1") },
			want:  counts{Unchanged: 1}, memo: "", hash: "f1", failures: 2, rewritten: true, requeued: true},
		{name: "success after a failure stores the memo", ref: a,
			setup: func(f *memoFixture) { base(f); f.commit(f.failed(a, "f1")) },
			out:   func(f *memoFixture) *Outcome { return f.ok(a, "h1", "m1") },
			want:  counts{Written: 1}, memo: "m1", hash: "h1", rewritten: true, requeued: true},
		{name: "conflicting children clear the memo", ref: p2,
			setup: func(f *memoFixture) {
				f.commit(f.ok(p1, "h1", "", memoChild(c, "url:1")))
				f.commit(f.ok(p2, "h0", "m0"))
			},
			out:  func(f *memoFixture) *Outcome { return f.ok(p2, "h2", "m2", memoChild(c, "url:2")) },
			want: counts{Written: 1, Conflicts: 1}, memo: "", hash: "conflict:h2", rewritten: true, requeued: true},
		{name: "the same conflict again keeps it clear", ref: p2,
			setup: func(f *memoFixture) {
				f.commit(f.ok(p1, "h1", "", memoChild(c, "url:1")))
				f.commit(f.ok(p2, "h2", "m2", memoChild(c, "url:2")))
			},
			out: func(f *memoFixture) *Outcome {
				o := f.ok(p2, "h2", "m2", memoChild(c, "url:2"))
				o.NextUpdate = memoLater.Add(time.Hour)
				return o
			},
			want: counts{Written: 1, Conflicts: 1}, memo: "", hash: "conflict:h2", requeued: true},
		{name: "stale outcome keeps the memo", ref: a, setup: base,
			out: func(f *memoFixture) *Outcome {
				o := f.ok(a, "h2", "m2")
				o.UnprocessedHash = "an older input"
				return o
			},
			want: counts{Stale: 1}, memo: "m1", hash: "h1", sameElse: true},
		{name: "skipped run only requeues", ref: a, setup: base,
			out:  func(f *memoFixture) *Outcome { return f.skipped(a) },
			want: counts{Unchanged: 1}, memo: "m1", hash: "h1", requeued: true, sameElse: true},
		{name: "skipped run with a refreshed memo stores it, unchanged", ref: a, setup: base,
			out: func(f *memoFixture) *Outcome {
				o := f.skipped(a)
				o.Memo = []byte("m2")
				return o
			},
			want: counts{Unchanged: 1}, memo: "m2", hash: "h1", rewritten: true, requeued: true, sameElse: true},
		{name: "skipped run repeating the stored memo changes nothing", ref: a, setup: base,
			out: func(f *memoFixture) *Outcome {
				o := f.skipped(a)
				o.Memo = []byte("m1")
				return o
			},
			want: counts{Unchanged: 1}, memo: "m1", hash: "h1", requeued: true, sameElse: true},
		{name: "skipped run of an erroring entity only requeues", ref: a,
			setup: func(f *memoFixture) {
				o := f.ok(a, "h1", "m1")
				o.Errors = []catalog.SerializedError{{Name: "InputError", Message: "warned"}}
				f.commit(o)
			},
			out:  func(f *memoFixture) *Outcome { return f.skipped(a) },
			want: counts{Unchanged: 1}, memo: "m1", hash: "h1", requeued: true, sameElse: true},
		{name: "skipped run after a new input is stale", ref: a,
			setup: func(f *memoFixture) {
				base(f)
				roots := []Child{memoChild(a, "url:"+a, "v", "2"), memoChild(p1, "url:"+p1), memoChild(p2, "url:"+p2)}
				if _, err := f.db.ApplyRoots(memoProvider, "memo", roots); err != nil {
					f.t.Fatal(err)
				}
			},
			out: func(f *memoFixture) *Outcome {
				o := f.skipped(a)
				o.UnprocessedHash = memoChild(a, "url:"+a).Hash // what was claimed
				o.Memo = []byte("m2")                           // a refreshed memo is dropped too
				return o
			},
			want: counts{Stale: 1}, memo: "m1", hash: "h1", sameElse: true},
		{name: "skipped run after a forced rerun is stale", ref: a,
			setup: func(f *memoFixture) { base(f); f.forceRerun(a) },
			out: func(f *memoFixture) *Outcome {
				o := f.skipped(a)
				o.ResultHash, o.Memo = "h1", []byte("m1") // what was claimed
				return o
			},
			want: counts{Stale: 1}, memo: "", hash: "", sameElse: true},
		{name: "skipped run with another result hash is stale", ref: a, setup: base,
			out: func(f *memoFixture) *Outcome {
				o := f.skipped(a)
				o.ResultHash, o.Memo = "h0", []byte("m2")
				return o
			},
			want: counts{Stale: 1}, memo: "m1", hash: "h1", sameElse: true},
		{name: "skipped run without an input hash is stale", ref: a, setup: base,
			out: func(f *memoFixture) *Outcome {
				o := f.skipped(a)
				o.UnprocessedHash = ""
				return o
			},
			want: counts{Stale: 1}, memo: "m1", hash: "h1", sameElse: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newMemoFixture(t)
			f.roots(a, p1, p2)
			if tc.setup != nil {
				tc.setup(f)
			}
			o := tc.out(f)
			if o.NextUpdate.Equal(memoLater) {
				o.NextUpdate = memoLater.Add(42 * time.Minute)
			}
			beforeRaw, beforeNext := f.raw(tc.ref), f.next(tc.ref)
			before := f.state(tc.ref)

			cs := f.commit(o)
			memoEq(t, "stats", counts{cs.Written, cs.Unchanged, cs.Stale, len(cs.Conflicts)}, tc.want)

			st := f.state(tc.ref)
			memoEq(t, "memo", st.Memo, memoBytes(tc.memo))
			memoEq(t, "result hash", st.ResultHash, tc.hash)
			memoEq(t, "failures", st.Failures, tc.failures)
			if !o.OK && !bytes.Equal(st.Processed, before.Processed) {
				t.Errorf("a failure replaced the processed entity")
			}
			if rewritten := !bytes.Equal(f.raw(tc.ref), beforeRaw); rewritten != tc.rewritten {
				t.Errorf("state record rewritten = %v, want %v", rewritten, tc.rewritten)
			}
			if tc.sameElse && tc.want.Written == 0 && !tc.rewritten {
				memoEq(t, "state", st, before)
			}
			if tc.sameElse {
				after, prev := *st, *before
				after.Memo, prev.Memo = nil, nil
				memoEq(t, "state but the memo", after, prev)
			}
			wantNext := beforeNext
			if tc.requeued {
				wantNext = o.NextUpdate
			}
			if got := f.next(tc.ref); !got.Equal(wantNext) {
				t.Errorf("next update = %v, want %v", got, wantNext)
			}
		})
	}

	t.Run("skipped run of an unknown entity is ignored", func(t *testing.T) {
		f := newMemoFixture(t)
		o := &Outcome{Ref: "component:default/none", OK: true, Skipped: true, UnprocessedHash: "u", ResultHash: "h", NextUpdate: memoLater}
		memoEq(t, "stats", f.commit(o), CommitStats{})
		if f.state(o.Ref) != nil || !f.next(o.Ref).IsZero() {
			t.Error("a skipped outcome created an entity")
		}
	})

	t.Run("skipped runs in a batch with others", func(t *testing.T) {
		const b = "component:default/b"
		f := newMemoFixture(t)
		f.roots(a, b)
		f.commit(f.ok(a, "h1", "m1"), f.ok(b, "h1", "m1"))
		sa, sb := f.skipped(a), f.ok(b, "h2", "m2")
		sa.NextUpdate = memoLater.Add(time.Minute)
		cs := f.commit(sa, sb)
		memoEq(t, "stats", [3]int{cs.Written, cs.Unchanged, cs.Stale}, [3]int{1, 1, 0})
		memoEq(t, "memo of the skipped", f.state(a).Memo, []byte("m1"))
		memoEq(t, "memo of the run", f.state(b).Memo, []byte("m2"))
		memoEq(t, "next of the skipped", f.next(a), sa.NextUpdate)
	})
}

// TestForceRerunClearsMemo checks every path that forces a rerun: the
// result hash and memo are forgotten and the entity is due now, so that
// its next outcome is written even when equal to the last.
func TestForceRerunClearsMemo(t *testing.T) {
	const (
		a      = "component:default/a"
		p1, p2 = "location:default/p1", "location:default/p2"
		c      = "component:default/c"
	)
	cases := []struct {
		name string
		// ref is the entity that must be rerun; setup leaves it with a
		// memo, force forces the rerun.
		ref   string
		setup func(f *memoFixture)
		force func(f *memoFixture)
		// again is ref's next outcome, equal to the one before the force.
		again func(f *memoFixture) *Outcome
	}{
		{name: "directly", ref: a,
			setup: func(f *memoFixture) { f.commit(f.ok(a, "h1", "m1")) },
			force: func(f *memoFixture) { f.forceRerun(a) },
			again: func(f *memoFixture) *Outcome { return f.ok(a, "h1", "m1") }},
		{name: "parent of a deleted entity", ref: p1,
			setup: func(f *memoFixture) { f.commit(f.ok(p1, "h1", "m1", memoChild(c, "url:1"))) },
			force: func(f *memoFixture) {
				if _, err := f.db.DeleteEntity(c); err != nil {
					f.t.Fatal(err)
				}
			},
			again: func(f *memoFixture) *Outcome { return f.ok(p1, "h1", "m1", memoChild(c, "url:1")) }},
		{name: "contender when the owner lets go", ref: p2,
			setup: func(f *memoFixture) {
				f.commit(f.ok(p1, "h1", "m1", memoChild(c, "url:1")))
				f.commit(f.ok(p2, "h2", "m2", memoChild(c, "url:2"))) // loses c
				f.commit(f.ok(p2, "h3", "m3"))                        // a memo again
				if got := f.state(c).Contender; got != p2 {
					f.t.Fatalf("contender of %s = %q, want %q", c, got, p2)
				}
			},
			force: func(f *memoFixture) { f.commit(f.ok(p1, "h1b", "m1b")) }, // c is pruned
			again: func(f *memoFixture) *Outcome { return f.ok(p2, "h3", "m3") }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newMemoFixture(t)
			f.roots(a, p1, p2)
			tc.setup(f)
			before := f.state(tc.ref)
			if before.Memo == nil || before.ResultHash == "" {
				t.Fatalf("setup left %s without a memo or result: %+v", tc.ref, before)
			}
			tc.force(f)

			st := f.state(tc.ref)
			memoEq(t, "result hash", st.ResultHash, "")
			if st.Memo != nil {
				t.Errorf("memo = %q, want nil", st.Memo)
			}
			memoEq(t, "next update", f.next(tc.ref), memoDueNow)
			if !slices.Contains(f.claim(time.Now()), tc.ref) {
				t.Errorf("%s is not claimed", tc.ref)
			}
			// Nothing else of the state is forgotten.
			b := *before
			b.ResultHash, b.Memo = "", nil
			memoEq(t, "state but hash and memo", *st, b)

			// The same outcome as before is written, and its memo kept.
			cs := f.commit(tc.again(f))
			memoEq(t, "written again", cs.Written, 1)
			memoEq(t, "memo again", f.state(tc.ref).Memo, before.Memo)
		})
	}
	t.Run("unknown entity", func(t *testing.T) {
		f := newMemoFixture(t)
		f.forceRerun("component:default/none")
		if f.state("component:default/none") != nil || !f.next("component:default/none").IsZero() {
			t.Error("forceRerun created an entity")
		}
	})
}

// --- claim and MarkAllDue -----------------------------------------------------

// TestClaimLeavesOnlyProcessedOut compares claimed states with stored ones:
// they differ in Processed only.
func TestClaimLeavesOnlyProcessedOut(t *testing.T) {
	const (
		a      = "component:default/a"
		b      = "component:default/b"
		p1, p2 = "location:default/p1", "location:default/p2"
		c      = "component:default/c"
		n      = "component:default/n"
	)
	f := newMemoFixture(t)
	f.roots(a, b, p1, p2, n)
	oa := f.ok(a, "ha", "memo-a")
	oa.Errors = []catalog.SerializedError{{Name: "InputError", Message: "warned", Stack: "s"}}
	oa.Cache = json.RawMessage(`{"stage":{"k":1}}`)
	oa.RefreshKeys = []string{"url:x", "url:y"}
	oa.Relations = []Relation{{Source: a, Type: "ownedBy", Target: "group:default/g"}, {Source: "group:default/g", Type: "ownerOf", Target: a}}
	f.commit(oa, f.ok(b, "hb", "memo-b"), f.ok(p1, "h1", "m1", memoChild(c, "url:1")))
	f.commit(f.failed(b, "fb"), f.ok(p2, "h2", "m2", memoChild(c, "url:2")))
	cases := []struct {
		ref       string
		processed bool // the stored state has a processed entity
	}{
		{ref: a, processed: true},
		{ref: b, processed: true}, // failed: last good kept, memo cleared
		{ref: p1, processed: true},
		{ref: p2, processed: true}, // conflict
		{ref: c, processed: false}, // never ran, has a contender
		{ref: n, processed: false}, // never ran
	}
	if err := f.db.MarkAllDue(); err != nil {
		t.Fatal(err)
	}
	sts, err := f.db.Claim(time.Now(), 100, nil)
	if err != nil {
		t.Fatal(err)
	}
	claimed := map[string]*State{}
	for _, st := range sts {
		if claimed[st.Ref] != nil {
			t.Errorf("%s claimed twice", st.Ref)
		}
		claimed[st.Ref] = st
	}
	if len(claimed) != len(cases) {
		t.Errorf("claimed %d entities, want %d", len(claimed), len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.ref, func(t *testing.T) {
			got := claimed[tc.ref]
			if got == nil {
				t.Fatal("not claimed")
			}
			if got.Processed != nil {
				t.Errorf("claimed Processed = %s, want nil", got.Processed)
			}
			want := f.state(tc.ref)
			if (want.Processed != nil) != tc.processed {
				t.Errorf("stored Processed = %s", want.Processed)
			}
			want.Processed = nil
			memoEq(t, "claimed state", got, want)
		})
	}
	memoEq(t, "memo of a", claimed[a].Memo, []byte("memo-a"))
	memoEq(t, "contender of c", claimed[c].Contender, p2)
	memoEq(t, "failures of b", claimed[b].Failures, 1)
}

func TestMarkAllDueRebuildsQueue(t *testing.T) {
	many := make([]string, 300)
	for i := range many {
		many[i] = fmt.Sprintf("component:default/e%03d", i)
	}
	cases := []struct {
		name string
		refs []string
		// future are refs committed with a next update in the future (at
		// different times); the others are never processed, so due now.
		future []string
	}{
		{name: "all in the future", refs: []string{"component:default/a", "component:default/b", "component:default/c", "component:default/d"},
			future: []string{"component:default/a", "component:default/b", "component:default/c", "component:default/d"}},
		{name: "some already due", refs: []string{"component:default/a", "component:default/b", "component:default/c", "component:default/d"},
			future: []string{"component:default/b", "component:default/d"}},
		{name: "all already due", refs: []string{"component:default/a", "component:default/b"}},
		{name: "empty store"},
		{name: "many in the future", refs: many, future: many[:250]},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newMemoFixture(t)
			if len(tc.refs) > 0 {
				f.roots(tc.refs...)
			}
			var outs []*Outcome
			for i, r := range tc.future {
				o := f.ok(r, "h", "m")
				o.NextUpdate = memoLater.Add(time.Duration(len(tc.future)-i) * time.Minute)
				outs = append(outs, o)
			}
			if len(outs) > 0 {
				f.commit(outs...)
			}
			wantBefore := []string{}
			for _, r := range tc.refs {
				if !slices.Contains(tc.future, r) {
					wantBefore = append(wantBefore, r)
				}
			}
			memoEq(t, "due before", f.claim(time.Now()), wantBefore)
			records := map[string][]byte{}
			for _, r := range tc.refs {
				records[r] = f.raw(r)
			}

			for round := range 2 { // MarkAllDue twice changes nothing more
				if err := f.db.MarkAllDue(); err != nil {
					t.Fatal(err)
				}
				got := f.claim(time.Now())
				want := slices.Clone(tc.refs)
				if want == nil {
					want = []string{}
				}
				// Every entity exactly once, ties in ref order.
				memoEq(t, "claimed after MarkAllDue", got, want)
				for _, r := range tc.refs {
					if at := f.next(r); !at.Equal(memoDueNow) {
						t.Errorf("round %d: next update of %s = %v, want due now", round, r, at)
					}
					if !bytes.Equal(f.raw(r), records[r]) {
						t.Errorf("MarkAllDue rewrote the state of %s", r)
					}
				}
				q, s := f.queueSizes()
				memoEq(t, "queue and schedule sizes", [2]int{q, s}, [2]int{len(tc.refs), len(tc.refs)})
				next, found, err := f.db.NextDue()
				if err != nil {
					t.Fatal(err)
				}
				if found != (len(tc.refs) > 0) || (found && !next.Equal(memoDueNow)) {
					t.Errorf("NextDue = %v, %v", next, found)
				}
			}
			if len(tc.future) == 0 {
				return
			}
			// The rebuilt queue is edited as before: a commit moves its
			// entity out of it, and only that one.
			r := tc.future[0]
			cs := f.commit(f.ok(r, "h", "m"))
			memoEq(t, "unchanged", cs.Unchanged, 1)
			memoEq(t, "next update", f.next(r), memoLater)
			memoEq(t, "claimed after a commit", f.claim(time.Now()), slices.DeleteFunc(slices.Clone(tc.refs), func(s string) bool { return s == r }))
			q, s := f.queueSizes()
			memoEq(t, "queue and schedule sizes after a commit", [2]int{q, s}, [2]int{len(tc.refs), len(tc.refs)})
		})
	}
}

// uncompressedState is a stored record in the uncompressed form, the one
// records had before the memo field.
func uncompressedState(t *testing.T, v []byte) []byte {
	t.Helper()
	body, _, err := stateBody(nil, v)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte{stateCodecVersion}, body...)
}
