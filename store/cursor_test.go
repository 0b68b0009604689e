package store

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestMergedCursorMatchesOneBucket spreads keys over several buckets and
// checks that random walks of the merged cursor (seeks, both directions,
// turning around) see exactly what the same walk of one bucket holding
// every key sees.
func TestMergedCursorMatchesOneBucket(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "c.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, parts := range []int{1, 2, 3, 5} {
		for seed := range uint64(20) {
			t.Run(fmt.Sprintf("parts=%d/seed=%d", parts, seed), func(t *testing.T) {
				rnd := rand.New(rand.NewPCG(seed, uint64(parts)))
				walkBoth(t, db, rnd, parts)
			})
		}
	}
}

// walkBoth fills the bucket "all" and, with the same keys spread at
// random, the buckets p0..p(parts-1), then walks both views alike.
func walkBoth(t *testing.T, db *bolt.DB, rnd *rand.Rand, parts int) {
	t.Helper()
	var keys [][]byte
	err := db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{[]byte("all"), []byte("p0"), []byte("p1"), []byte("p2"), []byte("p3"), []byte("p4")} {
			if tx.Bucket(name) != nil {
				if err := tx.DeleteBucket(name); err != nil {
					return err
				}
			}
		}
		all, err := tx.CreateBucket([]byte("all"))
		if err != nil {
			return err
		}
		ps := make([]*bolt.Bucket, parts)
		for i := range ps {
			if ps[i], err = tx.CreateBucket(fmt.Appendf(nil, "p%d", i)); err != nil {
				return err
			}
		}
		// Few keys, so that walks often run off either end; some parts
		// stay empty.
		n := rnd.IntN(40)
		for range n {
			k := fmt.Appendf(nil, "k%03d", rnd.IntN(200))
			if all.Get(k) != nil {
				continue
			}
			v := append([]byte("v"), k...)
			keys = append(keys, k)
			if err := all.Put(k, v); err != nil {
				return err
			}
			if err := ps[rnd.IntN(parts)].Put(k, v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.View(func(tx *bolt.Tx) error {
		want := tx.Bucket([]byte("all")).Cursor()
		subs := make([]cursor, parts)
		for i := range subs {
			subs[i] = tx.Bucket(fmt.Appendf(nil, "p%d", i)).Cursor()
		}
		got := newMergedCursor(subs)
		var log []string
		live := false
		for step := range 300 {
			op := rnd.IntN(5)
			if !live && (op == 3 || op == 4) {
				op = rnd.IntN(3)
			}
			var seek []byte
			if op == 2 {
				seek = fmt.Appendf(nil, "k%03d", rnd.IntN(210))
				if len(keys) > 0 && rnd.IntN(2) == 0 {
					seek = keys[rnd.IntN(len(keys))]
				}
			}
			call := func(c cursor) ([]byte, []byte) {
				switch op {
				case 0:
					return c.First()
				case 1:
					return c.Last()
				case 2:
					return c.Seek(seek)
				case 3:
					return c.Next()
				default:
					return c.Prev()
				}
			}
			wk, wv := call(want)
			gk, gv := call(got)
			log = append(log, fmt.Sprintf("%s%s -> %s", []string{"First", "Last", "Seek ", "Next", "Prev"}[op], seek, wk))
			if !bytes.Equal(wk, gk) || !bytes.Equal(wv, gv) {
				t.Fatalf("step %d: merged cursor gave %q=%q, one bucket %q=%q\nwalk:\n%s", step, gk, gv, wk, wv, bytes.Join(toBytes(log), []byte("\n")))
			}
			live = wk != nil
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func toBytes(ss []string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

// TestAscendingMatchesOneBucket: compaction's heap merge yields every key
// after the resume point, in order, as one bucket's cursor does.
func TestAscendingMatchesOneBucket(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "c.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for seed := range uint64(30) {
		rnd := rand.New(rand.NewPCG(seed, 7))
		parts := 1 + rnd.IntN(6)
		var keys [][]byte
		err := db.Update(func(tx *bolt.Tx) error {
			for i := range 7 {
				_ = tx.DeleteBucket(fmt.Appendf(nil, "p%d", i))
			}
			seen := map[string]bool{}
			for range rnd.IntN(60) {
				k := fmt.Appendf(nil, "k%03d", rnd.IntN(300))
				if seen[string(k)] {
					continue
				}
				seen[string(k)] = true
				keys = append(keys, k)
				b, err := tx.CreateBucketIfNotExists(fmt.Appendf(nil, "p%d", rnd.IntN(parts)))
				if err != nil {
					return err
				}
				if err := b.Put(k, append([]byte("v"), k...)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(keys, bytes.Compare)
		var after []byte
		if rnd.IntN(3) > 0 {
			after = fmt.Appendf(nil, "k%03d", rnd.IntN(300))
		}
		_ = db.View(func(tx *bolt.Tx) error {
			var subs []cursor
			for i := range parts {
				if b := tx.Bucket(fmt.Appendf(nil, "p%d", i)); b != nil {
					subs = append(subs, b.Cursor())
				}
			}
			var got, want []string
			for _, k := range keys {
				if after == nil || bytes.Compare(k, after) > 0 {
					want = append(want, string(k))
				}
			}
			for a := newAscending(subs, after); a.len() > 0; a.next() {
				k, v := a.top()
				if string(v) != "v"+string(k) {
					t.Errorf("seed %d: value of %q is %q", seed, k, v)
				}
				got = append(got, string(k))
			}
			if !slices.Equal(got, want) {
				t.Errorf("seed %d, after %q: got %q, want %q", seed, after, got, want)
			}
			return nil
		})
	}
}
