package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/catalog-pipeline/pipeline/store"
)

// maxPredicateDepth bounds the nesting of a predicate ($all/$any/$not and
// field values), so that a hostile body cannot exhaust the stack.
const maxPredicateDepth = 64

// The constant expressions: an empty All matches every entity and an empty
// Any none. The parser folds them away except at the root.
var (
	always store.Expr = store.All{}
	never  store.Expr = store.Any{}
)

func isAlways(e store.Expr) bool {
	a, ok := e.(store.All)
	return ok && len(a) == 0
}

func isNever(e store.Expr) bool {
	a, ok := e.(store.Any)
	return ok && len(a) == 0
}

// ParsePredicate parses a filter predicate of POST bodies
// (@backstage/filter-predicates) into an expression:
//
//   - the root is an object; a primitive, array or null root is refused;
//   - an object of `path: value` pairs ANDs its pairs; `{}` matches all;
//   - {$all: [...]}, {$any: [...]} and {$not: p} combine predicates and must
//     stand alone (sibling keys are refused, as Backstage 4.0.3 does); an
//     empty $all or $any matches nothing, as in Backstage's backend;
//   - a value is a primitive (case-insensitive equality; numbers and
//     booleans compare as their string form), {$exists: bool},
//     {$in: [primitives]}, {$hasPrefix: "str"} or {$contains: x}, where a
//     primitive x is array membership and, under `relations` only,
//     {type, targetRef?} matches the relations.<type> index (targetRef may
//     be a string or {$in: [...]}).
//
// Paths and values are lowercased. A nil result matches everything. Every
// error is a 400 InputError whose message starts with "Invalid query:".
// Callers treat an absent or null `query` as no filter before calling.
func ParsePredicate(raw []byte) (store.Expr, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, predErr("the query is not valid JSON: %v", err)
	}
	if dec.More() {
		return nil, predErr("the query holds more than one JSON value")
	}
	return PredicateFromValue(v)
}

// PredicateFromValue is ParsePredicate for an already decoded JSON value
// (numbers as json.Number or float64).
func PredicateFromValue(v any) (store.Expr, error) {
	if _, ok := v.(map[string]any); !ok {
		switch v.(type) {
		case string, json.Number, float64, bool:
			return nil, predErr("top-level primitive values are not supported; wrap the value in a field expression, e.g. {\"kind\": %s}", mustJSON(v))
		}
		return nil, predErr("the query must be an object, got %s", jsonType(v))
	}
	e, err := parsePredicate(v, 0)
	if err != nil {
		return nil, err
	}
	if isAlways(e) {
		return nil, nil
	}
	return e, nil
}

func predErr(format string, args ...any) *Error {
	return inputErr("Invalid query: "+format, args...)
}

func parsePredicate(v any, depth int) (store.Expr, error) {
	if depth > maxPredicateDepth {
		return nil, predErr("the query is nested more than %d levels deep", maxPredicateDepth)
	}
	m, ok := v.(map[string]any)
	if !ok {
		switch v.(type) {
		case string, json.Number, float64, bool:
			return nil, predErr("a primitive value (%s) cannot stand as a predicate; wrap it in a field expression, e.g. {\"kind\": %s}", mustJSON(v), mustJSON(v))
		}
		return nil, predErr("a predicate must be an object, got %s", jsonType(v))
	}
	for _, op := range []string{"$all", "$any", "$not"} {
		x, has := m[op]
		if !has {
			continue
		}
		if len(m) > 1 {
			return nil, predErr("%s cannot be combined with other keys (%s); wrap them in $all", op, strings.Join(otherKeys(m, op), ", "))
		}
		if op == "$not" {
			inner, err := parsePredicate(x, depth+1)
			if err != nil {
				return nil, err
			}
			return mkNot(inner), nil
		}
		list, ok := x.([]any)
		if !ok {
			return nil, predErr("%s must be an array of predicates, got %s", op, jsonType(x))
		}
		parts := make([]store.Expr, 0, len(list))
		for _, item := range list {
			p, err := parsePredicate(item, depth+1)
			if err != nil {
				return nil, err
			}
			parts = append(parts, p)
		}
		if len(parts) == 0 {
			// Backstage's backend matches nothing for an empty $all or $any.
			return never, nil
		}
		if op == "$all" {
			return mkAll(parts), nil
		}
		return mkAny(parts), nil
	}
	keys := sortedKeys(m)
	parts := make([]store.Expr, 0, len(keys))
	for _, k := range keys {
		if strings.HasPrefix(k, "$") {
			return nil, predErr("unknown operator %q; the logical operators are $all, $any and $not", k)
		}
		p, err := parseField(strings.ToLower(k), m[k], depth+1)
		if err != nil {
			return nil, err
		}
		parts = append(parts, p)
	}
	return mkAll(parts), nil
}

// parseField parses the value matched against one path.
func parseField(key string, v any, depth int) (store.Expr, error) {
	if key == "" {
		return nil, predErr("a field path must not be empty")
	}
	if s, ok := primitive(v); ok {
		return store.Eq{Key: key, Value: strings.ToLower(s)}, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, predErr("unsupported value for field %q: expected a primitive value, $exists, $in, $hasPrefix or $contains, got %s", key, jsonType(v))
	}
	if len(m) != 1 {
		return nil, predErr("unsupported value for field %q: expected one of $exists, $in, $hasPrefix or $contains, got %s", key, mustJSON(v))
	}
	for op, x := range m {
		switch op {
		case "$exists":
			b, ok := x.(bool)
			if !ok {
				return nil, predErr("$exists of field %q must be true or false, got %s", key, jsonType(x))
			}
			if b {
				return store.Exists{Key: key}, nil
			}
			return mkNot(store.Exists{Key: key}), nil
		case "$in":
			return parseIn(key, x)
		case "$hasPrefix":
			s, ok := x.(string)
			if !ok {
				return nil, predErr("$hasPrefix of field %q must be a string, got %s", key, jsonType(x))
			}
			return store.HasPrefix{Key: key, Prefix: strings.ToLower(s)}, nil
		case "$contains":
			if s, ok := primitive(x); ok {
				// The index has one row per array item: plain equality.
				return store.Eq{Key: key, Value: strings.ToLower(s)}, nil
			}
			if t, ok := x.(map[string]any); ok && key == "relations" {
				return parseContainsRelation(t)
			}
			return nil, predErr("unsupported $contains for field %q: expected a primitive value (or {type, targetRef} under relations), got %s", key, mustJSON(x))
		}
		return nil, predErr("unsupported operator %q for field %q; expected $exists, $in, $hasPrefix or $contains", op, key)
	}
	return nil, predErr("unsupported value for field %q", key)
}

func parseIn(key string, x any) (store.Expr, error) {
	list, ok := x.([]any)
	if !ok {
		return nil, predErr("$in of field %q must be an array of primitive values, got %s", key, jsonType(x))
	}
	if len(list) == 0 {
		return never, nil
	}
	values := make([]string, 0, len(list))
	for _, item := range list {
		s, ok := primitive(item)
		if !ok {
			return nil, predErr("$in of field %q must hold only strings, numbers and booleans, got %s", key, jsonType(item))
		}
		values = append(values, strings.ToLower(s))
	}
	if len(values) == 1 {
		return store.Eq{Key: key, Value: values[0]}, nil
	}
	return store.In{Key: key, Values: values}, nil
}

// parseContainsRelation maps {relations: {$contains: {type, targetRef?}}}
// onto the relations.<type> index.
func parseContainsRelation(t map[string]any) (store.Expr, error) {
	typ, hasType := t["type"]
	ref, hasRef := t["targetRef"]
	extra := len(t) - 1
	if hasRef {
		extra--
	}
	if !hasType || extra > 0 {
		return nil, predErr("$contains for \"relations\" requires a \"type\" and optionally a \"targetRef\" property, got %s", mustJSON(t))
	}
	ts, ok := primitive(typ)
	if !ok || ts == "" {
		return nil, predErr("the relation type of $contains must be a non-empty string, got %s", mustJSON(typ))
	}
	key := "relations." + strings.ToLower(ts)
	if !hasRef {
		return store.Exists{Key: key}, nil
	}
	if s, ok := ref.(string); ok {
		return store.Eq{Key: key, Value: strings.ToLower(s)}, nil
	}
	if m, ok := ref.(map[string]any); ok && len(m) == 1 {
		if in, ok := m["$in"]; ok {
			return parseIn(key, in)
		}
	}
	return nil, predErr("unsupported \"targetRef\" in $contains for \"relations\": expected a string or {$in: [...]}, got %s", mustJSON(ref))
}

// mkAll ANDs parts, folding constants.
func mkAll(parts []store.Expr) store.Expr {
	out := make([]store.Expr, 0, len(parts))
	for _, p := range parts {
		switch {
		case isNever(p):
			return never
		case isAlways(p):
			continue
		}
		out = append(out, p)
	}
	switch len(out) {
	case 0:
		return always
	case 1:
		return out[0]
	}
	return store.All(out)
}

// mkAny ORs parts, folding constants.
func mkAny(parts []store.Expr) store.Expr {
	out := make([]store.Expr, 0, len(parts))
	for _, p := range parts {
		switch {
		case isAlways(p):
			return always
		case isNever(p):
			continue
		}
		out = append(out, p)
	}
	switch len(out) {
	case 0:
		return never
	case 1:
		return out[0]
	}
	return store.Any(out)
}

// mkNot negates p, folding constants and double negations.
func mkNot(p store.Expr) store.Expr {
	switch {
	case isAlways(p):
		return never
	case isNever(p):
		return always
	}
	if n, ok := p.(store.Not); ok {
		return n.Expr
	}
	return store.Not{Expr: p}
}

// primitive returns the string form of a JSON primitive, as JavaScript's
// String() gives it.
func primitive(v any) (string, bool) {
	switch t := v.(type) {
	case string:
		return t, true
	case bool:
		return strconv.FormatBool(t), true
	case json.Number:
		f, err := t.Float64()
		if err != nil {
			return string(t), true
		}
		return jsNumber(f), true
	case float64:
		return jsNumber(t), true
	}
	return "", false
}

// jsNumber formats f the way JavaScript's String(number) does for the
// common cases: integers without a fraction, exponents from 1e21.
func jsNumber(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case math.IsNaN(f):
		return "NaN"
	case f == 0:
		return "0"
	}
	if a := math.Abs(f); a >= 1e21 || a < 1e-6 {
		s := strconv.FormatFloat(f, 'e', -1, 64)
		// Go writes e+21 / e-07; JavaScript writes e+21 / e-7.
		if i := strings.IndexAny(s, "e"); i >= 0 {
			mant, exp := s[:i], s[i+1:]
			sign := exp[0]
			digits := strings.TrimLeft(exp[1:], "0")
			if digits == "" {
				digits = "0"
			}
			s = mant + "e" + string(sign) + digits
		}
		return s
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case json.Number, float64:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// mustJSON renders v for a message, shortened when long.
func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func otherKeys(m map[string]any, except string) []string {
	var out []string
	for _, k := range sortedKeys(m) {
		if k != except {
			out = append(out, k)
		}
	}
	return out
}
