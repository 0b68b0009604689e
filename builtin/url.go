package builtin

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/catalog-pipeline/pipeline/catalog"
	"github.com/catalog-pipeline/pipeline/engine"
	"github.com/catalog-pipeline/pipeline/reading"
)

// URLSpec registers the `url` stage, Backstage's UrlReaderProcessor: it
// reads locations of type "url" (an http or https URL of a YAML or JSON
// file) and uses the upstream's ETag so that an unchanged file costs one 304
// and no parsing. Which hosts it may call is decided by the pipeline's
// allowed hosts.
var URLSpec = engine.StageSpec{
	Name:    "url",
	Summary: "Reads entities from YAML or JSON files at `url` locations, with ETag caching.",
	Fields: []engine.Field{{
		Name:    "timeout",
		Type:    cty.String,
		Default: cty.StringVal(""),
		Doc: "Upper bound for one read, as a Go duration (\"10s\"). Empty means the " +
			"pipeline reader's timeout, which this setting can shorten but not extend.",
		Check: func(v cty.Value) error {
			if v.IsNull() || v.AsString() == "" {
				return nil
			}
			return engine.CheckDuration(v)
		},
	}},
	New: func(b engine.Build) (engine.Stage, error) {
		if b.Reader == nil {
			return nil, errors.New("the url stage needs a reader")
		}
		return &urlStage{
			name:    stageName(b, "url"),
			reader:  b.Reader,
			timeout: b.Duration("timeout"),
			log:     logger(b),
		}, nil
	},
}

// urlCacheKey is the cache item the stage keeps per target. The version is
// in the key, as in Backstage, so that a change of shape simply misses.
const urlCacheKey = "v1"

// maxErrorMessage bounds the message of a failed read, as Backstage does, so
// that an upstream's HTML error page does not bloat the entity's status.
const maxErrorMessage = 5000

type urlStage struct {
	name    string
	reader  *reading.Reader
	timeout time.Duration
	log     *slog.Logger
}

func (s *urlStage) Name() string { return s.name }

// ReadLocation fetches the target, sending the cached ETag. On 200 the
// entities are parsed and emitted, and cached with the new ETag when the
// whole file parsed; on 304 the cached entities are emitted again and the
// cache is re-set so that it stays. The refresh key "url:<target>" is
// always emitted.
func (s *urlStage) ReadLocation(ctx context.Context, loc engine.Location, optional bool, emit engine.Emit, cache engine.Cache) (bool, error) {
	if loc.Type != "url" {
		return false, nil
	}
	target := loc.Target
	at := engine.Location{Type: "url", Target: target}
	emit(engine.RefreshResult{Key: "url:" + target})
	if s.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.timeout)
		defer cancel()
	}

	var cached *urlCacheItem
	if cache != nil {
		if v, ok := cache.Get(urlCacheKey); ok {
			cached = decodeURLCache(v)
		}
	}
	var opts reading.FetchOptions
	if cached != nil {
		opts.ETag = cached.etag
	}
	resp, err := s.reader.Fetch(ctx, target, opts)
	if errors.Is(err, reading.ErrNotModified) {
		if cached != nil {
			if es, ok := cached.build(); ok {
				s.log.Debug("url not modified", "url", target, "entities", len(es))
				for _, e := range es {
					emit(engine.EntityResult{Location: at, Entity: e})
				}
				cache.Set(urlCacheKey, cached.value())
				return true, nil
			}
		}
		// A 304 without a usable cache (the server answered 304 to no ETag,
		// or the cached entities no longer decode): ask again plainly.
		resp, err = s.reader.Fetch(ctx, target, reading.FetchOptions{})
		if errors.Is(err, reading.ErrNotModified) {
			err = errors.New(truncate(err.Error(), maxErrorMessage) + " although no ETag was sent")
		}
	}
	switch {
	case err == nil:
	case errors.Is(err, reading.ErrNotFound):
		if optional {
			return true, nil
		}
		return true, withCause(engine.NotFoundError("%s", truncate(err.Error(), maxErrorMessage)), err)
	default:
		return true, withCause(engine.GeneralError("%s", truncate(err.Error(), maxErrorMessage)), err)
	}

	entities, errs := ParseEntities(resp.Body, target)
	s.log.Debug("read url", "url", target, "status", resp.Status, "entities", len(entities), "errors", len(errs))
	var store []any
	if resp.ETag != "" && len(errs) == 0 && cache != nil {
		// Render before emitting: the engine may change emitted entities.
		store = make([]any, len(entities))
		for i, pe := range entities {
			store[i] = pe.Entity.ToMap()
		}
	}
	for _, pe := range entities {
		emit(engine.EntityResult{Location: at, Entity: pe.Entity})
	}
	for _, perr := range errs {
		emit(engine.ErrorResult{Location: at, Err: withCause(engine.InputError("%v", perr), perr)})
	}
	if store != nil {
		cache.Set(urlCacheKey, (&urlCacheItem{etag: resp.ETag, entities: store}).value())
	}
	return true, nil
}

// urlCacheItem is the decoded "v1" cache item.
type urlCacheItem struct {
	etag     string
	entities []any // of map[string]any
}

// value is the JSON-shaped form stored in the cache.
func (c *urlCacheItem) value() map[string]any {
	return map[string]any{"etag": c.etag, "entities": c.entities}
}

// decodeURLCache accepts the item as this stage stored it and as it comes
// back from the persisted JSON after a restart (or as raw JSON, from a cache
// that keeps bytes). Anything unexpected counts as no cache, which costs one
// full read rather than an error.
func decodeURLCache(v any) *urlCacheItem {
	switch t := v.(type) {
	case json.RawMessage:
		return decodeURLCacheJSON(t)
	case []byte:
		return decodeURLCacheJSON(t)
	case string:
		return decodeURLCacheJSON([]byte(t))
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	etag, _ := m["etag"].(string)
	if etag == "" {
		return nil
	}
	var entities []any
	switch es := m["entities"].(type) {
	case []any:
		entities = es
	case []map[string]any:
		entities = make([]any, len(es))
		for i, e := range es {
			entities[i] = e
		}
	case nil:
	default:
		return nil
	}
	for _, e := range entities {
		if _, ok := e.(map[string]any); !ok {
			return nil
		}
	}
	return &urlCacheItem{etag: etag, entities: entities}
}

// build makes entities from copies of the cached maps: the engine may change
// the entities it is given, and the maps are stored again. ok is false when
// a cached map no longer makes an entity; the caller then reads afresh.
func (c *urlCacheItem) build() ([]*catalog.Entity, bool) {
	out := make([]*catalog.Entity, len(c.entities))
	for i, m := range c.entities {
		e, err := catalog.FromMap(catalog.CloneValue(m).(map[string]any))
		if err != nil {
			return nil, false
		}
		out[i] = e
	}
	return out, true
}

func decodeURLCacheJSON(b []byte) *urlCacheItem {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil
	}
	return decodeURLCache(v)
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
