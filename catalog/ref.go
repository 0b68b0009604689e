package catalog

import (
	"fmt"
	"strings"
)

// Ref names an entity: kind, namespace and name. Refs compare
// case-insensitively; String gives the lowercased canonical form
// "kind:namespace/name" used as the key everywhere.
type Ref struct {
	Kind      string
	Namespace string
	Name      string
}

// String returns the canonical, lowercased "kind:namespace/name".
func (r Ref) String() string {
	return strings.ToLower(r.Kind) + ":" + strings.ToLower(r.Namespace) + "/" + strings.ToLower(r.Name)
}

// Equal compares two refs case-insensitively.
func (r Ref) Equal(o Ref) bool {
	return strings.EqualFold(r.Kind, o.Kind) &&
		strings.EqualFold(r.Namespace, o.Namespace) &&
		strings.EqualFold(r.Name, o.Name)
}

// RefDefaults supply the parts a short ref leaves out. An empty Kind means the
// ref must name its kind; an empty Namespace means "default".
type RefDefaults struct {
	Kind      string
	Namespace string
}

// ParseRef parses "[kind:][namespace/]name" the way Backstage does: the first
// ':' splits off the kind unless a '/' comes before it, empty parts are
// errors, and missing parts come from the defaults.
func ParseRef(s string, d RefDefaults) (Ref, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Ref{}, fmt.Errorf("entity reference must not be empty")
	}
	var r Ref
	rest := s
	colon := strings.IndexByte(rest, ':')
	slash := strings.IndexByte(rest, '/')
	if colon >= 0 && (slash < 0 || colon < slash) {
		r.Kind = rest[:colon]
		rest = rest[colon+1:]
		if r.Kind == "" {
			return Ref{}, fmt.Errorf("entity reference %q has an empty kind", s)
		}
	}
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		r.Namespace = rest[:i]
		rest = rest[i+1:]
		if r.Namespace == "" {
			return Ref{}, fmt.Errorf("entity reference %q has an empty namespace", s)
		}
	}
	r.Name = rest
	if r.Name == "" {
		return Ref{}, fmt.Errorf("entity reference %q has an empty name", s)
	}
	if r.Kind == "" {
		if d.Kind == "" {
			return Ref{}, fmt.Errorf("entity reference %q has no kind and no default kind applies", s)
		}
		r.Kind = d.Kind
	}
	if r.Namespace == "" {
		r.Namespace = d.Namespace
		if r.Namespace == "" {
			r.Namespace = DefaultNamespace
		}
	}
	return r, nil
}

// MustParseRef is ParseRef for refs known to be well formed (tests, constants).
func MustParseRef(s string) Ref {
	r, err := ParseRef(s, RefDefaults{})
	if err != nil {
		panic(err)
	}
	return r
}
