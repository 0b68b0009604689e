package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"
)

// writer carries one write transaction: its buckets, the refs whose final
// entity must be rebuilt before commit, and the running statistics.
type writer struct {
	*buckets
	stitch      map[string]struct{}
	stats       CommitStats
	keepOrphans bool
	// bulk lets the transaction write its new search rows to a segment
	// (StitchPending's batches, which compact them when they are done).
	bulk bool

	// Relation rows and search index maintenance (search.go), applied at
	// the end of the transaction.
	relOps []relOp
	// relFrame and relPacked are logRelations' scratch: a frame's
	// writes, and the frame compressed.
	relFrame, relPacked []byte
	indexBuf

	// applied holds what preCommitChildren did for the outcomes of this
	// commit (see commitOne).
	applied map[*Outcome]*appliedChildren
	// childUpserts is DB.childUpserts.
	childUpserts *atomic.Int64
}

func (d *DB) update(fn func(w *writer) error) (CommitStats, error) {
	return d.updateStitch(fn, false)
}

// updateStitch runs fn in a write transaction and then stitches what it
// changed, or with deferStitch only records the refs in stitchq for
// StitchPending.
func (d *DB) updateStitch(fn func(w *writer) error, deferStitch bool) (CommitStats, error) {
	var stats CommitStats
	err := d.boltUpdate(func(tx *bolt.Tx) error {
		w := &writer{buckets: open(tx), stitch: map[string]struct{}{}, keepOrphans: d.keepOrphans.Load(),
			childUpserts: &d.childUpserts}
		if err := fn(w); err != nil {
			return err
		}
		if err := w.flushRelations(deferStitch); err != nil {
			return err
		}
		if deferStitch {
			if err := w.queueStitches(); err != nil {
				return err
			}
		} else if err := w.stitchAll(); err != nil {
			return err
		}
		// Deletions unindex served entities even when stitching is
		// deferred, so the queued search-row and facet changes are
		// applied on both paths.
		if err := w.flushIndex(); err != nil {
			return err
		}
		stats = w.stats
		return nil
	})
	return stats, err
}

// Commit writes a batch of outcomes in one transaction: processed entities,
// relations (diffed), children (upserted with the first-claimant rule),
// orphans (deleted with their subtree), and the stitched final entities of
// everything that changed. Outcomes for entities deleted meanwhile are
// skipped.
func (d *DB) Commit(outs []*Outcome) (CommitStats, error) {
	return d.commit(outs, false)
}

func (d *DB) commit(outs []*Outcome, deferStitch bool) (CommitStats, error) {
	var total CommitStats
	var applied map[*Outcome]*appliedChildren
	for _, o := range outs {
		if o.OK && len(o.Children) > childChunk {
			cs, a, err := d.preCommitChildren(o, deferStitch)
			if err != nil {
				return total, fmt.Errorf("commit %s: %w", o.Ref, err)
			}
			total.Add(cs)
			if a != nil {
				if applied == nil {
					applied = map[*Outcome]*appliedChildren{}
				}
				applied[o] = a
			}
		}
	}
	cs, err := d.updateStitch(func(w *writer) error {
		w.applied = applied
		for _, o := range outs {
			if err := w.commitOne(o); err != nil {
				return fmt.Errorf("commit %s: %w", o.Ref, err)
			}
		}
		return nil
	}, deferStitch)
	total.Add(cs)
	return total, err
}

// childChunk bounds how many children one transaction upserts. bbolt
// keeps a transaction's changes in memory until it commits, so a Location
// that emits 100,000 entities would otherwise need them all, encoded, at
// once.
const childChunk = 5000

// preCommitChildren upserts the children of an outcome with many of them,
// childChunk per transaction, ahead of the transaction that commits the
// outcome itself. That one then finds every child in place and only prunes
// and records, so the outcome still takes effect at once (the parent's new
// state, its pruned children); what the steps add first is the new
// children, which a crash would leave to the parent's next run. An outcome
// that is stale or unchanged when a step runs stops the steps, and a child
// that conflicts is left for the final transaction to report.
//
// When every step ran, it also returns what they did, so that the final
// transaction need not upsert every child a second time (appliedChildren).
func (d *DB) preCommitChildren(o *Outcome, deferStitch bool) (CommitStats, *appliedChildren, error) {
	var total CommitStats
	a := &appliedChildren{conflicted: map[string]bool{}}
	// applies reports whether the outcome would write children now.
	applies := func(b *buckets) (*State, error) {
		st, err := b.getState(o.Ref)
		if err != nil || st == nil || (o.UnprocessedHash != "" && st.UnprocessedHash != o.UnprocessedHash) || st.ResultHash == o.ResultHash {
			return nil, err
		}
		return st, nil
	}
	var first *State
	if err := d.bolt.View(func(tx *bolt.Tx) error {
		st, err := applies(open(tx))
		first = st
		return err
	}); err != nil || first == nil {
		return total, nil, err
	}
	o.Children = sortedChildren(o.Children)
	done := make(chan struct{})
	defer close(done)
	prepared := d.prepareChildren(o.Children, first.Pipeline, first.Root, done)
	for start := 0; start < len(o.Children); start += childChunk {
		chunk := o.Children[start:min(start+childChunk, len(o.Children))]
		pre := <-prepared
		stop := false
		cs, err := d.updateStitch(func(w *writer) error {
			st, err := applies(w.buckets)
			if err != nil || st == nil {
				stop = true
				return err
			}
			if id := w.tx.ID(); start == 0 || id == a.lastTx+1 {
				// At the first transaction that came between two
				// steps, lastTx stops: the final check then fails.
				a.lastTx = id
			}
			// This transaction writes only the Location's children's
			// records, nearly all of them new when there are this many.
			w.state.FillPercent = childFillPercent
			for i, c := range chunk {
				owned, err := w.upsertPrepared(o.Ref, st.Pipeline, st.Root, c, &pre[i])
				if err != nil {
					return err
				}
				if !owned {
					a.conflicted[c.Ref] = true
				}
			}
			return nil
		}, deferStitch)
		if err != nil {
			return total, nil, err
		}
		cs.Conflicts = nil
		total.Add(cs)
		if stop {
			return total, nil, nil
		}
		if afterChildStep != nil {
			afterChildStep()
		}
	}
	return total, a, nil
}

// appliedChildren is what preCommitChildren's steps did: the transaction
// id of the last step of an unbroken run of them, and the children that
// were not upserted because another location owns them. When the outcome's own transaction comes
// right after that one, every other child is known to be in place, owned
// by the outcome: upserting it again (reading and decoding its state,
// checking its edge), ~0.25 s of the single writer for 100,000 children,
// would change nothing.
type appliedChildren struct {
	lastTx     int
	conflicted map[string]bool
}

// afterChildStep, when a test sets it, runs after each step of
// preCommitChildren, so that the test can write in between.
var afterChildStep func()

// inPlace says whether child ref of o is known to be upserted already.
func (w *writer) inPlace(o *Outcome, ref string) bool {
	a := w.applied[o]
	return a != nil && w.tx.ID() == a.lastTx+1 && !a.conflicted[ref]
}

// CommitDeferred is Commit without the stitching: the refs whose final
// entity must be rebuilt are recorded, durably and deduplicated, for
// StitchPending. During a bulk ingest most final entities change many
// times (every entity that relates to a group adds a relation to it), so
// rebuilding each once, later and in ref order, saves most of the
// stitching and index writes; until then the API serves the previous
// version, as Backstage's deferred stitching does.
func (d *DB) CommitDeferred(outs []*Outcome) (CommitStats, error) {
	return d.commit(outs, true)
}

// StitchPending rebuilds up to limit of the final entities CommitDeferred
// recorded, in ref order, in one transaction. more says whether others are
// still pending.
//
// Building a final entity and its search rows only reads the store, so it
// is done outside the write transaction, on a read transaction shared by
// one goroutine per CPU, and the single writer then only writes: while it
// writes one batch, the next batch (the refs after it) is being prepared.
// A prepared batch is valid when nothing but the batch before it was
// written since its snapshot (transaction ids tell); otherwise it is
// rebuilt inside the write transaction, so a run committed meanwhile is
// never lost.
func (d *DB) StitchPending(limit int) (stats CommitStats, more bool, err error) {
	d.stitchMu.Lock()
	defer d.stitchMu.Unlock()
	b := d.nextStitch
	d.nextStitch = nil
	if b != nil {
		<-b.done
	}
	if b == nil || b.err != nil || b.limit != limit || len(b.refs) == 0 {
		// Nothing pending is the common case of an idle loop: answered
		// by this read, without a write transaction.
		b = d.prepareStitches("", limit)
		<-b.done
	}
	if b.err == nil && b.relations {
		// Deferred commits logged relation rows since the last stitch:
		// apply them, then build the batch on top of them.
		if err := d.applyRelQ(); err != nil {
			return stats, false, err
		}
		b = d.prepareStitches("", limit)
		<-b.done
	}
	if b.err != nil || len(b.refs) == 0 {
		return stats, false, b.err
	}
	if afterStitchPrepare != nil {
		afterStitchPrepare()
	}
	if len(b.refs) == limit {
		d.nextStitch = d.prepareStitches(b.refs[len(b.refs)-1], limit)
	}
	var txID int
	prepared := false
	stats, err = d.update(func(w *writer) error {
		w.bulk = true
		txID = w.tx.ID()
		valid := txID == b.snap+1 || txID == b.snap+2 && d.lastPreparedStitch == b.snap+1
		if b.parts != nil && valid && w.keepOrphans == b.keepOrphans {
			prepared = true
			for _, ref := range b.refs {
				if err := w.stitchQ.Delete([]byte(ref)); err != nil {
					return err
				}
			}
			for _, p := range b.parts {
				w.absorb(&p.buf)
				for _, s := range p.stitched {
					if err := w.applyStitch(s); err != nil {
						return fmt.Errorf("stitch %s: %w", s.ref, err)
					}
				}
			}
		} else {
			// A small batch, or something else was written since the
			// snapshot: stitch what is pending now, in this transaction
			// (update's stitchAll).
			c := w.stitchQ.Cursor()
			var queued [][]byte
			for k, _ := c.First(); k != nil && len(queued) < limit; k, _ = c.Next() {
				queued = append(queued, bytes.Clone(k))
			}
			for _, ref := range queued {
				if err := w.stitchQ.Delete(ref); err != nil {
					return err
				}
				w.stitch[string(ref)] = struct{}{}
			}
		}
		k, _ := w.stitchQ.Cursor().First()
		more = k != nil
		return nil
	})
	if err == nil && prepared {
		// Set after the commit: a rolled-back transaction's id is
		// reused by the next one.
		d.lastPreparedStitch = txID
		d.preparedStitches++
	}
	if err == nil {
		stats.IndexRowsMerged, err = d.compactIfDue(!more)
	}
	if (err != nil || !more) && d.nextStitch != nil {
		<-d.nextStitch.done
		d.nextStitch = nil
	}
	return stats, more, err
}

// compactIfDue merges the search segments when StitchPending ran its queue
// dry (idle) or they piled up, and returns the rows it copied. The next
// batch, prepared against the index before the merge, is prepared again.
func (d *DB) compactIfDue(idle bool) (int, error) {
	due, err := d.compactDue(idle)
	if err != nil || !due {
		return 0, err
	}
	if d.nextStitch != nil {
		<-d.nextStitch.done
		d.nextStitch = nil
	}
	return d.compactSearch(false)
}

// How StitchPending prepares: minStitchesPerGoroutine keeps small batches
// (an idle loop's few changes) in the write transaction, where they cost
// no goroutines; larger ones get up to stitchProcs goroutines. Variables
// so that tests can choose the path; afterStitchPrepare, when a test sets
// it, runs between the preparation of a batch and its write transaction.
var (
	minStitchesPerGoroutine = 256
	stitchProcs             = func() int { return runtime.GOMAXPROCS(0) }
	afterStitchPrepare      func()
)

// stitchBatch is a batch of StitchPending: up to limit refs of stitchq
// after a given ref, read at snapshot snap, with their final entities
// when prepared (parts, in ref order; nil when left to the write
// transaction). relations says that relq held rows at snap, which the
// batch is not prepared without. done is closed when the fields are set.
type stitchBatch struct {
	limit       int
	refs        []string
	snap        int
	keepOrphans bool
	relations   bool
	parts       []*stitchPart
	err         error
	done        chan struct{}
}

// rowsPerEntity is about how many search rows a new entity of a typical
// catalog has (the generated one: 25).
const rowsPerEntity = 28

// stitchPart is the work of one preparing goroutine: a run of consecutive
// refs, so that the parts applied in order keep the batch in ref order.
type stitchPart struct {
	stitched []*stitched
	buf      indexBuf
}

// prepareStitches starts reading the batch of up to limit refs of stitchq
// after ref after ("": from the first) and, when it is large enough,
// building their final entities on up to stitchProcs goroutines. All of
// them read one read-only transaction: bbolt's read path does not modify
// a read-only transaction, and etcd reads one from many goroutines too.
// A ref that fails to build leaves the batch to the write transaction,
// which reports the error if there still is one.
func (d *DB) prepareStitches(after string, limit int) *stitchBatch {
	b := &stitchBatch{limit: limit, keepOrphans: d.keepOrphans.Load(), done: make(chan struct{})}
	d.stitchWG.Go(func() {
		defer close(b.done)
		b.err = d.bolt.View(func(tx *bolt.Tx) error {
			b.snap = tx.ID()
			bk := open(tx)
			c := bk.stitchQ.Cursor()
			k, _ := c.First()
			if after != "" {
				k, _ = c.Seek([]byte(after))
				if k != nil && string(k) == after {
					k, _ = c.Next()
				}
			}
			for ; k != nil && len(b.refs) < limit; k, _ = c.Next() {
				b.refs = append(b.refs, string(k))
			}
			if k, _ := bk.relQ.Cursor().First(); k != nil {
				b.relations = true
				return nil
			}
			n := min(stitchProcs(), len(b.refs)/minStitchesPerGoroutine)
			if n < 1 {
				return nil
			}
			parts := make([]*stitchPart, n)
			failed := make([]bool, n)
			var wg sync.WaitGroup
			for i := range n {
				chunk := b.refs[i*len(b.refs)/n : (i+1)*len(b.refs)/n]
				part := &stitchPart{}
				// Sized for a cold entity's ~25 rows: growing the slice by
				// doubling copied it (and ran GC write barriers on it)
				// about as many times again.
				part.buf.searchOps = make([]searchOp, 0, rowsPerEntity*len(chunk))
				parts[i] = part
				wg.Go(func() {
					for _, ref := range chunk {
						s, err := part.buf.prepareStitch(bk, b.keepOrphans, ref)
						if err != nil {
							failed[i] = true
							return
						}
						if s != nil {
							part.stitched = append(part.stitched, s)
						}
					}
					part.buf.seal()
				})
			}
			wg.Wait()
			if !slices.Contains(failed, true) {
				b.parts = parts
			}
			return nil
		})
	})
	return b
}

// queueStitches records the transaction's stitch set in stitchq, in key
// order.
func (w *writer) queueStitches() error {
	refs := make([]string, 0, len(w.stitch))
	for ref := range w.stitch {
		refs = append(refs, ref)
	}
	slices.Sort(refs)
	c := w.stitchQ.Cursor()
	for _, ref := range refs {
		// A Put of a key already there still dirties its page; groups
		// and systems are queued again by nearly every batch.
		if get(c, []byte(ref)) != nil {
			continue
		}
		if err := w.stitchQ.Put([]byte(ref), nil); err != nil {
			return err
		}
	}
	return nil
}

// get is Bucket.Get through a cursor the caller keeps for many lookups:
// Get makes a new cursor, whose stack grows by allocation, every call.
// The cursor may be reused after writes to its bucket, since Seek starts
// from the root each time. Values that are nested buckets read as nil, as
// with Get.
func get(c *bolt.Cursor, key []byte) []byte {
	k, v := c.Seek(key)
	if !bytes.Equal(k, key) {
		return nil
	}
	return v
}

// ApplyRoots makes roots the complete set of root entities of provider
// (usually "provider:<pipeline>"): new roots are created and due at once,
// changed ones updated, and roots the provider no longer lists are deleted
// with their subtree.
func (d *DB) ApplyRoots(provider, pipeline string, roots []Child) (CommitStats, error) {
	return d.update(func(w *writer) error {
		keep := make(map[string]bool, len(roots))
		for _, c := range sortedChildren(roots) {
			if ok, err := w.upsertChild(provider, pipeline, c.LocationKey, c); err != nil {
				return err
			} else if ok {
				keep[c.Ref] = true
			}
		}
		return w.pruneChildren(provider, keep, nil)
	})
}

// Providers lists the provider keys that own roots, so that a caller can
// remove the roots of pipelines that no longer exist.
func (d *DB) Providers() ([]string, error) {
	var out []string
	err := d.bolt.View(func(tx *bolt.Tx) error {
		c := open(tx).edges.Cursor()
		p := []byte(ProviderPrefix)
		for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); {
			name := string(k[:bytes.IndexByte(k, 0)])
			out = append(out, name)
			k, _ = c.Seek(append([]byte(name), 1))
		}
		return nil
	})
	return out, err
}

// MarkAllDue makes every entity due now; a one-shot run uses it so that the
// whole catalog is refreshed, not only what changed. The queue is rebuilt
// rather than edited: every ref at dueNow, inserted in ref order, which
// appends to the B+tree instead of moving each key from a random place.
func (d *DB) MarkAllDue() error {
	return d.boltUpdate(func(tx *bolt.Tx) error {
		b := open(tx)
		var refs [][]byte
		c := b.schedule.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if binary.BigEndian.Uint64(v) != dueNow {
				refs = append(refs, bytes.Clone(k))
			}
		}
		if len(refs) == 0 {
			return nil
		}
		root := tx.Bucket(rootBucket)
		if err := root.DeleteBucket(queueBucket); err != nil {
			return err
		}
		queue, err := root.CreateBucket(queueBucket)
		if err != nil {
			return err
		}
		queue.FillPercent = 0.9
		var now [8]byte
		binary.BigEndian.PutUint64(now[:], dueNow)
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if err := queue.Put(timeKey(dueNow, string(k)), nil); err != nil {
				return err
			}
		}
		for _, ref := range refs {
			if err := b.schedule.Put(ref, now[:]); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeleteEntity removes an entity and the subtree only it owned, as
// DELETE /entities/by-uid does; parents that still emit it recreate it on
// their next run.
func (d *DB) DeleteEntity(ref string) (CommitStats, error) {
	return d.update(func(w *writer) error {
		c := w.parents.Cursor()
		p := prefix(ref)
		var parents []string
		for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
			parents = append(parents, string(k[len(p):]))
		}
		for _, parent := range parents {
			if err := w.edges.Delete(join(parent, ref)); err != nil {
				return err
			}
			if err := w.parents.Delete(join(ref, parent)); err != nil {
				return err
			}
			// The parent must run again to recreate or forget the child.
			if w.state.Get([]byte(parent)) != nil {
				if err := w.forceRerun(parent); err != nil {
					return err
				}
			}
		}
		if w.state.Get([]byte(ref)) == nil {
			return nil
		}
		return w.pruneForced(ref)
	})
}

func (w *writer) commitOne(o *Outcome) error {
	if o.Skipped {
		return w.commitSkipped(o)
	}
	st, err := w.getState(o.Ref)
	if err != nil || st == nil {
		return err
	}
	if o.UnprocessedHash != "" && o.UnprocessedHash != st.UnprocessedHash {
		w.stats.Stale++
		return nil
	}
	next := o.NextUpdate.UnixNano()
	if o.ResultHash != "" && o.ResultHash == st.ResultHash {
		w.stats.Unchanged++
		switch {
		case !o.OK:
			// The same failure again: only the failure count moves, which
			// the engine's retry backoff reads.
			st.Failures++
			if err := w.putState(st); err != nil {
				return err
			}
		case !bytes.Equal(st.Memo, o.Memo):
			// The same result from inputs that moved (a touched file):
			// remember them, so that the next run can be skipped.
			st.Memo = o.Memo
			if err := w.putState(st); err != nil {
				return err
			}
		}
		return w.requeue(o.Ref, next)
	}
	w.stats.Written++
	st.ResultHash = o.ResultHash
	st.Errors = o.Errors
	if err := w.setErrorFlag(o.Ref, len(o.Errors) > 0); err != nil {
		return err
	}
	w.stitch[o.Ref] = struct{}{}
	if !o.OK {
		// Keep the last good processed entity, children and relations.
		st.Failures++
		st.Memo = nil
		if err := w.putState(st); err != nil {
			return err
		}
		return w.requeue(o.Ref, next)
	}
	st.Failures = 0
	processed, err := sanitizeProcessed(o.Processed)
	if err != nil {
		return err
	}
	st.Processed = processed
	st.Memo = o.Memo
	st.Cache = o.Cache
	st.RefreshKeys = o.RefreshKeys
	if err := w.syncRelations(st, o.Relations); err != nil {
		return err
	}
	keep := make(map[string]bool, len(o.Children))
	var conflicted bool
	var lost []string
	for _, c := range sortedChildren(o.Children) {
		if w.inPlace(o, c.Ref) {
			keep[c.Ref] = true
			continue
		}
		w.childUpserts.Add(1)
		owned, err := w.upsertChild(o.Ref, st.Pipeline, st.Root, c)
		if err != nil {
			return err
		}
		if owned {
			keep[c.Ref] = true
		} else {
			conflicted = true
			lost = append(lost, c.Ref)
			existing, _ := w.getState(c.Ref)
			msg := fmt.Sprintf("entity %s is already owned by location %s and cannot also be claimed by %s", c.Ref, existing.LocationKey, c.LocationKey)
			st.Errors = append(st.Errors, conflictError(msg))
		}
	}
	if conflicted {
		// Never treat this outcome as unchanged: once the other owner lets
		// go of the ref, the next run must try to take it over.
		st.ResultHash = "conflict:" + st.ResultHash
		st.Memo = nil
		if err := w.setErrorFlag(o.Ref, true); err != nil {
			return err
		}
	}
	if !o.KeepOldChildren {
		keepLoc := make(map[string]bool, len(o.KeepLocations))
		for _, l := range o.KeepLocations {
			keepLoc[l] = true
		}
		if err := w.pruneChildren(o.Ref, keep, keepLoc); err != nil {
			return err
		}
	}
	for _, ref := range lost {
		// The owner of a ref this entity lost let go of it in this very
		// commit (an entity moved between two sources this entity reads):
		// the wake-up of the contender is this requeue, so claim it at once
		// rather than an interval later.
		if w.state.Get([]byte(ref)) == nil || !w.hasParents(ref) {
			next = dueNow
			break
		}
	}
	if err := w.putState(st); err != nil {
		return err
	}
	return w.requeue(o.Ref, next)
}

// commitSkipped commits an outcome whose run the engine skipped: only the
// schedule moves, and the state record is read no further than its hashes.
// An entity that changed since it was claimed (a new unprocessed entity, a
// forced rerun) is stale: it is due again already.
func (w *writer) commitSkipped(o *Outcome) error {
	v := w.state.Get([]byte(o.Ref))
	if v == nil {
		return nil
	}
	uh, rh, err := peekHashes(v)
	if err != nil {
		return fmt.Errorf("state of %s: %w", o.Ref, err)
	}
	if string(uh) != o.UnprocessedHash || string(rh) != o.ResultHash {
		w.stats.Stale++
		return nil
	}
	w.stats.Unchanged++
	if o.Memo != nil {
		// Fresher stamps for the same sources (see Outcome.Memo).
		st, err := decodeState(o.Ref, v)
		if err != nil {
			return err
		}
		st.Memo = o.Memo
		if err := w.putState(st); err != nil {
			return err
		}
	}
	return w.requeue(o.Ref, o.NextUpdate.UnixNano())
}

// upsertChild creates or updates child c of parent. It returns false when c
// is owned by another location key (a conflict) and was left untouched; the
// parent is then remembered as the contender, made due when the owner lets
// go so that a moved entity does not stay stuck.
func (w *writer) upsertChild(parent, pipeline, root string, c Child) (bool, error) {
	return w.upsertPrepared(parent, pipeline, root, c, nil)
}

// upsertPrepared is upsertChild with the state record of c as a new
// entity possibly encoded ahead (pre, see prepareChildren).
func (w *writer) upsertPrepared(parent, pipeline, root string, c Child, pre *preparedChild) (bool, error) {
	st, err := w.getState(c.Ref)
	if err != nil {
		return false, err
	}
	switch {
	case st == nil:
		uid, rec := "", []byte(nil)
		if pre != nil && pre.record != nil && pre.pipeline == pipeline && pre.root == root {
			uid, rec = pre.uid, pre.record
		} else {
			uid = newUID()
			rec = encodeState(newChildState(c, uid, pipeline, root))
		}
		if err := w.uids.Put([]byte(uid), []byte(c.Ref)); err != nil {
			return false, err
		}
		if err := w.state.Put([]byte(c.Ref), rec); err != nil {
			return false, err
		}
		if err := w.requeue(c.Ref, dueNow); err != nil {
			return false, err
		}
		w.stats.Created++
	case st.LocationKey != "" && st.LocationKey != c.LocationKey && (w.edges.Get(join(parent, c.Ref)) != nil || w.hasParents(c.Ref)):
		w.stats.Conflicts = append(w.stats.Conflicts, Conflict{Ref: c.Ref, Parent: parent, ExistingKey: st.LocationKey, NewKey: c.LocationKey})
		if st.Contender != parent {
			st.Contender = parent
			if err := w.putState(st); err != nil {
				return false, err
			}
		}
		return false, nil
	case st.UnprocessedHash != c.Hash || st.LocationKey != c.LocationKey || st.Pipeline != pipeline || st.Root != root || st.Contender != "":
		// Updated, or taken over: an orphan (no parent left, kept by the
		// "keep" strategy) may be claimed by any location.
		st.Unprocessed, st.UnprocessedHash, st.LocationKey, st.Pipeline, st.Root = c.Entity, c.Hash, c.LocationKey, pipeline, root
		st.Contender = ""
		if err := w.putState(st); err != nil {
			return false, err
		}
		if err := w.requeue(c.Ref, dueNow); err != nil {
			return false, err
		}
	}
	if w.edges.Get(join(parent, c.Ref)) == nil {
		if err := w.edges.Put(join(parent, c.Ref), nil); err != nil {
			return false, err
		}
		if err := w.parents.Put(join(c.Ref, parent), nil); err != nil {
			return false, err
		}
		// A new parent can lift the orphan mark.
		w.stitch[c.Ref] = struct{}{}
	}
	return true, nil
}

// newChildState is the state record of a child seen for the first time.
func newChildState(c Child, uid, pipeline, root string) *State {
	return &State{Ref: c.Ref, UID: uid, Pipeline: pipeline, Root: root,
		Unprocessed: c.Entity, UnprocessedHash: c.Hash, LocationKey: c.LocationKey}
}

// preparedChild is a child's state record as a new entity, encoded ahead
// of the transaction that may create it; record is nil when the child
// already existed.
type preparedChild struct {
	uid, pipeline, root string
	record              []byte
}

// prepareChildren encodes, on a goroutine of its own and a chunk ahead of
// the writer (each chunk holds ~6 MB of records), the state records of
// those of children (sorted, taken childChunk at a time) that do not exist
// yet: for a Location's 100,000 new children that is a quarter of the
// single writer's work (UIDs, the records and their compression) done on
// another core. Each chunk is read in a read transaction that ends before
// the chunk is sent (the writer may need to remap, which waits for read
// transactions). Closing stop ends the goroutine.
func (d *DB) prepareChildren(children []Child, pipeline, root string, stop <-chan struct{}) <-chan []preparedChild {
	out := make(chan []preparedChild)
	go func() {
		defer close(out)
		for start := 0; start < len(children); start += childChunk {
			chunk := children[start:min(start+childChunk, len(children))]
			pre := make([]preparedChild, len(chunk))
			_ = d.bolt.View(func(tx *bolt.Tx) error {
				state := openBuckets(tx).state
				for i, c := range chunk {
					if state.Get([]byte(c.Ref)) != nil {
						continue
					}
					uid := newUID()
					pre[i] = preparedChild{uid: uid, pipeline: pipeline, root: root,
						record: encodeState(newChildState(c, uid, pipeline, root))}
				}
				return nil
			})
			select {
			case out <- pre:
			case <-stop:
				return
			}
		}
	}()
	return out
}

// pruneChildren drops the edges from parent to children not in keep
// (children whose location key is in keepLoc stay too: their source failed
// to read this time), then prunes what lost its last parent.
func (w *writer) pruneChildren(parent string, keep, keepLoc map[string]bool) error {
	p := prefix(parent)
	var gone []string
	c := w.edges.Cursor()
	for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
		if child := string(k[len(p):]); !keep[child] {
			gone = append(gone, child)
		}
	}
	for _, child := range gone {
		if len(keepLoc) > 0 {
			if st, err := w.getState(child); err != nil {
				return err
			} else if st != nil && keepLoc[st.LocationKey] {
				continue
			}
		}
		if err := w.unlink(parent, child); err != nil {
			return err
		}
		if err := w.prune(child); err != nil {
			return err
		}
	}
	return nil
}

func (w *writer) unlink(parent, child string) error {
	if err := w.edges.Delete(join(parent, child)); err != nil {
		return err
	}
	return w.parents.Delete(join(child, parent))
}

func (b *buckets) hasParents(ref string) bool {
	p := prefix(ref)
	k, _ := b.parents.Cursor().Seek(p)
	return k != nil && bytes.HasPrefix(k, p)
}

func (w *writer) children(ref string) []string {
	p := prefix(ref)
	var out []string
	c := w.edges.Cursor()
	for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
		out = append(out, string(k[len(p):]))
	}
	return out
}

func (w *writer) parentsOf(ref string) []string {
	p := prefix(ref)
	var out []string
	c := w.parents.Cursor()
	for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
		out = append(out, string(k[len(p):]))
	}
	return out
}

// prune handles ref after it lost a parent. With the "keep" strategy an
// entity left without parents stays, marked as an orphan when stitched.
// Otherwise ref and its subtree are deleted, except the part still
// reachable from a parent outside the subtree (eager pruning: a cycle of
// Location entities does not keep itself alive).
func (w *writer) prune(ref string) error {
	if w.keepOrphans {
		if !w.hasParents(ref) {
			w.stitch[ref] = struct{}{}
			if err := w.wakeContender(ref); err != nil {
				return err
			}
		}
		return nil
	}
	// The candidate subtree.
	in := map[string]bool{ref: true}
	order := []string{ref}
	for i := 0; i < len(order); i++ {
		for _, kid := range w.children(order[i]) {
			if !in[kid] {
				in[kid] = true
				order = append(order, kid)
			}
		}
	}
	// What a parent outside the subtree still holds survives, with
	// everything it reaches.
	alive := map[string]bool{}
	var stack []string
	for _, n := range order {
		for _, p := range w.parentsOf(n) {
			if !in[p] {
				alive[n] = true
				stack = append(stack, n)
				break
			}
		}
	}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, kid := range w.children(n) {
			if in[kid] && !alive[kid] {
				alive[kid] = true
				stack = append(stack, kid)
			}
		}
	}
	for _, n := range order {
		if alive[n] {
			continue
		}
		for _, kid := range w.children(n) {
			if err := w.unlink(n, kid); err != nil {
				return err
			}
			if alive[kid] {
				w.stitch[kid] = struct{}{}
			}
		}
		for _, p := range w.parentsOf(n) {
			if err := w.unlink(p, n); err != nil {
				return err
			}
		}
		if err := w.wakeContender(n); err != nil {
			return err
		}
		if err := w.deleteOne(n); err != nil {
			return err
		}
	}
	return nil
}

// pruneForced deletes ref whatever the orphan strategy (an explicit delete)
// and prunes its subtree by the strategy.
func (w *writer) pruneForced(ref string) error {
	if !w.keepOrphans {
		return w.prune(ref)
	}
	for _, kid := range w.children(ref) {
		if err := w.unlink(ref, kid); err != nil {
			return err
		}
		if err := w.prune(kid); err != nil {
			return err
		}
	}
	for _, p := range w.parentsOf(ref) {
		if err := w.unlink(p, ref); err != nil {
			return err
		}
	}
	return w.deleteOne(ref)
}

// wakeContender makes the location that lost a conflict over ref due now,
// so that it claims ref on its next run instead of an interval later.
func (w *writer) wakeContender(ref string) error {
	st, err := w.getState(ref)
	if err != nil || st == nil || st.Contender == "" {
		return err
	}
	if strings.HasPrefix(st.Contender, ProviderPrefix) || w.state.Get([]byte(st.Contender)) == nil {
		return nil
	}
	return w.forceRerun(st.Contender)
}

func (w *writer) deleteOne(ref string) error {
	if err := w.unindex(ref); err != nil {
		return err
	}
	st, err := w.getState(ref)
	if err != nil {
		return err
	}
	if st != nil {
		if err := w.syncRelations(st, nil); err != nil {
			return err
		}
		if err := w.uids.Delete([]byte(st.UID)); err != nil {
			return err
		}
		w.stats.Deleted++
	}
	if v := w.schedule.Get([]byte(ref)); v != nil {
		if err := w.queue.Delete(timeKey(int64(binary.BigEndian.Uint64(v)), ref)); err != nil {
			return err
		}
		if err := w.schedule.Delete([]byte(ref)); err != nil {
			return err
		}
	}
	for _, b := range []*bolt.Bucket{w.state, w.final, w.errs} {
		if err := b.Delete([]byte(ref)); err != nil {
			return err
		}
	}
	delete(w.stitch, ref)
	return nil
}

// forceRerun makes ref due now and forgets its result hash, so that its next
// outcome is written even if equal to the last.
func (w *writer) forceRerun(ref string) error {
	st, err := w.getState(ref)
	if err != nil || st == nil {
		return err
	}
	st.ResultHash, st.Memo = "", nil
	if err := w.putState(st); err != nil {
		return err
	}
	return w.requeue(ref, dueNow)
}

func (w *writer) setErrorFlag(ref string, on bool) error {
	if on {
		return w.errs.Put([]byte(ref), nil)
	}
	return w.errs.Delete([]byte(ref))
}

func (b *buckets) getState(ref string) (*State, error) {
	v := b.state.Get([]byte(ref))
	if v == nil {
		return nil, nil
	}
	return decodeState(ref, v)
}

func (b *buckets) putState(st *State) error {
	return b.state.Put([]byte(st.Ref), encodeState(st))
}

// requeue moves ref's queue entry to time nanos.
func (b *buckets) requeue(ref string, nanos int64) error {
	if old := b.schedule.Get([]byte(ref)); old != nil {
		if int64(binary.BigEndian.Uint64(old)) == nanos {
			return nil
		}
		if err := b.queue.Delete(timeKey(int64(binary.BigEndian.Uint64(old)), ref)); err != nil {
			return err
		}
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(nanos))
	if err := b.schedule.Put([]byte(ref), v[:]); err != nil {
		return err
	}
	return b.queue.Put(timeKey(nanos, ref), nil)
}

// NextUpdate is when ref is due; ok is false when ref is unknown.
func (d *DB) NextUpdate(ref string) (t time.Time, ok bool, err error) {
	err = d.bolt.View(func(tx *bolt.Tx) error {
		if v := open(tx).schedule.Get([]byte(ref)); v != nil {
			t, ok = time.Unix(0, int64(binary.BigEndian.Uint64(v))), true
		}
		return nil
	})
	return t, ok, err
}

// servedKeys are added by stitching; a processed entity must not carry them.
var servedKeys = [][]byte{[]byte(`"uid":`), []byte(`"etag":`), []byte(`"relations":`), []byte(`"status":`)}

// sanitizeProcessed drops metadata.uid, metadata.etag, relations and status
// from a processed entity, because stitching splices its own in. The engine
// never writes them, so the decode is only paid when one of the keys
// appears anywhere in the document.
func sanitizeProcessed(p json.RawMessage) (json.RawMessage, error) {
	found := false
	for _, k := range servedKeys {
		if bytes.Contains(p, k) {
			found = true
			break
		}
	}
	if !found {
		return p, nil
	}
	var m map[string]any
	if err := json.Unmarshal(p, &m); err != nil {
		return nil, fmt.Errorf("processed entity is not a JSON object: %w", err)
	}
	delete(m, "relations")
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok {
		delete(md, "uid")
		delete(md, "etag")
	}
	return json.Marshal(m)
}

// sortedChildren returns children in ref order. bbolt only splits nodes when
// a transaction commits, so keys inserted out of order into one node cost a
// copy of the node's tail each; a Location emitting 100k children in random
// order made its commit quadratic. In ref order, the state, schedule,
// queue, edges and parents keys of the children are all appended in order.
func sortedChildren(cs []Child) []Child {
	if slices.IsSortedFunc(cs, func(a, b Child) int { return strings.Compare(a.Ref, b.Ref) }) {
		return cs
	}
	// Stable, but with pdqsort on (ref, position): SortStableFunc's
	// insertion sort and in-place merges took 0.14 s for a Location's
	// 100,000 children, on the single writer.
	type pos struct {
		ref string
		i   int
	}
	order := make([]pos, len(cs))
	for i, c := range cs {
		order[i] = pos{c.Ref, i}
	}
	slices.SortFunc(order, func(a, b pos) int {
		if c := strings.Compare(a.ref, b.ref); c != 0 {
			return c
		}
		return a.i - b.i
	})
	out := make([]Child, len(cs))
	for i, p := range order {
		out[i] = cs[p.i]
	}
	return out
}

// newUID returns a time-ordered UUID (version 7): it is as unique as
// Backstage's random ones, and the uids bucket receives its keys in order.
func newUID() string {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.NewString()
	}
	return id.String()
}
