package api

import (
	"strings"

	"github.com/catalog-pipeline/pipeline/store"
)

// maxFilterConditions bounds the conditions of one request's query-string
// filter, so that a pathological URL cannot make a huge expression.
const maxFilterConditions = 1000

// ParseFilter turns the values of the repeatable `filter` query parameter
// into an expression, with Backstage's grammar (parseEntityFilterParams):
//
//   - each value is a filter set; several sets are OR'ed;
//   - inside a set, comma-separated conditions are AND'ed;
//   - a condition is `key` (the key exists) or `key=value` (equality; the
//     first '=' splits, both sides are trimmed; `key=` compares with "");
//   - the same key repeated in a set is an OR over its values
//     (`kind=component,kind=api`); a bare `key` next to `key=value` adds
//     nothing.
//
// Keys and values are lowercased, as the search index is. The result is nil
// when no condition is given (everything matches).
func ParseFilter(values []string) (store.Expr, error) {
	var sets []store.Expr
	n := 0
	for _, v := range values {
		set, count, err := parseFilterSet(v)
		if err != nil {
			return nil, err
		}
		n += count
		if n > maxFilterConditions {
			return nil, inputErr("invalid filter: more than %d conditions", maxFilterConditions)
		}
		if set != nil {
			sets = append(sets, set)
		}
	}
	switch len(sets) {
	case 0:
		return nil, nil
	case 1:
		return sets[0], nil
	}
	return store.Any(sets), nil
}

// parseFilterSet parses one filter set; nil when it holds no condition.
func parseFilterSet(s string) (store.Expr, int, error) {
	type cond struct {
		key    string
		values []string
	}
	var order []*cond
	byKey := map[string]*cond{}
	n := 0
	for stmt := range strings.SplitSeq(s, ",") {
		stmt = strings.TrimSpace(stmt)
		if stmt == "" {
			continue
		}
		n++
		key, value, hasValue := strings.Cut(stmt, "=")
		key = strings.TrimSpace(key)
		if key == "" {
			return nil, 0, inputErr("invalid filter: %q is not a valid statement (expected a string on the form a=b or a= or a)", stmt)
		}
		c := byKey[key]
		if c == nil {
			c = &cond{key: key}
			byKey[key] = c
			order = append(order, c)
		}
		if hasValue {
			c.values = append(c.values, strings.ToLower(strings.TrimSpace(value)))
		}
	}
	var parts []store.Expr
	for _, c := range order {
		k := strings.ToLower(c.key)
		switch len(c.values) {
		case 0:
			parts = append(parts, store.Exists{Key: k})
		case 1:
			parts = append(parts, store.Eq{Key: k, Value: c.values[0]})
		default:
			parts = append(parts, store.In{Key: k, Values: c.values})
		}
	}
	switch len(parts) {
	case 0:
		return nil, n, nil
	case 1:
		return parts[0], n, nil
	}
	return store.All(parts), n, nil
}

// and combines optional expressions with AND, folding the constants of
// predicates; nil parts are skipped and a nil result means everything.
func and(parts ...store.Expr) store.Expr {
	var out []store.Expr
	for _, p := range parts {
		if p != nil {
			out = append(out, p)
		}
	}
	e := mkAll(out)
	if isAlways(e) {
		return nil
	}
	return e
}
