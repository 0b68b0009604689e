package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
)

// The search index mirrors Backstage's `search` table (buildEntitySearch.ts,
// reference §2.7): every served entity is flattened into rows of a dotted,
// lowercased key and a lowercased value, with the original value kept for
// facets. The rows live in two buckets, written in the stitch transaction
// with the final entity they are flattened from, so that a reader never
// sees an entity half indexed:
//
//	search     rows path ‖ 0 ‖ value ‖ 0 ‖ ref → flags ‖ [original],
//	           packed into sorted blocks (blocks.go)
//	facets     path ‖ 0 ‖ value ‖ 0 ‖ original → 8-byte big-endian row count
//	           path ‖ 1 → number of entities with a value under path
//
// Large stitch batches add their search rows as segments beside the search
// bucket, which queries read merged with it (segments.go).
//
// The facet counts are keyed by the lowercased value before the original,
// so that the count of an equality filter (totalItems of kind=component)
// is the sum of a few adjacent keys instead of a walk of its rows. The
// per-path entity count tells an ordered query whether every entity has
// the order field, in which case its total is the filter's count.
//
// A row with no value (JSON null, a value longer than 200 characters or one
// holding a zero byte) has the value nullValue, which sorts after every
// real value; it answers "exists" filters only. Every entity also has the
// reserved row with the empty path and the empty value: its search keys
// list the served refs in ref order, and its facet count is the number of
// served entities.
//
// Where this differs from Backstage: keys that differ only in case
// (spec.Owner and spec.owner) are merged instead of failing the entity
// with an InputError, because stitching cannot reject an entity; among
// duplicate rows the first original value is kept, as in Backstage;
// metadata.etag is not indexed (Backstage skips it too).

const (
	// maxSearchKeyLen and maxSearchValueLen are Backstage's limits, in
	// UTF-16 code units like JavaScript's String.length: longer keys are
	// not indexed, longer values are indexed without a value.
	maxSearchKeyLen   = 200
	maxSearchValueLen = 200
	// nullValue marks a row without a value. 0xff never occurs in UTF-8,
	// and lowercasing turns invalid bytes into U+FFFD, so no real value (nor
	// a query value) can equal it.
	nullValue = "\xff"
	// maxFlattenDepth bounds the recursion, like encoding/json.
	maxFlattenDepth = 10000
)

// Flags stored as the first byte of a search row's value.
const (
	// rowMin marks the smallest valued row of one entity under one path:
	// an ascending walk of the path serves the entity at this row only, so
	// that an entity with several values (tags) appears once in a page
	// and a cursor never brings it back.
	rowMin byte = 1 << iota
	// rowMax is the same for a descending walk.
	rowMax
	// rowOrig says that the original value follows the flags because it
	// differs from the lowercased value in the key.
	rowOrig
)

// row is one flattened (key, value) pair: path and value are lowercased;
// value is nullValue when the row has none (orig is then empty).
type row struct {
	path, value, orig string
	// seq is the order in which flatten found the row; it only breaks
	// ties between duplicates and is not stored.
	seq int32
}

func (r row) null() bool { return r.value == nullValue }

func compareRows(a, b row) int {
	if c := strings.Compare(a.path, b.path); c != 0 {
		return c
	}
	return strings.Compare(a.value, b.value)
}

var relationsPath = []byte("relations")

// specialPaths are left out of the generic walk, as Backstage does:
// relations are indexed as relations.<type>, name, namespace and uid are
// added explicitly, and the rest is not searchable. The comparison is on
// the original (case-preserved) path, as in Backstage.
var specialPaths = map[string]bool{
	"attachments": true, "relations": true, "status": true,
	"metadata.name": true, "metadata.namespace": true, "metadata.uid": true, "metadata.etag": true,
}

// flatten turns a served entity (JSON) into its sorted, deduplicated search
// rows. It scans the bytes once instead of decoding into maps: it runs in
// the single write transaction for every stitched entity.
func flatten(body []byte) ([]row, error) {
	return flattenWith(body, map[string]string{})
}

// flattenWith is flatten with a cache of keys (raw dotted path → the
// lowercased key, or "" when the key is not indexed) that the writer keeps
// for a transaction: a batch of entities repeats the same few hundred
// paths, so most lowercasing and length checks are one map lookup.
func flattenWith(body []byte, keys map[string]string) ([]row, error) {
	return flattenInto(make([]row, 0, 48), body, keys)
}

// flattenInto is flattenWith appending to rows.
func flattenInto(rows []row, body []byte, keys map[string]string) ([]row, error) {
	// One string copy of the body: unescaped strings (nearly all) are cut
	// from it without allocating.
	f := flattener{b: body, s: string(body), keys: keys, rows: rows}
	f.ws()
	if f.i >= len(f.b) || f.b[f.i] != '{' {
		return nil, errors.New("entity is not a JSON object")
	}
	if err := f.object(0); err != nil {
		return nil, err
	}
	f.ws()
	if f.i != len(f.b) {
		return nil, f.errorf("data after the entity")
	}
	f.explicit("metadata.name", f.name)
	f.explicit("metadata.namespace", f.namespace)
	if f.namespace == nil || f.namespace.s == "" {
		f.add("metadata.namespace", "default", false)
	}
	f.explicit("metadata.uid", f.uid)
	f.rows = append(f.rows, row{seq: int32(len(f.rows))}) // the reserved row
	rows = normalizeRows(f.rows)
	for i := range rows {
		rows[i].seq = 0
	}
	return rows, nil
}

// normalizeRows sorts rows by path then value and drops duplicates,
// keeping the original value seen first, as Backstage does.
func normalizeRows(rows []row) []row {
	slices.SortFunc(rows, func(a, b row) int {
		if c := compareRows(a, b); c != 0 {
			return c
		}
		return int(a.seq - b.seq)
	})
	return slices.CompactFunc(rows, func(a, b row) bool { return a.path == b.path && a.value == b.value })
}

// scalar is a captured leaf: s is its string form, null is JSON null (or a
// non-scalar where a scalar was expected).
type scalar struct {
	s    string
	null bool
}

type flattener struct {
	b    []byte
	s    string // b as a string
	i    int
	path []byte
	rows []row
	keys map[string]string
	tmp  []byte
	// name, namespace and uid are metadata's own, captured for the
	// explicit rows.
	name, namespace, uid *scalar
}

func (f *flattener) errorf(format string, args ...any) error {
	return fmt.Errorf("entity JSON at byte %d: %s", f.i, fmt.Sprintf(format, args...))
}

func (f *flattener) ws() {
	for f.i < len(f.b) {
		switch f.b[f.i] {
		case ' ', '\t', '\n', '\r':
			f.i++
		default:
			return
		}
	}
}

// key is the indexed form of a raw dotted path: lowercased, or "" when
// the path is not indexed (empty, too long, or holding a zero byte).
func (f *flattener) key(raw []byte) string {
	if k, ok := f.keys[string(raw)]; ok {
		return k
	}
	k := strings.ToLower(string(raw))
	if k == "" || utf16Len(k) > maxSearchKeyLen || strings.IndexByte(k, 0) >= 0 {
		k = ""
	}
	f.keys[string(raw)] = k
	return k
}

// joinKey is the key of prefix + "." + suffix.
func (f *flattener) joinKey(prefix []byte, suffix string) string {
	f.tmp = append(append(append(f.tmp[:0], prefix...), '.'), suffix...)
	return f.key(f.tmp)
}

// add appends the row for key (already indexed form; "" skips) = original
// value (null: no value), applying Backstage's lowercasing and value
// length limit. Values holding a zero byte are indexed without a value,
// because 0 separates the parts of search keys.
func (f *flattener) add(k, value string, null bool) {
	if k == "" {
		return
	}
	seq := int32(len(f.rows))
	if null {
		f.rows = append(f.rows, row{path: k, value: nullValue, seq: seq})
		return
	}
	v := strings.ToLower(value)
	if utf16Len(v) > maxSearchValueLen || strings.IndexByte(v, 0) >= 0 {
		f.rows = append(f.rows, row{path: k, value: nullValue, seq: seq})
		return
	}
	f.rows = append(f.rows, row{path: k, value: v, orig: value, seq: seq})
}

func (f *flattener) explicit(key string, s *scalar) {
	if s == nil {
		f.add(key, "", true)
	} else {
		f.add(key, s.s, s.null)
	}
}

// object walks the object at f.i; depth 0 is the entity itself, whose
// "metadata" object (depth 1) holds the explicit fields.
func (f *flattener) object(depth int) error {
	if depth > maxFlattenDepth {
		return f.errorf("nested too deeply")
	}
	f.i++ // {
	f.ws()
	if f.i < len(f.b) && f.b[f.i] == '}' {
		f.i++
		return nil
	}
	base := len(f.path)
	inMetadata := depth == 1 && string(f.path) == "metadata"
	for {
		f.ws()
		if f.i >= len(f.b) || f.b[f.i] != '"' {
			return f.errorf("expected an object key")
		}
		key, err := f.str()
		if err != nil {
			return err
		}
		f.ws()
		if f.i >= len(f.b) || f.b[f.i] != ':' {
			return f.errorf("expected ':'")
		}
		f.i++
		f.ws()
		if base > 0 {
			f.path = append(f.path, '.')
		}
		f.path = append(f.path, key...)
		switch {
		case inMetadata && (key == "name" || key == "namespace" || key == "uid"):
			s, err := f.capture()
			if err != nil {
				return err
			}
			switch key {
			case "name":
				f.name = &s
			case "namespace":
				f.namespace = &s
			default:
				f.uid = &s
			}
		case depth == 0 && key == "relations":
			if err := f.relations(); err != nil {
				return err
			}
		case specialPaths[string(f.path)]:
			if err := f.skip(depth); err != nil {
				return err
			}
		default:
			if err := f.value(depth); err != nil {
				return err
			}
		}
		f.path = f.path[:base]
		f.ws()
		if f.i >= len(f.b) {
			return f.errorf("unterminated object")
		}
		switch f.b[f.i] {
		case ',':
			f.i++
		case '}':
			f.i++
			return nil
		default:
			return f.errorf("expected ',' or '}'")
		}
	}
}

// value emits the rows of the value at f.i under the current path.
func (f *flattener) value(depth int) error {
	if f.i >= len(f.b) {
		return f.errorf("unexpected end")
	}
	switch c := f.b[f.i]; c {
	case '{':
		return f.object(depth + 1)
	case '[':
		return f.array(depth)
	default:
		s, err := f.scalar()
		if err != nil {
			return err
		}
		f.add(f.key(f.path), s.s, s.null)
		return nil
	}
}

// array emits every item under the array's own path and, for a string
// item, the row "path.item" = "true": that is how a filter asks for two
// tags at once (Backstage's NOTE(freben) in buildEntitySearch.ts).
func (f *flattener) array(depth int) error {
	if depth > maxFlattenDepth {
		return f.errorf("nested too deeply")
	}
	f.i++ // [
	f.ws()
	if f.i < len(f.b) && f.b[f.i] == ']' {
		f.i++
		return nil
	}
	for {
		f.ws()
		if f.i < len(f.b) && f.b[f.i] == '"' {
			s, err := f.str()
			if err != nil {
				return err
			}
			f.add(f.key(f.path), s, false)
			f.add(f.joinKey(f.path, s), "true", false)
		} else if err := f.value(depth + 1); err != nil {
			return err
		}
		f.ws()
		if f.i >= len(f.b) {
			return f.errorf("unterminated array")
		}
		switch f.b[f.i] {
		case ',':
			f.i++
		case ']':
			f.i++
			return nil
		default:
			return f.errorf("expected ',' or ']'")
		}
	}
}

// relations indexes the served relations as relations.<type> = targetRef.
func (f *flattener) relations() error {
	if f.i >= len(f.b) {
		return f.errorf("unexpected end")
	}
	if f.b[f.i] != '[' {
		return f.skip(0)
	}
	f.i++
	f.ws()
	if f.i < len(f.b) && f.b[f.i] == ']' {
		f.i++
		return nil
	}
	for {
		f.ws()
		if f.i >= len(f.b) || f.b[f.i] != '{' {
			if err := f.skip(0); err != nil {
				return err
			}
		} else {
			f.i++
			var typ, target *scalar
			for {
				f.ws()
				if f.i < len(f.b) && f.b[f.i] == '}' {
					f.i++
					break
				}
				if f.i >= len(f.b) || f.b[f.i] != '"' {
					return f.errorf("expected an object key")
				}
				key, err := f.str()
				if err != nil {
					return err
				}
				f.ws()
				if f.i >= len(f.b) || f.b[f.i] != ':' {
					return f.errorf("expected ':'")
				}
				f.i++
				f.ws()
				switch key {
				case "type", "targetRef":
					s, err := f.capture()
					if err != nil {
						return err
					}
					if key == "type" {
						typ = &s
					} else {
						target = &s
					}
				default:
					if err := f.skip(0); err != nil {
						return err
					}
				}
				f.ws()
				if f.i < len(f.b) && f.b[f.i] == ',' {
					f.i++
				}
			}
			if typ != nil && !typ.null {
				if target == nil {
					target = &scalar{null: true}
				}
				f.add(f.joinKey(relationsPath, typ.s), target.s, target.null)
			}
		}
		f.ws()
		if f.i >= len(f.b) {
			return f.errorf("unterminated array")
		}
		switch f.b[f.i] {
		case ',':
			f.i++
		case ']':
			f.i++
			return nil
		default:
			return f.errorf("expected ',' or ']'")
		}
	}
}

// capture reads a scalar, or skips a non-scalar and reports it as null.
func (f *flattener) capture() (scalar, error) {
	if f.i < len(f.b) && (f.b[f.i] == '{' || f.b[f.i] == '[') {
		return scalar{null: true}, f.skip(0)
	}
	return f.scalar()
}

// scalar reads a string, number, boolean or null in its JavaScript
// String() form, which is what Backstage stores.
func (f *flattener) scalar() (scalar, error) {
	if f.i >= len(f.b) {
		return scalar{}, f.errorf("unexpected end")
	}
	switch c := f.b[f.i]; {
	case c == '"':
		s, err := f.str()
		return scalar{s: s}, err
	case c == 't':
		return scalar{s: "true"}, f.literal("true")
	case c == 'f':
		return scalar{s: "false"}, f.literal("false")
	case c == 'n':
		return scalar{null: true}, f.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		return f.number()
	}
	return scalar{}, f.errorf("unexpected %q", f.b[f.i])
}

func (f *flattener) literal(lit string) error {
	if !bytes.HasPrefix(f.b[f.i:], []byte(lit)) {
		return f.errorf("invalid literal")
	}
	f.i += len(lit)
	return nil
}

func (f *flattener) number() (scalar, error) {
	start := f.i
	plain := true // -?[0-9]+
	for f.i < len(f.b) {
		c := f.b[f.i]
		if c >= '0' && c <= '9' || c == '-' && f.i == start {
			f.i++
			continue
		}
		if c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-' {
			plain = false
			f.i++
			continue
		}
		break
	}
	lit := string(f.b[start:f.i])
	digits := len(lit)
	if lit != "" && lit[0] == '-' {
		digits--
	}
	if plain && digits > 0 && digits <= 15 {
		if lit == "-0" {
			lit = "0"
		}
		return scalar{s: lit}, nil
	}
	v, err := strconv.ParseFloat(lit, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return scalar{}, f.errorf("invalid number %q", lit)
	}
	return scalar{s: jsNumber(v)}, nil
}

// jsNumber formats v as JavaScript's String(v) does.
func jsNumber(v float64) string {
	switch {
	case v == 0:
		return "0"
	case math.IsInf(v, 1):
		return "Infinity"
	case math.IsInf(v, -1):
		return "-Infinity"
	}
	if a := math.Abs(v); a >= 1e-6 && a < 1e21 {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	s := strconv.FormatFloat(v, 'e', -1, 64)
	mant, exp, _ := strings.Cut(s, "e")
	return mant + "e" + exp[:1] + strings.TrimLeft(exp[1:], "0")
}

// str reads a JSON string. Strings without escapes (nearly all) are cut
// from the input; the rest go through encoding/json.
func (f *flattener) str() (string, error) {
	start := f.i
	f.i++ // "
	ascii, escaped := true, false
	for f.i < len(f.b) {
		c := f.b[f.i]
		switch {
		case c == '"':
			f.i++
			raw := f.b[start+1 : f.i-1]
			if !escaped && (ascii || utf8.Valid(raw)) {
				return f.s[start+1 : f.i-1], nil
			}
			var s string
			if err := json.Unmarshal(f.b[start:f.i], &s); err != nil {
				return "", f.errorf("invalid string: %v", err)
			}
			return s, nil
		case c == '\\':
			escaped = true
			f.i += 2
		case c < 0x20:
			return "", f.errorf("control character in string")
		case c >= utf8.RuneSelf:
			ascii = false
			f.i++
		default:
			f.i++
		}
	}
	return "", f.errorf("unterminated string")
}

// skip passes over one value without emitting rows.
func (f *flattener) skip(depth int) error {
	if f.i >= len(f.b) {
		return f.errorf("unexpected end")
	}
	switch f.b[f.i] {
	case '{', '[':
		if depth > maxFlattenDepth {
			return f.errorf("nested too deeply")
		}
		closer := byte('}')
		if f.b[f.i] == '[' {
			closer = ']'
		}
		f.i++
		for {
			f.ws()
			if f.i >= len(f.b) {
				return f.errorf("unterminated value")
			}
			switch f.b[f.i] {
			case closer:
				f.i++
				return nil
			case ',', ':':
				f.i++
			default:
				if err := f.skip(depth + 1); err != nil {
					return err
				}
			}
		}
	case '"':
		_, err := f.str()
		return err
	default:
		_, err := f.scalar()
		return err
	}
}

// utf16Len is the JavaScript length of s.
func utf16Len(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < utf8.RuneSelf {
			n++
			continue
		}
		for _, r := range s[i:] {
			n++
			if r >= 0x10000 {
				n++
			}
		}
		return n
	}
	return n
}

// --- stored forms -----------------------------------------------------------

// rowFlags computes the rowMin/rowMax flags of sorted rows: per path, the
// first and the last row with a value.
func rowFlags(rows []row, flags []byte) []byte {
	flags = slices.Grow(flags[:0], len(rows))[:len(rows)]
	clear(flags)
	for i := 0; i < len(rows); {
		j := i
		first, last := -1, -1
		for ; j < len(rows) && rows[j].path == rows[i].path; j++ {
			if !rows[j].null() {
				if first < 0 {
					first = j
				}
				last = j
			}
		}
		if first >= 0 {
			flags[first] |= rowMin
			flags[last] |= rowMax
		}
		i = j
	}
	return flags
}

// searchKey appends path ‖ 0 ‖ value ‖ 0 ‖ ref to k.
func searchKey(k []byte, path, value, ref string) []byte {
	k = append(k, path...)
	k = append(k, 0)
	k = append(k, value...)
	k = append(k, 0)
	return append(k, ref...)
}

// splitSearchKey cuts a search key into its value and ref; path is known to
// the caller (paths and refs hold no zero byte, values may not either).
func splitSearchKey(k []byte, pathLen int) (value, ref []byte) {
	rest := k[pathLen+1:]
	i := bytes.LastIndexByte(rest, 0)
	if i < 0 {
		return rest, nil
	}
	return rest[:i], rest[i+1:]
}

// --- maintenance in the write transaction ----------------------------------

// indexRows queues the search row and facet changes that make ref's rows
// those of body, its new served JSON; stored is its final entity as
// stored (etag ‖ JSON), nil if it has none. It only reads, so it can run
// on a read transaction (StitchPending).
func (w *indexBuf) indexRows(ref string, stored, body []byte) error {
	rows, err := w.flatten(&w.newRows, body)
	if err != nil {
		return err
	}
	old, err := w.rowsOf(ref, stored)
	if err != nil {
		return err
	}
	if slices.Equal(old, rows) {
		return nil
	}
	return w.syncRows(ref, old, rows)
}

// storedRows returns the rows ref has in the index: those of its stored
// final entity, flattened again. The index holds exactly the flattened
// final entities (written in the same transaction; CheckIndex verifies
// it), so the rows are not kept a second time: until schema 10 a searchref
// bucket held them, 90 MB at 100k entities and a large write for every
// stitch, to save this flatten of the entities that change. Changing what
// flatten returns for a stored entity therefore needs a schema upgrade
// that rebuilds the index.
func (w *indexBuf) storedRows(b *buckets, ref string) ([]row, error) {
	return w.rowsOf(ref, b.final.Get([]byte(ref)))
}

// rowsOf is storedRows of the stored final entity, already read.
func (w *indexBuf) rowsOf(ref string, stored []byte) ([]row, error) {
	body, ok, err := appendFinalBody(w.bodyBuf[:0], stored)
	if err != nil || !ok {
		return nil, err
	}
	w.bodyBuf = body
	rows, err := w.flatten(&w.oldRows, body)
	if err != nil {
		return nil, fmt.Errorf("stored entity %s: %w", ref, err)
	}
	return rows, nil
}

// flatten is flattenWith on the buffer's cache of keys, into *buf, whose
// memory the next call with it reuses: the rows must not outlive the
// entity (queueRow and facet copy what they keep). Two buffers, for an
// entity's new rows and its stored ones, spare the stitch of 100k entities
// ~270 MB of allocations.
func (w *indexBuf) flatten(buf *[]row, body []byte) ([]row, error) {
	if w.keys == nil {
		w.keys = map[string]string{}
	}
	rows, err := flattenInto((*buf)[:0], body, w.keys)
	if rows != nil {
		*buf = rows
	}
	return rows, err
}

// unindex removes every search row of ref (the entity is no longer
// served). It runs before the final entity is deleted.
func (w *writer) unindex(ref string) error {
	old, err := w.storedRows(w.buckets, ref)
	if err != nil || old == nil {
		return err
	}
	return w.syncRows(ref, old, nil)
}

// syncRows turns the stored rows old of ref into rows (both sorted): rows
// that disappeared are deleted, new ones put, and kept rows rewritten only
// when their original value or their min/max flags moved. Facet count
// changes are summed in the writer and applied once per transaction
// (flushFacets), because a batch of entities moves the same few counters
// (kind, spec.type) hundreds of times.
func (w *indexBuf) syncRows(ref string, old, rows []row) error {
	w.oldFlags = rowFlags(old, w.oldFlags)
	w.newFlags = rowFlags(rows, w.newFlags)
	put := func(i int, fresh bool) {
		r := rows[i]
		fl := w.newFlags[i]
		if r.orig != r.value && !r.null() {
			fl |= rowOrig
		}
		w.queueRow(ref, r.path, r.value, true, fresh, fl, r.orig)
	}
	i, j := 0, 0
	for i < len(old) || j < len(rows) {
		c := 0
		switch {
		case i == len(old):
			c = 1
		case j == len(rows):
			c = -1
		default:
			c = compareRows(old[i], rows[j])
		}
		switch {
		case c < 0: // gone
			w.queueRow(ref, old[i].path, old[i].value, false, false, 0, "")
			w.facet(old[i], -1)
			if w.oldFlags[i]&rowMin != 0 {
				w.valued(old[i].path, -1)
			}
			i++
		case c > 0: // new
			put(j, true)
			w.facet(rows[j], 1)
			if w.newFlags[j]&rowMin != 0 {
				w.valued(rows[j].path, 1)
			}
			j++
		default:
			of, nf := w.oldFlags[i], w.newFlags[j]
			if old[i].orig != rows[j].orig || of != nf {
				put(j, false)
				if old[i].orig != rows[j].orig {
					w.facet(old[i], -1)
					w.facet(rows[j], 1)
				}
				switch {
				case of&rowMin != 0 && nf&rowMin == 0:
					w.valued(rows[j].path, -1)
				case of&rowMin == 0 && nf&rowMin != 0:
					w.valued(rows[j].path, 1)
				}
			}
			i++
			j++
		}
	}
	return nil
}

// indexBuf holds a transaction's pending search writes and facet count
// changes, and scratch space reused between entities. The writer has one;
// StitchPending gives each goroutine that prepares final entities its own,
// which the goroutine sorts (seal) and the writer merges at flush time.
type indexBuf struct {
	searchOps []searchOp
	// newRows and oldRows are flatten's buffers.
	newRows, oldRows []row
	// pathIDs numbers the paths of the queued writes (searchOp.path), in
	// pathNames.
	pathIDs            map[string]int32
	pathNames          []string
	arena              []byte
	facetDelta         map[string]*int64
	key                []byte // scratch for facet keys
	keys               map[string]string
	oldFlags, newFlags []byte

	// facetRun is facetDelta in key order, set by seal.
	facetRun []facetOp
	// bodyBuf holds a stored final entity decompressed for rowsOf.
	bodyBuf []byte
	// stateBuf, outBuf and packBuf are prepareStitch's scratch: a state
	// record decompressed, the final entity built, and it compressed.
	stateBuf, outBuf, packBuf []byte
	// relCursor reads bysource for prepareStitch in the read transaction
	// relTx (relations).
	relCursor *blockCursor
	relTx     *bolt.Tx
	// parts are sealed buffers whose changes come after this one's.
	parts []*indexBuf
}

// facetOp is the summed change of one facet count.
type facetOp struct {
	key   string
	delta int64
}

// sortSearch puts the pending search writes in key order; two writes to one
// key (an entity deleted then indexed again in the same transaction) keep
// their order.
//
// A key is path ‖ 0 ‖ value ‖ 0 ‖ ref, so key order is path order first:
// the writes are put in path order by a counting sort (queueRow numbered
// the paths), then each path's writes are sorted by the rest of their key.
// Pprof put the plain sort of whole keys at a tenth of a cold ingest's
// CPU; most of its comparisons were between long common path prefixes.
func (w *indexBuf) sortSearch() {
	ops := w.searchOps
	if len(ops) < 2 {
		return
	}
	ids := make([]int32, len(w.pathNames))
	for i := range ids {
		ids[i] = int32(i)
	}
	slices.SortFunc(ids, func(a, b int32) int { return strings.Compare(w.pathNames[a], w.pathNames[b]) })
	start := make([]int, len(ids)+1) // start[rank]: where the path of that rank begins
	rank := make([]int32, len(ids))
	for r, id := range ids {
		rank[id] = int32(r)
	}
	for _, op := range ops {
		start[rank[op.path]+1]++
	}
	for r := 1; r < len(start); r++ {
		start[r] += start[r-1]
	}
	sorted := make([]searchOp, len(ops))
	next := slices.Clone(start[:len(ids)])
	for _, op := range ops {
		r := rank[op.path]
		sorted[next[r]] = op
		next[r]++
	}
	for r, id := range ids {
		if start[r+1]-start[r] < 2 {
			continue // most per-item paths (spec.dependsOn.<ref>) have one write
		}
		cut := len(w.pathNames[id]) + 1
		slices.SortFunc(sorted[start[r]:start[r+1]], func(a, b searchOp) int {
			if c := bytes.Compare(a.kv[cut:a.klen], b.kv[cut:b.klen]); c != 0 {
				return c
			}
			return int(a.seq - b.seq)
		})
	}
	w.searchOps = sorted
}

// takeFacets returns the pending facet count changes in key order, without
// the ones that summed to zero, and forgets them.
func (w *indexBuf) takeFacets() []facetOp {
	run := make([]facetOp, 0, len(w.facetDelta))
	for k, d := range w.facetDelta {
		if *d != 0 {
			run = append(run, facetOp{k, *d})
		}
	}
	clear(w.facetDelta)
	slices.SortFunc(run, func(a, b facetOp) int { return strings.Compare(a.key, b.key) })
	return run
}

// seal sorts the changes of a buffer prepared outside the writer, so that
// the sorting is done by the preparing goroutine and the writer only
// merges.
func (w *indexBuf) seal() {
	w.sortSearch()
	w.facetRun = w.takeFacets()
}

// absorb makes the sealed buffer o's changes follow w's own.
func (w *indexBuf) absorb(o *indexBuf) { w.parts = append(w.parts, o) }

// mergeRuns visits the items of runs, each sorted by cmp, in cmp order;
// equal items are visited in run order. There are few runs (one per CPU
// plus the writer's own), so the smallest head is found by a scan.
func mergeRuns[T any](runs [][]T, cmp func(a, b T) int, visit func(T) error) error {
	for {
		best := -1
		for r, run := range runs {
			if len(run) > 0 && (best < 0 || cmp(run[0], runs[best][0]) < 0) {
				best = r
			}
		}
		if best < 0 {
			return nil
		}
		if err := visit(runs[best][0]); err != nil {
			return err
		}
		runs[best] = runs[best][1:]
	}
}

// searchOp is a pending write to the search index: a put, or a delete.
// fresh says that the key is in no bucket of the index (its entity did not
// have the row), so a put needs no lookup (segments.go).
//
// The key and a put's value are one slice of the arena, key first: a
// stitch batch of 4,000 new entities queues ~100k writes, two batches are
// in flight, and the sort moves them; 40 bytes each instead of 64.
type searchOp struct {
	kv    []byte
	klen  uint32
	seq   int32
	path  int32 // its number in the indexBuf's pathNames
	fresh bool
	put   bool
}

func (o *searchOp) key() []byte { return o.kv[:o.klen:o.klen] }

// value is a put's value; nil for a delete.
func (o *searchOp) value() []byte {
	if !o.put {
		return nil
	}
	return o.kv[o.klen:]
}

// queueRow records the write of ref's row path = value: a put of flags ‖
// [orig], or a delete.
//
// Keys and values are cut from chunks that live as long as the
// transaction: bbolt keeps the value slices until commit.
func (w *indexBuf) queueRow(ref, path, value string, put, fresh bool, flags byte, orig string) {
	n := len(path) + len(value) + len(ref) + 2
	if put {
		n += 1 + len(orig)
	}
	if cap(w.arena)-len(w.arena) < n {
		w.arena = make([]byte, 0, max(n, 64<<10))
	}
	start := len(w.arena)
	w.arena = searchKey(w.arena, path, value, ref)
	id, ok := w.pathIDs[path]
	if !ok {
		if w.pathIDs == nil {
			w.pathIDs = map[string]int32{}
		}
		id = int32(len(w.pathNames))
		w.pathIDs[path] = id
		w.pathNames = append(w.pathNames, path)
	}
	op := searchOp{klen: uint32(len(w.arena) - start), seq: int32(len(w.searchOps)), path: id, fresh: fresh, put: put}
	if put {
		w.arena = append(w.arena, flags)
		if flags&rowOrig != 0 {
			w.arena = append(w.arena, orig...)
		}
	}
	op.kv = w.arena[start:len(w.arena):len(w.arena)]
	w.searchOps = append(w.searchOps, op)
}

// flushSearch applies the pending search writes in key order. Index rows
// of a batch land all over the bucket; sorted, consecutive writes reuse
// the B+tree path and pages just touched, and a young bucket's leaves do
// not grow by insertions in their middle.
//
// A StitchPending batch (bulk) with at least segmentMinOps writes puts its
// new rows in a segment of their own instead (segments.go).
func (w *writer) flushSearch() error {
	w.sortSearch()
	runs := [][]searchOp{w.searchOps}
	n := len(w.searchOps)
	for _, p := range w.parts {
		runs = append(runs, p.searchOps)
		n += len(p.searchOps)
	}
	err := w.applySearchOps(runs, w.bulk && n >= segmentMinOps || segmentsAlways)
	w.searchOps = w.searchOps[:0]
	return err
}

// uncountedFacets are paths whose values are unique or nearly so: a count
// per value would cost a facets write per entity (profiling showed the
// facet flush at an eighth of the index cost, mostly such values) and
// save nothing, since such a facet is as long as the path's search rows,
// from which Facets computes it instead. The relations listed are the
// reverse ones, whose targets are the entities that point here (a group's
// ownerOf lists its components): nearly every target occurs once, and
// they held 37% of the facet counts of a generated 100k catalog (not
// counting them took its stitch phase from 18.3-19.2 s to 15.5-16.7 s).
// Backstage's own pickers facet on the forward ones (relations.ownedBy).
var uncountedFacets = map[string]bool{
	"metadata.uid": true, "metadata.name": true, "metadata.title": true, "metadata.description": true,
	"relations.ownerof": true, "relations.haspart": true, "relations.dependencyof": true,
	"relations.apiconsumedby": true, "relations.apiprovidedby": true, "relations.hasmember": true,
	"relations.parentof": true,
}

// uncountedFamilies are further paths left uncounted, with every path
// under them: annotations, links and profiles (slugs, URLs, e-mail
// addresses), and the lists of other entities' refs (dependsOn,
// providesApis, consumesApis, a Location's targets, a group's children)
// with their forward relations, whose values are as many as the entities
// that list them. With the per-item rows of such lists (spec.dependsOn.x =
// true, one path per item) they were 72% of the facet counts of the
// generated 100k catalog (320k of 444k keys), and the facet writes were a
// seventh of the stitch phase and a third of its heap (an experiment
// without them: 14.6 / 12.8 s instead of 17.1 / 14.8 s, 293 / 272 MiB
// anonymous instead of 407 / 400). Counts and facets of these paths are
// computed from their search rows instead: the same answers, found by a
// walk.
var uncountedFamilies = []string{
	"metadata.annotations", "metadata.links", "spec.profile",
	"spec.dependson", "spec.dependencyof", "spec.providesapis", "spec.consumesapis",
	"spec.children", "spec.targets", "spec.target",
	"relations.dependson", "relations.providesapi", "relations.consumesapi",
}

// uncounted says whether the values of path have no facet counts.
func uncounted(path string) bool {
	return uncountedFacets[path] || inUncountedFamily(path)
}

// inUncountedFamily says whether path is under uncountedFamilies. Such a
// path has no count of the entities with a value either (path ‖ 1): the
// per-item paths (spec.dependsOn.x) would need one per item.
func inUncountedFamily(path string) bool {
	for _, f := range uncountedFamilies {
		if strings.HasPrefix(path, f) && (len(path) == len(f) || path[len(f)] == '.') {
			return true
		}
	}
	return false
}

// facet records a change of the count of r's (path, value, original).
func (w *indexBuf) facet(r row, delta int64) {
	if r.null() || uncounted(r.path) {
		return
	}
	w.key = append(append(append(append(append(w.key[:0], r.path...), 0), r.value...), 0), r.orig...)
	w.countDelta(w.key, delta)
}

// valued records a change of the number of entities with a value under
// path (the rows carrying rowMin).
func (w *indexBuf) valued(path string, delta int64) {
	if inUncountedFamily(path) {
		return
	}
	w.key = append(append(w.key[:0], path...), 1)
	w.countDelta(w.key, delta)
}

// countDelta adds delta to the pending change of the count at key. The
// map holds pointers so that a key seen before (most are: a batch repeats
// kind=component thousands of times) is found without making a string.
func (w *indexBuf) countDelta(key []byte, delta int64) {
	if p := w.facetDelta[string(key)]; p != nil {
		*p += delta
		return
	}
	if w.facetDelta == nil {
		w.facetDelta = map[string]*int64{}
	}
	d := delta
	w.facetDelta[string(key)] = &d
}

// flushIndex applies what the transaction's index maintenance deferred.
func (w *writer) flushIndex() error {
	if err := w.flushSearch(); err != nil {
		return err
	}
	err := w.flushFacets()
	w.parts = nil
	return err
}

// flushFacets applies the summed facet count changes, in key order.
func (w *writer) flushFacets() error {
	runs := [][]facetOp{w.takeFacets()}
	for _, p := range w.parts {
		runs = append(runs, p.facetRun)
	}
	var (
		cur  facetOp
		vals []byte // bbolt keeps value slices until commit: cut from chunks
		c    = w.facets.Cursor()
	)
	apply := func() error {
		if cur.delta == 0 {
			return nil
		}
		k := []byte(cur.key)
		var n uint64
		if v := get(c, k); len(v) == 8 {
			n = binary.BigEndian.Uint64(v)
		}
		if cur.delta < 0 && uint64(-cur.delta) > n {
			return fmt.Errorf("facet count of %q would go below zero: %w", cur.key, errCorrupt)
		}
		n = uint64(int64(n) + cur.delta)
		if n == 0 {
			return w.facets.Delete(k)
		}
		if len(vals) < 8 {
			vals = make([]byte, 8<<10)
		}
		v := vals[:8:8]
		vals = vals[8:]
		binary.BigEndian.PutUint64(v, n)
		return w.facets.Put(k, v)
	}
	err := mergeRuns(runs, func(a, b facetOp) int { return strings.Compare(a.key, b.key) }, func(f facetOp) error {
		if f.key == cur.key {
			cur.delta += f.delta
			return nil
		}
		err := apply()
		cur = f
		return err
	})
	if err != nil {
		return err
	}
	return apply()
}
