package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// Queries are answered from the search index (search.go) in one short read
// transaction each: filters become streams of refs merged from runs of
// the search bucket, and only the entities of the page being returned are
// read from the final bucket. No entity is decoded.
//
// Where this differs from Backstage's SQL: values sort and compare by
// bytes (SQLite's default collation; PostgreSQL's may order differently);
// ties of an order field are broken by ref, not by entity id; a full-text
// term is a plain substring (SQL LIKE would treat % and _ as wildcards).

// Expr is a filter over search keys: the dotted, case-insensitive paths of
// reference §2.7 ("kind", "spec.type", "metadata.tags.java",
// "relations.ownedby"). The API layer parses Backstage's query-string
// filters and predicate bodies into it; the store evaluates it.
type Expr interface{ isExpr() }

// All matches the entities every member matches (AND); an empty All
// matches everything, like an empty filter.
type All []Expr

// Any matches the entities some member matches (OR); an empty Any matches
// nothing.
type Any []Expr

// Not matches the served entities Expr does not match.
type Not struct{ Expr Expr }

// Eq matches entities with a row Key = Value, compared case-insensitively;
// array items match too ("metadata.tags" = "java"). The caller trims
// Value, as Backstage does for query-string filters.
type Eq struct{ Key, Value string }

// Exists matches entities that have Key at all, including with a null or
// over-long value (Backstage's `key` filter and `$exists: true`).
type Exists struct{ Key string }

// In matches entities with a row Key equal to one of Values
// (case-insensitive); it is what a key repeated in one filter set means.
type In struct {
	Key    string
	Values []string
}

// HasPrefix matches entities whose value for Key starts with Prefix,
// case-insensitively ($hasPrefix).
type HasPrefix struct{ Key, Prefix string }

func (All) isExpr()       {}
func (Any) isExpr()       {}
func (Not) isExpr()       {}
func (Eq) isExpr()        {}
func (Exists) isExpr()    {}
func (In) isExpr()        {}
func (HasPrefix) isExpr() {}

// RefSet is a set of entity refs, as Match returns it.
type RefSet map[string]struct{}

// ErrUnknownExpr is returned for an Expr type the store does not know
// (a caller's bug, not a user's).
var ErrUnknownExpr = errors.New("unknown filter expression")

// Match returns the served refs that e matches; a nil e matches every
// served entity. Callers that only need a count or a page should use
// Count and Page, which avoid building the set.
func (d *DB) Match(e Expr) (RefSet, error) {
	var out RefSet
	err := d.bolt.View(func(tx *bolt.Tx) error {
		q := newQuerier(tx)
		it, err := q.compile(e)
		if err != nil {
			return err
		}
		out = RefSet{}
		for r := it.seek(nil); r != nil; r = it.next() {
			out[string(r)] = struct{}{}
		}
		return nil
	})
	return out, err
}

// Count is the number of served entities e matches (nil: all of them),
// as the API's totalItems reports it. Equality filters are counted from
// the facet counts without visiting their rows.
func (d *DB) Count(e Expr) (int, error) {
	var n int
	err := d.bolt.View(func(tx *bolt.Tx) error {
		q := newQuerier(tx)
		var err error
		n, err = q.count(e)
		return err
	})
	return n, err
}

// Position is a place in a paged walk: the lowercased sort value of an
// entity and its ref, which breaks ties. A page's last item's Sort is the
// After of the next page, so cursors survive inserts and deletes (a
// deleted entity's position still sorts). Without an order field only
// Ref is used.
type Position struct {
	Value string
	Ref   string
}

// PageQuery describes one page of by-query results.
type PageQuery struct {
	// Filter selects entities; nil selects all.
	Filter Expr
	// OrderField is the search key to sort by, such as "metadata.name";
	// "" sorts by ref. As in Backstage since 3.7, entities without a value
	// for the field are left out. An entity with several values (an array)
	// sorts by its smallest one, or its largest when Desc.
	OrderField string
	// Desc reverses the order (values and the ref tiebreak).
	Desc bool
	// After is the exclusive start position; nil starts at the beginning.
	After *Position
	// Limit is the page size; 0 returns no items but still sets More.
	Limit int
	// FullTextTerm keeps entities with a value containing it (trimmed,
	// case-insensitive) under one of FullTextFields; when no fields are
	// given they default to OrderField, else metadata.uid, as in
	// Backstage.
	FullTextTerm   string
	FullTextFields []string
	// WithTotal asks for Total: the number of entities the whole walk
	// (filter, full text and order field) yields, regardless of After and
	// Limit. Backstage's totalItems counts the full-text filter too, which
	// Count(Filter) cannot know.
	WithTotal bool
}

// Item is one entity of a page: its ref, served JSON, and position.
type Item struct {
	Ref  string
	Body []byte
	Sort Position
}

// PageResult is a page of entities.
type PageResult struct {
	Items []Item
	// More says that another entity follows the last item.
	More bool
	// Total is set when the query asked WithTotal.
	Total int
}

// Page returns one page of the entities matching q, in q's order.
//
// The filter is compiled into a stream of refs in ref order, merged from
// the search bucket's rows (see iter), so a page in ref order costs about
// Limit rows per filter term, wherever the cursor is. With an order field
// the rows of that field are walked in key order (backwards for Desc) and
// each candidate is tested against the filter, stopping after Limit+1
// hits. Only the returned entities are read from the final bucket.
func (d *DB) Page(q PageQuery) (PageResult, error) {
	if q.Limit < 0 {
		return PageResult{}, fmt.Errorf("page limit %d is negative", q.Limit)
	}
	var res PageResult
	err := d.bolt.View(func(tx *bolt.Tx) error {
		qr := newQuerier(tx)
		it, err := qr.compile(q.Filter)
		if err != nil {
			return err
		}
		term := strings.ToLower(strings.TrimSpace(q.FullTextTerm))
		order := strings.ToLower(q.OrderField)
		fields := q.FullTextFields
		if len(fields) == 0 {
			fields = []string{"metadata.uid"}
			if order != "" {
				fields = []string{order}
			}
		}
		// With the single full-text field being the order field, the term
		// is tested on the rows being walked; otherwise it is one more
		// filter term.
		rowTerm, filtered := "", false
		if term != "" {
			if order != "" && len(fields) == 1 && strings.ToLower(fields[0]) == order {
				rowTerm = term
			} else {
				it, filtered = qr.and(it, qr.fullText(fields, term)), true
			}
		}
		var hits []hit
		if order == "" {
			hits, res.More = qr.refWalk(it, q.Desc, q.After, q.Limit)
			if q.WithTotal {
				if filtered {
					res.Total = countIter(it)
				} else if res.Total, err = qr.count(q.Filter); err != nil {
					return err
				}
			}
		} else {
			w := orderWalk{q: qr, path: order, filter: it, term: rowTerm, desc: q.Desc}
			hits, res.More = w.run(q.After, q.Limit)
			if q.WithTotal {
				// When every entity has a value for the field the walk
				// leaves nobody out, and the filter's count is the total.
				if rowTerm == "" && !filtered && qr.valuedCount(order) == qr.servedCount() {
					if res.Total, err = qr.count(q.Filter); err != nil {
						return err
					}
				} else {
					res.Total = w.count()
				}
			}
		}
		res.Items = make([]Item, 0, len(hits))
		for _, h := range hits {
			body, err := finalBody(qr.b.final.Get([]byte(h.ref)))
			if err != nil {
				return fmt.Errorf("entity %s: %w", h.ref, err)
			}
			if body == nil {
				// Cannot happen: search rows and final entities are
				// written together.
				return fmt.Errorf("search index lists %s, which is not served: %w", h.ref, errCorrupt)
			}
			res.Items = append(res.Items, Item{Ref: h.ref, Body: body, Sort: h.pos})
		}
		return nil
	})
	return res, err
}

// FacetCount is the number of entities with one value of a facet. Value
// is the original, case-preserved value: "Service" and "service" are
// counted apart, as Backstage does.
type FacetCount struct {
	Value string
	Count int
}

// Facets counts, for each path, the served entities per value, sorted by
// value. The result is keyed by the paths as given (the lookup is
// case-insensitive). Rows without a value are not counted.
//
// Without a filter the counts are read from the facets bucket, one key
// per distinct value. With one, each value's rows are intersected with the
// filter's stream; paths with very many values (or without counts) walk
// their rows instead, testing each against the filter.
func (d *DB) Facets(paths []string, filter Expr) (map[string][]FacetCount, error) {
	out := make(map[string][]FacetCount, len(paths))
	err := d.bolt.View(func(tx *bolt.Tx) error {
		q := newQuerier(tx)
		it, err := q.compile(filter)
		if err != nil {
			return err
		}
		for _, p := range paths {
			if _, done := out[p]; done {
				continue
			}
			path := strings.ToLower(p)
			switch {
			case path == "" || strings.IndexByte(path, 0) >= 0 || isEmpty(it):
				out[p] = []FacetCount{}
			case isAll(it) && !uncounted(path):
				out[p] = q.countedFacets(path)
			default:
				out[p] = q.filteredFacets(path, it)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// FinalByRefs returns the served JSON of each ref, in input order, with
// nil for refs that are not served (POST /entities/by-refs). Refs are
// lowercased but not otherwise parsed, as in Backstage.
func (d *DB) FinalByRefs(refs []string) ([][]byte, error) {
	out := make([][]byte, len(refs))
	err := d.bolt.View(func(tx *bolt.Tx) error {
		final := open(tx).final
		for i, r := range refs {
			var err error
			if out[i], err = finalBody(final.Get([]byte(strings.ToLower(r)))); err != nil {
				return fmt.Errorf("entity %s: %w", r, err)
			}
		}
		return nil
	})
	return out, err
}

// FinalByUID returns the ref and served JSON of the entity whose
// metadata.uid is uid; ref is "" when no served entity has it.
func (d *DB) FinalByUID(uid string) (ref string, body []byte, err error) {
	err = d.bolt.View(func(tx *bolt.Tx) error {
		b := open(tx)
		r := b.uids.Get([]byte(strings.ToLower(uid)))
		if r == nil {
			return nil
		}
		if body, err = finalBody(b.final.Get(r)); err != nil || body == nil {
			return err
		}
		ref = string(r)
		return nil
	})
	return ref, body, err
}

// --- evaluation ---------------------------------------------------------------

// iter is a filter's matches as a stream of refs in ascending byte order.
// The refs are slices of bbolt's memory (or of lists cut from it), valid
// until the read transaction ends, so evaluating a filter copies nothing
// but the page it returns.
//
// Every iterator can seek anywhere, backwards too: an ordered walk tests
// the refs it meets, in value order, by seeking the filter to each.
type iter interface {
	// seek moves to the first ref >= target (nil: the first ref) and
	// returns it, or nil when there is none.
	seek(target []byte) []byte
	// next moves to the ref after the current one; nil at the end.
	next() []byte
}

type querier struct {
	b *buckets
}

func newQuerier(tx *bolt.Tx) *querier { return &querier{b: open(tx)} }

// queryable lowercases a query key or value; ok is false when it holds a
// zero byte, which no stored key or value does.
func queryable(s string) (string, bool) {
	s = strings.ToLower(s)
	return s, strings.IndexByte(s, 0) < 0
}

// compile turns e into a stream of the refs it matches.
func (q *querier) compile(e Expr) (iter, error) {
	switch e := e.(type) {
	case nil:
		return q.all(), nil
	case All:
		var parts []iter
		var sizes []int
		for _, c := range e {
			it, err := q.compile(c)
			if err != nil {
				return nil, err
			}
			switch {
			case isEmpty(it):
				return emptyIter{}, nil
			case isAll(it):
				continue
			}
			parts = append(parts, it)
			sizes = append(sizes, q.estimate(c))
		}
		switch len(parts) {
		case 0:
			return q.all(), nil
		case 1:
			return parts[0], nil
		}
		// The smallest part drives the intersection.
		idx := make([]int, len(parts))
		for i := range idx {
			idx[i] = i
		}
		slices.SortStableFunc(idx, func(a, b int) int { return sizes[a] - sizes[b] })
		sorted := make([]iter, len(parts))
		for i, j := range idx {
			sorted[i] = parts[j]
		}
		return &intersectIter{its: sorted}, nil
	case Any:
		var parts []iter
		for _, c := range e {
			it, err := q.compile(c)
			if err != nil {
				return nil, err
			}
			switch {
			case isAll(it):
				return it, nil
			case isEmpty(it):
				continue
			}
			parts = append(parts, it)
		}
		return union(parts), nil
	case Not:
		it, err := q.compile(e.Expr)
		if err != nil {
			return nil, err
		}
		switch {
		case isAll(it):
			return emptyIter{}, nil
		case isEmpty(it):
			return q.all(), nil
		}
		return &notIter{all: q.all(), inner: it}, nil
	case *Not:
		if e == nil {
			return nil, fmt.Errorf("%w: nil *Not", ErrUnknownExpr)
		}
		return q.compile(*e)
	case Eq:
		return q.group(e.Key, e.Value), nil
	case In:
		var parts []iter
		seen := map[string]bool{}
		for _, v := range e.Values {
			if lv := strings.ToLower(v); !seen[lv] {
				seen[lv] = true
				parts = append(parts, q.group(e.Key, v))
			}
		}
		return union(parts), nil
	case Exists:
		return q.scan(e.Key, "", true), nil
	case HasPrefix:
		return q.scan(e.Key, e.Prefix, false), nil
	}
	return nil, fmt.Errorf("%w: %T", ErrUnknownExpr, e)
}

// and intersects two streams.
func (q *querier) and(a, b iter) iter {
	switch {
	case isEmpty(a) || isEmpty(b):
		return emptyIter{}
	case isAll(a):
		return b
	case isAll(b):
		return a
	}
	return &intersectIter{its: []iter{b, a}}
}

// estimate guesses how many entities e matches, to pick the part that
// drives an intersection: exact and cheap for equality on counted paths,
// the whole catalog when unknown.
func (q *querier) estimate(e Expr) int {
	switch e := e.(type) {
	case Eq:
		if n, ok := q.eqCount(e.Key, e.Value); ok {
			return n
		}
		return 1 // uncounted paths have (nearly) unique values
	case In:
		n := 0
		for _, v := range e.Values {
			n += q.estimate(Eq{Key: e.Key, Value: v})
		}
		return n
	case HasPrefix:
		if e.Prefix == "" {
			if path, ok := queryable(e.Key); ok && !inUncountedFamily(path) {
				return q.valuedCount(path)
			}
		}
	}
	return q.servedCount()
}

// count is the number of refs e matches, from the counters when e is an
// equality (or "has a value") and by running the stream otherwise.
func (q *querier) count(e Expr) (int, error) {
	switch e := e.(type) {
	case nil:
		return q.servedCount(), nil
	case All:
		if len(e) == 0 {
			return q.servedCount(), nil
		}
	case Eq:
		if n, ok := q.eqCount(e.Key, e.Value); ok {
			return n, nil
		}
	case HasPrefix:
		if e.Prefix == "" {
			if path, ok := queryable(e.Key); ok && path != "" && !inUncountedFamily(path) {
				return q.valuedCount(path), nil
			}
		}
	}
	it, err := q.compile(e)
	if err != nil {
		return 0, err
	}
	if isAll(it) {
		return q.servedCount(), nil
	}
	return countIter(it), nil
}

func countIter(it iter) int {
	n := 0
	for r := it.seek(nil); r != nil; r = it.next() {
		n++
	}
	return n
}

// eqCount sums the facet counts of key = value over its original
// spellings; ok is false for paths without counts.
func (q *querier) eqCount(key, value string) (int, bool) {
	path, ok1 := queryable(key)
	val, ok2 := queryable(value)
	switch {
	case !ok1 || !ok2 || path == "":
		return 0, true
	case uncounted(path):
		return 0, false
	}
	pre := append(append(append([]byte(path), 0), val...), 0)
	n := 0
	c := q.b.facets.Cursor()
	for k, v := c.Seek(pre); k != nil && bytes.HasPrefix(k, pre); k, v = c.Next() {
		n += int(binary.BigEndian.Uint64(v))
	}
	return n, true
}

// servedCount is the number of served entities: the count of the reserved
// row every entity has.
func (q *querier) servedCount() int { return q.counter([]byte{0, 0}) }

// valuedCount is the number of entities with a value under path; paths
// under uncountedFamilies have none (0).
func (q *querier) valuedCount(path string) int {
	return q.counter(append([]byte(path), 1))
}

func (q *querier) counter(k []byte) int {
	if v := q.b.facets.Get(k); len(v) == 8 {
		return int(binary.BigEndian.Uint64(v))
	}
	return 0
}

// all streams every served ref, from the reserved row.
func (q *querier) all() iter {
	return &groupIter{c: q.b.searchCursor(), pre: []byte{0, 0}, isAll: true}
}

// group streams the refs with the row key = value: one run of the search
// bucket, in ref order.
func (q *querier) group(key, value string) iter {
	path, ok1 := queryable(key)
	val, ok2 := queryable(value)
	if !ok1 || !ok2 || path == "" {
		return emptyIter{}
	}
	pre := append(append(append([]byte(path), 0), val...), 0)
	return &groupIter{c: q.b.searchCursor(), pre: pre}
}

// maxUnionGroups bounds the value groups merged lazily for Exists and
// HasPrefix; beyond it their refs are collected and sorted once.
const maxUnionGroups = 32

// scan streams the refs with a row under key: any row when exists is set
// (a null value included), else the valued rows starting with prefix.
// Few values (spec.type) are merged as groups; many (metadata.name) are
// collected and sorted.
func (q *querier) scan(key, prefix string, exists bool) iter {
	path, ok1 := queryable(key)
	pre, ok2 := queryable(prefix)
	if !ok1 || !ok2 || path == "" {
		return emptyIter{}
	}
	start := append(append([]byte(path), 0), pre...)
	plen := len(path)
	// Find the groups by jumping from one value to the next.
	var groups [][]byte
	c := q.b.searchCursor()
	k, _ := c.Seek(start)
	for k != nil && bytes.HasPrefix(k, start) && len(groups) <= maxUnionGroups {
		val, _ := splitSearchKey(k, plen)
		g := k[:plen+1+len(val)+1] // path ‖ 0 ‖ value ‖ 0
		if exists || string(val) != nullValue {
			groups = append(groups, g)
		}
		k, _ = c.Seek(append(slices.Clip(g[:len(g)-1]), 1))
	}
	if len(groups) <= maxUnionGroups {
		parts := make([]iter, len(groups))
		for i, g := range groups {
			parts[i] = &groupIter{c: q.b.searchCursor(), pre: g}
		}
		return union(parts)
	}
	var out [][]byte
	sorted := true
	for k, _ := c.Seek(start); k != nil && bytes.HasPrefix(k, start); k, _ = c.Next() {
		val, ref := splitSearchKey(k, plen)
		if !exists && string(val) == nullValue {
			continue
		}
		if n := len(out); n > 0 && sorted && bytes.Compare(out[n-1], ref) >= 0 {
			sorted = false
		}
		out = append(out, ref)
	}
	return sortedList(out, sorted)
}

func sortedList(out [][]byte, sorted bool) iter {
	if !sorted {
		slices.SortFunc(out, bytes.Compare)
		out = slices.CompactFunc(out, bytes.Equal)
	}
	if len(out) == 0 {
		return emptyIter{}
	}
	return &listIter{list: out}
}

// fullText streams the refs with a value containing term under one of
// fields.
func (q *querier) fullText(fields []string, term string) iter {
	var out [][]byte
	t := []byte(term)
	for _, f := range fields {
		path, ok := queryable(f)
		if !ok || path == "" {
			continue
		}
		pre := append([]byte(path), 0)
		c := q.b.searchCursor()
		for k, _ := c.Seek(pre); k != nil && bytes.HasPrefix(k, pre); k, _ = c.Next() {
			val, ref := splitSearchKey(k, len(path))
			if string(val) != nullValue && bytes.Contains(val, t) {
				out = append(out, ref)
			}
		}
	}
	return sortedList(out, false)
}

// collect runs a stream into a sorted list.
func collect(it iter) [][]byte {
	var out [][]byte
	for r := it.seek(nil); r != nil; r = it.next() {
		out = append(out, r)
	}
	return out
}

// --- iterators ----------------------------------------------------------------

type emptyIter struct{}

func (emptyIter) seek([]byte) []byte { return nil }
func (emptyIter) next() []byte       { return nil }

func isEmpty(it iter) bool { _, ok := it.(emptyIter); return ok }

func isAll(it iter) bool { g, ok := it.(*groupIter); return ok && g.isAll }

// groupIter streams the refs of the search keys starting with pre.
type groupIter struct {
	c     cursor
	pre   []byte
	isAll bool // the reserved row: every served ref
	buf   []byte
	// cur is the first ref >= from; val is its row's value.
	cur, val, from []byte
	positioned     bool
}

// stepsBeforeSeek is how many rows a forward seek steps through before
// paying for a seek from the root: intersections of dense groups mostly
// move a few rows at a time.
const stepsBeforeSeek = 8

func (g *groupIter) seek(t []byte) []byte {
	if g.positioned && bytes.Compare(t, g.from) >= 0 {
		if g.cur == nil || bytes.Compare(t, g.cur) <= 0 {
			return g.cur
		}
		for range stepsBeforeSeek {
			if g.next() == nil || bytes.Compare(g.cur, t) >= 0 {
				return g.cur
			}
		}
	}
	g.buf = append(append(g.buf[:0], g.pre...), t...)
	k, v := g.c.Seek(g.buf)
	g.positioned, g.from = true, t
	return g.at(k, v)
}

func (g *groupIter) next() []byte {
	if !g.positioned || g.cur == nil {
		return nil
	}
	k, v := g.c.Next()
	r := g.at(k, v)
	if r == nil {
		// Past the end: nothing is known about earlier targets any more.
		g.positioned = false
	}
	g.from = r
	return r
}

func (g *groupIter) at(k, v []byte) []byte {
	if k == nil || !bytes.HasPrefix(k, g.pre) {
		g.cur, g.val = nil, nil
		return nil
	}
	g.cur, g.val = k[len(g.pre):], v
	return g.cur
}

// listIter streams a sorted list.
type listIter struct {
	list [][]byte
	i    int
}

func (l *listIter) seek(t []byte) []byte {
	l.i, _ = slices.BinarySearchFunc(l.list, t, bytes.Compare)
	return l.at()
}

func (l *listIter) next() []byte {
	if l.i < len(l.list) {
		l.i++
	}
	return l.at()
}

func (l *listIter) at() []byte {
	if l.i < len(l.list) {
		return l.list[l.i]
	}
	return nil
}

// union merges streams.
func union(its []iter) iter {
	switch len(its) {
	case 0:
		return emptyIter{}
	case 1:
		return its[0]
	}
	return &unionIter{its: its, cur: make([][]byte, len(its))}
}

type unionIter struct {
	its []iter
	cur [][]byte
	min []byte
}

func (u *unionIter) seek(t []byte) []byte {
	for i, it := range u.its {
		u.cur[i] = it.seek(t)
	}
	return u.pick()
}

func (u *unionIter) next() []byte {
	if u.min == nil {
		return nil
	}
	m := u.min
	for i, it := range u.its {
		if u.cur[i] != nil && bytes.Equal(u.cur[i], m) {
			u.cur[i] = it.next()
		}
	}
	return u.pick()
}

func (u *unionIter) pick() []byte {
	u.min = nil
	for _, r := range u.cur {
		if r != nil && (u.min == nil || bytes.Compare(r, u.min) < 0) {
			u.min = r
		}
	}
	return u.min
}

// intersectIter yields the refs every stream has (leapfrog: each stream
// seeks to the largest ref seen so far until they agree). its[0], the
// smallest, drives.
type intersectIter struct {
	its []iter
}

func (n *intersectIter) seek(t []byte) []byte {
	x := t
	for {
		r := n.its[0].seek(x)
		if r == nil {
			return nil
		}
		x = r
		agreed := true
		for _, it := range n.its[1:] {
			r := it.seek(x)
			if r == nil {
				return nil
			}
			if !bytes.Equal(r, x) {
				x, agreed = r, false
				break
			}
		}
		if agreed {
			return x
		}
	}
}

func (n *intersectIter) next() []byte {
	r := n.its[0].next()
	if r == nil {
		return nil
	}
	return n.seek(r)
}

// notIter yields the served refs inner does not.
type notIter struct {
	all, inner iter
}

func (n *notIter) seek(t []byte) []byte { return n.skip(n.all.seek(t)) }
func (n *notIter) next() []byte         { return n.skip(n.all.next()) }

func (n *notIter) skip(r []byte) []byte {
	for r != nil {
		if x := n.inner.seek(r); x == nil || !bytes.Equal(x, r) {
			return r
		}
		r = n.all.next()
	}
	return nil
}

// member tests refs against a sorted list. Walks test refs that mostly
// increase (within one value group), so it gallops forward from the last
// answer and only binary searches the whole list when a ref goes back.
type member struct {
	list [][]byte
	pos  int
}

func (m *member) has(ref []byte) bool {
	l := m.list
	if m.pos > 0 && bytes.Compare(ref, l[m.pos-1]) <= 0 {
		m.pos = 0
	}
	// Gallop: find a bound hi with l[hi] >= ref.
	lo, step := m.pos, 1
	hi := lo
	for hi < len(l) && bytes.Compare(l[hi], ref) < 0 {
		lo = hi + 1
		hi += step
		step *= 2
	}
	if hi > len(l) {
		hi = len(l)
	}
	i, _ := slices.BinarySearchFunc(l[lo:hi], ref, bytes.Compare)
	m.pos = lo + i
	return m.pos < len(l) && bytes.Equal(l[m.pos], ref)
}

// tester answers "does the filter match ref" for refs met in another
// order. It seeks the filter's stream to each ref, which is cheap for the
// few hundred refs a page meets; past budget tests it collects the stream
// once and gallops over the list instead.
type tester struct {
	it     iter
	budget int
	m      *member
}

func (t *tester) has(ref []byte) bool {
	switch {
	case t.it == nil:
		return true
	case t.m != nil:
		return t.m.has(ref)
	case t.budget <= 0:
		t.m = &member{list: collect(t.it)}
		return t.m.has(ref)
	}
	t.budget--
	r := t.it.seek(ref)
	return r != nil && bytes.Equal(r, ref)
}

// --- walks ----------------------------------------------------------------------

// hit is one entity found by a walk.
type hit struct {
	ref string
	pos Position
}

// refWalk pages in ref order over a filter's stream.
func (q *querier) refWalk(it iter, desc bool, after *Position, limit int) ([]hit, bool) {
	var out []hit
	add := func(r []byte) bool {
		s := string(r)
		out = append(out, hit{ref: s, pos: Position{Ref: s}})
		return len(out) <= limit
	}
	switch {
	case !desc:
		var r []byte
		if after == nil {
			r = it.seek(nil)
		} else if r = it.seek([]byte(after.Ref)); r != nil && string(r) == after.Ref {
			r = it.next()
		}
		for ; r != nil && add(r); r = it.next() {
		}
	case isGroup(it):
		// One group (every entity, or an equality): walk its keys
		// backwards.
		g := it.(*groupIter)
		c := g.c
		var k []byte
		if after == nil {
			k, _ = seekBefore(c, prefixEnd(g.pre))
		} else {
			k, _ = seekBefore(c, append(slices.Clip(g.pre), after.Ref...))
		}
		for ; k != nil && bytes.HasPrefix(k, g.pre) && add(k[len(g.pre):]); k, _ = c.Prev() {
		}
	default:
		list := collect(it)
		i := len(list)
		if after != nil {
			i, _ = slices.BinarySearchFunc(list, []byte(after.Ref), bytes.Compare)
		}
		for i--; i >= 0 && add(list[i]); i-- {
		}
	}
	if len(out) > limit {
		return out[:limit], true
	}
	return out, false
}

func isGroup(it iter) bool { _, ok := it.(*groupIter); return ok }

// prefixEnd is the first key after every key starting with pre (pre ends
// with a 0 separator, so bumping it to 1 is enough).
func prefixEnd(pre []byte) []byte {
	end := slices.Clone(pre)
	end[len(end)-1] = 1
	return end
}

// seekBefore positions c on the last key < target.
func seekBefore(c cursor, target []byte) ([]byte, []byte) {
	if k, _ := c.Seek(target); k == nil {
		return c.Last()
	}
	return c.Prev()
}

func step(c cursor, desc bool) ([]byte, []byte) {
	if desc {
		return c.Prev()
	}
	return c.Next()
}

// orderWalk walks the search rows of one path in value order, serving each
// entity at its first row in the walk's direction (rowMin or rowMax).
type orderWalk struct {
	q      *querier
	path   string
	filter iter
	term   string
	desc   bool
}

// visit walks from after (exclusive) and calls fn for every entity served
// in order until fn returns false; t tests the filter.
func (w *orderWalk) visit(after *Position, t *tester, fn func(value, ref []byte) bool) {
	if w.path == "" || strings.IndexByte(w.path, 0) >= 0 || isEmpty(w.filter) {
		return
	}
	pre := append([]byte(w.path), 0)
	c := w.q.b.searchCursor()
	var k, v []byte
	switch {
	case after == nil && !w.desc:
		k, v = c.Seek(pre)
	case after == nil:
		k, v = seekBefore(c, prefixEnd(pre))
	case !w.desc:
		start := searchKey(nil, w.path, after.Value, after.Ref)
		if k, v = c.Seek(start); k != nil && bytes.Equal(k, start) {
			k, v = c.Next()
		}
	default:
		k, v = seekBefore(c, searchKey(nil, w.path, after.Value, after.Ref))
	}
	flag := rowMin
	if w.desc {
		flag = rowMax
	}
	term := []byte(w.term)
	for ; k != nil && bytes.HasPrefix(k, pre); k, v = step(c, w.desc) {
		val, ref := splitSearchKey(k, len(w.path))
		if string(val) == nullValue {
			if w.desc {
				continue
			}
			break // they sort last
		}
		if len(v) == 0 || v[0]&flag == 0 {
			continue
		}
		if len(term) > 0 && !bytes.Contains(val, term) {
			continue
		}
		if !t.has(ref) {
			continue
		}
		if !fn(val, ref) {
			return
		}
	}
}

func (w *orderWalk) tester(budget int) *tester {
	if isAll(w.filter) {
		return &tester{}
	}
	return &tester{it: w.filter, budget: budget}
}

func (w *orderWalk) run(after *Position, limit int) ([]hit, bool) {
	var out []hit
	w.visit(after, w.tester(4*limit+256), func(val, ref []byte) bool {
		r := string(ref)
		out = append(out, hit{ref: r, pos: Position{Value: string(val), Ref: r}})
		return len(out) <= limit
	})
	if len(out) > limit {
		return out[:limit], true
	}
	return out, false
}

func (w *orderWalk) count() int {
	n := 0
	w.visit(nil, w.tester(0), func(_, _ []byte) bool { n++; return true })
	return n
}

// --- facets -----------------------------------------------------------------------

// maxFacetGroups bounds the values whose rows a filtered facet intersects
// one by one; a path with more values is walked row by row.
const maxFacetGroups = 256

// countedFacets reads a path's facet counts from the facets bucket.
func (q *querier) countedFacets(path string) []FacetCount {
	out := []FacetCount{}
	pre := append([]byte(path), 0)
	c := q.b.facets.Cursor()
	for k, v := c.Seek(pre); k != nil && bytes.HasPrefix(k, pre); k, v = c.Next() {
		rest := k[len(pre):]
		orig := rest[bytes.IndexByte(rest, 0)+1:]
		out = append(out, FacetCount{Value: string(orig), Count: int(binary.BigEndian.Uint64(v))})
	}
	// Keys are in lowercased order; the answer is in original order.
	slices.SortFunc(out, func(a, b FacetCount) int { return strings.Compare(a.Value, b.Value) })
	return out
}

// filteredFacets counts a path's valued rows by original value over the
// refs of filter. With few values each value's group is intersected with
// the filter; otherwise every row of the path is tested.
func (q *querier) filteredFacets(path string, filter iter) []FacetCount {
	counts := map[string]int{}
	// A run of rows mostly repeats one original value; it is counted
	// locally and added to the map once, instead of a map update (and a
	// string) per row.
	var last []byte
	run := 0
	flush := func() {
		if run > 0 {
			counts[string(last)] += run
		}
	}
	tally := func(v, val []byte) {
		orig := val
		if len(v) > 0 && v[0]&rowOrig != 0 {
			orig = v[1:]
		}
		if run > 0 && bytes.Equal(orig, last) {
			run++
			return
		}
		flush()
		last, run = orig, 1
	}
	if values, ok := q.facetValues(path); ok {
		for _, val := range values {
			g := &groupIter{c: q.b.searchCursor(), pre: searchKey(nil, path, string(val), "")}
			it := iter(g)
			if !isAll(filter) {
				it = &intersectIter{its: []iter{g, filter}}
			}
			for r := it.seek(nil); r != nil; r = it.next() {
				tally(g.val, val)
			}
		}
	} else {
		t := &tester{}
		if !isAll(filter) {
			t = &tester{it: filter}
		}
		pre := append([]byte(path), 0)
		c := q.b.searchCursor()
		for k, v := c.Seek(pre); k != nil && bytes.HasPrefix(k, pre); k, v = c.Next() {
			val, ref := splitSearchKey(k, len(path))
			if string(val) != nullValue && t.has(ref) {
				tally(v, val)
			}
		}
	}
	flush()
	out := make([]FacetCount, 0, len(counts))
	for v, n := range counts {
		out = append(out, FacetCount{Value: v, Count: n})
	}
	slices.SortFunc(out, func(a, b FacetCount) int { return strings.Compare(a.Value, b.Value) })
	return out
}

// facetValues lists the distinct lowercased values of a counted path, from
// the facets bucket; ok is false for uncounted paths or too many values.
func (q *querier) facetValues(path string) ([][]byte, bool) {
	if uncounted(path) {
		return nil, false
	}
	var out [][]byte
	pre := append([]byte(path), 0)
	c := q.b.facets.Cursor()
	for k, _ := c.Seek(pre); k != nil && bytes.HasPrefix(k, pre); k, _ = c.Next() {
		rest := k[len(pre):]
		val := rest[:bytes.IndexByte(rest, 0)]
		if n := len(out); n == 0 || !bytes.Equal(out[n-1], val) {
			if n == maxFacetGroups {
				return nil, false
			}
			out = append(out, val)
		}
	}
	return out, true
}
