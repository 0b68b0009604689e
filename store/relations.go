package store

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/klauspost/compress/s2"
	bolt "go.etcd.io/bbolt"
)

// Relation rows, and when they are written.
//
// A relation is served on its source, so bysource is keyed by source and a
// stitch reads one run of it. But the entities of one commit emit
// relations whose sources lie all over the catalog: each component adds
// an ownerOf row to its owner's run, a hasPart row to its system's. Written
// where they belong, a 500-entity commit dirtied about a thousand leaf
// pages of bysource, which were most of the 5.5 GB a 100k cold ingest
// wrote before stitching. Those rows are read only by stitching, so a
// deferred commit (which stitches nothing) appends its row writes to relq
// as one record instead, keyed by sequence: one sequential Put. They reach
// bysource, merged in key order, before anything reads it: StitchPending
// applies relq in transactions of up to relQChunk writes before it
// prepares a batch, and a transaction that stitches applies all of relq
// first (writer.flushRelations).
//
// Summarize counts only applied rows; the rows still in relq belong to
// changes whose final entities are not stitched yet either.

// relQChunk bounds the row writes one transaction of applyRelQ makes; a
// var so that tests can make it small.
var relQChunk = 100_000

// afterRelQChunk, when a test sets it, runs after each transaction of
// applyRelQ.
var afterRelQChunk func()

// syncRelations makes the relations owned by st (its origin) equal to
// rels, touching only the bysource rows that differ, and marks the sources
// of changed rows for stitching. The owned list lives in the state record
// (written by the caller), so a relation costs one key, not two.
func (w *writer) syncRelations(st *State, rels []Relation) error {
	cmpRel := func(a, b Relation) int {
		return cmp.Or(strings.Compare(a.Source, b.Source), strings.Compare(a.Type, b.Type), strings.Compare(a.Target, b.Target))
	}
	want := slices.Clone(rels)
	slices.SortFunc(want, cmpRel)
	want = slices.CompactFunc(want, func(a, b Relation) bool { return a == b })
	old := st.Relations
	i, j := 0, 0
	for i < len(old) || j < len(want) {
		var c int
		switch {
		case i == len(old):
			c = 1
		case j == len(want):
			c = -1
		default:
			c = cmpRel(old[i], want[j])
		}
		switch {
		case c == 0:
			i, j = i+1, j+1
		case c < 0:
			r := old[i]
			w.queueRelation(join(r.Source, r.Type, r.Target, st.Ref), false)
			w.stitch[r.Source] = struct{}{}
			i++
		default:
			r := want[j]
			w.queueRelation(join(r.Source, r.Type, r.Target, st.Ref), true)
			w.stitch[r.Source] = struct{}{}
			j++
		}
	}
	if len(want) == 0 {
		want = nil
	}
	st.Relations = want
	return nil
}

// relOp is a pending write of a bysource row: a put, or a delete.
type relOp struct {
	key []byte
	put bool
	seq int
}

func (w *writer) queueRelation(key []byte, put bool) {
	w.relOps = append(w.relOps, relOp{key: key, put: put, seq: len(w.relOps)})
}

// flushRelations ends a transaction's relation-row writes: it logs them to
// relq when the transaction defers stitching, or applies them, after
// everything relq holds, when it stitches (and so reads bysource).
func (w *writer) flushRelations(deferStitch bool) error {
	if deferStitch {
		return w.logRelations()
	}
	keys, logged, err := loadRelQ(w.relQ, 0, nil)
	if err != nil {
		return err
	}
	base := len(logged)
	for _, op := range w.relOps {
		op.seq += base
		logged = append(logged, op)
	}
	if err := writeRelOps(w.bySource, logged); err != nil {
		return err
	}
	w.relOps = w.relOps[:0]
	return deleteKeys(w.relQ, keys)
}

// logRelations appends the transaction's row writes to relq as one record:
// relQFramed, then frames of the writes in key order, each a uvarint
// length and an s2 block of about relQFrameSize bytes of writes; a write
// is a put (1) or delete (0) byte, the key's length as a uvarint, and the
// key. A write never straddles two frames.
//
// The writes are compressed because the log is written, read and freed
// once per ingest and most of a write is refs that repeat: a 100k cold
// ingest's log was ~65 MB uncompressed, all of it read (and so mapped)
// just before stitching, when the process is at its largest. In frames,
// applying the log decompresses one frame per record at a time.
func (w *writer) logRelations() error {
	if len(w.relOps) == 0 {
		return nil
	}
	sortRelOps(w.relOps)
	rec := []byte{relQFramed}
	raw := w.relFrame[:0]
	flush := func() {
		w.relPacked = s2.Encode(w.relPacked[:cap(w.relPacked)], raw)
		rec = binary.AppendUvarint(rec, uint64(len(w.relPacked)))
		rec = append(rec, w.relPacked...)
		raw = raw[:0]
	}
	for _, op := range w.relOps {
		flag := byte(0)
		if op.put {
			flag = 1
		}
		raw = append(raw, flag)
		raw = binary.AppendUvarint(raw, uint64(len(op.key)))
		raw = append(raw, op.key...)
		if len(raw) >= relQFrameSize {
			flush()
		}
	}
	if len(raw) > 0 {
		flush()
	}
	w.relFrame = raw
	seq, err := w.relQ.NextSequence()
	if err != nil {
		return err
	}
	w.relOps = w.relOps[:0]
	return w.relQ.Put(binary.BigEndian.AppendUint64(nil, seq), rec)
}

// relQFramed starts a relq record in frames. Records written before it
// hold their writes as they are and start with a write's flag, 0 or 1.
const relQFramed = 2

// relQFrameSize is how many bytes of writes a frame holds, about: what
// applying the log keeps decompressed per record. A var so that tests can
// make frames of a write or two.
var relQFrameSize = 16 << 10

// loadRelQ decodes relq's records from the first, in order, until at least
// limit writes are loaded (limit <= 0: all of them) or past the record
// upTo (nil: the last). The writes' seq follows the log's order, and their
// keys point into the transaction's memory or into decompressed frames;
// keys are the records read, to delete once applied.
func loadRelQ(q *bolt.Bucket, limit int, upTo []byte) (keys [][]byte, ops []relOp, err error) {
	c := q.Cursor()
	for k, v := c.First(); k != nil && (limit <= 0 || len(ops) < limit) && (upTo == nil || bytes.Compare(k, upTo) <= 0); k, v = c.Next() {
		keys = append(keys, bytes.Clone(k))
		r := newRelQReader(k, v)
		for p := (relQPos{}); ; {
			op, next, ok, err := r.read(p)
			if err != nil {
				return nil, nil, err
			}
			if !ok {
				break
			}
			op.seq = len(ops)
			ops = append(ops, op)
			p = next
		}
	}
	return keys, ops, nil
}

// writeRelOps applies row writes to bysource in key order: each of its
// blocks (blocks.go) is read and written once. Two writes to one key keep
// their order.
func writeRelOps(bySource *bolt.Bucket, ops []relOp) error {
	sortRelOps(ops)
	e := newBlockEditor(bySource)
	for _, op := range ops {
		if err := applyRelOp(e, op); err != nil {
			return err
		}
	}
	return e.flush()
}

// noValue is a bysource row's value: the key says everything.
var noValue = []byte{}

func applyRelOp(e *blockEditor, op relOp) error {
	if op.put {
		return e.put(op.key, noValue)
	}
	return e.del(op.key)
}

func sortRelOps(ops []relOp) {
	slices.SortFunc(ops, func(a, b relOp) int {
		return cmp.Or(bytes.Compare(a.key, b.key), a.seq-b.seq)
	})
}

func deleteKeys(b *bolt.Bucket, keys [][]byte) error {
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// applyRelQ applies the relation rows logged in relq to bysource, so that
// a stitch prepared after it reads every relation. It merges the records
// (each sorted) in key order, an older record's write to a key before a
// newer one's, and writes up to relQChunk rows per transaction: each
// transaction covers one key range of bysource, so each of its leaves is
// rewritten about once, where applying whole records rewrote most leaves
// in every transaction (3.0 s at 100k, the heap's peak at the start of
// stitching). The records are deleted in the last transaction.
//
// The merge runs a chunk ahead on another goroutine, in read transactions
// of its own (closed before it hands a chunk over: bbolt's remap waits for
// readers), so that the writer only edits blocks: the heap pops were
// nearly half of this phase, in which nothing else can run.
//
// It stops at the record that was last when it began: commits running
// meanwhile cannot keep it going, and StitchPending leaves their rows to
// the write transaction. A transaction that stitches in between applies
// the whole log and deletes it, and then there is nothing left to do. A
// crash in the middle leaves the records, which are applied again from
// the start: the same writes in the same order, with no other bysource
// write in between (any such write applies and deletes the log first).
func (d *DB) applyRelQ() error {
	var recs []relQRecord // the records up to the last one, oldest first
	err := d.bolt.View(func(tx *bolt.Tx) error {
		c := open(tx).relQ.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			recs = append(recs, relQRecord{key: bytes.Clone(k)})
		}
		return nil
	})
	if err != nil || recs == nil {
		return err
	}
	// The merging goroutine moves the records' offsets; this one reads
	// only their keys, its own copy.
	keys := make([][]byte, len(recs))
	for i, r := range recs {
		keys[i] = r.key
	}
	chunks := make(chan relQChunkOps, 1)
	stop := make(chan struct{})
	defer close(stop)
	go d.mergeRelQ(recs, chunks, stop)
	for c := range chunks {
		if c.err != nil {
			return fmt.Errorf("apply logged relations: %w", c.err)
		}
		if c.gone {
			return nil
		}
		gone := false
		err := d.boltUpdate(func(tx *bolt.Tx) error {
			b := open(tx)
			for _, k := range keys {
				if b.relQ.Get(k) == nil {
					// Applied and deleted by a transaction that stitched.
					gone = true
					return nil
				}
			}
			e := newBlockEditor(b.bySource)
			for _, op := range c.ops {
				if err := applyRelOp(e, op); err != nil {
					return err
				}
			}
			if err := e.flush(); err != nil {
				return err
			}
			if !c.last {
				return nil
			}
			return deleteKeys(b.relQ, keys)
		})
		if err != nil {
			return fmt.Errorf("apply logged relations: %w", err)
		}
		if afterRelQChunk != nil {
			afterRelQChunk()
		}
		if gone || c.last {
			return nil
		}
	}
	return nil
}

// relQChunkOps is up to relQChunk merged writes of relq, their keys
// copied out of the read transaction they were merged in. last says that
// the records have no writes left; gone, that they were applied and
// deleted meanwhile (nothing to write).
type relQChunkOps struct {
	ops        []relOp
	last, gone bool
	err        error
}

// mergeRelQ merges recs' writes chunk by chunk into out, which it closes
// when done, each chunk in a read transaction of its own; it gives up when
// stop is closed.
func (d *DB) mergeRelQ(recs []relQRecord, out chan<- relQChunkOps, stop <-chan struct{}) {
	defer close(out)
	for {
		var c relQChunkOps
		c.err = d.bolt.View(func(tx *bolt.Tx) error {
			q := open(tx).relQ
			m := relQMerge{}
			for i := range recs {
				v := q.Get(recs[i].key)
				if v == nil {
					c.gone = true
					return nil
				}
				if err := m.push(recs, i, v); err != nil {
					return err
				}
			}
			var arena keyArena
			c.ops = make([]relOp, 0, min(relQChunk, 1<<16))
			for n := 0; n < relQChunk && len(m.heap) > 0; n++ {
				op, err := m.pop(recs)
				if err != nil {
					return err
				}
				op.key = arena.keep(op.key)
				c.ops = append(c.ops, op)
			}
			c.last = len(m.heap) == 0
			return nil
		})
		select {
		case out <- c:
		case <-stop:
			return
		}
		if c.err != nil || c.gone || c.last {
			return
		}
	}
}

// relQRecord is a record of relq being applied: its key and how far its
// writes are applied.
type relQRecord struct {
	key []byte
	pos relQPos
}

// relQPos is a place in a relq record: for a framed one, the offset of a
// frame in the value (0: the first) and an offset in that frame's writes;
// for one written before frames, an offset in the value (frame 0).
type relQPos struct{ frame, off int }

// relQReader reads the writes of one record's value, in the transaction
// it was read in.
type relQReader struct {
	key, v []byte
	framed bool
	at     int    // the frame data holds, when framed (0: none yet)
	data   []byte // at's writes, decompressed into memory of their own
}

func newRelQReader(key, v []byte) *relQReader {
	return &relQReader{key: key, v: v, framed: len(v) > 0 && v[0] == relQFramed}
}

// read returns the write at p and the place after it; ok is false at the
// end of the record. The write's key points into v or into a frame's
// memory, which is never reused.
func (r *relQReader) read(p relQPos) (op relOp, next relQPos, ok bool, err error) {
	if !r.framed {
		if p.off >= len(r.v) {
			return relOp{}, p, false, nil
		}
		op, end, err := relQWriteAt(r.key, r.v, p.off)
		return op, relQPos{off: end}, err == nil, err
	}
	if p.frame == 0 {
		p.frame = 1 // after the marker
	}
	for p.frame < len(r.v) {
		n, w := binary.Uvarint(r.v[p.frame:])
		if w <= 0 || uint64(len(r.v)-p.frame-w) < n {
			return relOp{}, p, false, fmt.Errorf("relq record %x is truncated: %w", r.key, errCorrupt)
		}
		if r.at != p.frame {
			data, err := s2.Decode(nil, r.v[p.frame+w:p.frame+w+int(n)])
			if err != nil {
				return relOp{}, p, false, fmt.Errorf("relq record %x: %w: %w", r.key, errCorrupt, err)
			}
			r.at, r.data = p.frame, data
		}
		if p.off < len(r.data) {
			op, end, err := relQWriteAt(r.key, r.data, p.off)
			return op, relQPos{p.frame, end}, err == nil, err
		}
		p = relQPos{frame: p.frame + w + int(n)}
	}
	return relOp{}, p, false, nil
}

// relQMerge merges the records' remaining writes in key order; heads holds
// each record's next write and ends the place after it, heap the records
// with one, smallest first (ties: the older record).
type relQMerge struct {
	readers map[int]*relQReader
	heads   map[int]relOp
	ends    map[int]relQPos
	heap    []int
}

// push adds record i, whose value is v, from its applied place.
func (m *relQMerge) push(recs []relQRecord, i int, v []byte) error {
	if m.heads == nil {
		m.readers, m.heads, m.ends = map[int]*relQReader{}, map[int]relOp{}, map[int]relQPos{}
	}
	r := newRelQReader(recs[i].key, v)
	m.readers[i] = r
	op, end, ok, err := r.read(recs[i].pos)
	if err != nil || !ok {
		return err
	}
	m.heads[i], m.ends[i] = op, end
	m.heap = append(m.heap, i)
	m.up(len(m.heap) - 1)
	return nil
}

// pop returns the smallest write and moves its record on.
func (m *relQMerge) pop(recs []relQRecord) (relOp, error) {
	i := m.heap[0]
	op := m.heads[i]
	recs[i].pos = m.ends[i]
	next, end, ok, err := m.readers[i].read(recs[i].pos)
	if err != nil {
		return op, err
	}
	if ok {
		m.heads[i], m.ends[i] = next, end
	} else {
		last := len(m.heap) - 1
		m.heap[0] = m.heap[last]
		m.heap = m.heap[:last]
	}
	if len(m.heap) > 0 {
		m.down(0)
	}
	return op, nil
}

func (m *relQMerge) less(a, b int) bool {
	ra, rb := m.heap[a], m.heap[b]
	if c := bytes.Compare(m.heads[ra].key, m.heads[rb].key); c != 0 {
		return c < 0
	}
	return ra < rb
}

func (m *relQMerge) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !m.less(i, p) {
			return
		}
		m.heap[i], m.heap[p] = m.heap[p], m.heap[i]
		i = p
	}
}

func (m *relQMerge) down(i int) {
	for {
		least, l, r := i, 2*i+1, 2*i+2
		if l < len(m.heap) && m.less(l, least) {
			least = l
		}
		if r < len(m.heap) && m.less(r, least) {
			least = r
		}
		if least == i {
			return
		}
		m.heap[i], m.heap[least] = m.heap[least], m.heap[i]
		i = least
	}
}

// relQWriteAt decodes the write at offset off of data, writes of record k,
// and returns the offset after it.
func relQWriteAt(k, data []byte, off int) (relOp, int, error) {
	if off+1 > len(data) {
		return relOp{}, 0, fmt.Errorf("relq record %x is truncated: %w", k, errCorrupt)
	}
	n, w := binary.Uvarint(data[off+1:])
	if w <= 0 || uint64(len(data)-off-1-w) < n {
		return relOp{}, 0, fmt.Errorf("relq record %x is truncated: %w", k, errCorrupt)
	}
	start := off + 1 + w
	return relOp{key: data[start : start+int(n)], put: data[off] == 1}, start + int(n), nil
}
