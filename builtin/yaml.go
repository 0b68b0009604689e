package builtin

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/catalog-pipeline/pipeline/catalog"
)

// ParsedEntity is one entity read from a document stream, with the line its
// document starts on so that later errors about it can point into the file.
type ParsedEntity struct {
	Entity *catalog.Entity
	Line   int
}

// ParseError is a problem with one document of a stream. It carries the
// source and line separately so that callers can present them as they like;
// Error gives the conventional "source:line: message".
type ParseError struct {
	Source  string
	Line    int
	Message string
}

// Error renders "source:line: message", the form editors and CI logs link.
func (e *ParseError) Error() string {
	if e.Line <= 0 {
		return e.Source + ": " + e.Message
	}
	return e.Source + ":" + strconv.Itoa(e.Line) + ": " + e.Message
}

// ParseEntities parses a stream of YAML documents (JSON is YAML too) into
// entities, the way Backstage's default entity parser does: every document
// that is an object becomes an entity, empty and null documents (such as
// after a trailing "---") are skipped, and a bad document is reported
// without losing its neighbours. A YAML syntax error ends the stream, since
// the parser cannot find the next document reliably; documents before it are
// kept. Every error is a *ParseError naming source and line.
//
// Values come out JSON-shaped (map[string]any, []any, string, int, float64,
// bool, nil). Like Backstage, which parses with the YAML 1.2 core schema,
// timestamps such as 2024-01-01 stay strings, "<<" is an ordinary key (no
// merge), and duplicate keys are an error. Values JSON cannot hold (.inf,
// .nan) are kept as their text.
func ParseEntities(data []byte, source string) (entities []ParsedEntity, errs []error) {
	if entities, ok := parseFast(data); ok {
		return entities, nil
	}
	return parseSlow(data, source)
}

// parseSlow is ParseEntities with yaml.v3's parser: every form of YAML,
// and the errors with their lines.
func parseSlow(data []byte, source string) (entities []ParsedEntity, errs []error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	lastLine := 1
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if err == io.EOF {
			return entities, errs
		}
		if err != nil {
			errs = append(errs, syntaxError(source, data, err, lastLine))
			return entities, errs
		}
		root := &doc
		if root.Kind == yaml.DocumentNode {
			if len(root.Content) == 0 {
				continue
			}
			root = root.Content[0]
		}
		line := root.Line
		lastLine = line
		c := converter{source: source}
		v, err := c.value(root)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		switch m := v.(type) {
		case nil:
			continue
		case map[string]any:
			e, err := catalog.FromMap(m)
			if err != nil {
				errs = append(errs, fromMapError(source, root, line, err))
				continue
			}
			entities = append(entities, ParsedEntity{Entity: e, Line: line})
		default:
			errs = append(errs, &ParseError{source, line,
				"expected an object at the root of the document, got " + catalog.TypeName(v)})
		}
	}
}

var (
	yamlLinePrefix = regexp.MustCompile(`^yaml: line (\d+): `)
	unknownAnchor  = regexp.MustCompile(`^yaml: unknown anchor '(.*)' referenced`)
)

// syntaxError turns yaml.v3's "yaml: line 5: msg" into "source:5: yaml: msg".
// Errors without a line (rare) are placed at the last document start seen.
func syntaxError(source string, data []byte, err error, fallback int) error {
	msg := err.Error()
	if m := yamlLinePrefix.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &ParseError{source, line, "yaml: " + msg[len(m[0]):]}
	}
	if m := unknownAnchor.FindStringSubmatch(msg); m != nil {
		// yaml.v3 gives no line here; the first use of the alias is it.
		if i := bytes.Index(data, []byte("*"+m[1])); i >= 0 {
			fallback = 1 + bytes.Count(data[:i], []byte("\n"))
		}
	}
	if !strings.HasPrefix(msg, "yaml: ") {
		msg = "yaml: " + msg
	}
	return &ParseError{source, fallback, msg}
}

// fromMapError points a catalog.FromMap failure at the line of the field it
// names, falling back to the document's line.
func fromMapError(source string, root *yaml.Node, line int, err error) error {
	var fe *catalog.FieldError
	if errors.As(err, &fe) {
		if n := findPath(root, fe.Path); n != nil {
			line = n.Line
		}
	}
	return &ParseError{source, line, err.Error()}
}

// findPath finds the node a FieldError path ("metadata.links[0].url",
// "metadata.annotations.backstage.io/x") names. Keys may contain dots, so at
// each mapping the longest key that fits the rest of the path wins. It
// returns the deepest node it reached.
func findPath(n *yaml.Node, path string) *yaml.Node {
	cur := n
	for path != "" {
		cur = deref(cur)
		switch {
		case path[0] == '[':
			end := strings.IndexByte(path, ']')
			if end < 0 || cur.Kind != yaml.SequenceNode {
				return cur
			}
			i, err := strconv.Atoi(path[1:end])
			if err != nil || i < 0 || i >= len(cur.Content) {
				return cur
			}
			cur = cur.Content[i]
			path = strings.TrimPrefix(path[end+1:], ".")
		case cur.Kind == yaml.MappingNode:
			var best *yaml.Node
			bestLen := -1
			for i := 0; i+1 < len(cur.Content); i += 2 {
				k := deref(cur.Content[i]).Value
				if len(k) > bestLen && strings.HasPrefix(path, k) &&
					(len(path) == len(k) || path[len(k)] == '.' || path[len(k)] == '[') {
					best, bestLen = cur.Content[i+1], len(k)
					if len(path) == len(k) {
						best = cur.Content[i] // point at the key's line
					}
				}
			}
			if best == nil {
				return cur
			}
			cur = best
			path = strings.TrimPrefix(path[bestLen:], ".")
		default:
			return cur
		}
	}
	return cur
}

func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// maxAliasNodes bounds how many nodes alias expansion may produce in one
// document, so that a "billion laughs" document cannot exhaust memory.
const maxAliasNodes = 100_000

// converter turns one document's node tree into JSON-shaped values in a
// single walk, which is much cheaper than yaml.v3's reflective Decode and
// lets us control scalar resolution.
type converter struct {
	source     string
	aliasNodes int
	expanding  []*yaml.Node // alias targets being expanded (cycle check)
	inAlias    int
}

func (c *converter) fail(n *yaml.Node, format string, args ...any) error {
	return &ParseError{c.source, n.Line, fmt.Sprintf(format, args...)}
}

func (c *converter) value(n *yaml.Node) (any, error) {
	if c.inAlias > 0 {
		c.aliasNodes++
		if c.aliasNodes > maxAliasNodes {
			return nil, c.fail(n, "yaml: document expands aliases to more than %d nodes", maxAliasNodes)
		}
	}
	switch n.Kind {
	case yaml.ScalarNode:
		return c.scalar(n)
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn, vn := n.Content[i], n.Content[i+1]
			k, err := c.key(kn)
			if err != nil {
				return nil, err
			}
			if _, dup := m[k]; dup {
				return nil, c.fail(kn, "yaml: mapping key %q already defined", k)
			}
			v, err := c.value(vn)
			if err != nil {
				return nil, err
			}
			m[k] = v
		}
		return m, nil
	case yaml.SequenceNode:
		a := make([]any, len(n.Content))
		for i, x := range n.Content {
			v, err := c.value(x)
			if err != nil {
				return nil, err
			}
			a[i] = v
		}
		return a, nil
	case yaml.AliasNode:
		t := n.Alias
		if t == nil {
			return nil, c.fail(n, "yaml: unknown anchor %q", n.Value)
		}
		for _, x := range c.expanding {
			if x == t {
				return nil, c.fail(n, "yaml: anchor %q contains itself", n.Value)
			}
		}
		c.expanding = append(c.expanding, t)
		c.inAlias++
		v, err := c.value(t)
		c.inAlias--
		c.expanding = c.expanding[:len(c.expanding)-1]
		return v, err
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return c.value(n.Content[0])
	default:
		return nil, c.fail(n, "yaml: unexpected node kind %v", n.Kind)
	}
}

// key renders a mapping key as a string. JSON objects only have string keys,
// so scalar keys of other types (1, true) use their text, as Backstage's
// parser does; collections as keys are refused.
func (c *converter) key(n *yaml.Node) (string, error) {
	n = deref(n)
	if n.Kind != yaml.ScalarNode {
		return "", c.fail(n, "yaml: mapping keys must be scalars, got %s", kindName(n.Kind))
	}
	return n.Value, nil
}

// scalar resolves a scalar from the tag yaml.v3's parser already assigned
// (plain scalars are resolved at parse time, quoted ones are !!str), so the
// common cases cost no reflection.
func (c *converter) scalar(n *yaml.Node) (any, error) {
	tagged := n.Style&yaml.TaggedStyle != 0
	if v, ok := scalarOf(n.Tag, n.Value, tagged); ok {
		return v, nil
	}
	if n.Tag == "!!null" {
		return nil, c.fail(n, "yaml: cannot decode %q as !!null", n.Value)
	}
	// Rare forms (0x1F, 0o17, -0b101, huge ints, .inf, explicit tags):
	// let yaml.v3 decide, then make the result JSON-shaped.
	var v any
	if err := n.Decode(&v); err != nil {
		msg := strings.TrimPrefix(err.Error(), "yaml: unmarshal errors:\n  ")
		msg = strings.TrimPrefix(yamlLinePrefix.ReplaceAllString(msg, ""), "yaml: ")
		return nil, c.fail(n, "yaml: %s", msg)
	}
	switch t := v.(type) {
	case float64:
		if math.IsInf(t, 0) || math.IsNaN(t) {
			return n.Value, nil
		}
	case string:
		return t, nil
	}
	return catalog.NormalizeValue(v), nil
}

// scalarOf is the JSON-shaped value of a scalar with the given tag, for
// the common tags and forms; ok is false for the rest (0x1F, 0o17, huge
// ints, .inf, explicit tags, a tagged !!null that is not null), which
// need yaml.v3's decoder or are errors. The fast path (parseFast) shares
// it, so both paths resolve scalars alike.
func scalarOf(tag, value string, tagged bool) (any, bool) {
	switch tag {
	case "!!str", "!!timestamp", "!!binary", "!!merge", "":
		return value, true
	case "!!null":
		if !tagged || isNullText(value) {
			return nil, true
		}
	case "!!bool":
		switch value {
		case "true", "True", "TRUE":
			return true, true
		case "false", "False", "FALSE":
			return false, true
		}
	case "!!int":
		plain := value
		if strings.IndexByte(plain, '_') >= 0 {
			plain = strings.ReplaceAll(plain, "_", "")
		}
		if i, err := strconv.ParseInt(plain, 10, 64); err == nil {
			return int(i), true
		}
	case "!!float":
		plain := value
		if strings.IndexByte(plain, '_') >= 0 {
			plain = strings.ReplaceAll(plain, "_", "")
		}
		if f, err := strconv.ParseFloat(plain, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
			return f, true
		}
	default:
		// An application tag (!foo) on a scalar: keep the text.
		if !strings.HasPrefix(tag, "!!") {
			return value, true
		}
	}
	return nil, false
}

func isNullText(s string) bool {
	switch s {
	case "", "~", "null", "Null", "NULL":
		return true
	}
	return false
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "an object"
	case yaml.SequenceNode:
		return "an array"
	case yaml.ScalarNode:
		return "a scalar"
	case yaml.AliasNode:
		return "an alias"
	}
	return "a document"
}
