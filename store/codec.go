package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/klauspost/compress/s2"

	"github.com/catalog-pipeline/pipeline/catalog"
)

// State records are read and written for every entity on every pass, so
// they use a compact binary form instead of JSON: JSON re-validates the
// embedded raw entity documents on every encode, which profiling showed as
// the single largest cost of a commit. Layout: a version byte, then each
// field as a uvarint length followed by its bytes, lists as a uvarint count
// followed by their items. Fields added later are appended and optional:
// a record that ends before them decodes them as empty.
const stateCodecVersion = 1

// stateCodecCompressed marks a record whose fields after the version byte
// are s2-compressed (klauspost/compress), as records from compressFrom
// bytes were written up to schema 13. A record holds two entity documents, which s2 shrinks by
// about 2.6 at a few hundred MB/s: a 100k catalog's state bucket went from
// 283 to ~110 MB (its pages are most of what a stitch reads and a commit
// rewrites) for no measurable time.
const stateCodecCompressed = 2

// stateCodecDict marks a record whose fields are s2-compressed with
// entityDict (dict.go); records are written so since schema 14.
const stateCodecDict = 3

// compressFrom is the size from which state records and final entities
// are stored compressed; smaller ones would hardly shrink. A variable so
// that tests can compress everything.
var compressFrom = 256

var errCorrupt = errors.New("corrupt state record")

func encodeState(st *State) []byte {
	sp := encodeScratch.Get().(*stateScratch)
	defer encodeScratch.Put(sp)
	sp.fields = appendStateFields(sp.fields[:0], st)
	b := sp.fields
	if len(b) < compressFrom {
		return slices.Clone(b)
	}
	sp.packed = entityDict.Encode(sp.packed[:cap(sp.packed)], b[1:])
	out := make([]byte, 1+len(sp.packed))
	out[0] = stateCodecDict
	copy(out[1:], sp.packed)
	return out
}

// stateScratch holds encodeState's intermediate buffers: a record is
// encoded, compressed and then copied to a slice of its exact size, since
// records may be held long (a Location's encoded children wait for their
// commit). Allocating the intermediates anew was ~0.6 GB of a 100k cold
// ingest's ~10 GB.
type stateScratch struct{ fields, packed []byte }

var encodeScratch = sync.Pool{New: func() any { return new(stateScratch) }}

// encodeStateFields is the uncompressed record (stateCodecVersion).
func encodeStateFields(st *State) []byte { return appendStateFields(nil, st) }

// appendStateFields appends the uncompressed record to b.
func appendStateFields(b []byte, st *State) []byte {
	n := 1 + len(st.UID) + len(st.Pipeline) + len(st.Unprocessed) + len(st.UnprocessedHash) +
		len(st.Processed) + len(st.ResultHash) + len(st.LocationKey) + len(st.Cache) + len(st.Root) + len(st.Contender) + len(st.Memo) + 16*binary.MaxVarintLen32
	for _, e := range st.Errors {
		n += len(e.Name) + len(e.Message) + len(e.Stack) + 3*binary.MaxVarintLen32
	}
	for _, k := range st.RefreshKeys {
		n += len(k) + binary.MaxVarintLen32
	}
	for _, r := range st.Relations {
		n += len(r.Source) + len(r.Type) + len(r.Target) + 3*binary.MaxVarintLen32
	}
	b = slices.Grow(b, n)
	b = append(b, stateCodecVersion)
	for _, s := range []string{st.UID, st.Pipeline} {
		b = appendString(b, s)
	}
	b = appendBytes(b, st.Unprocessed)
	b = appendString(b, st.UnprocessedHash)
	b = appendBytes(b, st.Processed)
	b = appendString(b, st.ResultHash)
	b = binary.AppendUvarint(b, uint64(len(st.Errors)))
	for _, e := range st.Errors {
		b = appendString(appendString(appendString(b, e.Name), e.Message), e.Stack)
	}
	b = appendString(b, st.LocationKey)
	b = appendBytes(b, st.Cache)
	b = binary.AppendUvarint(b, uint64(len(st.RefreshKeys)))
	for _, k := range st.RefreshKeys {
		b = appendString(b, k)
	}
	b = appendString(b, st.Root)
	b = binary.AppendUvarint(b, uint64(st.Failures))
	b = appendString(b, st.Contender)
	b = binary.AppendUvarint(b, uint64(len(st.Relations)))
	for _, r := range st.Relations {
		b = appendString(appendString(appendString(b, r.Source), r.Type), r.Target)
	}
	b = appendBytes(b, st.Memo)
	return b
}

// stateBody returns a record's fields, decompressed into dst (grown when
// short) when the record is compressed: owned says the body is then dst's
// memory, not v's.
func stateBody(dst, v []byte) (body []byte, owned bool, err error) {
	switch {
	case len(v) == 0:
		return nil, false, fmt.Errorf("%w (empty)", errCorrupt)
	case v[0] == stateCodecVersion:
		return v[1:], false, nil
	case v[0] == stateCodecCompressed || v[0] == stateCodecDict:
		n, err := s2.DecodedLen(v[1:])
		if err != nil {
			return nil, false, fmt.Errorf("%w: %w", errCorrupt, err)
		}
		if cap(dst) < n {
			dst = make([]byte, n)
		}
		var b []byte
		if v[0] == stateCodecDict {
			b, err = entityDict.Decode(dst[:n], v[1:])
		} else {
			b, err = s2.Decode(dst[:n], v[1:])
		}
		if err != nil || len(b) != n {
			return nil, false, fmt.Errorf("%w: %w", errCorrupt, err)
		}
		return b, true, nil
	}
	return nil, false, fmt.Errorf("%w (unknown version)", errCorrupt)
}

func decodeState(ref string, v []byte) (*State, error) {
	return decodeStateParts(ref, v, true)
}

// decodeStateParts is decodeState that can leave Processed out (nil), the
// largest field and one processing never reads.
func decodeStateParts(ref string, v []byte, processed bool) (*State, error) {
	body, owned, err := stateBody(nil, v)
	if err != nil {
		return nil, fmt.Errorf("decode state of %s: %w", ref, err)
	}
	// A decompressed body is this record's own: its fields can point into
	// it instead of being copied out of it.
	d := decoder{b: body, owned: owned}
	st := &State{Ref: ref}
	st.UID = d.str()
	st.Pipeline = d.str()
	st.Unprocessed = d.bytes()
	st.UnprocessedHash = d.str()
	if processed {
		st.Processed = d.bytes()
	} else {
		d.raw()
	}
	st.ResultHash = d.str()
	if n := d.count(); n > 0 {
		st.Errors = make([]catalog.SerializedError, n)
		for i := range st.Errors {
			st.Errors[i] = catalog.SerializedError{Name: d.str(), Message: d.str(), Stack: d.str()}
		}
	}
	st.LocationKey = d.str()
	st.Cache = d.bytes()
	if n := d.count(); n > 0 {
		st.RefreshKeys = make([]string, n)
		for i := range st.RefreshKeys {
			st.RefreshKeys[i] = d.str()
		}
	}
	st.Root = d.str()
	st.Failures = d.uint()
	st.Contender = d.str()
	if n := d.count(); n > 0 {
		st.Relations = make([]Relation, n)
		for i := range st.Relations {
			st.Relations[i] = Relation{Source: d.str(), Type: d.str(), Target: d.str()}
		}
	}
	if len(d.b) > 0 {
		st.Memo = d.bytes()
	}
	if d.err != nil {
		return nil, fmt.Errorf("decode state of %s: %w", ref, d.err)
	}
	return st, nil
}

// stitchInputs are the parts of a state record a final entity is built
// from. processed points into the record's memory (bbolt's, valid only in
// its transaction) or into buf, which the next peek reuses: it is read,
// not kept.
type stitchInputs struct {
	uid       string
	processed []byte
	errors    []catalog.SerializedError
	// buf holds the decompressed record; pass it to the next peek.
	buf []byte
}

// peekStitchInputs reads the parts of a state record that stitching uses,
// without copying the entities or decoding the rest: stitching reads every
// changed entity's record, and decodeState's copies of its unprocessed and
// processed entities were most of what the preparing goroutines allocated.
func peekStitchInputs(ref string, v, buf []byte) (stitchInputs, error) {
	in := stitchInputs{buf: buf}
	body, owned, err := stateBody(buf, v)
	if err != nil {
		return in, fmt.Errorf("decode state of %s: %w", ref, err)
	}
	if owned {
		in.buf = body
	}
	d := decoder{b: body}
	in.uid = d.str()
	d.raw() // pipeline
	d.raw() // unprocessed
	d.raw() // unprocessed hash
	if p := d.raw(); len(p) > 0 {
		in.processed = p
	}
	d.raw() // result hash
	if n := d.count(); n > 0 {
		in.errors = make([]catalog.SerializedError, n)
		for i := range in.errors {
			in.errors[i] = catalog.SerializedError{Name: d.str(), Message: d.str(), Stack: d.str()}
		}
	}
	if d.err != nil {
		return stitchInputs{buf: in.buf}, fmt.Errorf("decode state of %s: %w", ref, d.err)
	}
	return in, nil
}

// peekHashes reads a state record's unprocessed and result hashes only,
// for commits that need nothing else.
func peekHashes(v []byte) (unprocessedHash, resultHash []byte, err error) {
	body, _, err := stateBody(nil, v)
	if err != nil {
		return nil, nil, err
	}
	d := decoder{b: body}
	d.raw() // uid
	d.raw() // pipeline
	d.raw() // unprocessed
	unprocessedHash = d.raw()
	d.raw() // processed
	resultHash = d.raw()
	return unprocessedHash, resultHash, d.err
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendBytes(b, s []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// decoder reads the fields back; the first error sticks and later reads
// return zero values, so callers check once at the end.
type decoder struct {
	b   []byte
	err error
	// owned says b is the decoder's caller's own memory, which bytes may
	// return parts of.
	owned bool
}

func (d *decoder) raw() []byte {
	if d.err != nil {
		return nil
	}
	n, k := binary.Uvarint(d.b)
	if k <= 0 || uint64(len(d.b)-k) < n {
		d.err = errCorrupt
		return nil
	}
	out := d.b[k : k+int(n)]
	d.b = d.b[k+int(n):]
	return out
}

func (d *decoder) str() string { return string(d.raw()) }

// bytes copies, because bbolt's value memory is only valid inside the
// transaction, unless the body is owned. An empty field decodes as nil.
func (d *decoder) bytes() []byte {
	r := d.raw()
	switch {
	case len(r) == 0:
		return nil
	case d.owned:
		return r[:len(r):len(r)]
	}
	return append([]byte(nil), r...)
}

func (d *decoder) count() int {
	if d.err != nil {
		return 0
	}
	n, k := binary.Uvarint(d.b)
	if k <= 0 || n > uint64(len(d.b)) {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[k:]
	return int(n)
}

// uint reads a plain number (not a count of items that must follow, so it
// is not bounded by the bytes left).
func (d *decoder) uint() int {
	if d.err != nil {
		return 0
	}
	n, k := binary.Uvarint(d.b)
	if k <= 0 || n > math.MaxInt32 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[k:]
	return int(n)
}
