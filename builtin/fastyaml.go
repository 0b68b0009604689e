package builtin

import (
	"bytes"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/catalog-pipeline/pipeline/catalog"
)

// parseFast parses the YAML that catalog files are nearly always written
// in — block mappings and sequences, one-line plain and quoted scalars,
// one-line flow sequences of scalars, literal block scalars, comments,
// "---" between documents — without yaml.v3's parser, which profiling
// showed at 2.2 of 3 s of reading a 100k catalog (it builds a token queue,
// events and a node tree with positions for every scalar). It returns
// ok=false as soon as it meets anything outside that subset or anything
// that might be an error (flow mappings other than {}, nested flow
// collections, anchors, tags, escapes, folded or multi-line scalars, tabs,
// duplicate keys, a document that is not an entity...), and ParseEntities
// then parses the whole data with yaml.v3:
// every error message and every unusual form comes from one place, and
// the fast path only has to agree with yaml.v3 on what it accepts
// (TestParseFastAgrees and FuzzParseFast hold it to that).
//
// Plain scalars are resolved with yaml.v3's own rules (Node.ShortTag), so
// "1", "true", "~" and "2024-01-01" mean what they mean on the slow path.
func parseFast(data []byte) (entities []ParsedEntity, ok bool) {
	if !fastChars(data) {
		return nil, false
	}
	p := fastYAML{src: data, num: 1, virtPos: -1}
	for {
		indent, text, end := p.content()
		if p.bad {
			return nil, false
		}
		if end {
			if p.pos >= len(p.src) {
				return entities, true
			}
			p.nextLine() // a "---" line
			continue
		}
		line := p.num
		if _, isKey := p.splitKey(text); !isKey {
			return nil, false // a root that is not a mapping: let yaml.v3 say so
		}
		m, ok := p.mapping(indent, 0)
		if !ok {
			return nil, false
		}
		if _, _, end := p.content(); !end || p.bad {
			return nil, false // a line less indented than a root that was indented
		}
		e, err := catalog.FromMap(m)
		if err != nil {
			return nil, false // yaml.v3's nodes point the error at its field
		}
		entities = append(entities, ParsedEntity{Entity: e, Line: line})
	}
}

// maxFastDepth bounds nesting on the fast path; deeper documents (never an
// entity in practice) go to yaml.v3.
const maxFastDepth = 64

// fastYAML is the state of parseFast: the data and the line it is on.
type fastYAML struct {
	src []byte
	pos int // start of the current line
	num int // its number, from 1
	bad bool
	// virtPos and virtCol make the line at virtPos start at column virtCol:
	// in "- name: x" the mapping starts after the dash.
	virtPos, virtCol int
}

// lineEnd is the index of the '\n' ending the current line, or len(src).
func (p *fastYAML) lineEnd() int {
	if i := bytes.IndexByte(p.src[p.pos:], '\n'); i >= 0 {
		return p.pos + i
	}
	return len(p.src)
}

// nextLine moves to the line after the current one.
func (p *fastYAML) nextLine() {
	p.pos = min(p.lineEnd()+1, len(p.src))
	p.num++
}

// content moves to the next line with content (skipping blank lines and
// comments) and returns its indentation and its text from there. end is
// true at the end of the data and on a "---" line, which it does not
// consume. Any other line that could be a directive or a document marker
// sets p.bad.
func (p *fastYAML) content() (indent int, text []byte, end bool) {
	for p.pos < len(p.src) {
		line := p.src[p.pos:p.lineEnd()]
		i := 0
		for i < len(line) && line[i] == ' ' {
			i++
		}
		if p.pos == p.virtPos {
			return p.virtCol, line[p.virtCol:], false
		}
		if i == len(line) || line[i] == '#' {
			p.nextLine()
			continue
		}
		if i == 0 && (line[0] == '%' || bytes.HasPrefix(line, []byte("...")) || bytes.HasPrefix(line, []byte("---"))) {
			rest := bytes.TrimLeft(line[min(3, len(line)):], " ")
			if bytes.HasPrefix(line, []byte("---")) && (len(rest) == 0 || rest[0] == '#' && len(rest) < len(line)-3) {
				return 0, nil, true
			}
			p.bad = true
			return 0, nil, true
		}
		return i, line[i:], false
	}
	return 0, nil, true
}

// line returns the text of the next content line of a block at column n
// (more), or says that the block is over (!more), or that the input leaves
// the fast path's subset (!ok: a directive or marker, or a line indented
// past n, which would continue a scalar or be an error).
func (p *fastYAML) line(n int) (text []byte, more, ok bool) {
	indent, text, end := p.content()
	switch {
	case p.bad || !end && indent > n:
		return nil, false, false
	case end || indent < n:
		return nil, false, true
	}
	return text, true, true
}

// mapping parses a block mapping whose keys are at column n, up to the
// first content line indented less (or the end of the document).
func (p *fastYAML) mapping(n, depth int) (map[string]any, bool) {
	if depth > maxFastDepth {
		return nil, false
	}
	m := make(map[string]any, 4)
	for {
		text, more, ok := p.line(n)
		if !ok || !more {
			return m, ok
		}
		k, isKey := p.splitKey(text)
		if !isKey {
			return nil, false
		}
		if _, dup := m[k.key]; dup {
			return nil, false
		}
		v, ok := p.value(n, k.rest, depth)
		if !ok {
			return nil, false
		}
		m[k.key] = v
	}
}

// sequence parses a block sequence whose dashes are at column n.
func (p *fastYAML) sequence(n, depth int) ([]any, bool) {
	if depth > maxFastDepth {
		return nil, false
	}
	a := make([]any, 0, 4)
	for {
		text, more, ok := p.line(n)
		if !ok || !more {
			return a, ok
		}
		if !isEntry(text) {
			return a, true // the next key of a mapping at this column
		}
		col := n + 1
		for col-n < len(text) && text[col-n] == ' ' {
			col++
		}
		rest := text[col-n:]
		switch {
		case len(rest) == 0 || rest[0] == '#' && col > n+1:
			p.nextLine()
			v, ok := p.nested(n, false, depth)
			if !ok {
				return nil, false
			}
			a = append(a, v)
		case isEntry(rest):
			return nil, false // "- - x"
		default:
			if _, isKey := p.splitKey(rest); isKey {
				p.virtPos, p.virtCol = p.pos, col
				m, ok := p.mapping(col, depth+1)
				if !ok {
					return nil, false
				}
				a = append(a, m)
				continue
			}
			var v any
			ok := false
			if rest[0] == '|' {
				v, ok = p.literal(n, rest[1:])
			} else if v, ok = p.inline(rest); ok {
				p.nextLine()
			}
			if !ok {
				return nil, false
			}
			a = append(a, v)
		}
	}
}

// value parses what follows a key's colon (rest) in a mapping at column n.
func (p *fastYAML) value(n int, rest []byte, depth int) (any, bool) {
	i := 0
	for i < len(rest) && rest[i] == ' ' {
		i++
	}
	rest = rest[i:]
	switch {
	case len(rest) == 0 || rest[0] == '#' && i > 0:
		p.nextLine()
		return p.nested(n, true, depth)
	case rest[0] == '|':
		return p.literal(n, rest[1:])
	}
	v, ok := p.inline(rest)
	p.nextLine()
	return v, ok
}

// nested parses the node that follows a key or a dash alone on its line
// at column n: a block collection indented further, a sequence at column n
// when the parent is a mapping (sameCol), or else null.
func (p *fastYAML) nested(n int, sameCol bool, depth int) (any, bool) {
	indent, text, end := p.content()
	switch {
	case p.bad:
		return nil, false
	case end || indent < n || indent == n && !(sameCol && isEntry(text)):
		return nil, true
	case isEntry(text):
		return p.sequence(indent, depth+1)
	}
	if _, isKey := p.splitKey(text); !isKey {
		return nil, false // a scalar on the next line
	}
	return p.mapping(indent, depth+1)
}

// isEntry says whether text starts a block sequence entry.
func isEntry(text []byte) bool {
	return len(text) > 0 && text[0] == '-' && (len(text) == 1 || text[1] == ' ')
}

// maxKeyLen is how far from its start a key's colon may be: yaml.v3 (as
// libyaml) gives up on a key whose colon is more than 1024 characters
// away; the fast path leaves keys near that limit to it.
const maxKeyLen = 1000

// fastKey is a mapping key and the text after its colon.
type fastKey struct {
	key  string
	rest []byte
}

// splitKey reads "key: ..." off text. isKey is false when text is not a
// one-line mapping entry this parser understands.
func (p *fastYAML) splitKey(text []byte) (k fastKey, isKey bool) {
	var key string
	var after []byte
	switch text[0] {
	case '"', '\'':
		s, n, ok := quoted(text)
		if !ok {
			return k, false
		}
		key, after = s, bytes.TrimLeft(text[n:], " ")
		if len(after) == 0 || after[0] != ':' || len(after) > 1 && after[1] != ' ' ||
			len(text)-len(after) > maxKeyLen {
			return k, false
		}
		after = after[1:]
	default:
		if plainStart(text) != 0 {
			return k, false
		}
		end := -1
		for i := 0; i < len(text); i++ {
			c := text[i]
			if c == ':' && (i+1 == len(text) || text[i+1] == ' ') {
				end = i
				break
			}
			if c == '#' && text[i-1] == ' ' {
				return k, false
			}
		}
		if end < 0 || end > maxKeyLen {
			return k, false
		}
		key, after = string(bytes.TrimRight(text[:end], " ")), text[end+1:]
	}
	return fastKey{key, after}, true
}

// plainStart says how a plain scalar may not start: 0 when text can start
// one, 1 otherwise (an indicator: flow collections, anchors, tags,
// aliases, block scalars, reserved characters, "- ", "? ", ": ").
func plainStart(text []byte) int {
	switch text[0] {
	case '[', ']', '{', '}', ',', '#', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`':
		return 1
	case '-', '?', ':':
		if len(text) == 1 || text[1] == ' ' {
			return 1
		}
		if text[0] != '-' {
			return 1 // "?x", ":x": legal, rare, left to yaml.v3
		}
	}
	return 0
}

// inline parses a scalar that ends on its line: quoted, plain, or the
// empty flow collections [] and {}.
func (p *fastYAML) inline(text []byte) (any, bool) {
	switch text[0] {
	case '"', '\'':
		s, n, ok := quoted(text)
		if !ok || !onlyComment(text[n:]) {
			return nil, false
		}
		return s, true
	case '[':
		return flowSequence(text)
	case '{':
		if len(text) < 2 || text[1] != '}' || !onlyComment(text[2:]) {
			return nil, false
		}
		return map[string]any{}, true
	}
	if plainStart(text) != 0 {
		return nil, false
	}
	end := len(text)
	for i := 1; i < len(text); i++ {
		if text[i] == '#' && text[i-1] == ' ' {
			end = i
			break
		}
	}
	s := bytes.TrimRight(text[:end], " ")
	if s[len(s)-1] == ':' || bytes.Contains(s, []byte(": ")) {
		return nil, false // a second mapping indicator: an error
	}
	str := string(s)
	n := yaml.Node{Kind: yaml.ScalarNode, Value: str}
	return scalarOf(n.ShortTag(), str, false)
}

// flowSequence parses a one-line flow sequence of scalars ("tags: [go,
// web]", common in catalog files). Items that hold a colon, a flow
// indicator, a question mark or a comment sign, nested collections, empty items and a
// trailing comma are left to yaml.v3.
func flowSequence(text []byte) (any, bool) {
	a := make([]any, 0, 4)
	i := 1
	for {
		for i < len(text) && text[i] == ' ' {
			i++
		}
		if i == len(text) {
			return nil, false
		}
		if text[i] == ']' && len(a) == 0 {
			i++
			break
		}
		var v any
		switch text[i] {
		case '"', '\'':
			s, n, ok := quoted(text[i:])
			if !ok {
				return nil, false
			}
			v, i = s, i+n
		default:
			start := i
			for i < len(text) && text[i] != ',' && text[i] != ']' {
				switch text[i] {
				case ':', '#', '[', '{', '}', '"', '\'', '?': // yaml.v3 ends a flow scalar at '?'
					return nil, false
				}
				i++
			}
			item := bytes.TrimRight(text[start:i], " ")
			if len(item) == 0 || plainStart(item) != 0 {
				return nil, false
			}
			str := string(item)
			n := yaml.Node{Kind: yaml.ScalarNode, Value: str}
			var ok bool
			if v, ok = scalarOf(n.ShortTag(), str, false); !ok {
				return nil, false
			}
		}
		a = append(a, v)
		for i < len(text) && text[i] == ' ' {
			i++
		}
		if i == len(text) {
			return nil, false
		}
		i++
		if text[i-1] == ']' {
			break
		}
		if text[i-1] != ',' {
			return nil, false
		}
		if rest := bytes.TrimLeft(text[i:], " "); len(rest) == 0 || rest[0] == ']' {
			return nil, false // unterminated, or a trailing comma
		}
	}
	if !onlyComment(text[i:]) {
		return nil, false
	}
	return a, true
}

// onlyComment says whether rest holds nothing but spaces and a comment.
func onlyComment(rest []byte) bool {
	i := 0
	for i < len(rest) && rest[i] == ' ' {
		i++
	}
	return i == len(rest) || rest[i] == '#' && i > 0
}

// quoted reads a one-line quoted scalar at the start of text: its value
// and the length it took. Double-quoted scalars with escapes are left to
// yaml.v3.
func quoted(text []byte) (string, int, bool) {
	q := text[0]
	if q == '"' {
		for i := 1; i < len(text); i++ {
			switch text[i] {
			case '\\':
				return "", 0, false
			case '"':
				return string(text[1:i]), i + 1, true
			}
		}
		return "", 0, false
	}
	var b []byte
	start := 1
	for i := 1; i < len(text); i++ {
		if text[i] != '\'' {
			continue
		}
		if i+1 < len(text) && text[i+1] == '\'' {
			b = append(b, text[start:i+1]...)
			start = i + 2
			i++
			continue
		}
		if b == nil {
			return string(text[1:i]), i + 1, true
		}
		return string(append(b, text[start:i]...)), i + 1, true
	}
	return "", 0, false
}

// literal parses a literal block scalar ("|", "|-" or "|+", header is what
// follows the "|") whose parent collection is at column n. Its content is
// indented as its first line, which must be more than n; leading blank
// lines, whitespace-only lines indented past the content, an explicit
// indentation and content running to the end of data without a newline
// are left to yaml.v3.
func (p *fastYAML) literal(n int, header []byte) (any, bool) {
	chomp := byte(0)
	if len(header) > 0 && (header[0] == '-' || header[0] == '+') {
		chomp, header = header[0], header[1:]
	}
	if len(header) > 0 && header[0] != ' ' || !onlyComment(header) {
		return nil, false
	}
	p.nextLine()
	var b []byte
	m, blanks := -1, 0
	for p.pos < len(p.src) {
		e := p.lineEnd()
		line := p.src[p.pos:e]
		i := 0
		for i < len(line) && line[i] == ' ' {
			i++
		}
		if i == len(line) { // blank
			if m < 0 || i > m {
				return nil, false
			}
			if e < len(p.src) { // spaces at the very end are no line break
				blanks++
			}
			p.nextLine()
			continue
		}
		if m < 0 {
			if i <= n {
				return nil, false // empty content
			}
			m = i
		}
		if i < m {
			break
		}
		if e == len(p.src) {
			return nil, false // no final newline
		}
		for ; blanks > 0; blanks-- {
			b = append(b, '\n')
		}
		b = append(b, line[m:]...)
		b = append(b, '\n')
		p.nextLine()
	}
	if m < 0 {
		return nil, false
	}
	switch chomp {
	case '-':
		b = b[:len(b)-1]
	case '+':
		for ; blanks > 0; blanks-- {
			b = append(b, '\n')
		}
	}
	return string(b), true
}

// fastChars says whether data holds only characters the fast path can take
// as they are: printable ASCII, newlines, and printable UTF-8 other than
// the byte order mark and the Unicode line separators (which YAML counts
// as line breaks). Tabs and carriage returns go to yaml.v3.
func fastChars(data []byte) bool {
	for i := 0; i < len(data); {
		c := data[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\n' || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size == 1,
			r < 0xa0, r == 0x2028, r == 0x2029, r == 0xfeff,
			r >= 0xd800 && r < 0xe000, r == 0xfffe, r == 0xffff:
			return false
		}
		i += size
	}
	return true
}
