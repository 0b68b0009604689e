package engine

import (
	"encoding/json"
	"fmt"
	"sync"
)

// caches holds the stage caches of one entity for one processing run and
// applies Backstage's carry-over rule: a stage that writes anything in a run
// has its bucket replaced by what it wrote; a stage that writes nothing keeps
// its previous bucket. Values are JSON-shaped (they are persisted as JSON).
type caches struct {
	prev map[string]map[string]any
	// mu guards written: the targets of a Location are read in parallel.
	mu      sync.Mutex
	written map[string]map[string]any
}

func newCaches(raw json.RawMessage) (*caches, error) {
	c := &caches{written: map[string]map[string]any{}}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &c.prev); err != nil {
			return nil, fmt.Errorf("decode stage cache: %w", err)
		}
	}
	return c, nil
}

// forStage gives the cache a stage sees in its entity hooks.
func (c *caches) forStage(stage string) Cache {
	return &stageCache{c: c, stage: stage}
}

// forTarget gives the cache a stage sees in ReadLocation for one target: a
// sub-object of the stage's bucket keyed by the target, as Backstage scopes
// it.
func (c *caches) forTarget(stage, target string) Cache {
	return &stageCache{c: c, stage: stage, target: target, sub: true}
}

// encode returns the cache to persist: written buckets replace previous
// ones, untouched buckets carry over.
func (c *caches) encode() (json.RawMessage, error) {
	out := make(map[string]map[string]any, len(c.prev)+len(c.written))
	for k, v := range c.prev {
		out[k] = v
	}
	for k, v := range c.written {
		out[k] = v
	}
	if len(out) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode stage cache: %w", err)
	}
	return b, nil
}

type stageCache struct {
	c      *caches
	stage  string
	target string
	sub    bool
}

func (s *stageCache) Get(key string) (any, bool) {
	bucket := s.c.prev[s.stage]
	if s.sub {
		sub, _ := bucket[s.target].(map[string]any)
		v, ok := sub[key]
		return v, ok
	}
	v, ok := bucket[key]
	return v, ok
}

func (s *stageCache) Set(key string, value any) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	bucket := s.c.written[s.stage]
	if bucket == nil {
		bucket = map[string]any{}
		s.c.written[s.stage] = bucket
	}
	if !s.sub {
		bucket[key] = value
		return
	}
	sub, _ := bucket[s.target].(map[string]any)
	if sub == nil {
		sub = map[string]any{}
		bucket[s.target] = sub
	}
	sub[key] = value
}
