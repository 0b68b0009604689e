// Package store keeps the catalog in one bbolt file: the processing state of
// every entity, the ownership graph, relations and the stitched ("final")
// entities that the API serves. It is the only package that imports bbolt.
//
// Layout (all buckets live under the versioned root bucket "v1"; keys are
// byte-ordered so that prefix scans answer lookups):
//
//	meta       "version" → schema version
//	state      ref → State (JSON)                 the unit of work
//	queue      8-byte big-endian unix nanos ‖ ref → ""   due order
//	schedule   ref → 8-byte big-endian unix nanos        finds an entity's queue key
//	edges      parent ‖ 0 ‖ child → ""            parent is a ref or "provider:NAME"
//	parents    child ‖ 0 ‖ parent → ""            the reverse of edges
//	bysource   source ‖ 0 ‖ type ‖ 0 ‖ target ‖ 0 ‖ origin → ""   served on source;
//	           the originator keeps its own list in its state record
//	final      ref → 40-hex etag ‖ stitched entity JSON
//	uids       uid → ref
//	errors     ref → ""                           entities whose last run had errors
//	search     path ‖ 0 ‖ value ‖ 0 ‖ ref → flags ‖ [original]   search rows (search.go)
//	facets     path ‖ 0 ‖ value ‖ 0 ‖ original → 8-byte count   rows per value
//	           path ‖ 1 → 8-byte count               entities with a value under path
//	stitchq    ref → ""                           final entities to rebuild (deferred stitching)
//	relq       8-byte big-endian sequence → the bysource writes of one
//	           deferred commit, applied before the next stitch (relations.go)
//	searchsegs segments of the search index written by large stitch
//	           batches, merged back when stitching goes idle (segments.go)
//
// search and facets are the flattened served entities of reference §2.7,
// written in the stitch transaction with the final entities they are
// flattened from: search.go documents them, query.go answers filters,
// paging and facets from them.
//
// Refs are canonical lowercased "kind:namespace/name" strings and never
// contain a zero byte, so 0 separates the parts of composite keys.
package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// schemaVersion is bumped with every layout change; Open migrates or refuses.
const schemaVersion = "15"

var (
	rootBucket     = []byte("v1")
	metaBucket     = []byte("meta")
	stateBucket    = []byte("state")
	queueBucket    = []byte("queue")
	scheduleBucket = []byte("schedule")
	edgesBucket    = []byte("edges")
	parentsBucket  = []byte("parents")
	bySourceBucket = []byte("bysource")
	finalBucket    = []byte("final")
	uidsBucket     = []byte("uids")
	errorsBucket   = []byte("errors")
	searchBucket   = []byte("search")
	facetsBucket   = []byte("facets")
	stitchQBucket  = []byte("stitchq")
	relQBucket     = []byte("relq")
	// oldSearchRefBucket held each entity's search rows until schema 10.
	oldSearchRefBucket = []byte("searchref")

	allBuckets = [][]byte{metaBucket, stateBucket, queueBucket, scheduleBucket, edgesBucket, parentsBucket,
		bySourceBucket, finalBucket, uidsBucket, errorsBucket,
		searchBucket, facetsBucket, stitchQBucket, relQBucket, searchSegsBucket}
)

// ProviderPrefix marks the parent key of root entities: a root is a child of
// ProviderPrefix + "<pipeline name>", so that a pipeline can own and prune
// its roots. It starts with a control byte so that no entity ref (refs are
// refused when they contain control characters) can share it.
const ProviderPrefix = "\x01provider:"

// DB is an open catalog file. Reads may run concurrently; writes go through
// the caller's single writer (bbolt allows one writer at a time anyway).
type DB struct {
	bolt        *bolt.DB
	path        string
	writes      atomic.Int64
	keepOrphans atomic.Bool
	// childUpserts counts the children upserted by outcomes' own
	// transactions, not by the steps ahead of them (tests read it).
	childUpserts atomic.Int64

	// StitchPending's state, guarded by stitchMu: the next batch (being
	// prepared while the current one is written), the id of the last
	// committed transaction that wrote a prepared batch, and the number of
	// such transactions. stitchWG counts the preparing goroutines, which
	// Close waits for.
	stitchMu           sync.Mutex
	nextStitch         *stitchBatch
	lastPreparedStitch int
	preparedStitches   int
	stitchWG           sync.WaitGroup

	// writeMu is held by every write transaction, and by compactSearch
	// across its transactions so that no other write lands between them;
	// compactionTxs counts those.
	writeMu       sync.Mutex
	compactionTxs atomic.Int64
}

// SetKeepOrphans chooses the orphan strategy: false (the default, like
// Backstage's "delete") deletes an entity no parent emits any more, with
// its subtree; true keeps it, annotated backstage.io/orphan: "true".
func (d *DB) SetKeepOrphans(keep bool) { d.keepOrphans.Store(keep) }

// boltUpdate runs one write transaction and counts it.
func (d *DB) boltUpdate(fn func(*bolt.Tx) error) error {
	d.writeMu.Lock()
	defer d.writeMu.Unlock()
	return d.updateLocked(fn)
}

// updateLocked is boltUpdate for a caller that holds writeMu.
func (d *DB) updateLocked(fn func(*bolt.Tx) error) error {
	d.writes.Add(1)
	return d.bolt.Update(fn)
}

// pageSize is the page size of new files (an existing file keeps the one
// it was created with). bbolt defaults to the OS page, 4 KiB; with 32 KiB
// a cold ingest of 100k entities commits its 2.5M search rows ~18% faster
// (41 s -> 34 s, alternating runs in BENCHMARKS.md): a batch's random
// inserts dirty fewer, fuller leaves, so each commit splits, allocates and
// writes fewer pages. The price is more bytes per tiny commit, which the
// engine batches anyway.
const pageSize = 32 << 10

// Options tune how the file is opened.
type Options struct {
	// Timeout bounds the wait for the file lock held by another process.
	// Zero means 2 s: a second `pipeline` on the same file fails fast.
	Timeout time.Duration
	// NoSync skips fsync; only for tests and throwaway bulk loads.
	NoSync bool
}

// Open opens or creates the catalog file at path (its folder is created),
// and checks or installs the schema version.
func Open(path string, o Options) (*DB, error) {
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Second
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("open store %s: %w", path, err)
		}
	}
	b, err := bolt.Open(path, 0o644, &bolt.Options{
		Timeout:      o.Timeout,
		NoSync:       o.NoSync,
		FreelistType: bolt.FreelistMapType,
		PageSize:     pageSize,
	})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("open store %s: the file is locked by another process", path)
		}
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	d := &DB{bolt: b, path: path}
	if err := d.init(); err != nil {
		b.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return d, nil
}

func (d *DB) init() error {
	// The buckets an older file stores a row per key in, which this
	// version packs into blocks (blocks.go), converted after the first
	// transaction.
	var pack [][]byte
	err := d.bolt.Update(func(tx *bolt.Tx) error {
		root, err := tx.CreateBucketIfNotExists(rootBucket)
		if err != nil {
			return err
		}
		for _, name := range allBuckets {
			if _, err := root.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		for _, left := range [][]byte{searchNextBucket, packingBucket} {
			if root.Bucket(left) != nil {
				// A compaction or an upgrade was cut short; its
				// sources are intact.
				if err := root.DeleteBucket(left); err != nil {
					return err
				}
			}
		}
		meta := root.Bucket(metaBucket)
		switch v := meta.Get([]byte("version")); {
		case v == nil:
			return meta.Put([]byte("version"), []byte(schemaVersion))
		case string(v) == "13" || string(v) == "14":
			// Version 14 compresses new state records and final
			// entities with entityDict, 15 new relq records in frames;
			// the older forms read as before.
			return meta.Put([]byte("version"), []byte(schemaVersion))
		case string(v) == "12":
			// Version 12 packs the search rows into blocks, 13 the
			// bysource rows too.
			pack = [][]byte{bySourceBucket}
		case string(v) == "11":
			pack = [][]byte{searchBucket, bySourceBucket}
		case string(v) == "10" || string(v) >= "5" && string(v) <= "9" && len(v) == 1:
			// Version 5 lacks the stitchq bucket, version 7 the relq
			// bucket and version 8 the searchsegs bucket, created above;
			// versions up to 9 count facets that version 10 leaves
			// uncounted; versions up to 10 keep every entity's search
			// rows a second time (searchref), which version 11 flattens
			// from its final entity instead (storedRows).
			if string(v) != "10" {
				if err := dropUncountedFacets(root.Bucket(facetsBucket)); err != nil {
					return fmt.Errorf("upgrade from schema version %s: %w", v, err)
				}
			}
			if root.Bucket(oldSearchRefBucket) != nil {
				if err := root.DeleteBucket(oldSearchRefBucket); err != nil {
					return fmt.Errorf("upgrade from schema version %s: %w", v, err)
				}
			}
			pack = [][]byte{searchBucket, bySourceBucket}
			return meta.Put([]byte("version"), []byte("11"))
		case string(v) != schemaVersion:
			return fmt.Errorf("schema version %q is not supported (want %q); the catalog is rebuilt from its sources, so delete the file and run again", v, schemaVersion)
		}
		return nil
	})
	if err == nil && pack != nil {
		if err = d.packRows(pack); err != nil {
			err = fmt.Errorf("upgrade to schema version %s: %w", schemaVersion, err)
		}
	}
	return err
}

// dropUncountedFacets deletes the counts that are no longer maintained:
// the value counts (path ‖ 0 ‖ …) of uncounted paths and the entity counts
// (path ‖ 1) of the paths under uncountedFamilies. It reads the whole
// bucket, once, on an upgrade.
func dropUncountedFacets(facets *bolt.Bucket) error {
	var drop [][]byte
	c := facets.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		i := bytes.IndexByte(k, 0)
		switch {
		case i >= 0 && uncounted(string(k[:i])),
			i < 0 && len(k) > 0 && k[len(k)-1] == 1 && inUncountedFamily(string(k[:len(k)-1])):
			drop = append(drop, bytes.Clone(k))
		}
	}
	for _, k := range drop {
		if err := facets.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// Close closes the file.
func (d *DB) Close() error {
	d.stitchMu.Lock()
	d.nextStitch = nil
	d.stitchMu.Unlock()
	d.stitchWG.Wait()
	return d.bolt.Close()
}

// Path is the file the DB was opened from.
func (d *DB) Path() string { return d.path }

// Size is the current size of the file in bytes.
func (d *DB) Size() int64 {
	var n int64
	_ = d.bolt.View(func(tx *bolt.Tx) error { n = tx.Size(); return nil })
	return n
}

// WriteTxCount reports how many write transactions have been committed since
// the file was opened; tests use it to prove that unchanged work writes
// nothing.
func (d *DB) WriteTxCount() int {
	return int(d.writes.Load())
}

// buckets gives typed access to the sub-buckets inside one transaction.
type buckets struct {
	tx                                     *bolt.Tx
	state, queue, schedule, edges, parents *bolt.Bucket
	bySource, final, uids, errs            *bolt.Bucket
	search, facets                         *bolt.Bucket
	stitchQ, relQ                          *bolt.Bucket
	// segRoot holds the search segments, segs (oldest first) under
	// segKeys.
	segRoot *bolt.Bucket
	segs    []*bolt.Bucket
	segKeys [][]byte
}

func open(tx *bolt.Tx) *buckets {
	b := openBuckets(tx)
	if tx.Writable() {
		for _, x := range []*bolt.Bucket{b.state, b.queue, b.errs, b.search, b.facets, b.stitchQ, b.relQ} {
			x.FillPercent = fillPercent
		}
		for _, x := range []*bolt.Bucket{b.final, b.bySource, b.uids, b.edges, b.parents, b.schedule} {
			x.FillPercent = orderedFillPercent
		}
	}
	b.loadSegments()
	if tx.Writable() {
		for _, s := range b.segs {
			s.FillPercent = fillPercent
		}
	}
	return b
}

// fillPercent is how full bbolt packs the pages it splits (its default is
// half). Most keys here arrive out of order, so half-full pages stay
// half full; at 0.75 a 100k catalog's file is 1.32 GB instead of 1.54 GB
// (less to map, and fewer pages for a transaction to dirty), for the same
// ingest speed (BENCHMARKS.md).
const fillPercent = 0.75

// orderedFillPercent is how full bbolt packs the buckets whose keys mostly
// arrive in order and whose values keep their size: final entities
// (stitched in ref order), bysource (the relation log is applied in key
// order), uids (UUIDv7, time-ordered), edges, parents and schedule (a
// Location's children, in ref order). At fillPercent their pages stayed
// three quarters full; packed, a 100k catalog's file is 476 MB instead of
// 577 MB with the children's state records below, and its peak RSS ~70
// MiB lower, for the same ingest speed (BENCHMARKS.md, session 16). A
// later insertion into a full page splits it as usual.
const orderedFillPercent = 0.95

// childFillPercent is how full a Location's new children's state records
// are packed. Processing rewrites each record about 1.4 times larger in
// the generated catalogs (the processed entity is stored next to the
// unprocessed one, compressed together): pages packed to fillPercent
// overflowed and split, leaving the state bucket 64% full (137 MB at
// 100k, before entityDict), while pages packed to 0.65 take the growth in
// place (~90%) and tolerate growth up to ~1.5. Less growth leaves pages
// emptier than before (0.65 times it, against 0.75).
const childFillPercent = 0.65

func openBuckets(tx *bolt.Tx) *buckets {
	r := tx.Bucket(rootBucket)
	return &buckets{
		tx:       tx,
		state:    r.Bucket(stateBucket),
		queue:    r.Bucket(queueBucket),
		schedule: r.Bucket(scheduleBucket),
		edges:    r.Bucket(edgesBucket),
		parents:  r.Bucket(parentsBucket),
		bySource: r.Bucket(bySourceBucket),
		final:    r.Bucket(finalBucket),
		uids:     r.Bucket(uidsBucket),
		errs:     r.Bucket(errorsBucket),
		search:   r.Bucket(searchBucket),
		facets:   r.Bucket(facetsBucket),
		stitchQ:  r.Bucket(stitchQBucket),
		relQ:     r.Bucket(relQBucket),
		segRoot:  r.Bucket(searchSegsBucket),
	}
}
