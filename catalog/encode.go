package catalog

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
)

// appendEntity appends the entity's JSON: byte for byte what
// json.Marshal(e.ToMap()) produces (sorted keys, encoding/json's escaping
// and number format), without building and copying the maps first. Every
// entity is encoded once per processing run and once per child read, and
// the detour through maps was a tenth of a cold ingest's CPU. Etags and
// result hashes are computed over these bytes, so the two must never
// differ (TestAppendEntityMatchesMarshal).
func appendEntity(b []byte, e *Entity) ([]byte, error) {
	fields := make([]field, 0, 6+len(e.Extra))
	if e.APIVersion != "" {
		fields = append(fields, field{"apiVersion", e.APIVersion})
	}
	if e.Kind != "" {
		fields = append(fields, field{"kind", e.Kind})
	}
	fields = append(fields, field{"metadata", &e.Metadata})
	if e.Spec != nil {
		fields = append(fields, field{"spec", e.Spec})
	}
	if e.Relations != nil {
		fields = append(fields, field{"relations", e.Relations})
	}
	if e.Status != nil {
		fields = append(fields, field{"status", e.Status})
	}
	return appendObject(b, fields, e.Extra)
}

// field is one key of an object being encoded; v is a JSON-shaped value
// or one of the entity's typed parts (appendValue).
type field struct {
	key string
	v   any
}

// appendObject encodes the fields and the extra keys none of them has
// (ToMap writes the typed fields over the extra ones), in key order.
func appendObject(b []byte, fields []field, extra map[string]any) ([]byte, error) {
	known := fields[:len(fields):len(fields)]
	for k, v := range extra {
		if !slices.ContainsFunc(known, func(f field) bool { return f.key == k }) {
			fields = append(fields, field{k, v})
		}
	}
	slices.SortFunc(fields, func(x, y field) int { return strings.Compare(x.key, y.key) })
	b = append(b, '{')
	var err error
	for i, f := range fields {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, f.key)
		b = append(b, ':')
		if b, err = appendValue(b, f.v); err != nil {
			return b, err
		}
	}
	return append(b, '}'), nil
}

func appendValue(b []byte, v any) ([]byte, error) {
	switch t := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendString(b, t), nil
	case bool:
		return strconv.AppendBool(b, t), nil
	case int:
		return strconv.AppendInt(b, int64(t), 10), nil
	case int64:
		return strconv.AppendInt(b, t, 10), nil
	case float64:
		return appendFloat(b, t)
	case map[string]any:
		if t == nil {
			return append(b, "null"...), nil
		}
		return appendObject(b, make([]field, 0, len(t)), t)
	case []any:
		// Even a nil list is [] here: ToMap's CloneValue makes every list
		// non-nil.
		return appendList(b, len(t), func(b []byte, i int) ([]byte, error) { return appendValue(b, t[i]) })
	case map[string]string:
		fields := make([]field, 0, len(t))
		for k, s := range t {
			fields = append(fields, field{k, s})
		}
		return appendObject(b, fields, nil)
	case []string:
		return appendList(b, len(t), func(b []byte, i int) ([]byte, error) { return appendString(b, t[i]), nil })
	case *Metadata:
		return appendMetadata(b, t)
	case []Link:
		return appendList(b, len(t), func(b []byte, i int) ([]byte, error) {
			l := t[i]
			fields := []field{{"url", l.URL}}
			for _, f := range []field{{"title", l.Title}, {"icon", l.Icon}, {"type", l.Type}} {
				if f.v != "" {
					fields = append(fields, f)
				}
			}
			return appendObject(b, fields, l.Extra)
		})
	case []Relation:
		return appendList(b, len(t), func(b []byte, i int) ([]byte, error) {
			b = append(b, `{"targetRef":`...)
			b = appendString(b, t[i].TargetRef)
			b = append(b, `,"type":`...)
			b = appendString(b, t[i].Type)
			return append(b, '}'), nil
		})
	case *Status:
		b = append(b, `{"items":`...)
		b, _ = appendList(b, len(t.Items), func(b []byte, i int) ([]byte, error) {
			it := t.Items[i]
			b = append(b, '{')
			if it.Error != nil {
				b = append(b, `"error":{"message":`...)
				b = appendString(b, it.Error.Message)
				b = append(b, `,"name":`...)
				b = appendString(b, it.Error.Name)
				if it.Error.Stack != "" {
					b = append(b, `,"stack":`...)
					b = appendString(b, it.Error.Stack)
				}
				b = append(b, "},"...)
			}
			b = append(b, `"level":`...)
			b = appendString(b, it.Level)
			b = append(b, `,"message":`...)
			b = appendString(b, it.Message)
			b = append(b, `,"type":`...)
			b = appendString(b, it.Type)
			return append(b, '}'), nil
		})
		return append(b, '}'), nil
	}
	// Anything else a caller put into a map: let encoding/json decide.
	out, err := json.Marshal(v)
	return append(b, out...), err
}

// appendList encodes n items as a JSON array, item i by item.
func appendList(b []byte, n int, item func(b []byte, i int) ([]byte, error)) ([]byte, error) {
	b = append(b, '[')
	var err error
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		if b, err = item(b, i); err != nil {
			return b, err
		}
	}
	return append(b, ']'), nil
}

func appendMetadata(b []byte, md *Metadata) ([]byte, error) {
	fields := make([]field, 0, 10+len(md.Extra))
	for _, f := range []field{{"name", md.Name}, {"namespace", md.Namespace}, {"title", md.Title},
		{"description", md.Description}, {"uid", md.UID}, {"etag", md.Etag}} {
		if f.v != "" {
			fields = append(fields, f)
		}
	}
	if md.Labels != nil {
		fields = append(fields, field{"labels", md.Labels})
	}
	if md.Annotations != nil {
		fields = append(fields, field{"annotations", md.Annotations})
	}
	if md.Tags != nil {
		fields = append(fields, field{"tags", md.Tags})
	}
	if md.Links != nil {
		fields = append(fields, field{"links", md.Links})
	}
	return appendObject(b, fields, md.Extra)
}

// appendString quotes s as encoding/json does. Strings of printable ASCII
// without the characters it escapes (", \, <, >, &) are copied; any other
// goes through encoding/json, so that control characters, HTML characters,
// U+2028/U+2029 and invalid UTF-8 come out exactly as it writes them.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			out, _ := json.Marshal(s) // a string always encodes
			return append(b, out...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendFloat formats f as encoding/json does: the shortest repr, in
// exponent form below 1e-6 and from 1e21, with a one-digit negative
// exponent unpadded.
func appendFloat(b []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		_, err := json.Marshal(f) // the error encoding/json gives
		return b, err
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 → e-9
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}
