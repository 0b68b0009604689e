package api

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// maxFields bounds the paths of one fields projection.
const maxFields = 200

// ParseFields parses the repeatable `fields` parameter: comma-separated
// dotted paths, trimmed, empty ones dropped. Paths with '[' are refused
// (Backstage does not support array paths). nil means "whole entities".
func ParseFields(values []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, v := range values {
		for f := range strings.SplitSeq(v, ",") {
			f = strings.TrimSpace(f)
			if f == "" || seen[f] {
				continue
			}
			if strings.Contains(f, "[") {
				return nil, inputErr("invalid fields: %q uses array syntax, which is not supported; use dotted paths such as metadata.name", f)
			}
			seen[f] = true
			out = append(out, f)
			if len(out) > maxFields {
				return nil, inputErr("invalid fields: more than %d paths", maxFields)
			}
		}
	}
	return out, nil
}

// Project keeps only the given dotted paths of a JSON entity. A path part
// that is not a key of the object at hand is joined with the next part, so
// that keys holding dots (annotation names such as
// metadata.annotations.backstage.io/orphan) can be named, as Backstage's
// projection does. Array items can be named by index. With no fields, body
// is returned unchanged.
func Project(body []byte, fields []string) ([]byte, error) {
	if len(fields) == 0 || body == nil {
		return body, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var in any
	if err := dec.Decode(&in); err != nil {
		return nil, err
	}
	var out any = map[string]any{}
	for _, f := range fields {
		path, v, ok := lookupPath(in, strings.Split(f, "."))
		if ok && len(path) > 0 {
			out = setPath(out, path, v)
		}
	}
	return json.Marshal(out)
}

// lookupPath walks parts through v, joining a part with the next one when
// it is not found (lodash's hasIn-based walk in Backstage).
func lookupPath(v any, parts []string) ([]string, any, bool) {
	var path []string
	cur := v
	for i := 0; i < len(parts); i++ {
		p := parts[i]
		if next, ok := child(cur, p); ok {
			path = append(path, p)
			cur = next
			continue
		}
		if i+1 < len(parts) {
			parts[i+1] = p + "." + parts[i+1]
			continue
		}
		return nil, nil, false
	}
	return path, cur, true
}

func child(v any, key string) (any, bool) {
	switch t := v.(type) {
	case map[string]any:
		x, ok := t[key]
		return x, ok
	case []any:
		if i, ok := index(key); ok && i < len(t) {
			return t[i], true
		}
	}
	return nil, false
}

// index parses an array index ("0", "12"); no signs or leading zeros.
func index(s string) (int, bool) {
	if s == "" || (len(s) > 1 && s[0] == '0') || len(s) > 9 {
		return 0, false
	}
	i, err := strconv.Atoi(s)
	if err != nil || i < 0 {
		return 0, false
	}
	return i, true
}

// setPath sets path in container c (creating objects, or arrays for index
// parts) and returns the possibly new container.
func setPath(c any, path []string, v any) any {
	if len(path) == 0 {
		return v
	}
	p := path[0]
	switch t := c.(type) {
	case map[string]any:
		t[p] = setPath(t[p], path[1:], v)
		return t
	case []any:
		if i, ok := index(p); ok {
			for len(t) <= i {
				t = append(t, nil)
			}
			t[i] = setPath(t[i], path[1:], v)
			return t
		}
		// An array met with a non-index key: replace it by an object.
		m := map[string]any{}
		m[p] = setPath(nil, path[1:], v)
		return m
	}
	if i, ok := index(p); ok {
		t := make([]any, i+1)
		t[i] = setPath(nil, path[1:], v)
		return t
	}
	return map[string]any{p: setPath(nil, path[1:], v)}
}
