package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/klauspost/compress/s2"
	bolt "go.etcd.io/bbolt"
)

// CheckIndex rebuilds the search and facets buckets from the served
// entities and compares them with the maintained ones, key by key
// and value by value: incremental maintenance must equal a rebuild.
func (d *DB) CheckIndex() error {
	return d.bolt.View(func(tx *bolt.Tx) error {
		b := open(tx)
		search := map[string]string{}
		facets := map[string]uint64{}
		err := b.final.ForEach(func(k, v []byte) error {
			ref := string(k)
			body, err := finalBody(v)
			if err != nil {
				return err
			}
			rows, err := flatten(body)
			if err != nil {
				return fmt.Errorf("%s: %w", ref, err)
			}
			flags := rowFlags(rows, nil)
			for i, r := range rows {
				fl := flags[i]
				if fl&rowMin != 0 && !inUncountedFamily(r.path) {
					facets[r.path+"\x01"]++
				}
				val := ""
				if !r.null() && r.orig != r.value {
					fl |= rowOrig
					val = r.orig
				}
				search[string(searchKey(nil, r.path, r.value, ref))] = string(append([]byte{fl}, val...))
				if !r.null() && !uncounted(r.path) {
					facets[r.path+"\x00"+r.value+"\x00"+r.orig]++
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := sameSearch(b, search); err != nil {
			return err
		}
		want := map[string]string{}
		for k, n := range facets {
			want[k] = string(binary.BigEndian.AppendUint64(nil, n))
		}
		return sameBucket("facets", b.facets, want)
	})
}

// sameSearch compares the search index, its main bucket and segments
// together, with want; a key held by two of them is an error too.
func sameSearch(b *buckets, want map[string]string) error {
	got := map[string]string{}
	for _, bk := range append([]*bolt.Bucket{b.search}, b.segs...) {
		// Read block by block, checking each: keyed by its first row,
		// not empty, rows ascending within and across blocks.
		var last []byte
		err := bk.ForEach(func(bkey, data []byte) error {
			rows, err := decodeBlock(data, nil)
			if err != nil || len(rows) == 0 || !bytes.Equal(rows[0].key, bkey) {
				return fmt.Errorf("search block %q: %d rows, %v", bkey, len(rows), err)
			}
			for _, r := range rows {
				if last != nil && bytes.Compare(r.key, last) <= 0 {
					return fmt.Errorf("search key %q after %q", r.key, last)
				}
				last = r.key
				if _, dup := got[string(r.key)]; dup {
					return fmt.Errorf("search key %q is in two buckets", r.key)
				}
				got[string(r.key)] = string(r.value)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if b.tx.Bucket(rootBucket).Bucket(searchNextBucket) != nil {
		return fmt.Errorf("a compaction's %s bucket was left behind", searchNextBucket)
	}
	return sameContent("search", got, want)
}

func sameBucket(name string, bk *bolt.Bucket, want map[string]string) error {
	got := map[string]string{}
	_ = bk.ForEach(func(k, v []byte) error {
		got[string(k)] = string(v)
		return nil
	})
	return sameContent(name, got, want)
}

func sameContent(name string, got, want map[string]string) error {
	var diffs []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if g, ok := got[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("missing %q = %q", k, want[k]))
		} else if g != want[k] {
			diffs = append(diffs, fmt.Sprintf("%q = %q, want %q", k, g, want[k]))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("extra %q = %q", k, got[k]))
		}
	}
	if len(diffs) > 0 {
		if len(diffs) > 20 {
			diffs = append(diffs[:20], "…")
		}
		return fmt.Errorf("%s bucket differs from a rebuild:\n\t%s", name, strings.Join(diffs, "\n\t"))
	}
	return nil
}

// ValuedKey is where FacetRows reports the number of entities with a value.
const ValuedKey = "#entities"

// FacetRows returns the raw facet counts of path by original value, and
// under ValuedKey the number of entities with a value there, for tests that check
// the bucket itself rather than Facets' answer.
func (d *DB) FacetRows(path string) (map[string]uint64, error) {
	out := map[string]uint64{}
	err := d.bolt.View(func(tx *bolt.Tx) error {
		b := open(tx)
		c := b.facets.Cursor()
		pre := append([]byte(path), 0)
		for k, v := c.Seek(pre); k != nil && bytes.HasPrefix(k, pre); k, v = c.Next() {
			rest := k[len(pre):]
			out[string(rest[bytes.IndexByte(rest, 0)+1:])] = binary.BigEndian.Uint64(v)
		}
		if v := b.facets.Get(append([]byte(path), 1)); v != nil {
			out[ValuedKey] = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	return out, err
}

// SearchRows lists ref's stored search rows as "path=value".
func (d *DB) SearchRows(ref string) ([]string, error) {
	var out []string
	err := d.bolt.View(func(tx *bolt.Tx) error {
		rows, err := (&indexBuf{}).storedRows(open(tx), ref)
		if err != nil {
			return err
		}
		for _, r := range rows {
			if r.path != "" {
				out = append(out, r.path+"="+strings.ReplaceAll(r.value, nullValue, "∅"))
			}
		}
		return nil
	})
	return out, err
}

// SearchRow is one stored search row, for model-based tests.
type SearchRow struct {
	Path, Value, Orig string
	Null              bool
}

// StoredRows lists ref's stored search rows, the reserved one left out.
func (d *DB) StoredRows(ref string) ([]SearchRow, error) {
	var out []SearchRow
	err := d.bolt.View(func(tx *bolt.Tx) error {
		rows, err := (&indexBuf{}).storedRows(open(tx), ref)
		for _, r := range rows {
			if r.path != "" {
				out = append(out, SearchRow{Path: r.path, Value: r.value, Orig: r.orig, Null: r.null()})
			}
		}
		return err
	})
	return out, err
}

// EntityJSON builds an entity for ref "kind:namespace/name" with optional
// spec fields, for the external tests (memo_test.go defines it).
var EntityJSON = memoEntity

// SetStitchPreparation makes StitchPending prepare batches of at least
// minPerGoroutine refs on up to procs goroutines (math.MaxInt: always in
// the write transaction), and calls after, if not nil, between the
// preparation and the write transaction. It returns the restore.
func SetStitchPreparation(minPerGoroutine, procs int, after func()) (restore func()) {
	oldMin, oldProcs, oldAfter := minStitchesPerGoroutine, stitchProcs, afterStitchPrepare
	minStitchesPerGoroutine = minPerGoroutine
	stitchProcs = func() int { return procs }
	afterStitchPrepare = after
	return func() {
		minStitchesPerGoroutine, stitchProcs, afterStitchPrepare = oldMin, oldProcs, oldAfter
	}
}

// PreparedStitchBatches is how many StitchPending batches were written
// from their preparation rather than rebuilt in the write transaction.
func (d *DB) PreparedStitchBatches() int {
	d.stitchMu.Lock()
	defer d.stitchMu.Unlock()
	return d.preparedStitches
}

// index makes ref's search rows those of body, its new served JSON, in
// w's transaction, and stores body as its final entity (under a fixed
// etag), which the next index of ref diffs against: the index maintenance
// of one stitch without the rest (search tests and BenchmarkStitchIndex).
func (w *writer) index(ref string, body []byte) error {
	if err := w.indexRows(ref, w.final.Get([]byte(ref)), body); err != nil {
		return err
	}
	return w.final.Put([]byte(ref), append([]byte(strings.Repeat("0", etagLen)), body...))
}

// RelationLog reports what relq holds: the deferred commits' records and
// their row writes, not yet applied to bysource.
func (d *DB) RelationLog() (records, writes int, err error) {
	err = d.bolt.View(func(tx *bolt.Tx) error {
		keys, ops, err := loadRelQ(open(tx).relQ, 0, nil)
		records, writes = len(keys), len(ops)
		return err
	})
	return records, writes, err
}

// BySourceRows lists the bysource rows served on source, each
// "type ‖ 0 ‖ target ‖ 0 ‖ origin".
func (d *DB) BySourceRows(source string) (rows []string, err error) {
	err = d.bolt.View(func(tx *bolt.Tx) error {
		pre := prefix(source)
		c := newBlockCursor(open(tx).bySource)
		for k, _ := c.Seek(pre); k != nil && bytes.HasPrefix(k, pre); k, _ = c.Next() {
			rows = append(rows, string(k[len(pre):]))
		}
		return c.err
	})
	return rows, err
}

// SetRelQChunk sets how many logged row writes one transaction of
// StitchPending applies and a hook run after each such transaction, and
// returns the restore.
func SetRelQChunk(n int, after func()) (restore func()) {
	old, oldAfter := relQChunk, afterRelQChunk
	relQChunk, afterRelQChunk = n, after
	return func() { relQChunk, afterRelQChunk = old, oldAfter }
}

// STORE_SEGMENTS=1 runs the store's tests against a search index split
// into segments: every transaction that adds rows writes a segment, three
// of them are compacted, seven rows per transaction (make test runs both);
// see below for what else it changes.
func init() {
	if os.Getenv("STORE_SEGMENTS") != "" {
		segmentsAlways, maxSegments, compactChunk = true, 3, 7
		// And blocks of a row or two, so that every edit splits,
		// empties or starts a block (blocks.go), and every state record
		// and final entity compressed.
		blockTarget = 1
		compressFrom = 0
	}
}

// UnpackBlocks rewrites bysource, and the search index when search is
// set, of a closed file in the layout of schema 12 and older, a row per
// bbolt key, so that tests can build the files Open upgrades: every other
// search row goes to a segment (from version 8), which Open must merge.
// The file must have no segments.
func UnpackBlocks(path string, search bool) error {
	return updateClosed(path, func(root *bolt.Bucket) error {
		unpack := func(name []byte, segment *bolt.Bucket) error {
			var rows []blockRow
			c := newBlockCursor(root.Bucket(name))
			for k, v := c.First(); k != nil; k, v = c.Next() {
				rows = append(rows, blockRow{k, v})
			}
			if c.err != nil {
				return c.err
			}
			if err := root.DeleteBucket(name); err != nil {
				return err
			}
			b, err := root.CreateBucket(name)
			if err != nil {
				return err
			}
			for i, r := range rows {
				dst := b
				if i%2 == 1 && segment != nil {
					dst = segment
				}
				if err := dst.Put(r.key, r.value); err != nil {
					return err
				}
			}
			return nil
		}
		if err := unpack(bySourceBucket, nil); err != nil || !search {
			return err
		}
		var seg *bolt.Bucket
		if segs := root.Bucket(searchSegsBucket); segs != nil {
			var err error
			if seg, err = segs.CreateBucket(binary.BigEndian.AppendUint64(nil, 1)); err != nil {
				return err
			}
		}
		return unpack(searchBucket, seg)
	})
}

// SearchIndexRows is the number of rows in the search index, main bucket
// and segments together.
func (d *DB) SearchIndexRows() (n int, err error) {
	err = d.bolt.View(func(tx *bolt.Tx) error {
		c := open(tx).searchCursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			n++
		}
		return nil
	})
	return n, err
}

// SearchSegments is the number of search segments, for tests of their
// creation and compaction.
func (d *DB) SearchSegments() (n int, err error) {
	err = d.bolt.View(func(tx *bolt.Tx) error {
		n = len(open(tx).segs)
		return nil
	})
	return n, err
}

// SegmentTuning is segments.go's tuning, for tests that choose when
// segments are written and merged (Always off whatever STORE_SEGMENTS
// says, unless set).
type SegmentTuning struct {
	MinOps, Max, Chunk, FullRatio int
	Always                        bool
}

// DefaultSegmentTuning is the tuning the program runs with.
var DefaultSegmentTuning = SegmentTuning{segmentMinOps, maxSegments, compactChunk, fullCompactRatio, false}

// SetSegmentTuning sets the tuning until the returned function restores it.
func SetSegmentTuning(s SegmentTuning) (restore func()) {
	o := SegmentTuning{segmentMinOps, maxSegments, compactChunk, fullCompactRatio, segmentsAlways}
	set := func(s SegmentTuning) {
		segmentMinOps, maxSegments, compactChunk, fullCompactRatio, segmentsAlways = s.MinOps, s.Max, s.Chunk, s.FullRatio, s.Always
	}
	set(s)
	return func() { set(o) }
}

// CompactSearch merges every search segment into the main bucket.
func (d *DB) CompactSearch() error {
	_, err := d.compactSearch(true)
	return err
}

// CompactionTxCount is how many of WriteTxCount's transactions compacted
// search segments.
func (d *DB) CompactionTxCount() int { return int(d.compactionTxs.Load()) }

// ChildUpserts is how many children the outcomes' own transactions
// upserted (not counting the steps ahead of them).
func (d *DB) ChildUpserts() int { return int(d.childUpserts.Load()) }

// SetAfterChildStep makes fn run after each step that commits a large
// outcome's children ahead of it. It returns the restore.
func SetAfterChildStep(fn func()) (restore func()) {
	old := afterChildStep
	afterChildStep = fn
	return func() { afterChildStep = old }
}

// BucketFill reports how many bytes of the named bucket's pages hold data,
// and how many bytes its pages take.
func (d *DB) BucketFill(name string) (inuse, alloc int, err error) {
	err = d.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(rootBucket).Bucket([]byte(name))
		if b == nil {
			return fmt.Errorf("no bucket %q", name)
		}
		s := b.Stats()
		inuse, alloc = s.BranchInuse+s.LeafInuse, s.BranchAlloc+s.LeafAlloc
		return nil
	})
	return inuse, alloc, err
}

// WithoutDict rewrites the state records and final entities of the closed
// file at path that are compressed with entityDict in the forms schema 13
// wrote (plain s2), as an older version would have left them.
func WithoutDict(path string) error {
	return updateClosed(path, func(root *bolt.Bucket) error {
		rewrite := func(name []byte, at int, from, to byte) error {
			b := root.Bucket(name)
			var keys, vals [][]byte
			c := b.Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				if len(v) <= at || v[at] != from {
					continue
				}
				body, err := entityDict.Decode(nil, v[at+1:])
				if err != nil {
					return err
				}
				old := append(append(bytes.Clone(v[:at]), to), s2.Encode(nil, body)...)
				keys, vals = append(keys, bytes.Clone(k)), append(vals, old)
			}
			for i, k := range keys {
				if err := b.Put(k, vals[i]); err != nil {
					return err
				}
			}
			return nil
		}
		if err := rewrite(stateBucket, 0, stateCodecDict, stateCodecCompressed); err != nil {
			return err
		}
		return rewrite(finalBucket, etagLen, finalCompressedDict, finalCompressed)
	})
}

// updateClosed runs fn on the root bucket of the closed file at path, in
// one write transaction.
func updateClosed(path string, fn func(root *bolt.Bucket) error) error {
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.Update(func(tx *bolt.Tx) error { return fn(tx.Bucket(rootBucket)) })
}

// SetRelQFrameSize sets about how many bytes of writes a frame of a relq
// record holds, and returns the restore.
func SetRelQFrameSize(n int) (restore func()) {
	old := relQFrameSize
	relQFrameSize = n
	return func() { relQFrameSize = old }
}

// UnframeRelQ rewrites relq's records in the form written before frames,
// writes as they are, as an older version would have left them; it
// returns their sizes in frames and as they are.
func (d *DB) UnframeRelQ() (framed, plain int, err error) {
	err = d.boltUpdate(func(tx *bolt.Tx) error {
		q := open(tx).relQ
		var keys, vals [][]byte
		c := q.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			framed += len(v)
			r := newRelQReader(k, v)
			var rec []byte
			for p := (relQPos{}); ; {
				op, next, ok, err := r.read(p)
				if err != nil {
					return err
				}
				if !ok {
					break
				}
				flag := byte(0)
				if op.put {
					flag = 1
				}
				rec = append(binary.AppendUvarint(append(rec, flag), uint64(len(op.key))), op.key...)
				p = next
			}
			plain += len(rec)
			keys, vals = append(keys, bytes.Clone(k)), append(vals, rec)
		}
		for i, k := range keys {
			if err := q.Put(k, vals[i]); err != nil {
				return err
			}
		}
		return nil
	})
	return framed, plain, err
}
