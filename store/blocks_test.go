package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// withBlockTarget sets blockTarget for one test.
func withBlockTarget(t *testing.T, n int) {
	old := blockTarget
	blockTarget = n
	t.Cleanup(func() { blockTarget = old })
}

// blockTestDB opens a bare bbolt file with one bucket "b".
func blockTestDB(t *testing.T) *bolt.DB {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "b.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket([]byte("b"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return db
}

// checkBlocks verifies a bucket of blocks against the model: every block
// decodes, is not empty, is keyed by its first row, and the rows ascend
// across blocks; forward and backward walks, seeks and gets all agree
// with the model.
func checkBlocks(t *testing.T, b *bolt.Bucket, model map[string]string) {
	t.Helper()
	keys := make([]string, 0, len(model))
	for k := range model {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var all []string
	err := b.ForEach(func(k, v []byte) error {
		rows, err := decodeBlock(v, nil)
		if err != nil {
			return fmt.Errorf("block %q: %w", k, err)
		}
		if len(rows) == 0 {
			return fmt.Errorf("block %q is empty", k)
		}
		if len(v) > 2*blockTarget+100 {
			return fmt.Errorf("block %q holds %d bytes (target %d)", k, len(v), blockTarget)
		}
		if !bytes.Equal(rows[0].key, k) {
			return fmt.Errorf("block %q starts with row %q", k, rows[0].key)
		}
		for _, r := range rows {
			if len(all) > 0 && string(r.key) <= all[len(all)-1] {
				return fmt.Errorf("row %q after %q", r.key, all[len(all)-1])
			}
			all = append(all, string(r.key))
			if want := model[string(r.key)]; string(r.value) != want {
				return fmt.Errorf("row %q = %q, want %q", r.key, r.value, want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(all, keys) {
		t.Fatalf("rows %q, want %q", all, keys)
	}
	c := newBlockCursor(b)
	var fwd, back []string
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if string(v) != model[string(k)] {
			t.Fatalf("cursor: %q = %q, want %q", k, v, model[string(k)])
		}
		fwd = append(fwd, string(k))
	}
	for k, _ := c.Last(); k != nil; k, _ = c.Prev() {
		back = append(back, string(k))
	}
	slices.Reverse(back)
	if !slices.Equal(fwd, keys) || !slices.Equal(back, keys) {
		t.Fatalf("walks %q and %q, want %q", fwd, back, keys)
	}
	if c.err != nil {
		t.Fatal(c.err)
	}
	// Seek every key, and between and around them; step both ways from
	// where a seek lands.
	probes := []string{"", "\xff\xff"}
	for _, k := range keys {
		probes = append(probes, k, k+"\x00", k[:len(k)-1])
	}
	for _, p := range probes {
		i, _ := slices.BinarySearch(keys, p)
		k, _ := c.Seek([]byte(p))
		if i == len(keys) {
			if k != nil {
				t.Fatalf("Seek(%q) = %q, want none", p, k)
			}
			continue
		}
		if string(k) != keys[i] {
			t.Fatalf("Seek(%q) = %q, want %q", p, k, keys[i])
		}
		if k, _ := c.Prev(); i > 0 && string(k) != keys[i-1] || i == 0 && k != nil {
			t.Fatalf("Prev after Seek(%q) = %q", p, k)
		}
		c.Seek([]byte(p))
		if k, _ := c.Next(); i+1 < len(keys) && string(k) != keys[i+1] || i+1 == len(keys) && k != nil {
			t.Fatalf("Next after Seek(%q) = %q", p, k)
		}
		k, v := newBlockCursor(b).Seek([]byte(p))
		if want, ok := model[p]; ok != (string(k) == p) || ok && string(v) != want {
			t.Fatalf("value at %q = %q (key %q), want %q (%v)", p, v, k, want, ok)
		}
	}
}

func TestBlockEditorAgainstModel(t *testing.T) {
	for _, target := range []int{1, 40, 300, 4096} {
		for _, ascending := range []bool{true, false} {
			t.Run(fmt.Sprintf("target=%d/ascending=%v", target, ascending), func(t *testing.T) {
				withBlockTarget(t, target)
				db := blockTestDB(t)
				rng := rand.New(rand.NewPCG(uint64(target), 7))
				model := map[string]string{}
				for round := range 30 {
					// Keys with long shared prefixes, like search rows.
					type op struct {
						key, value string
						del        bool
					}
					var ops []op
					for range rng.IntN(60) {
						k := fmt.Sprintf("spec.owner\x00group-%d\x00component:default/c%03d", rng.IntN(4), rng.IntN(200))
						ops = append(ops, op{k, fmt.Sprintf("v%d", round), rng.IntN(3) == 0})
					}
					if ascending {
						slices.SortStableFunc(ops, func(a, b op) int { return bytes.Compare([]byte(a.key), []byte(b.key)) })
					}
					err := db.Update(func(tx *bolt.Tx) error {
						e := newBlockEditor(tx.Bucket([]byte("b")))
						for _, o := range ops {
							if o.del {
								if err := e.del([]byte(o.key)); err != nil {
									return err
								}
								delete(model, o.key)
							} else {
								if err := e.put([]byte(o.key), []byte(o.value)); err != nil {
									return err
								}
								model[o.key] = o.value
							}
							if ok, err := e.has([]byte(o.key)); err != nil || ok == o.del {
								return fmt.Errorf("has(%q) = %v, %v after del=%v", o.key, ok, err, o.del)
							}
						}
						return e.flush()
					})
					if err != nil {
						t.Fatal(err)
					}
					if err := db.View(func(tx *bolt.Tx) error {
						checkBlocks(t, tx.Bucket([]byte("b")), model)
						return nil
					}); err != nil {
						t.Fatal(err)
					}
				}
			})
		}
	}
}

func TestBlockAppender(t *testing.T) {
	for _, target := range []int{1, 100, 4096} {
		t.Run(fmt.Sprint(target), func(t *testing.T) {
			withBlockTarget(t, target)
			db := blockTestDB(t)
			model := map[string]string{}
			// Two transactions, the second continuing after the first:
			// the way a compaction fills its new main.
			for part := range 2 {
				err := db.Update(func(tx *bolt.Tx) error {
					a := newBlockAppender(tx.Bucket([]byte("b")))
					for i := range 300 {
						k := fmt.Sprintf("kind\x00component\x00component:default/p%d-%04d", part, i)
						if err := a.put([]byte(k), []byte("a")); err != nil {
							return err
						}
						model[k] = "a"
						switch i % 7 {
						case 3: // a later write of the same key replaces it
							if err := a.put([]byte(k), []byte("b")); err != nil {
								return err
							}
							model[k] = "b"
						case 5: // or drops it
							if ok, _ := a.has([]byte(k)); !ok {
								return fmt.Errorf("has(%q) = false", k)
							}
							if err := a.del([]byte(k)); err != nil {
								return err
							}
							delete(model, k)
						}
					}
					if err := a.put([]byte("a"), []byte("x")); err == nil {
						return fmt.Errorf("a key out of order was accepted")
					}
					return a.flush()
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			db.View(func(tx *bolt.Tx) error {
				b := tx.Bucket([]byte("b"))
				checkBlocks(t, b, model)
				if n := b.Stats().KeyN; target >= 4096 && n > 10 {
					t.Errorf("%d blocks for %d rows of ~45 bytes", n, len(model))
				}
				return nil
			})
		})
	}
}

func TestMalformedBlocks(t *testing.T) {
	var enc blockEncoder
	for i := range 20 {
		enc.add([]byte(fmt.Sprintf("abc%02d", i)), []byte("v"))
	}
	good := enc.finish()
	rows, err := decodeBlock(good, nil)
	if err != nil || len(rows) != 20 || string(rows[17].key) != "abc17" || string(rows[17].value) != "v" {
		t.Fatalf("decode = %q, %v", rows, err)
	}
	n := len(good)
	withTrailer := func(rows []byte, restarts ...uint32) []byte {
		for _, r := range restarts {
			rows = binary.LittleEndian.AppendUint32(rows, r)
		}
		return binary.LittleEndian.AppendUint32(rows, uint32(len(restarts)))
	}
	one := []byte{0, 1, 'a', 1, 'v'} // the row a = v
	for name, bad := range map[string][]byte{
		"empty":                    {},
		"no restarts":              withTrailer(one),
		"more restarts than bytes": append(slices.Clone(one), 0, 0, 0, 9),
		"restart past the rows":    withTrailer(one, 7),
		"first restart not at 0":   withTrailer(append([]byte{0, 0, 0}, one...), 3),
		"value cut short":          withTrailer(one[:4], 0),
		"shares more than before":  withTrailer([]byte{5, 1, 'a', 0}, 0),
		"suffix past the rows":     withTrailer([]byte{0, 200, 'a'}, 0),
		"varint cut short":         withTrailer([]byte{0, 0x80}, 0),
		"a restart row shares":     withTrailer(good[:binary.LittleEndian.Uint32(good[n-8:])], 0, 9), // row 1 starts at 9
		"restarts missing":         append(slices.Clone(good[:n-8]), 1, 0, 0, 0),
	} {
		if _, err := decodeBlock(bad, nil); err == nil {
			t.Errorf("%s: decode %q: no error", name, bad)
		}
	}
	db := blockTestDB(t)
	bad := withTrailer([]byte{5, 1, 'a', 0}, 0)
	db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("b")).Put([]byte("abc"), bad) })
	db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("b"))
		c := newBlockCursor(b)
		if k, _ := c.First(); k != nil || c.err == nil {
			t.Errorf("First on a bad block = %q, err %v", k, c.err)
		}
		c = newBlockCursor(b)
		if k, _ := c.Seek([]byte("abc")); k != nil || c.err == nil {
			t.Errorf("Seek in a bad block = %q, err %v", k, c.err)
		}
		return nil
	})
}

// TestBlockCursorRandomWalk moves a cursor at random (seeks, steps both
// ways, direction changes across block boundaries) and checks every move
// against the sorted rows, as mergedCursor and the queries move it.
func TestBlockCursorRandomWalk(t *testing.T) {
	for _, target := range []int{1, 64, 700, 4096} {
		t.Run(fmt.Sprint(target), func(t *testing.T) {
			withBlockTarget(t, target)
			db := blockTestDB(t)
			rng := rand.New(rand.NewPCG(uint64(target), 11))
			var keys []string
			for i := range 400 {
				// Groups of keys sharing long prefixes, of varied length.
				keys = append(keys, fmt.Sprintf("relations.ownedby\x00group:default/team-%d\x00component:default/%s%d", i%7, strings.Repeat("x", i%13), i))
			}
			slices.Sort(keys)
			err := db.Update(func(tx *bolt.Tx) error {
				a := newBlockAppender(tx.Bucket([]byte("b")))
				for _, k := range keys {
					if err := a.put([]byte(k), []byte{byte(len(k))}); err != nil {
						return err
					}
				}
				return a.flush()
			})
			if err != nil {
				t.Fatal(err)
			}
			db.View(func(tx *bolt.Tx) error {
				c := newBlockCursor(tx.Bucket([]byte("b")))
				at := -1 // index of the current key; -1 or len: none
				var kept []string
				var keptKeys [][]byte
				for step := range 5000 {
					var k []byte
					op := rng.IntN(6)
					switch {
					case op == 0:
						k, _ = c.First()
						at = 0
					case op == 1:
						k, _ = c.Last()
						at = len(keys) - 1
					case op == 2:
						probe := keys[rng.IntN(len(keys))]
						switch rng.IntN(3) {
						case 1:
							probe += "\x00"
						case 2:
							probe = probe[:len(probe)-1]
						}
						k, _ = c.Seek([]byte(probe))
						at, _ = slices.BinarySearch(keys, probe)
					case op <= 4:
						if at < 0 || at >= len(keys) {
							continue // the walk is over: only a seek restarts it
						}
						k, _ = c.Next()
						at++
					default:
						if at < 0 || at >= len(keys) {
							continue
						}
						k, _ = c.Prev()
						at--
					}
					want := ""
					if at >= 0 && at < len(keys) {
						want = keys[at]
					}
					if string(k) != want {
						t.Fatalf("step %d (op %d): key %q, want %q", step, op, k, want)
					}
					if k != nil && rng.IntN(10) == 0 {
						kept, keptKeys = append(kept, string(k)), append(keptKeys, k)
					}
				}
				// Keys handed out earlier are still intact.
				for i, k := range keptKeys {
					if string(k) != kept[i] {
						t.Fatalf("kept key %d changed: %q, was %q", i, k, kept[i])
					}
				}
				return c.err
			})
		})
	}
}
