package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// Row blocks: how the search index (and bysource, whose keys have the
// same shape) is laid out in its buckets.
//
// The index holds ~25 rows per entity whose keys share long prefixes
// (path ‖ 0 ‖ value ‖ 0 ‖ ref, with runs of the same path and value). One
// bbolt key per row cost a B-tree descent with a comparison of those long
// keys per put (a 100k catalog's 2.5M rows were put twice, once into a
// segment and once by the merge: a quarter of the writer's time), and
// 16 bytes of page element plus the whole key per row on disk.
//
// Instead, a bucket of the index stores its rows in sorted blocks of about
// blockTarget bytes, as LevelDB's tables do:
//
//	first row's key → rows ‖ restarts ‖ uint32 number of restarts
//	row:             uvarint shared ‖ uvarint len(suffix) ‖ suffix ‖
//	                 uvarint len(value) ‖ value
//	restarts:        uint32 offset of every restartEvery-th row
//
// (integers little-endian) where shared is the length of the prefix the
// row's key shares with the key before it; a restart row shares nothing,
// so a seek binary-searches the restarts' keys and reads at most
// restartEvery rows. A block holds the rows from its own key up to the
// next block's key; the first block also holds any row before its key.
// No block is empty. Appending (a new segment, a compaction) writes one
// bbolt key per block; a row update reads, edits and rewrites its block,
// which is the page bbolt would rewrite anyway.

// blockTarget is the encoded size at which a block is cut; a block that
// edits grow past twice as much is split. 4 KB holds ~60 rows, so a
// query's page of 100 rows reads two or three blocks. A variable so that
// tests can make every block hold a row or two.
var blockTarget = 4096

// restartEvery is how many rows a seek reads at most after its binary
// search.
const restartEvery = 16

// errBadBlock reports a block whose bytes do not decode: the file was
// damaged or written by something else.
var errBadBlock = errors.New("malformed block of index rows")

// blockRow is one decoded row. key is owned by the decoded block; value
// points into the block's bytes (valid for the transaction).
type blockRow struct{ key, value []byte }

// block is a stored block split into its rows and restart offsets.
type block struct {
	rows     []byte
	restarts []byte // 4 bytes per restart
}

func parseBlock(data []byte) (block, error) {
	if len(data) < 4 {
		return block{}, errBadBlock
	}
	n := uint64(binary.LittleEndian.Uint32(data[len(data)-4:]))
	if n == 0 || n > uint64(len(data)-4)/4 {
		return block{}, errBadBlock
	}
	end := len(data) - 4 - int(n)*4
	b := block{rows: data[:end], restarts: data[end : len(data)-4]}
	for i := range int(n) {
		if uint64(b.restart(i)) >= uint64(end) {
			return block{}, errBadBlock
		}
	}
	if b.restart(0) != 0 {
		return block{}, errBadBlock
	}
	return b, nil
}

func (b block) nRestarts() int    { return len(b.restarts) / 4 }
func (b block) restart(i int) int { return int(binary.LittleEndian.Uint32(b.restarts[4*i:])) }

// restartKey is the key of restart i, in place: a restart row shares
// nothing with the row before it.
func (b block) restartKey(i int) ([]byte, error) {
	p := b.restart(i)
	shared, n := binary.Uvarint(b.rows[p:])
	if n <= 0 || shared != 0 {
		return nil, errBadBlock
	}
	p += n
	sl, n := binary.Uvarint(b.rows[p:])
	if n <= 0 || uint64(len(b.rows)-p-n) < sl {
		return nil, errBadBlock
	}
	p += n
	return b.rows[p : p+int(sl) : p+int(sl)], nil
}

// seekRestart returns the last restart whose key is at or before seek (0
// when none is).
func (b block) seekRestart(seek []byte) (int, error) {
	lo, hi := 0, b.nRestarts()-1
	for lo < hi {
		mid := (lo + hi + 1) / 2
		k, err := b.restartKey(mid)
		if err != nil {
			return 0, err
		}
		if bytes.Compare(k, seek) <= 0 {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo, nil
}

// readRow decodes the row at rows[p:] whose previous row's key is in buf,
// turning buf into the row's key in place (a row shares a prefix with the
// key before it, so only its suffix is copied). It returns the key, the
// value and the offset after the row.
func readRow(rows []byte, p int, buf []byte) (key, val []byte, next int, err error) {
	shared, p, ok := uvarint(rows, p)
	if !ok || shared > uint64(len(buf)) {
		return nil, nil, 0, errBadBlock
	}
	sl, p, ok := uvarint(rows, p)
	if !ok || uint64(len(rows)-p) < sl {
		return nil, nil, 0, errBadBlock
	}
	key = append(buf[:shared], rows[p:p+int(sl)]...)
	p += int(sl)
	vl, p, ok := uvarint(rows, p)
	if !ok || uint64(len(rows)-p) < vl {
		return nil, nil, 0, errBadBlock
	}
	return key, rows[p : p+int(vl) : p+int(vl)], p + int(vl), nil
}

// uvarint reads the uvarint at b[p:], with a fast path for the one-byte
// lengths that nearly all are, and returns the offset after it.
func uvarint(b []byte, p int) (uint64, int, bool) {
	if p < len(b) && b[p] < 0x80 {
		return uint64(b[p]), p + 1, true
	}
	if p >= len(b) {
		return 0, p, false
	}
	v, n := binary.Uvarint(b[p:])
	return v, p + n, n > 0
}

// decodeBlock decodes a stored block's rows, appending to rows.
func decodeBlock(data []byte, rows []blockRow) ([]blockRow, error) {
	b, err := parseBlock(data)
	if err != nil {
		return rows, err
	}
	return b.decode(rows)
}

// decode appends the block's rows to rows, checking that the restarts are
// every restartEvery-th row. The keys are copied out of the block into
// chunks that are never overwritten.
func (b block) decode(rows []blockRow) ([]blockRow, error) {
	arena := keyArena(make([]byte, 0, 3*len(b.rows)))
	var (
		buf, v []byte
		err    error
		i      int
	)
	for p := 0; p < len(b.rows); i++ {
		if i%restartEvery == 0 && (i/restartEvery >= b.nRestarts() || b.restart(i/restartEvery) != p) {
			return rows, errBadBlock
		}
		if buf, v, p, err = readRow(b.rows, p, buf); err != nil {
			return rows, err
		}
		rows = append(rows, blockRow{arena.keep(buf), v})
	}
	if (i+restartEvery-1)/restartEvery != b.nRestarts() {
		return rows, errBadBlock
	}
	return rows, nil
}

// keyArena hands out copies of keys from chunks it never writes again, so
// that a key stays valid however long its holder keeps it.
type keyArena []byte

func (a *keyArena) keep(k []byte) []byte {
	if cap(*a)-len(*a) < len(k) {
		// Chunks double from 256 bytes to 64 KB: a cursor that reads a few
		// rows (a stitch reads one entity's relations) takes little, one
		// that walks a bucket allocates seldom.
		*a = make([]byte, 0, max(min(2*cap(*a), 64<<10), 256, len(k)))
	}
	n := len(*a)
	*a = append(*a, k...)
	return (*a)[n:len(*a):len(*a)]
}

// blockEncoder encodes rows into blocks, one after the other in chunks of
// data reserved up front, instead of each block growing its own buffer by
// doublings (allocation ~2.5 times the blocks' size: ~0.7 GB in a 100k
// cold ingest).
type blockEncoder struct {
	data     []byte
	start    int // where the current block begins in data
	restarts []uint32
	prev     []byte
	n        int
}

func (e *blockEncoder) add(key, value []byte) {
	prev := e.prev
	if e.n%restartEvery == 0 {
		e.restarts = append(e.restarts, uint32(e.size()))
		prev = nil
	}
	shared := 0
	for shared < len(prev) && shared < len(key) && prev[shared] == key[shared] {
		shared++
	}
	e.data = binary.AppendUvarint(e.data, uint64(shared))
	e.data = binary.AppendUvarint(e.data, uint64(len(key)-shared))
	e.data = append(e.data, key[shared:]...)
	e.data = binary.AppendUvarint(e.data, uint64(len(value)))
	e.data = append(e.data, value...)
	e.prev = key
	e.n++
}

// reserve makes room for n more bytes without moving the current block.
func (e *blockEncoder) reserve(n int) {
	if cap(e.data)-len(e.data) >= n {
		return
	}
	cur := e.data[e.start:]
	e.data = append(make([]byte, 0, max(n+len(cur), 64<<10)), cur...)
	e.start = 0
}

// size is the length of the current block's rows so far.
func (e *blockEncoder) size() int { return len(e.data) - e.start }

// finish returns the current block and starts the next one after it. The
// block's slice is never written again: bbolt keeps the slices it is
// given until commit.
func (e *blockEncoder) finish() []byte {
	for _, r := range e.restarts {
		e.data = binary.LittleEndian.AppendUint32(e.data, r)
	}
	e.data = binary.LittleEndian.AppendUint32(e.data, uint32(len(e.restarts)))
	out := e.data[e.start:len(e.data):len(e.data)]
	e.start = len(e.data)
	e.restarts, e.prev, e.n = e.restarts[:0], nil, 0
	return out
}

// blockCursor walks the rows of a bucket of blocks; it is the cursor the
// queries and the merges use. Forward moves and seeks read a block's rows
// in place (a seek binary-searches the restarts, then reads at most
// restartEvery rows; a seek ahead within the current block reads on from
// the current row); only a backward move decodes the whole block. A
// malformed block ends the walk and is kept in err.
//
// Returned keys are never overwritten (they are cut from arena chunks),
// so callers may keep them while the cursor moves on, as they may bbolt's.
type blockCursor struct {
	c   *bolt.Cursor
	blk block
	in  bool // blk is the current block; false when the walk is over
	// Forward mode: the current row is the block's row idx, ending at p.
	p, idx   int
	key, val []byte
	// Backward mode (rows != nil): the block decoded; the current row is
	// rows[idx].
	rows  []blockRow
	arena keyArena
	// buf is the scratch key that reading rows builds keys in; in
	// forward mode it holds the current key.
	buf []byte
	err error
}

func newBlockCursor(b *bolt.Bucket) *blockCursor { return &blockCursor{c: b.Cursor()} }

// fail ends the walk on a malformed block.
func (c *blockCursor) fail(err error) ([]byte, []byte) {
	c.err, c.in, c.rows = err, false, nil
	return nil, nil
}

// open makes data (nil: none) the current block, before its first row.
func (c *blockCursor) open(data []byte) bool {
	c.in, c.rows, c.key, c.val = false, nil, nil, nil
	if data == nil {
		return false
	}
	b, err := parseBlock(data)
	if err != nil {
		c.fail(err)
		return false
	}
	c.blk, c.in = b, true
	return true
}

// enter makes data the current block, on its first row.
func (c *blockCursor) enter(data []byte) ([]byte, []byte) {
	if !c.open(data) {
		return nil, nil
	}
	return c.scanFrom(0, 0, false, nil)
}

// enterLast makes data the current block, decoded, on its last row.
func (c *blockCursor) enterLast(data []byte) ([]byte, []byte) {
	if !c.open(data) || !c.decode() {
		return nil, nil
	}
	c.idx = len(c.rows) - 1
	return c.rows[c.idx].key, c.rows[c.idx].value
}

// decode switches the current block to backward mode.
func (c *blockCursor) decode() bool {
	rows, err := c.blk.decode(nil)
	if err == nil && (len(rows) == 0 || c.key != nil && c.idx >= len(rows)) {
		err = errBadBlock
	}
	if err != nil {
		c.fail(err)
		return false
	}
	c.rows = rows
	return true
}

// scanFrom reads the rows from offset p (row idx) to the first one at or
// after seek (nil: the first read) and makes it current. p is a restart,
// or the end of the current row when goOn is set (c.buf then holds its
// key). At the end of the block it returns nil with c.in still set, so
// that the caller can go on to the next block.
func (c *blockCursor) scanFrom(p, idx int, goOn bool, seek []byte) ([]byte, []byte) {
	if !goOn {
		c.buf = c.buf[:0]
	}
	for p < len(c.blk.rows) {
		k, v, next, err := readRow(c.blk.rows, p, c.buf)
		if err != nil {
			return c.fail(err)
		}
		c.buf = k
		if seek == nil || bytes.Compare(k, seek) >= 0 {
			c.key, c.val, c.p, c.idx = c.arena.keep(k), v, next, idx
			return c.key, c.val
		}
		p, idx = next, idx+1
	}
	c.key, c.val = nil, nil
	return nil, nil
}

// seekIn positions on the first row at or after seek in the current
// block, reading on from the current row when that is nearer.
func (c *blockCursor) seekIn(seek []byte) ([]byte, []byte) {
	r, err := c.blk.seekRestart(seek)
	if err != nil {
		return c.fail(err)
	}
	start := c.blk.restart(r)
	if c.key != nil && c.rows == nil && start < c.p && bytes.Compare(c.key, seek) < 0 {
		return c.scanFrom(c.p, c.idx+1, true, seek)
	}
	return c.scanFrom(start, r*restartEvery, false, seek)
}

func (c *blockCursor) First() ([]byte, []byte) {
	_, data := c.c.First()
	return c.enter(data)
}

func (c *blockCursor) Last() ([]byte, []byte) {
	_, data := c.c.Last()
	return c.enterLast(data)
}

func (c *blockCursor) Seek(seek []byte) ([]byte, []byte) {
	if c.in && c.rows == nil && c.key != nil && bytes.Compare(seek, c.key) > 0 {
		// Ahead of the current row, the common step of an
		// intersection: try this block before seeking from the root.
		if k, v := c.seekIn(seek); k != nil || !c.in {
			return k, v
		}
	}
	bk, data := c.c.Seek(seek)
	if !bytes.Equal(bk, seek) {
		// The rows before seek's block key belong to the block before.
		var pk, pdata []byte
		if bk == nil {
			pk, pdata = c.c.Last()
		} else {
			pk, pdata = c.c.Prev()
		}
		if pk == nil {
			// seek precedes every block: start at the first one.
			_, data = c.c.First()
		} else {
			data = pdata
		}
	}
	if !c.open(data) {
		return nil, nil
	}
	if k, v := c.seekIn(seek); k != nil || !c.in {
		return k, v
	}
	// Every row of the block is before seek: the next block's first.
	_, data = c.c.Next()
	return c.enter(data)
}

func (c *blockCursor) Next() ([]byte, []byte) {
	if !c.in {
		return nil, nil
	}
	if c.rows != nil {
		if c.idx++; c.idx < len(c.rows) {
			return c.rows[c.idx].key, c.rows[c.idx].value
		}
	} else if c.key != nil && c.p < len(c.blk.rows) {
		return c.scanFrom(c.p, c.idx+1, true, nil)
	}
	_, data := c.c.Next()
	return c.enter(data)
}

func (c *blockCursor) Prev() ([]byte, []byte) {
	if !c.in || c.key == nil && c.rows == nil {
		return nil, nil
	}
	if c.rows == nil && !c.decode() {
		return nil, nil
	}
	if c.idx--; c.idx >= 0 {
		return c.rows[c.idx].key, c.rows[c.idx].value
	}
	_, data := c.c.Prev()
	return c.enterLast(data)
}

// rowWriter applies row writes, in ascending key order, to one bucket of
// blocks. has answers for the writes made so far; flush stores them and
// must be called before the transaction commits or the bucket is read
// another way.
type rowWriter interface {
	has(key []byte) (bool, error)
	put(key, value []byte) error
	del(key []byte) error
	flush() error
}

// blockEditor edits the blocks of an existing bucket: it holds one
// decoded block, the one covering the keys it is given, and writes it back
// (split when it grew past 2 × blockTarget, deleted when emptied) when a
// key beyond it comes or on flush. Keys may come in any order; ascending
// keys read and write each block once.
type blockEditor struct {
	b      *bolt.Bucket
	loaded bool
	dirty  bool
	old    []byte // the loaded block's bbolt key; nil for a new block
	lo, hi []byte // it covers [lo, hi); nil lo: everything before hi
	rows   []blockRow
	enc    blockEncoder
}

func newBlockEditor(b *bolt.Bucket) *blockEditor { return &blockEditor{b: b} }

// covering loads the block that holds, or would hold, key.
func (e *blockEditor) covering(key []byte) error {
	if e.loaded && (e.lo == nil || bytes.Compare(key, e.lo) >= 0) && (e.hi == nil || bytes.Compare(key, e.hi) < 0) {
		return nil
	}
	if err := e.flush(); err != nil {
		return err
	}
	c := e.b.Cursor()
	bk, data := c.Seek(key)
	if !bytes.Equal(bk, key) {
		var pk, pdata []byte
		if bk == nil {
			pk, pdata = c.Last()
		} else {
			pk, pdata = c.Prev()
		}
		if pk != nil {
			bk, data = pk, pdata
		} else {
			bk, data = c.First()
		}
	}
	// The rows' array is reused: putBlocks copied the last block's rows,
	// and only their keys, never written again, stay with bbolt.
	e.loaded, e.dirty, e.rows, e.old, e.lo, e.hi = true, false, e.rows[:0], nil, nil, nil
	if bk == nil {
		return nil // an empty bucket: one new block covers everything
	}
	var err error
	if e.rows, err = decodeBlock(data, e.rows); err != nil {
		e.loaded = false
		return fmt.Errorf("index block %q: %w", bk, err)
	}
	e.old = bytes.Clone(bk)
	c.Seek(e.old)
	if pk, _ := c.Prev(); pk != nil {
		e.lo = e.old
	}
	c.Seek(e.old)
	if nk, _ := c.Next(); nk != nil {
		e.hi = bytes.Clone(nk)
	}
	return nil
}

func (e *blockEditor) find(key []byte) (int, bool) {
	return slices.BinarySearchFunc(e.rows, key, func(r blockRow, k []byte) int { return bytes.Compare(r.key, k) })
}

func (e *blockEditor) has(key []byte) (bool, error) {
	if err := e.covering(key); err != nil {
		return false, err
	}
	_, ok := e.find(key)
	return ok, nil
}

func (e *blockEditor) put(key, value []byte) error {
	if err := e.covering(key); err != nil {
		return err
	}
	i, ok := e.find(key)
	if ok {
		e.rows[i].value = value
	} else {
		e.rows = slices.Insert(e.rows, i, blockRow{key, value})
	}
	e.dirty = true
	return nil
}

func (e *blockEditor) del(key []byte) error {
	if err := e.covering(key); err != nil {
		return err
	}
	if i, ok := e.find(key); ok {
		e.rows = slices.Delete(e.rows, i, i+1)
		e.dirty = true
	}
	return nil
}

// flush writes the loaded block back if it changed.
func (e *blockEditor) flush() error {
	if !e.loaded || !e.dirty {
		return nil
	}
	e.loaded = false
	if e.old != nil && (len(e.rows) == 0 || !bytes.Equal(e.old, e.rows[0].key)) {
		if err := e.b.Delete(e.old); err != nil {
			return err
		}
	}
	size := 0
	for _, r := range e.rows {
		size += len(r.key) + len(r.value) + 3
	}
	// Cut into blocks of about blockTarget when it grew past twice that,
	// else keep it whole.
	cut := size + 1
	if size > 2*blockTarget {
		cut = blockTarget
	}
	return putBlocks(e.b, &e.enc, e.rows, cut)
}

// putBlocks stores rows as blocks cut once they reach cut bytes.
func putBlocks(b blockSink, enc *blockEncoder, rows []blockRow, cut int) error {
	// Room for every row with its three lengths, and every block's
	// restarts: an estimate from above, since keys share prefixes.
	n := 4 * (len(rows)/restartEvery + 1)
	for _, r := range rows {
		n += len(r.key) + len(r.value) + 6
	}
	n += 8 * (n/cut + 1) // each block's count and partial restart group
	enc.reserve(n)
	first := 0
	for i, r := range rows {
		enc.add(r.key, r.value)
		if enc.size() >= cut || i == len(rows)-1 {
			if err := b.Put(rows[first].key, enc.finish()); err != nil {
				return err
			}
			first = i + 1
		}
	}
	return nil
}

// blockAppender fills a bucket with rows given in ascending order after
// every row it holds (a new segment, a compaction's new main): full blocks
// and no reads. The last row stays pending until a greater key comes, so
// that a later write of the same key can still replace or drop it.
type blockAppender struct {
	b       blockSink
	enc     blockEncoder
	pending []blockRow
	size    int
}

func newBlockAppender(b blockSink) *blockAppender { return &blockAppender{b: b} }

// blockSink is where finished blocks go: a bucket, or a blockList that
// another goroutine puts into one (compactSearch).
type blockSink interface {
	Put(key, value []byte) error
}

// blockList holds finished blocks in order, keyed by their first row.
type blockList struct {
	keys, values [][]byte
}

// Put keeps the block; both slices must stay unchanged until the list is
// written (a block cursor's keys and a finished block are).
func (l *blockList) Put(key, value []byte) error {
	l.keys = append(l.keys, key)
	l.values = append(l.values, value)
	return nil
}

// putInto puts the blocks into b.
func (l *blockList) putInto(b *bolt.Bucket) error {
	for i, k := range l.keys {
		if err := b.Put(k, l.values[i]); err != nil {
			return err
		}
	}
	return nil
}

func (a *blockAppender) last() []byte {
	if len(a.pending) == 0 {
		return nil
	}
	return a.pending[len(a.pending)-1].key
}

// has only knows the pending last row: keys come in ascending order, so an
// earlier one can no longer be asked about.
func (a *blockAppender) has(key []byte) (bool, error) {
	return bytes.Equal(a.last(), key), nil
}

func (a *blockAppender) put(key, value []byte) error {
	if last := a.last(); last != nil {
		switch c := bytes.Compare(key, last); {
		case c == 0:
			a.pending[len(a.pending)-1].value = value
			return nil
		case c < 0:
			return fmt.Errorf("search index append: key %q after %q", key, last)
		}
	}
	if a.size >= blockTarget {
		// Keep the last row pending: it may still be replaced.
		n := len(a.pending) - 1
		if err := putBlocks(a.b, &a.enc, a.pending[:n], a.size+1); err != nil {
			return err
		}
		// The rows' array is the appender's own: the blocks copied the
		// rows, and only their keys (never written again) stay with bbolt.
		a.pending[0] = a.pending[n]
		a.pending = a.pending[:1]
		a.size = len(a.pending[0].key) + len(a.pending[0].value)
	}
	a.pending = append(a.pending, blockRow{key, value})
	a.size += len(key) + len(value)
	return nil
}

func (a *blockAppender) del(key []byte) error {
	if bytes.Equal(a.last(), key) {
		r := a.pending[len(a.pending)-1]
		a.pending = a.pending[:len(a.pending)-1]
		a.size -= len(r.key) + len(r.value)
	}
	return nil
}

func (a *blockAppender) flush() error {
	err := putBlocks(a.b, &a.enc, a.pending, a.size+len(a.pending)*3+1)
	a.pending, a.size = a.pending[:0:0], 0
	return err
}

// packingBucket holds the buckets an upgrade packs, until it installs
// them; it exists only mid-upgrade.
var packingBucket = []byte("packing")

// packRows converts buckets that store a row per bbolt key (schema 12 and
// older; the search bucket merged with its segments) into buckets of
// blocks, and sets the schema version. The copies are built in one
// transaction and installed in a second (bbolt moves a bucket as last
// committed): a crash between them leaves the old version's file, whose
// copies Open deletes before converting again.
func (d *DB) packRows(names [][]byte) error {
	var segs [][]byte
	err := d.bolt.Update(func(tx *bolt.Tx) error {
		root := tx.Bucket(rootBucket)
		packing, err := root.CreateBucket(packingBucket)
		if err != nil {
			return err
		}
		for _, name := range names {
			dst, err := packing.CreateBucket(name)
			if err != nil {
				return err
			}
			dst.FillPercent = 1
			subs := []cursor{root.Bucket(name).Cursor()}
			if bytes.Equal(name, searchBucket) {
				b := openBuckets(tx)
				b.loadSegments()
				segs = b.segKeys
				for _, s := range b.segs {
					subs = append(subs, s.Cursor())
				}
			}
			out := newBlockAppender(dst)
			for h := newAscending(subs, nil); h.len() > 0; h.next() {
				if err := out.put(h.top()); err != nil {
					return err
				}
			}
			if err := out.flush(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return d.bolt.Update(func(tx *bolt.Tx) error {
		root := tx.Bucket(rootBucket)
		segRoot := root.Bucket(searchSegsBucket)
		for _, s := range segs {
			if err := segRoot.DeleteBucket(s); err != nil {
				return err
			}
		}
		packing := root.Bucket(packingBucket)
		for _, name := range names {
			if err := root.DeleteBucket(name); err != nil {
				return err
			}
			if err := packing.MoveBucket(name, root); err != nil {
				return err
			}
		}
		if err := root.DeleteBucket(packingBucket); err != nil {
			return err
		}
		return root.Bucket(metaBucket).Put([]byte("version"), []byte(schemaVersion))
	})
}
