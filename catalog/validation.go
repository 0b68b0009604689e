package catalog

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ValidationError lists every problem found in one entity. Validation keeps
// going after the first problem so that a user fixing a catalog file sees all
// of its mistakes at once instead of one per refresh cycle.
type ValidationError struct {
	Problems []*FieldError
}

// Error joins the problems with "; " so that the whole list fits in one
// status item message.
func (v *ValidationError) Error() string {
	switch len(v.Problems) {
	case 0:
		return "entity is invalid"
	case 1:
		return v.Problems[0].Error()
	}
	var b strings.Builder
	for i, p := range v.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.Error())
	}
	return b.String()
}

// Unwrap exposes the problems to errors.Is and errors.As, so a caller can ask
// for the first *FieldError without knowing about ValidationError.
func (v *ValidationError) Unwrap() []error {
	out := make([]error, len(v.Problems))
	for i, p := range v.Problems {
		out[i] = p
	}
	return out
}

// problems collects field errors; its zero value allocates nothing, which
// keeps validation of a valid entity allocation-free.
type problems struct {
	list []*FieldError
}

func (p *problems) add(path, message string) {
	p.list = append(p.list, &FieldError{Path: path, Message: message})
}

func (p *problems) invalid(path, value, rule string) {
	p.add(path, quoteValue(value)+" is invalid: "+rule)
}

// err returns nil (an untyped nil, not a nil *ValidationError) when nothing
// was found.
func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	return &ValidationError{Problems: p.list}
}

// sortFrom orders the problems added since index start by path. Map keys are
// visited in random order; sorting only what was found keeps messages stable
// without sorting keys of valid maps.
func (p *problems) sortFrom(start int) {
	if len(p.list)-start > 1 {
		slices.SortStableFunc(p.list[start:], func(a, b *FieldError) int {
			return strings.Compare(a.Path, b.Path)
		})
	}
}

// maxQuoted bounds how much of an offending value goes into a message, so a
// pasted blob does not turn into a megabyte of status text.
const maxQuoted = 100

func quoteValue(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "..."
}

// The format rules of Backstage's catalog-model (KubernetesValidatorFunctions
// and CommonValidatorFunctions) are regular expressions there:
//
//	DNS label    ^[a-z0-9]+(?:\-+[a-z0-9]+)*$
//	object name  ^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$
//	kind         ^[a-zA-Z][a-z0-9A-Z]*$
//	version      ^[a-z0-9A-Z]+$
//	tag          ^[a-z0-9:+#]+(\-[a-z0-9:+#]+)*$
//
// Here they are hand-written byte loops: every entity is validated on every
// pass, and the regexp engine was an eighth of processing one entity. A test
// checks the loops against these patterns. Lengths are checked separately,
// as Backstage does.

func isLower(c byte) bool { return c >= 'a' && c <= 'z' }
func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlnum(c byte) bool { return isLower(c) || isUpper(c) || isDigit(c) }

func matchObjectName(s string) bool {
	if s == "" || !isAlnum(s[0]) || !isAlnum(s[len(s)-1]) {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		if c := s[i]; !isAlnum(c) && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return true
}

func matchDNSLabel(s string) bool {
	if s == "" || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isLower(c) && !isDigit(c) && c != '-' {
			return false
		}
	}
	return true
}

func matchKind(s string) bool {
	if s == "" || !(isLower(s[0]) || isUpper(s[0])) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isAlnum(s[i]) {
			return false
		}
	}
	return true
}

func matchVersion(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) {
			return false
		}
	}
	return true
}

func matchTag(s string) bool {
	if s == "" || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case isLower(c) || isDigit(c) || c == ':' || c == '+' || c == '#':
		case c == '-' && s[i-1] != '-':
		default:
			return false
		}
	}
	return true
}

// Rules as they appear in messages: each says what a valid value looks like,
// which is what a user needs to fix it.
const (
	ruleObjectName = "must be 1-63 characters of [A-Za-z0-9-_.], beginning and ending with a letter or digit"
	ruleNamespace  = "must be 1-63 characters of [a-z0-9-], beginning and ending with a lowercase letter or digit"
	ruleKind       = "must be 1-63 characters of [A-Za-z0-9], beginning with a letter"
	ruleAPIVersion = "must be [prefix/]version, where the optional prefix is a DNS subdomain " +
		"(at most 253 characters of dot-separated labels of [a-z0-9-]) and version is 1-63 characters of [A-Za-z0-9]"
	ruleKey = "must be [prefix/]name, where the optional prefix is a DNS subdomain " +
		"(at most 253 characters of dot-separated labels of [a-z0-9-]) and name is " + ruleObjectNameNoun
	ruleObjectNameNoun = "1-63 characters of [A-Za-z0-9-_.], beginning and ending with a letter or digit"
	ruleLabelValue     = "must be empty or " + ruleObjectNameNoun
	ruleTag            = "must be 1-63 characters of [a-z0-9:+#] in groups joined by single dashes"
	ruleURL            = "must be an absolute URL with a scheme, such as https://example.com/docs"
	ruleNotBlank       = "must not be empty or blank when present"
	ruleRequired       = "is required"
)

// rootFields lists the root keys an entity may have, for the message about
// foreign ones.
const rootFields = "apiVersion, kind, metadata, spec, relations and status"

func isObjectName(s string) bool {
	return len(s) >= 1 && len(s) <= 63 && matchObjectName(s)
}

func isDNSLabel(s string) bool {
	return len(s) >= 1 && len(s) <= 63 && matchDNSLabel(s)
}

// isDNSSubdomain walks the dot-separated labels without splitting, so no
// slice is allocated per key.
func isDNSSubdomain(s string) bool {
	if len(s) < 1 || len(s) > 253 {
		return false
	}
	for {
		label, rest, more := strings.Cut(s, ".")
		if !isDNSLabel(label) {
			return false
		}
		if !more {
			return true
		}
		s = rest
	}
}

// isPrefixed checks "[prefix/]suffix" with a DNS-subdomain prefix: the shape
// of apiVersion, label keys and annotation keys. More than one '/' is invalid.
func isPrefixed(s string, suffixOK func(string) bool) bool {
	prefix, suffix, found := strings.Cut(s, "/")
	if !found {
		return suffixOK(s)
	}
	if strings.IndexByte(suffix, '/') >= 0 {
		return false
	}
	return isDNSSubdomain(prefix) && suffixOK(suffix)
}

func isVersion(s string) bool {
	return len(s) >= 1 && len(s) <= 63 && matchVersion(s)
}

func isAPIVersion(s string) bool { return isPrefixed(s, isVersion) }

func isKind(s string) bool {
	return len(s) >= 1 && len(s) <= 63 && matchKind(s)
}

func isKey(s string) bool { return isPrefixed(s, isObjectName) }

func isLabelValue(s string) bool { return s == "" || isObjectName(s) }

func isTag(s string) bool {
	return len(s) >= 1 && len(s) <= 63 && matchTag(s)
}

// isAbsoluteURL mirrors `new URL(value)` succeeding in JavaScript: the value
// must parse and carry a scheme; a bare path or "example.com" is relative and
// would not be clickable in the UI.
func isAbsoluteURL(s string) bool {
	if s == "" {
		return false
	}
	u, err := url.Parse(s)
	return err == nil && u.Scheme != ""
}

func isBlank(s string) bool { return strings.TrimSpace(s) == "" }

// ValidateEnvelope is the first check of processing: without an apiVersion, a
// kind and a name the entity has no ref, so nothing else (relations, conflicts,
// storage) can even be attempted. Types were already enforced by FromMap.
// It returns a *ValidationError or nil.
func ValidateEnvelope(e *Entity) error {
	var p problems
	if e.APIVersion == "" {
		p.add("apiVersion", ruleRequired)
	}
	if e.Kind == "" {
		p.add("kind", ruleRequired)
	}
	if e.Metadata.Name == "" {
		p.add("metadata.name", ruleRequired)
	}
	return p.err()
}

// ValidateFields applies Backstage's entity policies (no foreign root fields,
// field formats) so that an entity accepted here is accepted by Backstage
// tooling too, and so that names are safe as store keys and URL parts. It
// reports every problem found as one *ValidationError, or returns nil. It runs
// for every entity on every refresh, so the valid path allocates nothing but
// what url.Parse needs for links.
func ValidateFields(e *Entity) error {
	var p problems

	if len(e.Extra) > 0 {
		for _, k := range SortedKeys(e.Extra) {
			p.add(k, "is not an allowed root field; an entity has only "+rootFields)
		}
	}

	switch {
	case e.APIVersion == "":
		p.add("apiVersion", ruleRequired)
	case !isAPIVersion(e.APIVersion):
		p.invalid("apiVersion", e.APIVersion, ruleAPIVersion)
	}
	switch {
	case e.Kind == "":
		p.add("kind", ruleRequired)
	case !isKind(e.Kind):
		p.invalid("kind", e.Kind, ruleKind)
	}

	md := &e.Metadata
	switch {
	case md.Name == "":
		p.add("metadata.name", ruleRequired)
	case !isObjectName(md.Name):
		p.invalid("metadata.name", md.Name, ruleObjectName)
	}
	if md.Namespace != "" && !isDNSLabel(md.Namespace) {
		p.invalid("metadata.namespace", md.Namespace, ruleNamespace)
	}

	start := len(p.list)
	for k, v := range md.Labels {
		if !isKey(k) {
			p.add(keyPath("metadata.labels", k), "label key "+quoteValue(k)+" is invalid: "+ruleKey)
		}
		if !isLabelValue(v) {
			p.add(keyPath("metadata.labels", k), "label value "+quoteValue(v)+" is invalid: "+ruleLabelValue)
		}
	}
	p.sortFrom(start)

	start = len(p.list)
	for k := range md.Annotations {
		if !isKey(k) {
			p.add(keyPath("metadata.annotations", k), "annotation key "+quoteValue(k)+" is invalid: "+ruleKey)
		}
	}
	p.sortFrom(start)

	for i, t := range md.Tags {
		if !isTag(t) {
			p.invalid("metadata.tags["+strconv.Itoa(i)+"]", t, ruleTag)
		}
	}

	for i := range md.Links {
		l := &md.Links[i]
		if !isAbsoluteURL(l.URL) {
			p.invalid(linkPath(i, "url"), l.URL, ruleURL)
		}
		// An empty title or icon is indistinguishable from an absent one once
		// decoded, so only whitespace-only values can be caught here.
		if l.Title != "" && isBlank(l.Title) {
			p.invalid(linkPath(i, "title"), l.Title, ruleNotBlank)
		}
		if l.Icon != "" && isBlank(l.Icon) {
			p.invalid(linkPath(i, "icon"), l.Icon, ruleNotBlank)
		}
	}

	return p.err()
}

func keyPath(field, key string) string {
	return field + "[" + strconv.Quote(key) + "]"
}

func linkPath(i int, field string) string {
	return "metadata.links[" + strconv.Itoa(i) + "]." + field
}
