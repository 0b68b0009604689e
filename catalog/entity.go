package catalog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"sync"
)

// Well-known annotations the engine reads and writes.
const (
	AnnotationManagedByLocation       = "backstage.io/managed-by-location"
	AnnotationManagedByOriginLocation = "backstage.io/managed-by-origin-location"
	AnnotationViewURL                 = "backstage.io/view-url"
	AnnotationEditURL                 = "backstage.io/edit-url"
	AnnotationSourceLocation          = "backstage.io/source-location"
	AnnotationOrphan                  = "backstage.io/orphan"
)

// DefaultNamespace is the namespace of an entity that names none.
const DefaultNamespace = "default"

// Entity is Backstage's entity envelope. Known fields are typed so Go code can
// use them safely; everything else (unknown metadata keys, the whole spec,
// unknown root keys) is kept verbatim so that nothing a source wrote is lost on
// a round trip. Unknown root keys are kept only so that validation can report
// them: Backstage rejects them.
type Entity struct {
	APIVersion string
	Kind       string
	Metadata   Metadata
	// Spec is the kind-specific part, JSON-shaped (map[string]any, []any,
	// string, float64/int, bool, nil).
	Spec      map[string]any
	Relations []Relation
	Status    *Status
	// Extra holds root keys other than the six Backstage allows.
	Extra map[string]any
}

// Metadata is the entity's metadata block. Extra keeps keys Backstage does not
// define, which sources are allowed to add.
type Metadata struct {
	Name        string
	Namespace   string
	Title       string
	Description string
	UID         string
	Etag        string
	Labels      map[string]string
	Annotations map[string]string
	Tags        []string
	Links       []Link
	Extra       map[string]any
}

// Link is one entry of metadata.links.
type Link struct {
	URL   string
	Title string
	Icon  string
	Type  string
	Extra map[string]any
}

// Relation is one served relation of an entity, as Backstage serves it since
// catalog-backend 4.0 (the legacy compound `target` object is gone).
type Relation struct {
	Type      string `json:"type"`
	TargetRef string `json:"targetRef"`
}

// Status carries the processing errors of an entity, in Backstage's shape.
type Status struct {
	Items []StatusItem `json:"items"`
}

// StatusItem is one status entry; the engine writes type
// "backstage.io/catalog-processing" with level "error".
type StatusItem struct {
	Type    string           `json:"type"`
	Level   string           `json:"level"`
	Message string           `json:"message"`
	Error   *SerializedError `json:"error,omitempty"`
}

// SerializedError is an error as Backstage serialises it: a name such as
// InputError or NotFoundError plus the message.
type SerializedError struct {
	Name    string `json:"name"`
	Message string `json:"message"`
	Stack   string `json:"stack,omitempty"`
}

// Ref returns the entity's reference, with the namespace defaulted.
func (e *Entity) Ref() Ref {
	ns := e.Metadata.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	return Ref{Kind: e.Kind, Namespace: ns, Name: e.Metadata.Name}
}

// Annotation returns the value of an annotation, or "".
func (e *Entity) Annotation(key string) string {
	return e.Metadata.Annotations[key]
}

// SetAnnotation sets an annotation, creating the map when needed.
func (e *Entity) SetAnnotation(key, value string) {
	if e.Metadata.Annotations == nil {
		e.Metadata.Annotations = map[string]string{}
	}
	e.Metadata.Annotations[key] = value
}

// Clone returns a deep copy, so stages can change an entity without touching
// the one a caller still holds.
func (e *Entity) Clone() *Entity {
	if e == nil {
		return nil
	}
	c := *e
	c.Metadata.Labels = maps.Clone(e.Metadata.Labels)
	c.Metadata.Annotations = maps.Clone(e.Metadata.Annotations)
	c.Metadata.Tags = slices.Clone(e.Metadata.Tags)
	if e.Metadata.Links != nil {
		c.Metadata.Links = make([]Link, len(e.Metadata.Links))
		for i, l := range e.Metadata.Links {
			l.Extra = cloneMap(l.Extra)
			c.Metadata.Links[i] = l
		}
	}
	c.Metadata.Extra = cloneMap(e.Metadata.Extra)
	c.Spec = cloneMap(e.Spec)
	c.Relations = slices.Clone(e.Relations)
	if e.Status != nil {
		s := Status{Items: slices.Clone(e.Status.Items)}
		for i := range s.Items {
			if se := s.Items[i].Error; se != nil {
				cp := *se
				s.Items[i].Error = &cp
			}
		}
		c.Status = &s
	}
	c.Extra = cloneMap(e.Extra)
	return &c
}

func cloneMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = CloneValue(v)
	}
	return out
}

// CloneValue deep-copies a JSON-shaped value.
func CloneValue(v any) any {
	switch t := v.(type) {
	case map[string]any:
		return cloneMap(t)
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = CloneValue(x)
		}
		return out
	default:
		return v
	}
}

// ToMap renders the entity as a JSON-shaped map, the form scripts and the
// placeholder resolver work on. FromMap(e.ToMap()) equals e.
func (e *Entity) ToMap() map[string]any {
	m := make(map[string]any, 6+len(e.Extra))
	for k, v := range e.Extra {
		m[k] = CloneValue(v)
	}
	if e.APIVersion != "" {
		m["apiVersion"] = e.APIVersion
	}
	if e.Kind != "" {
		m["kind"] = e.Kind
	}
	m["metadata"] = e.Metadata.toMap()
	if e.Spec != nil {
		m["spec"] = cloneMap(e.Spec)
	}
	if e.Relations != nil {
		rs := make([]any, len(e.Relations))
		for i, r := range e.Relations {
			rs[i] = map[string]any{"type": r.Type, "targetRef": r.TargetRef}
		}
		m["relations"] = rs
	}
	if e.Status != nil {
		items := make([]any, len(e.Status.Items))
		for i, it := range e.Status.Items {
			item := map[string]any{"type": it.Type, "level": it.Level, "message": it.Message}
			if it.Error != nil {
				se := map[string]any{"name": it.Error.Name, "message": it.Error.Message}
				if it.Error.Stack != "" {
					se["stack"] = it.Error.Stack
				}
				item["error"] = se
			}
			items[i] = item
		}
		m["status"] = map[string]any{"items": items}
	}
	return m
}

func (md *Metadata) toMap() map[string]any {
	m := make(map[string]any, 10+len(md.Extra))
	for k, v := range md.Extra {
		m[k] = CloneValue(v)
	}
	setStr := func(k, v string) {
		if v != "" {
			m[k] = v
		}
	}
	setStr("name", md.Name)
	setStr("namespace", md.Namespace)
	setStr("title", md.Title)
	setStr("description", md.Description)
	setStr("uid", md.UID)
	setStr("etag", md.Etag)
	if md.Labels != nil {
		m["labels"] = strMapToAny(md.Labels)
	}
	if md.Annotations != nil {
		m["annotations"] = strMapToAny(md.Annotations)
	}
	if md.Tags != nil {
		tags := make([]any, len(md.Tags))
		for i, t := range md.Tags {
			tags[i] = t
		}
		m["tags"] = tags
	}
	if md.Links != nil {
		links := make([]any, len(md.Links))
		for i, l := range md.Links {
			lm := cloneMap(l.Extra)
			if lm == nil {
				lm = map[string]any{}
			}
			lm["url"] = l.URL
			if l.Title != "" {
				lm["title"] = l.Title
			}
			if l.Icon != "" {
				lm["icon"] = l.Icon
			}
			if l.Type != "" {
				lm["type"] = l.Type
			}
			links[i] = lm
		}
		m["links"] = links
	}
	return m
}

func strMapToAny(in map[string]string) map[string]any {
	out := make(map[string]any, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}

// FieldError is a problem with one field of an entity, named by its dotted
// path, so that users can find it in their YAML.
type FieldError struct {
	Path    string
	Message string
}

func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Message
	}
	return e.Path + ": " + e.Message
}

// FromMap builds an Entity from a JSON-shaped map (decoded YAML or JSON). It
// fails with a *FieldError when a known field has the wrong type; it does not
// apply the format rules (see Validate).
func FromMap(m map[string]any) (*Entity, error) {
	e := &Entity{}
	for k, v := range m {
		var err error
		switch k {
		case "apiVersion":
			e.APIVersion, err = asString("apiVersion", v)
		case "kind":
			e.Kind, err = asString("kind", v)
		case "metadata":
			mm, ok := v.(map[string]any)
			if !ok {
				return nil, &FieldError{"metadata", "must be an object, got " + TypeName(v)}
			}
			err = e.Metadata.fromMap(mm)
		case "spec":
			if v == nil {
				continue
			}
			sm, ok := v.(map[string]any)
			if !ok {
				return nil, &FieldError{"spec", "must be an object, got " + TypeName(v)}
			}
			e.Spec = sm
		case "relations":
			e.Relations, err = relationsFromAny(v)
		case "status":
			e.Status, err = statusFromAny(v)
		default:
			if e.Extra == nil {
				e.Extra = map[string]any{}
			}
			e.Extra[k] = v
		}
		if err != nil {
			return nil, err
		}
	}
	return e, nil
}

func (md *Metadata) fromMap(m map[string]any) error {
	for k, v := range m {
		var err error
		path := "metadata." + k
		switch k {
		case "name":
			md.Name, err = asString(path, v)
		case "namespace":
			md.Namespace, err = asString(path, v)
		case "title":
			md.Title, err = asString(path, v)
		case "description":
			md.Description, err = asString(path, v)
		case "uid":
			md.UID, err = asString(path, v)
		case "etag":
			md.Etag, err = asString(path, v)
		case "labels":
			md.Labels, err = asStringMap(path, v)
		case "annotations":
			md.Annotations, err = asStringMap(path, v)
		case "tags":
			md.Tags, err = asStringSlice(path, v)
		case "links":
			md.Links, err = linksFromAny(path, v)
		default:
			if md.Extra == nil {
				md.Extra = map[string]any{}
			}
			md.Extra[k] = v
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func asString(path string, v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", &FieldError{path, "must be a string, got " + TypeName(v)}
	}
	return s, nil
}

func asStringMap(path string, v any) (map[string]string, error) {
	if v == nil {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, &FieldError{path, "must be an object of strings, got " + TypeName(v)}
	}
	out := make(map[string]string, len(m))
	for k, x := range m {
		s, ok := x.(string)
		if !ok {
			return nil, &FieldError{path + "." + k, "must be a string, got " + TypeName(x)}
		}
		out[k] = s
	}
	return out, nil
}

func asStringSlice(path string, v any) ([]string, error) {
	if v == nil {
		return nil, nil
	}
	a, ok := v.([]any)
	if !ok {
		return nil, &FieldError{path, "must be an array of strings, got " + TypeName(v)}
	}
	out := make([]string, len(a))
	for i, x := range a {
		s, ok := x.(string)
		if !ok {
			return nil, &FieldError{path + "[" + strconv.Itoa(i) + "]", "must be a string, got " + TypeName(x)}
		}
		out[i] = s
	}
	return out, nil
}

func linksFromAny(path string, v any) ([]Link, error) {
	if v == nil {
		return nil, nil
	}
	a, ok := v.([]any)
	if !ok {
		return nil, &FieldError{path, "must be an array, got " + TypeName(v)}
	}
	out := make([]Link, len(a))
	for i, x := range a {
		p := path + "[" + strconv.Itoa(i) + "]"
		m, ok := x.(map[string]any)
		if !ok {
			return nil, &FieldError{p, "must be an object, got " + TypeName(x)}
		}
		var l Link
		for k, val := range m {
			var err error
			switch k {
			case "url":
				l.URL, err = asString(p+".url", val)
			case "title":
				l.Title, err = asString(p+".title", val)
			case "icon":
				l.Icon, err = asString(p+".icon", val)
			case "type":
				l.Type, err = asString(p+".type", val)
			default:
				if l.Extra == nil {
					l.Extra = map[string]any{}
				}
				l.Extra[k] = val
			}
			if err != nil {
				return nil, err
			}
		}
		if _, ok := m["url"]; !ok {
			return nil, &FieldError{p + ".url", "is required"}
		}
		out[i] = l
	}
	return out, nil
}

func relationsFromAny(v any) ([]Relation, error) {
	if v == nil {
		return nil, nil
	}
	a, ok := v.([]any)
	if !ok {
		return nil, &FieldError{"relations", "must be an array, got " + TypeName(v)}
	}
	out := make([]Relation, 0, len(a))
	for i, x := range a {
		p := "relations[" + strconv.Itoa(i) + "]"
		m, ok := x.(map[string]any)
		if !ok {
			return nil, &FieldError{p, "must be an object, got " + TypeName(x)}
		}
		t, err := asString(p+".type", m["type"])
		if err != nil {
			return nil, err
		}
		ref, err := asString(p+".targetRef", m["targetRef"])
		if err != nil {
			return nil, err
		}
		out = append(out, Relation{Type: t, TargetRef: ref})
	}
	return out, nil
}

func statusFromAny(v any) (*Status, error) {
	if v == nil {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, &FieldError{"status", err.Error()}
	}
	var s Status
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, &FieldError{"status", "has the wrong shape: " + err.Error()}
	}
	return &s, nil
}

// TypeName names a JSON-shaped value's type the way messages for users
// should: "number", not "float64".
func TypeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case bool:
		return "boolean"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case float64, float32, int, int64, int32, uint64, json.Number:
		return "number"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// MarshalJSON renders the entity with keys in a stable order, so equal
// entities give equal bytes (hashes and etags rely on it): exactly the
// bytes of json.Marshal(e.ToMap()), written directly (encode.go). They are
// valid compact JSON, so the engine calls it directly and saves
// json.Marshal's re-reading of a Marshaler's output (a sixth of the time
// of processing an entity).
func (e *Entity) MarshalJSON() ([]byte, error) {
	bp := encodeBuffers.Get().(*[]byte)
	b, err := appendEntity((*bp)[:0], e)
	// An exact copy: callers keep the bytes (a Location's 100k children
	// hold theirs until committed), a spare half of a grown buffer each
	// was 50 MB at 100k.
	out := slices.Clone(b)
	*bp = b
	encodeBuffers.Put(bp)
	return out, err
}

// encodeBuffers are MarshalJSON's scratch buffers.
var encodeBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// UnmarshalJSON decodes an entity, keeping unknown fields.
func (e *Entity) UnmarshalJSON(b []byte) error {
	m, ok := parseObject(b)
	if !ok {
		// Not an object, or something the fast parser leaves to
		// encoding/json: its result and errors are the reference.
		dec := json.NewDecoder(bytes.NewReader(b))
		if err := dec.Decode(&m); err != nil {
			return err
		}
	}
	if m == nil {
		return &FieldError{"", "entity must be an object, got null"}
	}
	got, err := FromMap(m)
	if err != nil {
		return err
	}
	*e = *got
	return nil
}

// NormalizeValue turns what a YAML decoder produces (map[any]any, ints of
// every width) into JSON-shaped values, so that the rest of the engine only
// deals with map[string]any, []any, string, float64, int, bool and nil.
func NormalizeValue(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			t[k] = NormalizeValue(x)
		}
		return t
	case map[any]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[fmt.Sprint(k)] = NormalizeValue(x)
		}
		return out
	case []any:
		for i, x := range t {
			t[i] = NormalizeValue(x)
		}
		return t
	case int64:
		return int(t)
	case uint64:
		return float64(t)
	case float32:
		return float64(t)
	default:
		return v
	}
}

// SortedKeys returns a map's keys in order; used wherever output order must
// not depend on Go's map iteration.
func SortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
