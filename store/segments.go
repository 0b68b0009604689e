package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// Search segments: how a large stitch writes its index rows.
//
// A stitch batch of a few thousand entities adds ~100,000 rows to the
// search bucket, spread over its whole key space (a component's
// spec.owner row sorts among the owner's other components, not near its
// ref). Each batch therefore dirtied a quarter to all of the bucket's
// leaves: bbolt holds every dirty leaf in memory until the commit and then
// writes it whole, so a cold ingest of 100k entities rewrote the search
// leaves ~25 times (4.7 of the 4.9 GB it wrote) and half of its heap was
// those leaves.
//
// Instead, the rows a StitchPending batch adds go into a new bucket of
// their own, a segment, in key order: appended, written once, and no
// other leaf is touched. The index is then the main bucket plus the
// segments, and queries walk them merged (mergedCursor). When the stitch
// queue runs dry, or segments pile up to maxSegments, compactSearch merges
// them back in key order: into a new main bucket when they hold a sizeable
// part of the rows (the cold-ingest case), else by moving their rows into
// main, a key range per transaction, so that each leaf of main is
// rewritten about once per burst instead of once per batch.
//
// The invariant that makes this simple: a key is in exactly one of the
// buckets. A new row (fresh: its entity did not have it before) goes to
// the transaction's target; deleting or rewriting a row first finds the
// bucket that holds it. A rebuild of main copies while holding every
// other writer back, and drops its sources in the transaction that
// installs the copy; a move deletes each row from its segment in the
// transaction that puts it into main. Readers never see a key twice or
// not at all; a copy left behind by a crash is deleted on Open.
//
//	searchsegs  8-byte big-endian sequence → segment bucket (search's layout)
//	searchnext  the bucket being compacted into; exists only mid-compaction

var (
	searchSegsBucket = []byte("searchsegs")
	searchNextBucket = []byte("searchnext")
)

// Tuning, variables so that tests can force the segment paths:
// segmentMinOps is the number of index writes from which a StitchPending
// batch writes a segment (a batch of 4000 new entities has ~100,000;
// smaller ones go straight to the main bucket); maxSegments bounds how
// many a burst piles up before they are merged (each costs queries one
// more cursor); compactChunk is how many rows one compaction transaction
// copies (its dirty pages are what it holds in memory; bbolt searches the
// node it appends to on every put, so 25,000 merged a 100k catalog's
// 2.5M rows in 4.7 s of CPU where 200,000 took 5.4 s); fullCompactRatio:
// segments holding at least 1/fullCompactRatio of main's rows are merged
// with it into a new main, otherwise moved into it.
//
// segmentsAlways, for tests, makes every transaction that adds search
// rows write them to a segment, so that the whole store suite can run
// against a segmented index (STORE_SEGMENTS=1, export_test.go).
var (
	segmentMinOps    = 20000
	maxSegments      = 32
	compactChunk     = 25000
	fullCompactRatio = 4
	segmentsAlways   = false
)

// loadSegments opens the segment buckets, oldest first.
func (b *buckets) loadSegments() {
	b.segs, b.segKeys = b.segs[:0], b.segKeys[:0]
	c := b.segRoot.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v == nil {
			b.segs = append(b.segs, b.segRoot.Bucket(k))
			b.segKeys = append(b.segKeys, bytes.Clone(k))
		}
	}
}

// searchCursor walks the whole search index in key order: the main
// bucket's own cursor when there are no segments, the usual case.
func (b *buckets) searchCursor() cursor {
	if len(b.segs) == 0 {
		return b.search.Cursor()
	}
	subs := make([]cursor, 0, len(b.segs)+1)
	subs = append(subs, b.search.Cursor())
	for _, s := range b.segs {
		subs = append(subs, s.Cursor())
	}
	return newMergedCursor(subs)
}

// searchHolder is the bucket holding key, nil when none does. Without
// segments it is main, whether or not the key is there: a delete of a
// missing key and a put are what they would be anyway.
func (b *buckets) searchHolder(key []byte) *bolt.Bucket {
	if len(b.segs) == 0 {
		return b.search
	}
	for i := len(b.segs) - 1; i >= 0; i-- {
		if b.segs[i].Get(key) != nil {
			return b.segs[i]
		}
	}
	if b.search.Get(key) != nil {
		return b.search
	}
	return nil
}

// newSegment creates an empty segment after the existing ones.
func (b *buckets) newSegment() (*bolt.Bucket, error) {
	seq, err := b.segRoot.NextSequence()
	if err != nil {
		return nil, err
	}
	key := binary.BigEndian.AppendUint64(nil, seq)
	s, err := b.segRoot.CreateBucket(key)
	if err != nil {
		return nil, err
	}
	// Its rows arrive in key order: pack its pages full.
	s.FillPercent = 1
	b.segs = append(b.segs, s)
	b.segKeys = append(b.segKeys, key)
	return s, nil
}

// dropSegment deletes segment i.
func (b *buckets) dropSegment(i int) error {
	if err := b.segRoot.DeleteBucket(b.segKeys[i]); err != nil {
		return err
	}
	b.segs = slices.Delete(b.segs, i, i+1)
	b.segKeys = slices.Delete(b.segKeys, i, i+1)
	return nil
}

// applySearchOps writes the ops, in key order. With toSegment, the new rows
// go to a new segment (dropped again when none came).
func (w *writer) applySearchOps(runs [][]searchOp, toSegment bool) error {
	target := w.search
	var seg *bolt.Bucket
	if toSegment {
		var err error
		if seg, err = w.newSegment(); err != nil {
			return err
		}
		target = seg
	}
	added := 0
	err := mergeRuns(runs, func(a, b searchOp) int { return bytes.Compare(a.key, b.key) }, func(op searchOp) error {
		if op.fresh && op.value != nil {
			added++
			return target.Put(op.key, op.value)
		}
		holder := w.searchHolder(op.key)
		if op.value == nil {
			if holder == nil {
				return nil
			}
			return holder.Delete(op.key)
		}
		if holder == nil {
			holder = target
		}
		return holder.Put(op.key, op.value)
	})
	if err == nil && seg != nil && added == 0 {
		// The new segment is the last one.
		err = w.dropSegment(len(w.segs) - 1)
	}
	return err
}

// compactDue says whether StitchPending should merge the segments now:
// when its queue ran dry (idle) or they reached maxSegments.
func (d *DB) compactDue(idle bool) (bool, error) {
	var n int
	err := d.bolt.View(func(tx *bolt.Tx) error {
		n = len(open(tx).segs)
		return nil
	})
	return n > 0 && (idle || n >= maxSegments), err
}

// compactSearch merges the segments: with main into a new main when they
// hold at least 1/fullCompactRatio of its rows or forceFull is set, else
// by moving their rows into main (moveSegments). A rebuild copies
// compactChunk rows per transaction and holds every other writer back
// until the copy replaces its sources. It returns the number of rows
// copied or moved.
func (d *DB) compactSearch(forceFull bool) (copied int, err error) {
	d.writeMu.Lock()
	unlock := sync.OnceFunc(d.writeMu.Unlock)
	defer unlock()
	var (
		full    bool
		sources [][]byte // segment names; main is a source when full
	)
	err = d.bolt.View(func(tx *bolt.Tx) error {
		b := open(tx)
		segRows := 0
		for _, s := range b.segs {
			segRows += s.Stats().KeyN
		}
		mainRows := b.search.Stats().KeyN
		full = forceFull || segRows*fullCompactRatio >= mainRows
		sources = b.segKeys // cloned by loadSegments
		return nil
	})
	if err != nil || len(sources) == 0 {
		return 0, err
	}
	if !full {
		unlock()
		return d.moveSegments()
	}
	var last []byte
	update := func(fn func(*bolt.Tx) error) error {
		d.compactionTxs.Add(1)
		return d.updateLocked(fn)
	}
	for done := false; !done; {
		err := update(func(tx *bolt.Tx) error {
			root := tx.Bucket(rootBucket)
			next, err := root.CreateBucketIfNotExists(searchNextBucket)
			if err != nil {
				return err
			}
			dst, err := next.CreateBucketIfNotExists(searchBucket)
			if err != nil {
				return err
			}
			dst.FillPercent = 1
			segRoot := root.Bucket(searchSegsBucket)
			subs := make([]cursor, 0, len(sources)+1)
			subs = append(subs, root.Bucket(searchBucket).Cursor())
			for _, s := range sources {
				subs = append(subs, segRoot.Bucket(s).Cursor())
			}
			h := newAscending(subs, last)
			for n := 0; h.len() > 0 && n < compactChunk; n++ {
				k, v := h.top()
				if err := dst.Put(k, v); err != nil {
					return err
				}
				last = append(last[:0], k...)
				h.next()
				copied++
			}
			done = h.len() == 0
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("compact search index: %w", err)
		}
	}
	// A transaction of its own: bbolt's MoveBucket moves a bucket as last
	// committed, without the changes of the transaction that moves it.
	err = update(func(tx *bolt.Tx) error {
		return installCompacted(tx.Bucket(rootBucket), sources)
	})
	if err != nil {
		return 0, fmt.Errorf("compact search index: %w", err)
	}
	return copied, nil
}

// installCompacted replaces main and the segments with the new main a
// rebuild copied them into, in one transaction.
func installCompacted(root *bolt.Bucket, sources [][]byte) error {
	segRoot := root.Bucket(searchSegsBucket)
	for _, s := range sources {
		if err := segRoot.DeleteBucket(s); err != nil {
			return err
		}
	}
	if err := root.DeleteBucket(searchBucket); err != nil {
		return err
	}
	if err := root.Bucket(searchNextBucket).MoveBucket(searchBucket, root); err != nil {
		return err
	}
	return root.DeleteBucket(searchNextBucket)
}

// moveSegments moves every segment row into main, compactChunk rows per
// transaction in key order (each transaction dirties only the leaves of
// main in its key range), deleting each from its segment in the same
// transaction and each emptied segment with it. Every transaction keeps
// the invariant, so other writers may run between them.
func (d *DB) moveSegments() (moved int, err error) {
	for {
		done := false
		err := d.boltUpdate(func(tx *bolt.Tx) error {
			d.compactionTxs.Add(1)
			b := open(tx)
			subs := make([]cursor, len(b.segs))
			for i, s := range b.segs {
				subs[i] = s.Cursor()
			}
			// The moved keys, by segment, deleted once all are put
			// (the values put still point into the segments' pages).
			type taken struct {
				seg int
				key []byte
			}
			var took []taken
			h := newAscending(subs, nil)
			for ; h.len() > 0 && len(took) < compactChunk; h.next() {
				k, v := h.top()
				if err := b.search.Put(k, v); err != nil {
					return err
				}
				took = append(took, taken{h.heap[0], bytes.Clone(k)})
			}
			for _, t := range took {
				if err := b.segs[t.seg].Delete(t.key); err != nil {
					return err
				}
			}
			moved += len(took)
			done = h.len() == 0
			// Drop the segments this transaction emptied (all of them
			// when done).
			for i := len(b.segs) - 1; i >= 0; i-- {
				if k, _ := b.segs[i].Cursor().First(); k == nil {
					if err := b.dropSegment(i); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			return moved, fmt.Errorf("move search segments into main: %w", err)
		}
		if done {
			return moved, nil
		}
	}
}

// ascending merges cursors forward with a heap: compaction merges up to
// maxSegments+1 of them over every row, where mergedCursor's scan of all
// heads per step took a fifth of the time.
type ascending struct {
	subs []cursor
	keys [][]byte
	vals [][]byte
	heap []int // indices into subs, keyed by keys
}

// newAscending positions every cursor on its first key after after (on
// its first key when after is nil).
func newAscending(subs []cursor, after []byte) *ascending {
	a := &ascending{subs: subs, keys: make([][]byte, len(subs)), vals: make([][]byte, len(subs))}
	for i, c := range subs {
		var k, v []byte
		if after == nil {
			k, v = c.First()
		} else if k, v = c.Seek(after); bytes.Equal(k, after) {
			k, v = c.Next()
		}
		if k != nil {
			a.keys[i], a.vals[i] = k, v
			a.heap = append(a.heap, i)
		}
	}
	for i := len(a.heap)/2 - 1; i >= 0; i-- {
		a.down(i)
	}
	return a
}

func (a *ascending) len() int { return len(a.heap) }

// top is the smallest key and its value.
func (a *ascending) top() ([]byte, []byte) { i := a.heap[0]; return a.keys[i], a.vals[i] }

// next moves past the smallest key.
func (a *ascending) next() {
	i := a.heap[0]
	if a.keys[i], a.vals[i] = a.subs[i].Next(); a.keys[i] == nil {
		last := len(a.heap) - 1
		a.heap[0] = a.heap[last]
		a.heap = a.heap[:last]
	}
	if len(a.heap) > 0 {
		a.down(0)
	}
}

func (a *ascending) down(i int) {
	for {
		least, l, r := i, 2*i+1, 2*i+2
		if l < len(a.heap) && bytes.Compare(a.keys[a.heap[l]], a.keys[a.heap[least]]) < 0 {
			least = l
		}
		if r < len(a.heap) && bytes.Compare(a.keys[a.heap[r]], a.keys[a.heap[least]]) < 0 {
			least = r
		}
		if least == i {
			return
		}
		a.heap[i], a.heap[least] = a.heap[least], a.heap[i]
		i = least
	}
}
