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
// transaction each: filters become sorted ref lists built from prefix
// scans of the search bucket, and only the entities of the page being
// returned are read from the final bucket. No entity is decoded.

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
		s, err := q.eval(e)
		if err != nil {
			return err
		}
		list := s.list
		if s.all {
			list = q.allRefs()
		}
		out = make(RefSet, len(list))
		for _, r := range list {
			out[r] = struct{}{}
		}
		return nil
	})
	return out, err
}

// Count is the number of served entities e matches (nil: all of them),
// as the API's totalItems reports it.
func (d *DB) Count(e Expr) (int, error) {
	var n int
	err := d.bolt.View(func(tx *bolt.Tx) error {
		q := newQuerier(tx)
		s, err := q.eval(e)
		if err != nil {
			return err
		}
		if s.all {
			n = q.servedCount()
		} else {
			n = len(s.list)
		}
		return nil
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

// Page returns one page of the entities matching q, in q's order. The
// filter is evaluated once into a sorted ref list; with an order field the
// search rows of that field are walked in key order (backwards for Desc)
// and stop after Limit+1 hits, so a page costs the filter plus the rows it
// passes over, not the catalog.
func (d *DB) Page(q PageQuery) (PageResult, error) {
	if q.Limit < 0 {
		return PageResult{}, fmt.Errorf("page limit %d is negative", q.Limit)
	}
	var res PageResult
	err := d.bolt.View(func(tx *bolt.Tx) error {
		qr := newQuerier(tx)
		set, err := qr.eval(q.Filter)
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
		// is tested on the rows being walked; otherwise it is one more set.
		rowTerm := ""
		if term != "" {
			if order != "" && len(fields) == 1 && strings.ToLower(fields[0]) == order {
				rowTerm = term
			} else {
				set = set.intersect(qr.fullText(fields, term))
			}
		}
		var hits []hit
		if order == "" {
			hits, res.More = qr.refWalk(set, q.Desc, q.After, q.Limit)
			if q.WithTotal {
				if set.all {
					res.Total = qr.servedCount()
				} else {
					res.Total = len(set.list)
				}
			}
		} else {
			w := orderWalk{q: qr, path: order, set: set, term: rowTerm, desc: q.Desc}
			hits, res.More = w.run(q.After, q.Limit)
			if q.WithTotal {
				res.Total = w.count()
			}
		}
		res.Items = make([]Item, 0, len(hits))
		for _, h := range hits {
			v := qr.b.final.Get([]byte(h.ref))
			if len(v) <= etagLen {
				// Cannot happen: search rows and final entities are
				// written together.
				return fmt.Errorf("search index lists %s, which is not served: %w", h.ref, errCorrupt)
			}
			res.Items = append(res.Items, Item{Ref: h.ref, Body: bytes.Clone(v[etagLen:]), Sort: h.pos})
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
// case-insensitive). Rows without a value are not counted. Without a
// filter the counts come from the facets bucket, costing one key per
// distinct value; with one, the path's rows are walked and tested against
// the filter's refs.
func (d *DB) Facets(paths []string, filter Expr) (map[string][]FacetCount, error) {
	out := make(map[string][]FacetCount, len(paths))
	err := d.bolt.View(func(tx *bolt.Tx) error {
		q := newQuerier(tx)
		set, err := q.eval(filter)
		if err != nil {
			return err
		}
		for _, p := range paths {
			if _, done := out[p]; done {
				continue
			}
			path := strings.ToLower(p)
			switch {
			case path == "" || strings.IndexByte(path, 0) >= 0:
				out[p] = []FacetCount{}
			case set.all && !uncountedFacets[path]:
				out[p] = q.countedFacets(path)
			default:
				out[p] = q.rowFacets(path, set)
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
			if v := final.Get([]byte(strings.ToLower(r))); len(v) > etagLen {
				out[i] = bytes.Clone(v[etagLen:])
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
		if v := b.final.Get(r); len(v) > etagLen {
			ref, body = string(r), bytes.Clone(v[etagLen:])
		}
		return nil
	})
	return ref, body, err
}

// --- evaluation ---------------------------------------------------------------

// refs is the value of a filter: every served entity (all), or a sorted
// list without duplicates. Sorted lists make AND, OR and NOT linear merges
// and give ref-ordered pages for free.
type refs struct {
	all  bool
	list []string
}

func (s refs) intersect(o refs) refs {
	switch {
	case s.all:
		return o
	case o.all:
		return s
	}
	a, b := s.list, o.list
	if len(a) > len(b) {
		a, b = b, a
	}
	out := make([]string, 0, len(a))
	if len(a)*16 < len(b) {
		// Much smaller: binary search the larger one.
		for _, r := range a {
			if _, ok := slices.BinarySearch(b, r); ok {
				out = append(out, r)
			}
		}
		return refs{list: out}
	}
	for i, j := 0, 0; i < len(a) && j < len(b); {
		switch c := strings.Compare(a[i], b[j]); {
		case c < 0:
			i++
		case c > 0:
			j++
		default:
			out = append(out, a[i])
			i++
			j++
		}
	}
	return refs{list: out}
}

func (s refs) union(o refs) refs {
	switch {
	case s.all || o.all:
		return refs{all: true}
	case len(s.list) == 0:
		return o
	case len(o.list) == 0:
		return s
	}
	return refs{list: mergeUnion(s.list, o.list)}
}

func mergeUnion(a, b []string) []string {
	out := make([]string, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch c := strings.Compare(a[i], b[j]); {
		case c < 0:
			out = append(out, a[i])
			i++
		case c > 0:
			out = append(out, b[j])
			j++
		default:
			out = append(out, a[i])
			i++
			j++
		}
	}
	out = append(out, a[i:]...)
	return append(out, b[j:]...)
}

// minus removes o's refs from the list a.
func minus(a []string, o refs) []string {
	if o.all {
		return nil
	}
	b := o.list
	out := make([]string, 0, len(a))
	j := 0
	for _, r := range a {
		for j < len(b) && b[j] < r {
			j++
		}
		if j < len(b) && b[j] == r {
			continue
		}
		out = append(out, r)
	}
	return out
}

type querier struct {
	b   *buckets
	key []byte
}

func newQuerier(tx *bolt.Tx) *querier { return &querier{b: open(tx)} }

func (q *querier) eval(e Expr) (refs, error) {
	switch e := e.(type) {
	case nil:
		return refs{all: true}, nil
	case All:
		acc := refs{all: true}
		var nots []Expr
		for _, c := range e {
			if n, ok := c.(Not); ok {
				nots = append(nots, n.Expr)
				continue
			}
			s, err := q.eval(c)
			if err != nil {
				return refs{}, err
			}
			acc = acc.intersect(s)
			if !acc.all && len(acc.list) == 0 {
				return acc, nil
			}
		}
		// A negated member subtracts from what the others matched,
		// without building the complement of the whole catalog.
		for _, n := range nots {
			s, err := q.eval(n)
			if err != nil {
				return refs{}, err
			}
			if acc.all {
				acc = refs{list: q.allRefs()}
			}
			acc.list = minus(acc.list, s)
		}
		return acc, nil
	case Any:
		acc := refs{list: []string{}}
		for _, c := range e {
			s, err := q.eval(c)
			if err != nil {
				return refs{}, err
			}
			if acc = acc.union(s); acc.all {
				return acc, nil
			}
		}
		return acc, nil
	case Not:
		s, err := q.eval(e.Expr)
		if err != nil {
			return refs{}, err
		}
		return refs{list: minus(q.allRefs(), s)}, nil
	case *Not:
		return q.eval(*e)
	case Eq:
		return refs{list: q.group(e.Key, e.Value)}, nil
	case In:
		acc := refs{list: []string{}}
		seen := map[string]bool{}
		for _, v := range e.Values {
			lv := strings.ToLower(v)
			if seen[lv] {
				continue
			}
			seen[lv] = true
			acc = acc.union(refs{list: q.group(e.Key, v)})
		}
		return acc, nil
	case Exists:
		return refs{list: q.scan(e.Key, "", true)}, nil
	case HasPrefix:
		return refs{list: q.scan(e.Key, e.Prefix, false)}, nil
	}
	return refs{}, fmt.Errorf("%w: %T", ErrUnknownExpr, e)
}

// queryable lowercases a query key or value; ok is false when it holds a
// zero byte, which no stored key or value does.
func queryable(s string) (string, bool) {
	s = strings.ToLower(s)
	return s, strings.IndexByte(s, 0) < 0
}

// group lists the refs with the row key = value: one contiguous run of
// the search bucket, already in ref order.
func (q *querier) group(key, value string) []string {
	path, ok1 := queryable(key)
	val, ok2 := queryable(value)
	if !ok1 || !ok2 || path == "" {
		return nil
	}
	q.key = append(append(append(append(q.key[:0], path...), 0), val...), 0)
	var out []string
	c := q.b.search.Cursor()
	for k, _ := c.Seek(q.key); k != nil && bytes.HasPrefix(k, q.key); k, _ = c.Next() {
		out = append(out, string(k[len(q.key):]))
	}
	return out
}

// scan lists the refs with a row under key: any row when exists is set,
// else the valued rows whose value starts with prefix.
func (q *querier) scan(key, prefix string, exists bool) []string {
	path, ok1 := queryable(key)
	pre, ok2 := queryable(prefix)
	if !ok1 || !ok2 || path == "" {
		return nil
	}
	q.key = append(append(q.key[:0], path...), 0)
	plen := len(q.key)
	q.key = append(q.key, pre...)
	var out []string
	sorted := true
	c := q.b.search.Cursor()
	for k, _ := c.Seek(q.key); k != nil && bytes.HasPrefix(k, q.key); k, _ = c.Next() {
		val, ref := splitSearchKey(k, plen-1)
		if !exists && string(val) == nullValue {
			continue
		}
		if n := len(out); n > 0 && sorted && out[n-1] >= string(ref) {
			sorted = false
		}
		out = append(out, string(ref))
	}
	if !sorted {
		slices.Sort(out)
		out = slices.Compact(out)
	}
	return out
}

// allRefs lists every served ref, from the reserved row every entity has.
func (q *querier) allRefs() []string {
	var out []string
	c := q.b.search.Cursor()
	for k, _ := c.Seek(allRowsPrefix); k != nil && bytes.HasPrefix(k, allRowsPrefix); k, _ = c.Next() {
		out = append(out, string(k[len(allRowsPrefix):]))
	}
	return out
}

// allRowsPrefix starts the search keys of the reserved row (empty path,
// empty value) that every served entity has.
var allRowsPrefix = []byte{0, 0}

// servedCount is the number of served entities, kept as the facet count of
// the reserved row.
func (q *querier) servedCount() int {
	if v := q.b.facets.Get([]byte{0}); len(v) == 8 {
		return int(binary.BigEndian.Uint64(v))
	}
	return 0
}

// fullText lists the refs with a value containing term under one of
// fields.
func (q *querier) fullText(fields []string, term string) refs {
	var out []string
	for _, f := range fields {
		path, ok := queryable(f)
		if !ok || path == "" {
			continue
		}
		q.key = append(append(q.key[:0], path...), 0)
		c := q.b.search.Cursor()
		for k, _ := c.Seek(q.key); k != nil && bytes.HasPrefix(k, q.key); k, _ = c.Next() {
			val, ref := splitSearchKey(k, len(path))
			if string(val) != nullValue && bytes.Contains(val, []byte(term)) {
				out = append(out, string(ref))
			}
		}
	}
	slices.Sort(out)
	return refs{list: slices.Compact(out)}
}

// member tests refs against a sorted list. Walks test refs that mostly
// increase (within one value group), so it gallops forward from the last
// answer and only binary searches the whole list when a ref goes back.
type member struct {
	list []string
	pos  int
}

func (m *member) has(ref []byte) bool {
	l := m.list
	if m.pos > 0 && string(ref) <= l[m.pos-1] {
		m.pos = 0
	}
	// Gallop: find a bound hi with l[hi] >= ref.
	lo, step := m.pos, 1
	hi := lo
	for hi < len(l) && l[hi] < string(ref) {
		lo = hi + 1
		hi += step
		step *= 2
	}
	if hi > len(l) {
		hi = len(l)
	}
	i, _ := slices.BinarySearch(l[lo:hi], string(ref))
	m.pos = lo + i
	return m.pos < len(l) && l[m.pos] == string(ref)
}

// hit is one entity found by a walk.
type hit struct {
	ref string
	pos Position
}

// refWalk pages in ref order: over the filter's sorted list, or over the
// final bucket when the filter is everything.
func (q *querier) refWalk(set refs, desc bool, after *Position, limit int) ([]hit, bool) {
	var out []hit
	if !set.all {
		list := set.list
		if after != nil {
			i, found := slices.BinarySearch(list, after.Ref)
			if desc {
				list = list[:i]
			} else {
				if found {
					i++
				}
				list = list[i:]
			}
		}
		for n := 0; n < len(list) && len(out) <= limit; n++ {
			r := list[n]
			if desc {
				r = list[len(list)-1-n]
			}
			out = append(out, hit{ref: r, pos: Position{Ref: r}})
		}
	} else {
		pre := allRowsPrefix
		c := q.b.search.Cursor()
		var k []byte
		switch {
		case !desc && after == nil:
			k, _ = c.Seek(pre)
		case !desc:
			start := append(slices.Clip(pre), after.Ref...)
			if k, _ = c.Seek(start); k != nil && bytes.Equal(k, start) {
				k, _ = c.Next()
			}
		case after == nil:
			k, _ = seekBefore(c, []byte{0, 1})
		default:
			k, _ = seekBefore(c, append(slices.Clip(pre), after.Ref...))
		}
		for ; k != nil && bytes.HasPrefix(k, pre) && len(out) <= limit; k, _ = step(c, desc) {
			r := string(k[len(pre):])
			out = append(out, hit{ref: r, pos: Position{Ref: r}})
		}
	}
	if len(out) > limit {
		return out[:limit], true
	}
	return out, false
}

// seekBefore positions c on the last key < target.
func seekBefore(c *bolt.Cursor, target []byte) ([]byte, []byte) {
	if k, _ := c.Seek(target); k == nil {
		return c.Last()
	}
	return c.Prev()
}

func step(c *bolt.Cursor, desc bool) ([]byte, []byte) {
	if desc {
		return c.Prev()
	}
	return c.Next()
}

// orderWalk walks the search rows of one path in value order, serving each
// entity at its first row in the walk's direction (rowMin or rowMax).
type orderWalk struct {
	q    *querier
	path string
	set  refs
	term string
	desc bool
}

// visit walks from after (exclusive) and calls fn for every entity served
// in order until fn returns false.
func (w *orderWalk) visit(after *Position, fn func(value, ref []byte) bool) {
	if w.path == "" || strings.IndexByte(w.path, 0) >= 0 {
		return
	}
	pre := append([]byte(w.path), 0)
	c := w.q.b.search.Cursor()
	var k, v []byte
	switch {
	case after == nil && !w.desc:
		k, v = c.Seek(pre)
	case after == nil:
		k, v = seekBefore(c, append([]byte(w.path), 1))
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
	var m *member
	if !w.set.all {
		m = &member{list: w.set.list}
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
		if m != nil && !m.has(ref) {
			continue
		}
		if !fn(val, ref) {
			return
		}
	}
}

func (w *orderWalk) run(after *Position, limit int) ([]hit, bool) {
	var out []hit
	w.visit(after, func(val, ref []byte) bool {
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
	w.visit(nil, func(_, _ []byte) bool { n++; return true })
	return n
}

// countedFacets reads a path's facet counts from the facets bucket.
func (q *querier) countedFacets(path string) []FacetCount {
	out := []FacetCount{}
	pre := append([]byte(path), 0)
	c := q.b.facets.Cursor()
	for k, v := c.Seek(pre); k != nil && bytes.HasPrefix(k, pre); k, v = c.Next() {
		if len(v) == 8 {
			out = append(out, FacetCount{Value: string(k[len(pre):]), Count: int(binary.BigEndian.Uint64(v))})
		}
	}
	return out
}

// rowFacets counts a path's valued rows by original value, over the
// entities of set.
func (q *querier) rowFacets(path string, set refs) []FacetCount {
	out := []FacetCount{}
	if !set.all && len(set.list) == 0 {
		return out
	}
	counts := map[string]int{}
	pre := append([]byte(path), 0)
	var m *member
	if !set.all {
		m = &member{list: set.list}
	}
	c := q.b.search.Cursor()
	for k, v := c.Seek(pre); k != nil && bytes.HasPrefix(k, pre); k, v = c.Next() {
		val, ref := splitSearchKey(k, len(path))
		if string(val) == nullValue || (m != nil && !m.has(ref)) {
			continue
		}
		orig := val
		if len(v) > 0 && v[0]&rowOrig != 0 {
			orig = v[1:]
		}
		counts[string(orig)]++
	}
	for v, n := range counts {
		out = append(out, FacetCount{Value: v, Count: n})
	}
	slices.SortFunc(out, func(a, b FacetCount) int { return strings.Compare(a.Value, b.Value) })
	return out
}
