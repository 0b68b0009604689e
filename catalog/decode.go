package catalog

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// parseObject decodes the JSON object at the start of b into the map
// encoding/json would decode it into (numbers as float64, the last of
// duplicate keys winning), without its reflection: every processing run
// decodes its entity, and encoding/json's decode into map[string]any was
// a twentieth of a cold ingest's CPU. ok is false for anything but a
// well-formed object this parser is sure about; the caller then lets
// encoding/json decode the bytes, for its exact result or error.
// Strings with escapes go through encoding/json one by one.
func parseObject(b []byte) (m map[string]any, ok bool) {
	d := jsonParser{b: b}
	d.space()
	if d.p >= len(d.b) || d.b[d.p] != '{' {
		return nil, false
	}
	return d.object(0)
}

// maxParseDepth is encoding/json's nesting limit; deeper input goes to it
// for its error.
const maxParseDepth = 10000

type jsonParser struct {
	b []byte
	p int
}

func (d *jsonParser) space() {
	for d.p < len(d.b) {
		switch d.b[d.p] {
		case ' ', '\t', '\n', '\r':
			d.p++
		default:
			return
		}
	}
}

func (d *jsonParser) value(depth int) (any, bool) {
	if d.p >= len(d.b) {
		return nil, false
	}
	switch c := d.b[d.p]; {
	case c == '{':
		m, ok := d.object(depth + 1)
		return m, ok
	case c == '[':
		return d.array(depth + 1)
	case c == '"':
		return d.str()
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	default:
		return d.number()
	}
}

func (d *jsonParser) literal(lit string) bool {
	if len(d.b)-d.p < len(lit) || string(d.b[d.p:d.p+len(lit)]) != lit {
		return false
	}
	d.p += len(lit)
	return true
}

// object parses from the '{'.
func (d *jsonParser) object(depth int) (map[string]any, bool) {
	if depth > maxParseDepth {
		return nil, false
	}
	d.p++
	m := map[string]any{}
	d.space()
	if d.p < len(d.b) && d.b[d.p] == '}' {
		d.p++
		return m, true
	}
	for {
		if d.p >= len(d.b) || d.b[d.p] != '"' {
			return nil, false
		}
		k, ok := d.str()
		if !ok {
			return nil, false
		}
		d.space()
		if d.p >= len(d.b) || d.b[d.p] != ':' {
			return nil, false
		}
		d.p++
		d.space()
		v, ok := d.value(depth)
		if !ok {
			return nil, false
		}
		m[k.(string)] = v
		if done, ok := d.after('}'); !ok || done {
			return m, ok
		}
	}
}

// after reads what follows a member of an object or an array: a comma,
// more to come, or the closing byte (done).
func (d *jsonParser) after(closing byte) (done, ok bool) {
	d.space()
	if d.p >= len(d.b) {
		return false, false
	}
	switch d.b[d.p] {
	case ',':
		d.p++
		d.space()
		return false, true
	case closing:
		d.p++
		return true, true
	}
	return false, false
}

// array parses from the '['.
func (d *jsonParser) array(depth int) (any, bool) {
	if depth > maxParseDepth {
		return nil, false
	}
	d.p++
	l := []any{}
	d.space()
	if d.p < len(d.b) && d.b[d.p] == ']' {
		d.p++
		return l, true
	}
	for {
		v, ok := d.value(depth)
		if !ok {
			return nil, false
		}
		l = append(l, v)
		if done, ok := d.after(']'); !ok || done {
			return l, ok
		}
	}
}

// str parses from the opening quote. A string with an escape or with
// bytes that are not valid UTF-8 is decoded by encoding/json.
func (d *jsonParser) str() (any, bool) {
	start := d.p + 1
	plain := true
	for i := start; i < len(d.b); i++ {
		switch c := d.b[i]; {
		case c == '"':
			d.p = i + 1
			s := d.b[start:i]
			if plain && utf8.Valid(s) {
				return string(s), true
			}
			var out string
			if json.Unmarshal(d.b[start-1:i+1], &out) != nil {
				return nil, false
			}
			return out, true
		case c == '\\':
			plain = false
			i++ // the escaped byte, even a quote
		case c < 0x20:
			return nil, false
		}
	}
	return nil, false
}

// number parses a number in JSON's grammar into a float64.
func (d *jsonParser) number() (any, bool) {
	start, i := d.p, d.p
	digits := func() int {
		n := 0
		for i < len(d.b) && d.b[i] >= '0' && d.b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(d.b) && d.b[i] == '-' {
		i++
	}
	switch {
	case i < len(d.b) && d.b[i] == '0':
		i++
	case digits() == 0:
		return nil, false
	}
	if i < len(d.b) && d.b[i] == '.' {
		i++
		if digits() == 0 {
			return nil, false
		}
	}
	if i < len(d.b) && (d.b[i] == 'e' || d.b[i] == 'E') {
		i++
		if i < len(d.b) && (d.b[i] == '+' || d.b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return nil, false
		}
	}
	f, err := strconv.ParseFloat(string(d.b[start:i]), 64)
	if err != nil {
		return nil, false
	}
	d.p = i
	return f, true
}
