package store

import (
	"bytes"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/klauspost/compress/s2"

	"github.com/catalog-pipeline/pipeline/catalog"
)

// Status item type and level Backstage uses for processing errors.
const (
	statusTypeProcessing = "backstage.io/catalog-processing"
	statusLevelError     = "error"
	conflictErrorName    = "ConflictError"
	etagLen              = 40
)

func conflictError(msg string) catalog.SerializedError {
	return catalog.SerializedError{Name: conflictErrorName, Message: msg}
}

// stitchAll rebuilds the final entity of every ref marked in this
// transaction. Sorted so that a batch always writes in the same order.
func (w *writer) stitchAll() error {
	refs := make([]string, 0, len(w.stitch))
	for ref := range w.stitch {
		refs = append(refs, ref)
	}
	slices.Sort(refs)
	for _, ref := range refs {
		if err := w.stitchOne(ref); err != nil {
			return fmt.Errorf("stitch %s: %w", ref, err)
		}
	}
	return nil
}

var (
	metadataKey    = []byte(`"metadata":{`)
	annotationsKey = []byte(`"annotations":{`)
)

// stitchOne builds the served entity: the processed entity, every relation
// whose source it is (whoever emitted it), its errors as status.items, a
// stable uid, and an etag that is the hash of everything else — so the etag
// changes exactly when the served JSON does.
//
// The processed entity is JSON the engine wrote (no relations, status, uid
// or etag), so the final document is spliced together from bytes instead
// of being decoded and re-encoded: stitching runs inside the single write
// transaction, where every microsecond is paid by the whole catalog.
//
// The search index (search.go) is updated from the new document in the
// same transaction, so a query never sees the entity half indexed; an
// unchanged etag skips both.
func (w *writer) stitchOne(ref string) error {
	s, err := w.prepareStitch(w.buckets, w.keepOrphans, ref)
	if err != nil || s == nil {
		return err
	}
	return w.applyStitch(s)
}

// stitched is a final entity built by prepareStitch and not yet written.
type stitched struct {
	ref string
	// final is etag ‖ served JSON.
	final []byte
}

// applyStitch writes what prepareStitch built. The search row and facet
// changes are already queued in the indexBuf that prepared it.
func (w *writer) applyStitch(s *stitched) error {
	w.stats.Stitched++
	return w.final.Put([]byte(s.ref), s.final)
}

// prepareStitch builds ref's final entity from what b holds and queues its
// search index changes in w; nil when its etag did not change or it has no
// processed form. It only reads b, and everything it returns or queues is
// copied out of bbolt's memory (the processed entity is read in place, into
// the new final entity and its hash), so it can run on a read transaction
// that ends before the result is written.
func (w *indexBuf) prepareStitch(b *buckets, keepOrphans bool, ref string) (*stitched, error) {
	v := b.state.Get([]byte(ref))
	if v == nil {
		return nil, nil
	}
	st, err := peekStitchInputs(ref, v, w.stateBuf)
	w.stateBuf = st.buf
	if err != nil || st.processed == nil {
		return nil, err
	}
	p := st.processed
	mi := bytes.Index(p, metadataKey)
	if mi < 0 || len(p) < 2 || p[len(p)-1] != '}' {
		return nil, fmt.Errorf("processed entity is not an object with metadata")
	}

	// Relations served on ref, deduplicated across originators; bySource
	// keys are sorted by type, then target.
	var rels [][]byte // each "type ‖ 0 ‖ target"
	pre := prefix(ref)
	c := w.relations(b)
	for k, _ := c.Seek(pre); k != nil && bytes.HasPrefix(k, pre); k, _ = c.Next() {
		rest := k[len(pre):]
		tt := rest[:bytes.LastIndexByte(rest, 0)]
		if n := len(rels); n > 0 && bytes.Equal(rels[n-1], tt) {
			continue
		}
		rels = append(rels, tt) // the cursor's keys stay valid
	}
	if c.err != nil {
		return nil, fmt.Errorf("relations of %s: %w", ref, c.err)
	}

	// With the "keep" strategy, an entity no parent emits any more is
	// served with the orphan annotation, as Backstage does.
	orphan := keepOrphans && !b.hasParents(ref)

	// Every part is length-prefixed so that no two different entities can
	// feed the hash the same bytes.
	h := sha1.New()
	var lb [binary.MaxVarintLen64]byte
	part := func(b []byte) {
		h.Write(binary.AppendUvarint(lb[:0], uint64(len(b))))
		h.Write(b)
	}
	part(p)
	part([]byte(st.uid))
	if orphan {
		part([]byte(catalog.AnnotationOrphan))
	}
	for _, r := range rels {
		part(r)
	}
	for _, e := range st.errors {
		part([]byte(e.Name))
		part([]byte(e.Message))
	}
	var sum [sha1.Size]byte
	etag := hex.EncodeToString(h.Sum(sum[:0]))
	stored := b.final.Get([]byte(ref))
	if len(stored) >= etagLen && string(stored[:etagLen]) == etag {
		return nil, nil
	}

	// out is scratch: flattening copies what it keeps, and packFinal
	// copies the stored form.
	out := slices.Grow(w.outBuf[:0], etagLen+len(p)+64*len(rels)+128)
	defer func() { w.outBuf = out }()
	out = append(out, etag...)
	mEnd := mi + len(metadataKey)
	out = append(out, p[:mEnd]...)
	out = append(out, `"etag":"`...)
	out = append(out, etag...)
	out = append(out, `","uid":`...)
	out = appendJSONString(out, st.uid)
	rest := p[mEnd : len(p)-1]
	if orphan {
		out = append(out, `,"annotations":{"`+catalog.AnnotationOrphan+`":"true"`...)
		if bytes.HasPrefix(rest, annotationsKey) {
			rest = rest[len(annotationsKey):]
			if rest[0] != '}' {
				out = append(out, ',')
			}
		} else {
			out = append(out, '}')
			if rest[0] != '}' {
				out = append(out, ',')
			}
		}
	} else if rest[0] != '}' {
		out = append(out, ',')
	}
	out = append(out, rest...)
	out = append(out, `,"relations":[`...)
	for i, r := range rels {
		if i > 0 {
			out = append(out, ',')
		}
		j := bytes.IndexByte(r, 0)
		out = append(out, `{"type":`...)
		out = appendJSONString(out, string(r[:j]))
		out = append(out, `,"targetRef":`...)
		out = appendJSONString(out, string(r[j+1:]))
		out = append(out, '}')
	}
	out = append(out, ']')
	if len(st.errors) > 0 {
		out = append(out, `,"status":{"items":[`...)
		for i, e := range st.errors {
			if i > 0 {
				out = append(out, ',')
			}
			out = append(out, `{"type":"`+statusTypeProcessing+`","level":"`+statusLevelError+`","message":`...)
			out = appendJSONString(out, e.Name+": "+e.Message)
			out = append(out, `,"error":{"name":`...)
			out = appendJSONString(out, e.Name)
			out = append(out, `,"message":`...)
			out = appendJSONString(out, e.Message)
			out = append(out, `}}`...)
		}
		out = append(out, `]}`...)
	}
	out = append(out, '}')
	if err := w.indexRows(ref, stored, out[etagLen:]); err != nil {
		return nil, fmt.Errorf("search index: %w", err)
	}
	var packed []byte
	packed, w.packBuf = packFinal(out, w.packBuf)
	return &stitched{ref: ref, final: packed}, nil
}

// relations returns a block cursor on b's bysource for prepareStitch. In a
// read transaction it is the cursor of the previous call in the same
// transaction: a batch's entities come in ref order, so consecutive ones
// read on in the block the cursor is in (a block holds ~50 relations),
// where a new cursor per entity sought from the root and parsed its block
// again.
func (w *indexBuf) relations(b *buckets) *blockCursor {
	if b.tx.Writable() {
		return newBlockCursor(b.bySource)
	}
	if w.relCursor == nil || w.relTx != b.tx {
		w.relCursor, w.relTx = newBlockCursor(b.bySource), b.tx
	}
	return w.relCursor
}

// A stored final entity is its etag followed by its served JSON, which is
// s2-compressed behind a 0 byte (JSON never starts with one) when that
// saves space: entity documents shrink by half or more, and the final
// bucket is a fifth of the file that every query reads from.
const finalCompressed = 0

// finalCompressedDict marks a served JSON s2-compressed with entityDict
// (dict.go), as it is written since schema 14.
const finalCompressedDict = 1

// packFinal turns etag ‖ body into the stored form, a new slice of its
// exact size (it is held until its batch commits); scratch is compression
// space, returned for reuse.
func packFinal(final, scratch []byte) (packed, scratchOut []byte) {
	body := final[etagLen:]
	if len(body) < compressFrom {
		return slices.Clone(final), scratch
	}
	scratch = entityDict.Encode(scratch[:cap(scratch)], body)
	packed = make([]byte, etagLen+1+len(scratch))
	copy(packed, final[:etagLen])
	packed[etagLen] = finalCompressedDict
	copy(packed[etagLen+1:], scratch)
	return packed, scratch
}

// appendFinalBody appends the served JSON of a stored final entity to
// dst; ok is false when v holds none.
func appendFinalBody(dst, v []byte) (body []byte, ok bool, err error) {
	if len(v) <= etagLen {
		return dst, false, nil
	}
	b := v[etagLen:]
	if b[0] != finalCompressed && b[0] != finalCompressedDict {
		return append(dst, b...), true, nil
	}
	n, err := s2.DecodedLen(b[1:])
	if err != nil {
		return dst, false, fmt.Errorf("%w: final entity: %w", errCorrupt, err)
	}
	dst = slices.Grow(dst, n)
	tail := dst[len(dst) : len(dst)+n]
	var out []byte
	if b[0] == finalCompressedDict {
		out, err = entityDict.Decode(tail, b[1:])
	} else {
		out, err = s2.Decode(tail, b[1:])
	}
	if err != nil || len(out) != n {
		return dst, false, fmt.Errorf("%w: final entity: %w", errCorrupt, err)
	}
	copy(tail, out) // a no-op: out is tail when it fits
	return dst[:len(dst)+n], true, nil
}

// finalBody is the served JSON of a stored final entity as a new slice,
// nil when v holds none.
func finalBody(v []byte) ([]byte, error) {
	b, _, err := appendFinalBody(nil, v)
	return b, err
}

// appendJSONString appends s as a JSON string literal.
func appendJSONString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
			i++
		case c < 0x20:
			switch c {
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
		case c < utf8.RuneSelf:
			b = append(b, c)
			i++
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				b = append(b, `\ufffd`...)
			} else {
				b = append(b, s[i:i+size]...)
			}
			i += size
		}
	}
	return append(b, '"')
}
