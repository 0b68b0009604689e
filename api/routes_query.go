package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/catalog-pipeline/pipeline/store"
)

// queryRequest is a parsed by-query request, GET or POST.
type queryRequest struct {
	// cursor is set on follow-up pages; then filter comes from it.
	cursor *Cursor
	filter store.Expr
	// The first page's parameters, recorded in the cursors it hands out.
	filterSets   []string
	query        json.RawMessage
	order        []OrderField
	fullText     *FullTextFilter
	excludeTotal bool
	// Per-request parameters.
	limit  int
	offset int
	fields []string
}

// defaultQueryLimit is by-query's page size when limit is not given
// (Backstage catalog-backend 4.0.5).
const defaultQueryLimit = 200

// parseOrderFieldParams parses by-query's `orderField` values
// "field[,asc|desc]".
func parseOrderFieldParams(values []string) ([]OrderField, error) {
	var out []OrderField
	for _, v := range values {
		field, order, hasOrder := strings.Cut(v, ",")
		field = strings.TrimSpace(field)
		order = strings.TrimSpace(order)
		if hasOrder && order != "asc" && order != "desc" {
			return nil, inputErr("invalid order field order %q, must be asc or desc", order)
		}
		if field == "" {
			return nil, inputErr("invalid orderField %q: the field is empty", v)
		}
		if order == "" {
			order = "asc"
		}
		out = append(out, OrderField{Field: field, Order: order})
	}
	return out, nil
}

// parseTotalItems reads the totalItems mode: include (default) or exclude.
func parseTotalItems(v string) (exclude bool, err error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "include":
		return false, nil
	case "exclude":
		return true, nil
	}
	return false, inputErr("invalid totalItems %q, must be include or exclude", v)
}

func splitList(values []string) []string {
	var out []string
	for _, v := range values {
		for p := range strings.SplitSeq(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// getEntitiesByQuery serves GET /entities/by-query.
func (s *server) getEntitiesByQuery(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	req := queryRequest{limit: defaultQueryLimit}
	var err error
	if req.fields, err = ParseFields(q["fields"]); err != nil {
		return err
	}
	if n, ok, err := intParam(q, "limit", 0); err != nil {
		return err
	} else if ok {
		req.limit = n
	}
	if n, ok, err := intParam(q, "offset", 0); err != nil {
		return err
	} else if ok {
		req.offset = n
	}
	if c, ok, err := single(q, "cursor"); err != nil {
		return err
	} else if ok {
		if req.cursor, req.filter, err = DecodeCursor(c); err != nil {
			return err
		}
		return s.runQuery(w, req)
	}
	if req.filter, err = ParseFilter(q["filter"]); err != nil {
		return err
	}
	req.filterSets = q["filter"]
	if req.order, err = parseOrderFieldParams(q["orderField"]); err != nil {
		return err
	}
	term, _, err := single(q, "fullTextFilterTerm")
	if err != nil {
		return err
	}
	if ftFields := splitList(q["fullTextFilterFields"]); term != "" || len(ftFields) > 0 {
		req.fullText = &FullTextFilter{Term: term, Fields: ftFields}
	}
	mode, _, err := single(q, "totalItems")
	if err != nil {
		return err
	}
	if req.excludeTotal, err = parseTotalItems(mode); err != nil {
		return err
	}
	return s.runQuery(w, req)
}

// queryBody is the body of POST /entities/by-query.
type queryBody struct {
	Cursor *string    `json:"cursor"`
	Limit  *int       `json:"limit"`
	Offset *int       `json:"offset"`
	Fields stringList `json:"fields"`
	// OrderBy is the current form, [{field, order}]; OrderField the older
	// "field,order" strings. Only the first is applied.
	OrderBy        []OrderField    `json:"orderBy"`
	OrderField     stringList      `json:"orderField"`
	FullTextFilter *FullTextFilter `json:"fullTextFilter"`
	TotalItems     *string         `json:"totalItems"`
	Query          json.RawMessage `json:"query"`
}

// stringList decodes a JSON array of strings or a single string.
type stringList []string

// UnmarshalJSON accepts "a" as well as ["a", "b"].
func (l *stringList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*l = stringList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("expected a string or an array of strings")
	}
	*l = many
	return nil
}

// parsePredicateField parses an optional predicate body field; absent or
// null means no filter.
func parsePredicateField(raw json.RawMessage) (store.Expr, json.RawMessage, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil, nil
	}
	e, err := ParsePredicate(raw)
	if err != nil {
		return nil, nil, err
	}
	return e, raw, nil
}

// postEntitiesByQuery serves POST /entities/by-query: the by-query
// request in a body, with a predicate `query` instead of filter strings.
func (s *server) postEntitiesByQuery(w http.ResponseWriter, r *http.Request) error {
	var b queryBody
	if _, err := decodeBody(r, &b, true); err != nil {
		return err
	}
	req := queryRequest{limit: defaultQueryLimit}
	var err error
	if req.fields, err = ParseFields(b.Fields); err != nil {
		return err
	}
	if b.Limit != nil {
		if *b.Limit < 0 {
			return inputErr("invalid limit, must be zero or greater")
		}
		req.limit = *b.Limit
	}
	if b.Offset != nil {
		if *b.Offset < 0 {
			return inputErr("invalid offset, must be zero or greater")
		}
		req.offset = *b.Offset
	}
	if b.Cursor != nil {
		if *b.Cursor == "" {
			return inputErr("cursor cannot be empty")
		}
		if req.cursor, req.filter, err = DecodeCursor(*b.Cursor); err != nil {
			return err
		}
		return s.runQuery(w, req)
	}
	if req.filter, req.query, err = parsePredicateField(b.Query); err != nil {
		return err
	}
	for _, o := range b.OrderBy {
		o.Field = strings.TrimSpace(o.Field)
		if o.Field == "" {
			return inputErr("invalid orderBy: a field is empty")
		}
		switch o.Order {
		case "":
			o.Order = "asc"
		case "asc", "desc":
		default:
			return inputErr("invalid order field order %q, must be asc or desc", o.Order)
		}
		req.order = append(req.order, o)
	}
	if len(req.order) == 0 {
		if req.order, err = parseOrderFieldParams(b.OrderField); err != nil {
			return err
		}
	}
	if b.FullTextFilter != nil {
		req.fullText = b.FullTextFilter
	}
	if b.TotalItems != nil {
		if req.excludeTotal, err = parseTotalItems(*b.TotalItems); err != nil {
			return err
		}
	}
	return s.runQuery(w, req)
}

// pageInfo holds by-query's cursors.
type pageInfo struct {
	NextCursor string `json:"nextCursor,omitempty"`
	PrevCursor string `json:"prevCursor,omitempty"`
}

// runQuery answers one by-query page. The first request fixes the filter,
// order (first field only; entities lacking it are excluded, as since
// Backstage 3.7), full-text filter and total (counted by the store over the
// same walk, full-text filter included), and every cursor carries them. A
// prevCursor walks backwards (direction flipped) from the page's first
// item; none is given on the first page or on a page that starts at the
// first item.
func (s *server) runQuery(w http.ResponseWriter, req queryRequest) error {
	cat, err := s.catalog()
	if err != nil {
		return err
	}
	first := req.cursor == nil
	c := req.cursor
	if first {
		c = &Cursor{Filter: req.filterSets, Query: req.query, OrderFields: req.order, FullTextFilter: req.fullText}
		if c.OrderFields == nil {
			c.OrderFields = []OrderField{}
		}
	}
	sp := sortOf(c.OrderFields)
	ordered := sp.field != ""
	// With an order field the store leaves out the entities lacking it, as
	// Backstage does since 3.7; its total counts the same walk.
	filter := req.filter
	pq := store.PageQuery{Filter: filter, OrderField: sp.field, Desc: sp.desc}
	if req.limit > maxPageParam || req.offset > maxPageParam {
		return inputErr("invalid limit or offset: at most %d", maxPageParam)
	}
	if ft := c.FullTextFilter; ft != nil {
		if term := strings.ToLower(strings.TrimSpace(ft.Term)); term != "" {
			pq.FullTextTerm = term
			for _, f := range ft.Fields {
				if f = strings.ToLower(strings.TrimSpace(f)); f != "" {
					pq.FullTextFields = append(pq.FullTextFields, f)
				}
			}
			if len(pq.FullTextFields) == 0 {
				def := sp.field
				if def == "" {
					def = "metadata.uid"
				}
				pq.FullTextFields = []string{def}
			}
		}
	}

	var total *int
	if c.TotalItems != nil {
		total = c.TotalItems
	}
	wantTotal := first && !req.excludeTotal
	var items []store.Item
	more := false
	switch {
	case isNever(filter):
		if wantTotal {
			zero := 0
			total = &zero
		}
	case first:
		if req.limit == 0 && !wantTotal {
			break
		}
		pq.Limit, pq.WithTotal = req.offset+req.limit, wantTotal
		if req.limit == 0 {
			pq.Limit = 0
		}
		res, err := cat.Page(pq)
		if err != nil {
			return err
		}
		if wantTotal {
			n := res.Total
			total = &n
		}
		if req.limit > 0 {
			items, more = res.Items, res.More
			if req.offset >= len(items) {
				items = nil
			} else {
				items = items[req.offset:]
			}
		}
	case req.limit == 0:
	case !c.IsPrevious:
		pq.After, pq.Limit = c.position(), req.limit
		res, err := cat.Page(pq)
		if err != nil {
			return err
		}
		items, more = res.Items, res.More
	default:
		pq.After, pq.Limit, pq.Desc = c.position(), req.limit, !pq.Desc
		res, err := cat.Page(pq)
		if err != nil {
			return err
		}
		items = res.Items
		for i, j := 0, len(items)-1; i < j; i, j = i+1, j-1 {
			items[i], items[j] = items[j], items[i]
		}
		// Walking back from an item, there is always a next page.
		more = len(items) > 0
	}

	bodies := make([]json.RawMessage, 0, len(items))
	for _, it := range items {
		b, err := Project(it.Body, req.fields)
		if err != nil {
			return fmt.Errorf("project stored entity %s: %w", it.Ref, err)
		}
		bodies = append(bodies, b)
	}
	var info pageInfo
	if len(items) > 0 {
		firstVals := c.FirstSortFieldValues
		if firstVals == nil {
			firstVals = positionValues(items[0].Sort, ordered)
		}
		if more {
			next := *c
			next.OrderFieldValues = positionValues(items[len(items)-1].Sort, ordered)
			next.FirstSortFieldValues = firstVals
			next.IsPrevious = false
			next.TotalItems = total
			info.NextCursor = EncodeCursor(&next)
		}
		head := positionValues(items[0].Sort, ordered)
		if !first && !equalStrings(head, c.FirstSortFieldValues) {
			prev := *c
			prev.OrderFieldValues = head
			prev.FirstSortFieldValues = firstVals
			prev.IsPrevious = true
			prev.TotalItems = total
			info.PrevCursor = EncodeCursor(&prev)
		}
	}
	n := 0
	if total != nil {
		n = *total
	}
	pi, err := json.Marshal(info)
	if err != nil {
		return err
	}
	buf := appendItems([]byte(`{"items":`), bodies)
	buf = append(buf, `,"totalItems":`...)
	buf = strconv.AppendInt(buf, int64(n), 10)
	buf = append(buf, `,"pageInfo":`...)
	buf = append(append(buf, pi...), '}')
	return writeRaw(w, http.StatusOK, buf)
}

// appendItems appends a JSON array of stored (compact, valid) documents,
// null for nil ones, without re-encoding them.
func appendItems(buf []byte, items []json.RawMessage) []byte {
	buf = append(buf, '[')
	for i, it := range items {
		if i > 0 {
			buf = append(buf, ',')
		}
		if it == nil {
			buf = append(buf, "null"...)
		} else {
			buf = append(buf, it...)
		}
	}
	return append(buf, ']')
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
