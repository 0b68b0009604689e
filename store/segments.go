package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"runtime"
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
//	searchsegs  8-byte big-endian sequence → segment bucket (search's
//	            layout: rows in blocks, blocks.go)
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
// copies (its dirty pages are what it holds in memory: 25,000 rows are
// ~400 blocks); fullCompactRatio: segments holding at least
// 1/fullCompactRatio of main's blocks (blocks.go; an appended block holds
// about as many rows as an edited one) are merged with it into a new main,
// otherwise moved into it.
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
		return newBlockCursor(b.search)
	}
	subs := make([]cursor, 0, len(b.segs)+1)
	subs = append(subs, newBlockCursor(b.search))
	for _, s := range b.segs {
		subs = append(subs, newBlockCursor(s))
	}
	return newMergedCursor(subs)
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
//
// Each bucket of the index gets a rowWriter: an appender for the new
// segment, an editor for the others. A row that is not fresh is looked up
// newest segment first, through the writers, which know the writes made
// before it in this call.
func (w *writer) applySearchOps(runs [][]searchOp, toSegment bool) error {
	holders := make([]rowWriter, 0, len(w.segs)+2)
	holders = append(holders, newBlockEditor(w.search))
	for _, s := range w.segs {
		holders = append(holders, newBlockEditor(s))
	}
	target := holders[0]
	if toSegment {
		seg, err := w.newSegment()
		if err != nil {
			return err
		}
		target = newBlockAppender(seg)
	}
	err := mergeRuns(runs, func(a, b searchOp) int { return bytes.Compare(a.kv[:a.klen], b.kv[:b.klen]) }, func(op searchOp) error {
		key := op.key()
		if op.fresh && op.put {
			return target.put(key, op.value())
		}
		var holder rowWriter
		if toSegment {
			if ok, _ := target.has(key); ok {
				holder = target
			}
		}
		for i := len(holders) - 1; i >= 0 && holder == nil; i-- {
			ok, err := holders[i].has(key)
			if err != nil {
				return err
			}
			if ok {
				holder = holders[i]
			}
		}
		if !op.put {
			if holder == nil {
				return nil
			}
			return holder.del(key)
		}
		if holder == nil {
			holder = target
		}
		return holder.put(key, op.value())
	})
	if toSegment {
		holders = append(holders, target)
	}
	for _, h := range holders {
		if err == nil {
			err = h.flush()
		}
	}
	if err == nil && toSegment {
		// The new segment, the last one, is dropped when no row came.
		if k, _ := w.segs[len(w.segs)-1].Cursor().First(); k == nil {
			err = w.dropSegment(len(w.segs) - 1)
		}
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
// hold at least 1/fullCompactRatio of its blocks or forceFull is set, else
// by moving their rows into main (moveSegments). A rebuild copies about
// compactChunk rows per transaction, merged ahead by other goroutines
// (mergeParallel: at 100k entities the 2.55M rows took 0.94 s on one
// goroutine, 0.82 s so; the writer's page writes are what is left), and
// holds every other writer back until the copy replaces its sources. It
// returns the number of rows copied or moved.
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
		segBlocks := 0
		for _, s := range b.segs {
			segBlocks += s.Stats().KeyN
		}
		mainBlocks := b.search.Stats().KeyN
		full = forceFull || segBlocks*fullCompactRatio >= mainBlocks
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
	update := func(fn func(*bolt.Tx) error) error {
		d.compactionTxs.Add(1)
		return d.updateLocked(fn)
	}
	// The merge (reading the sources' blocks, choosing the least row,
	// encoding new blocks) runs on other goroutines, key range by key
	// range; this one only puts each range's finished blocks into the new
	// main, in order, one transaction per range.
	ranges, err := d.mergeRanges(sources)
	if err != nil {
		return 0, fmt.Errorf("compact search index: %w", err)
	}
	chunks, stop := d.mergeParallel(sources, ranges)
	defer stop()
	for i := range ranges {
		c := <-chunks[i]
		if c.err != nil {
			return 0, fmt.Errorf("compact search index: %w", c.err)
		}
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
			return c.blocks.putInto(dst)
		})
		if err != nil {
			return 0, fmt.Errorf("compact search index: %w", err)
		}
		copied += c.rows
		c.release()
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

// mergedChunk is the rows of one key range of a merge, in blocks.
type mergedChunk struct {
	blocks  blockList
	rows    int
	err     error
	release func() // lets the next range start
}

// keyRange is the rows from lo (inclusive; nil: the first) up to hi
// (exclusive; nil: the last).
type keyRange struct{ lo, hi []byte }

// mergeRanges cuts the key space of the sources (main and the segments
// named) into ranges of about compactChunk rows, at first keys of their
// blocks; a block's row count is estimated from its restart points
// (blocks.go), so a range may hold up to restartEvery-1 rows per block
// fewer than estimated.
func (d *DB) mergeRanges(sources [][]byte) ([]keyRange, error) {
	type mark struct {
		key  []byte
		rows int
	}
	var marks []mark
	err := d.bolt.View(func(tx *bolt.Tx) error {
		root := tx.Bucket(rootBucket)
		buckets := []*bolt.Bucket{root.Bucket(searchBucket)}
		for _, s := range sources {
			seg := root.Bucket(searchSegsBucket).Bucket(s)
			if seg == nil {
				return fmt.Errorf("segment %x is gone", s)
			}
			buckets = append(buckets, seg)
		}
		for _, b := range buckets {
			c := b.Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				rows := restartEvery
				if len(v) >= 4 {
					rows = max(1, int(binary.LittleEndian.Uint32(v[len(v)-4:]))*restartEvery)
				}
				marks = append(marks, mark{bytes.Clone(k), rows})
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(marks, func(a, b mark) int { return bytes.Compare(a.key, b.key) })
	ranges := []keyRange{{}}
	rows := 0
	for _, m := range marks {
		if rows >= compactChunk {
			ranges[len(ranges)-1].hi = m.key
			ranges = append(ranges, keyRange{lo: m.key})
			rows = 0
		}
		rows += m.rows
	}
	return ranges, nil
}

// mergeParallel merges the sources' rows of each range on up to
// GOMAXPROCS goroutines and returns one channel per range, on which its
// chunk comes. Ranges are handed out in order, and at most two per
// goroutine wait unwritten (a chunk's release lets another start), which
// bounds the memory a fast merge ahead of the writer takes. Every read
// transaction ends before its chunk is sent: the writer may need to grow
// bbolt's memory map, which waits for all read transactions. The caller
// holds writeMu, so the sources do not change meanwhile; stop ends the
// goroutines (after any read in progress) and returns when they are gone.
func (d *DB) mergeParallel(sources [][]byte, ranges []keyRange) (chunks []chan mergedChunk, stop func()) {
	n := max(1, min(runtime.GOMAXPROCS(0), len(ranges)))
	chunks = make([]chan mergedChunk, len(ranges))
	for i := range chunks {
		chunks[i] = make(chan mergedChunk, 1)
	}
	tokens := make(chan struct{}, 2*n)
	jobs := make(chan int)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(jobs)
		for i := range ranges {
			select {
			case tokens <- struct{}{}:
			case <-quit:
				return
			}
			select {
			case jobs <- i:
			case <-quit:
				return
			}
		}
	})
	release := func() { <-tokens }
	for range n {
		wg.Go(func() {
			for i := range jobs {
				c := d.mergeRange(sources, ranges[i])
				c.release = release
				chunks[i] <- c // buffered: never waits
			}
		})
	}
	return chunks, func() {
		close(quit)
		wg.Wait()
	}
}

// mergeRange merges the rows of r from main and the segments named
// sources into blocks, in a read transaction of its own.
func (d *DB) mergeRange(sources [][]byte, r keyRange) mergedChunk {
	var c mergedChunk
	c.err = d.bolt.View(func(tx *bolt.Tx) error {
		root := tx.Bucket(rootBucket)
		segRoot := root.Bucket(searchSegsBucket)
		subs := make([]cursor, 0, len(sources)+1)
		subs = append(subs, newBlockCursor(root.Bucket(searchBucket)))
		for _, s := range sources {
			seg := segRoot.Bucket(s)
			if seg == nil {
				return fmt.Errorf("segment %x is gone", s)
			}
			subs = append(subs, newBlockCursor(seg))
		}
		h := newAscendingAt(subs, r.lo)
		out := newBlockAppender(&c.blocks)
		for ; h.len() > 0; c.rows++ {
			k, v := h.top()
			if r.hi != nil && bytes.Compare(k, r.hi) >= 0 {
				break
			}
			if err := out.put(k, v); err != nil {
				return err
			}
			h.next()
		}
		if err := out.flush(); err != nil {
			return err
		}
		return cursorsErr(subs)
	})
	return c
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
				subs[i] = newBlockCursor(s)
			}
			// The moved keys, by segment, deleted once all are put.
			took := make([][][]byte, len(b.segs))
			n := 0
			main := newBlockEditor(b.search)
			h := newAscending(subs, nil)
			for ; h.len() > 0 && n < compactChunk; h.next() {
				k, v := h.top()
				if err := main.put(k, v); err != nil {
					return err
				}
				took[h.heap[0]] = append(took[h.heap[0]], bytes.Clone(k))
				n++
			}
			if err := main.flush(); err != nil {
				return err
			}
			if err := cursorsErr(subs); err != nil {
				return err
			}
			for i, keys := range took {
				seg := newBlockEditor(b.segs[i])
				for _, k := range keys {
					if err := seg.del(k); err != nil {
						return err
					}
				}
				if err := seg.flush(); err != nil {
					return err
				}
			}
			moved += n
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

// cursorsErr is the first error of the block cursors among subs: a walk
// that stopped at a malformed block must not be taken for a complete one.
func cursorsErr(subs []cursor) error {
	for _, c := range subs {
		if bc, ok := c.(*blockCursor); ok && bc.err != nil {
			return bc.err
		}
	}
	return nil
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
	return newAscendingSeek(subs, after, true)
}

// newAscendingAt is newAscending from the first key at or after from
// (nil: the first).
func newAscendingAt(subs []cursor, from []byte) *ascending {
	return newAscendingSeek(subs, from, false)
}

func newAscendingSeek(subs []cursor, after []byte, exclusive bool) *ascending {
	a := &ascending{subs: subs, keys: make([][]byte, len(subs)), vals: make([][]byte, len(subs))}
	for i, c := range subs {
		var k, v []byte
		if after == nil {
			k, v = c.First()
		} else if k, v = c.Seek(after); exclusive && bytes.Equal(k, after) {
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
