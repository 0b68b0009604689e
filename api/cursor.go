package api

import (
	"encoding/base64"
	"encoding/json"
	"strings"

	"github.com/catalog-pipeline/pipeline/store"
)

// maxCursorLen bounds an encoded cursor (cursors carry the filter, so they
// can be long, but not unbounded).
const maxCursorLen = 1 << 20

// OrderField is one sort instruction of by-query: a dotted field and
// "asc" or "desc".
type OrderField struct {
	Field string `json:"field"`
	Order string `json:"order"`
}

// FullTextFilter is by-query's full-text filter: a case-insensitive
// substring match of Term over Fields.
type FullTextFilter struct {
	Term   string   `json:"term"`
	Fields []string `json:"fields,omitempty"`
}

// Cursor is the opaque by-query cursor: base64 of this JSON. It carries
// everything the first request fixed (the filter in its query-string form
// or the predicate, the order, the full-text filter and the total), the
// position to continue from and the direction, like Backstage's cursor.
type Cursor struct {
	// Filter holds the query-string filter sets (GET form).
	Filter []string `json:"filter,omitempty"`
	// Query holds the predicate (POST form).
	Query json.RawMessage `json:"query,omitempty"`
	// OrderFields is the order; only the first is applied.
	OrderFields []OrderField `json:"orderFields"`
	// OrderFieldValues is the position: [sortValue, ref] with an order
	// field, [ref] without.
	OrderFieldValues []string `json:"orderFieldValues"`
	// FullTextFilter is the full-text filter, if any.
	FullTextFilter *FullTextFilter `json:"fullTextFilter,omitempty"`
	// IsPrevious walks backwards from the position (a prevCursor).
	IsPrevious bool `json:"isPrevious"`
	// FirstSortFieldValues is the position of the first item of the first
	// page: a page starting there has no previous page.
	FirstSortFieldValues []string `json:"firstSortFieldValues,omitempty"`
	// TotalItems is the count computed on the first page; nil when the
	// first request excluded it.
	TotalItems *int `json:"totalItems,omitempty"`
}

// EncodeCursor renders c as an opaque string.
func EncodeCursor(c *Cursor) string {
	b, _ := json.Marshal(c)
	return base64.StdEncoding.EncodeToString(b)
}

// decodeBase64 accepts standard and URL-safe base64, padded or not, and
// spaces where a '+' was decoded from a query string.
func decodeBase64(s string) ([]byte, bool) {
	s = strings.TrimSpace(s)
	s = strings.ReplaceAll(s, " ", "+")
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, true
		}
	}
	return nil, false
}

// DecodeCursor parses and checks a by-query cursor. Anything malformed is
// an InputError (400); the filter or predicate it carries is parsed too, so
// a decoded cursor is known to be usable.
func DecodeCursor(s string) (*Cursor, store.Expr, error) {
	if s == "" {
		return nil, nil, inputErr("malformed cursor: the cursor is empty")
	}
	if len(s) > maxCursorLen {
		return nil, nil, inputErr("malformed cursor: longer than %d bytes", maxCursorLen)
	}
	b, ok := decodeBase64(s)
	if !ok {
		return nil, nil, inputErr("malformed cursor: not base64")
	}
	var c Cursor
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, nil, inputErr("malformed cursor: not the JSON of a cursor: %v", err)
	}
	if len(c.Filter) > 0 && len(c.Query) > 0 && string(c.Query) != "null" {
		return nil, nil, inputErr("malformed cursor: it holds both a filter and a query")
	}
	if len(c.OrderFields) > 1 {
		c.OrderFields = c.OrderFields[:1]
	}
	for _, o := range c.OrderFields {
		if strings.TrimSpace(o.Field) == "" {
			return nil, nil, inputErr("malformed cursor: an order field is empty")
		}
		if o.Order != "asc" && o.Order != "desc" {
			return nil, nil, inputErr("malformed cursor: order %q is not asc or desc", o.Order)
		}
	}
	want := 1
	if len(c.OrderFields) > 0 {
		want = 2
	}
	if len(c.OrderFieldValues) != want {
		return nil, nil, inputErr("malformed cursor: the position must hold %d values, got %d", want, len(c.OrderFieldValues))
	}
	if c.FirstSortFieldValues != nil && len(c.FirstSortFieldValues) != want {
		return nil, nil, inputErr("malformed cursor: the first position must hold %d values, got %d", want, len(c.FirstSortFieldValues))
	}
	if c.TotalItems != nil && *c.TotalItems < 0 {
		return nil, nil, inputErr("malformed cursor: totalItems is negative")
	}
	var filter store.Expr
	var err error
	switch {
	case len(c.Query) > 0 && string(c.Query) != "null":
		filter, err = ParsePredicate(c.Query)
	default:
		filter, err = ParseFilter(c.Filter)
	}
	if err != nil {
		return nil, nil, inputErr("malformed cursor: %v", err)
	}
	return &c, filter, nil
}

// position returns the store position a cursor's values name.
func (c *Cursor) position() *store.Position {
	if len(c.OrderFieldValues) == 2 {
		return &store.Position{Value: c.OrderFieldValues[0], Ref: c.OrderFieldValues[1]}
	}
	return &store.Position{Ref: c.OrderFieldValues[0]}
}

// positionValues renders a store position as cursor values.
func positionValues(p store.Position, ordered bool) []string {
	if ordered {
		return []string{p.Value, p.Ref}
	}
	return []string{p.Ref}
}

// legacyAfter is the `after` cursor of GET /entities: base64 of
// {"limit":N,"offset":M}.
type legacyAfter struct {
	Limit  *json.Number `json:"limit,omitempty"`
	Offset *json.Number `json:"offset,omitempty"`
}

// decodeAfter parses GET /entities' after cursor, returning the limit and
// offset it overrides (nil when absent).
func decodeAfter(s string) (limit, offset *int, err error) {
	b, ok := decodeBase64(s)
	if !ok {
		return nil, nil, inputErr("malformed after cursor, could not be parsed")
	}
	var a legacyAfter
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, nil, inputErr("malformed after cursor, could not be parsed")
	}
	conv := func(n *json.Number, name string, min int64) (*int, error) {
		if n == nil {
			return nil, nil
		}
		i, err := n.Int64()
		if err != nil || i < min || i > 1<<31 {
			return nil, inputErr("malformed after cursor, %s was not a valid number", name)
		}
		v := int(i)
		return &v, nil
	}
	if limit, err = conv(a.Limit, "limit", 1); err != nil {
		return nil, nil, err
	}
	if offset, err = conv(a.Offset, "offset", 0); err != nil {
		return nil, nil, err
	}
	return limit, offset, nil
}

func encodeAfter(limit, offset int) string {
	b, _ := json.Marshal(map[string]int{"limit": limit, "offset": offset})
	return base64.StdEncoding.EncodeToString(b)
}

// locationCursor is the cursor of POST /locations/by-query.
type locationCursor struct {
	Limit   int             `json:"limit"`
	AfterID string          `json:"afterId,omitempty"`
	Query   json.RawMessage `json:"query,omitempty"`
}

func encodeLocationCursor(c locationCursor) string {
	b, _ := json.Marshal(c)
	return base64.StdEncoding.EncodeToString(b)
}

// decodeLocationCursor parses a locations cursor and its predicate.
func decodeLocationCursor(s string) (*locationCursor, store.Expr, error) {
	if s == "" {
		return nil, nil, inputErr("cursor cannot be empty")
	}
	if len(s) > maxCursorLen {
		return nil, nil, inputErr("malformed cursor: longer than %d bytes", maxCursorLen)
	}
	b, ok := decodeBase64(s)
	if !ok {
		return nil, nil, inputErr("malformed cursor, unknown encoding")
	}
	var c locationCursor
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, nil, inputErr("malformed cursor: %v", err)
	}
	if c.Limit < 1 {
		return nil, nil, inputErr("malformed cursor: limit must be a positive integer")
	}
	var filter store.Expr
	if len(c.Query) > 0 && string(c.Query) != "null" {
		var err error
		if filter, err = ParsePredicate(c.Query); err != nil {
			return nil, nil, inputErr("malformed cursor: %v", err)
		}
	}
	return &c, filter, nil
}
