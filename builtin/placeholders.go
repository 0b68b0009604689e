package builtin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"strconv"

	"go.yaml.in/yaml/v3"

	"github.com/catalog-pipeline/pipeline/catalog"
	"github.com/catalog-pipeline/pipeline/engine"
	"github.com/catalog-pipeline/pipeline/reading"
)

// PlaceholdersSpec registers the `placeholders` stage, Backstage's
// PlaceholderProcessor. It exists so that a catalog file can keep a large
// document (an OpenAPI definition, a JSON schema) in its own file next to it
// and pull it in with `definition: {$text: ./openapi.yaml}` instead of
// inlining it. Reads go through the pipeline's confined reader, so a catalog
// file cannot use a placeholder to read outside the allowed roots and hosts.
var PlaceholdersSpec = engine.StageSpec{
	Name:    "placeholders",
	Summary: "Resolves $text, $json and $yaml placeholders, relative to the entity's own location.",
	New: func(b engine.Build) (engine.Stage, error) {
		return &placeholders{name: b.Stage, reader: b.Reader}, nil
	},
}

// placeholderKinds are the resolvers Backstage ships by default. A one-key
// object whose key is not one of these is ordinary data (JSON Schema's $ref,
// $id, ...), so it must survive untouched.
var placeholderKinds = map[string]bool{"$text": true, "$json": true, "$yaml": true}

type placeholders struct {
	name   string
	reader *reading.Reader
}

// Name is the stage name from HCL, which also scopes the stage's cache.
func (p *placeholders) Name() string { return p.name }

// PreProcessEntity walks the entity as JSON, like Backstage, so that a
// placeholder works wherever an object may appear (spec, unknown metadata
// keys, link extras). Only when something is resolved is the entity rebuilt,
// so entities without placeholders pass through untouched and cheaply.
func (p *placeholders) PreProcessEntity(ctx context.Context, e *catalog.Entity, loc engine.Location, emit engine.Emit, _ engine.Cache) (*catalog.Entity, error) {
	if !entityHasPlaceholder(e) {
		return e, nil
	}
	r := &resolver{ctx: ctx, p: p, loc: loc, emit: emit}
	m := e.ToMap()
	changed := false
	for _, k := range catalog.SortedKeys(m) {
		if k == "apiVersion" || k == "kind" {
			continue
		}
		if v, ok := r.walk(m[k], k); ok {
			m[k] = v
			changed = true
		}
	}
	if r.err != nil {
		return e, r.err
	}
	if !changed {
		return e, nil
	}
	out, err := catalog.FromMap(m)
	if err != nil {
		return e, &engine.ProcessingError{Name: engine.InputErrorName, Message: "after resolving placeholders: " + err.Error(), Cause: err}
	}
	return out, nil
}

// entityHasPlaceholder scans the only parts of an entity that can hold
// objects (everything else is typed as strings), without copying anything.
func entityHasPlaceholder(e *catalog.Entity) bool {
	if hasPlaceholder(e.Spec) || hasPlaceholder(e.Metadata.Extra) || hasPlaceholder(e.Extra) {
		return true
	}
	for _, l := range e.Metadata.Links {
		if hasPlaceholder(l.Extra) {
			return true
		}
	}
	return false
}

func hasPlaceholder(v any) bool {
	switch t := v.(type) {
	case map[string]any:
		if _, ok := placeholderKey(t); ok {
			return true
		}
		for _, x := range t {
			if hasPlaceholder(x) {
				return true
			}
		}
	case []any:
		for _, x := range t {
			if hasPlaceholder(x) {
				return true
			}
		}
	}
	return false
}

// placeholderKey reports whether m is a placeholder: exactly one key, and
// that key names a known resolver.
func placeholderKey(m map[string]any) (string, bool) {
	if len(m) != 1 {
		return "", false
	}
	for k := range m {
		return k, placeholderKinds[k]
	}
	return "", false
}

// resolver carries one entity's walk. Every placeholder is attempted even
// after a failure (Backstage lets all siblings settle), and the first error
// in key order is the one reported, so the message is deterministic.
type resolver struct {
	ctx  context.Context
	p    *placeholders
	loc  engine.Location
	emit engine.Emit
	err  error
}

// walk returns the replacement for v and whether anything under it changed.
// Resolved content is not walked again: a loaded JSON schema keeps its own
// $-keys, and a file cannot pull in another file.
func (r *resolver) walk(v any, path string) (any, bool) {
	switch t := v.(type) {
	case map[string]any:
		if key, ok := placeholderKey(t); ok {
			got, err := r.resolve(key, t[key], path)
			if err != nil {
				if r.err == nil {
					r.err = err
				}
				return v, false
			}
			return got, true
		}
		changed := false
		for _, k := range catalog.SortedKeys(t) {
			if x, ok := r.walk(t[k], path+"."+k); ok {
				t[k] = x
				changed = true
			}
		}
		return t, changed
	case []any:
		changed := false
		for i, x := range t {
			if y, ok := r.walk(x, path+"["+strconv.Itoa(i)+"]"); ok {
				t[i] = y
				changed = true
			}
		}
		return t, changed
	default:
		return v, false
	}
}

func (r *resolver) resolve(key string, raw any, path string) (any, error) {
	value, ok := raw.(string)
	if !ok {
		return nil, engine.InputError("%s: placeholder %s must have a string value, got %s", path, key, catalog.TypeName(raw))
	}
	fail := func(cause error) error {
		return &engine.ProcessingError{
			Name:    engine.InputErrorName,
			Message: fmt.Sprintf("%s: %s %s: %v", path, key, value, cause),
			Cause:   cause,
		}
	}
	data, target, err := r.read(key, value, path)
	if err != nil {
		var pe *engine.ProcessingError
		if errors.As(err, &pe) {
			return nil, err
		}
		return nil, fail(err)
	}
	var out any
	switch key {
	case "$text":
		out = string(data)
	case "$json":
		if err := json.Unmarshal(data, &out); err != nil {
			return nil, fail(fmt.Errorf("parse JSON from %s: %w", target, err))
		}
	case "$yaml":
		out, err = decodeSingleYAML(data)
		if err != nil {
			return nil, fail(fmt.Errorf("read YAML from %s: %w", target, err))
		}
	}
	return out, nil
}

// read fetches what a placeholder points at, resolved against the entity's
// own location, and registers a refresh key for it so that a change to that
// file can make the entity due. It also returns the resolved target, for
// messages.
func (r *resolver) read(key, value, path string) (data []byte, target string, err error) {
	if r.p.reader == nil {
		return nil, "", errors.New("no reader is configured for this stage")
	}
	target, isURL, err := resolvePlaceholderTarget(r.loc, value)
	if err != nil {
		if errors.Is(err, errUnsupportedLocation) {
			return nil, "", engine.InputError("placeholder %s in %s: cannot resolve relative to location type %s", key, path, r.loc.Type)
		}
		return nil, "", err
	}
	if !isURL {
		// The reader's errors name the path and wrap its sentinels.
		data, err := r.p.reader.ReadFile(r.ctx, target)
		if err != nil {
			return nil, target, err
		}
		r.emit(engine.RefreshResult{Key: "file:" + target})
		return data, target, nil
	}
	// Fetch fails on any status but 2xx, naming the URL.
	resp, err := r.p.reader.Fetch(r.ctx, target, reading.FetchOptions{})
	if err != nil {
		return nil, target, err
	}
	r.emit(engine.RefreshResult{Key: "url:" + target})
	return resp.Body, target, nil
}

var errUnsupportedLocation = errors.New("unsupported location type")

// resolvePlaceholderTarget turns a placeholder value into an absolute file
// path or an absolute http(s) URL. An absolute http(s) URL is accepted from
// any location (a file-based catalog may point at a published spec); the
// reader's host allow-list still decides whether it may be read.
func resolvePlaceholderTarget(loc engine.Location, value string) (target string, isURL bool, err error) {
	if u, perr := url.Parse(value); perr == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
		return u.String(), true, nil
	}
	switch loc.Type {
	case "file":
		if filepath.IsAbs(value) {
			return filepath.Clean(value), false, nil
		}
		base := loc.Target
		if !filepath.IsAbs(base) {
			abs, err := filepath.Abs(base)
			if err != nil {
				return "", false, err
			}
			base = abs
		}
		return filepath.Join(filepath.Dir(base), value), false, nil
	case "url":
		base, err := url.Parse(loc.Target)
		if err != nil {
			return "", false, fmt.Errorf("location target %q is not a URL: %w", loc.Target, err)
		}
		ref, err := url.Parse(value)
		if err != nil {
			return "", false, fmt.Errorf("not a URL reference: %w", err)
		}
		got := base.ResolveReference(ref)
		// Like Backstage's default SCM resolver, a relative reference keeps
		// the base's query (GitLab's ?ref=, Azure's ?version=), which
		// selects the branch the entity itself was read from.
		if ref.Scheme == "" && ref.Host == "" && ref.RawQuery == "" && !ref.ForceQuery {
			got.RawQuery = base.RawQuery
		}
		if got.Scheme != "http" && got.Scheme != "https" {
			return "", false, fmt.Errorf("resolved to %q, which is not an http(s) URL", got.String())
		}
		return got.String(), true, nil
	default:
		return "", false, errUnsupportedLocation
	}
}

// decodeSingleYAML parses exactly one YAML document into JSON-shaped values.
// Timestamps stay strings: Backstage parses with the YAML 1.2 core schema,
// where 2024-01-02 is a string, and a time.Time would not survive JSON.
func decodeSingleYAML(data []byte) (any, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []*yaml.Node
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("parse YAML: %w", err)
		}
		docs = append(docs, &n)
	}
	if len(docs) != 1 {
		return nil, fmt.Errorf("expected exactly one YAML document, found %d", len(docs))
	}
	keepTimestampsAsStrings(docs[0])
	var out any
	if err := docs[0].Decode(&out); err != nil {
		return nil, fmt.Errorf("parse YAML: %w", err)
	}
	return catalog.NormalizeValue(out), nil
}

func keepTimestampsAsStrings(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!timestamp" {
		n.Tag = "!!str"
	}
	// Aliases point at anchored nodes that are already in Content.
	for _, c := range n.Content {
		keepTimestampsAsStrings(c)
	}
}
