package scripting

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/catalog-pipeline/pipeline/catalog"
	"github.com/catalog-pipeline/pipeline/engine"
	"github.com/catalog-pipeline/pipeline/reading"
)

// memCache is an engine.Cache over a map: what the engine hands a hook,
// minus persistence.
type memCache struct {
	mu sync.Mutex
	m  map[string]any
}

func newMemCache(kv ...any) *memCache {
	c := &memCache{m: map[string]any{}}
	for i := 0; i+1 < len(kv); i += 2 {
		c.m[kv[i].(string)] = kv[i+1]
	}
	return c
}

func (c *memCache) Get(k string) (any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[k]
	return v, ok
}

func (c *memCache) Set(k string, v any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[k] = v
}

// collector gathers what a hook emits.
type collector struct {
	mu      sync.Mutex
	results []engine.Result
}

func (c *collector) emit(r engine.Result) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.results = append(c.results, r)
}

func (c *collector) all() []engine.Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]engine.Result(nil), c.results...)
}

func (c *collector) errors() []string {
	var out []string
	for _, r := range c.all() {
		if e, ok := r.(engine.ErrorResult); ok {
			out = append(out, e.Err.Error())
		}
	}
	return out
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env is a temp folder with a pipeline's view of the world: the folder the
// HCL file would be in (dir), a scripts/ folder, and a Reader confined to
// dir and 127.0.0.1.
type env struct {
	t      *testing.T
	dir    string
	reader *reading.Reader
	logs   *syncBuffer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "scripts"), 0o755); err != nil {
		t.Fatal(err)
	}
	return &env{
		t:      t,
		dir:    dir,
		reader: reading.New(reading.Policy{Roots: []string{dir}, Hosts: []string{"127.0.0.1"}}),
		logs:   &syncBuffer{},
	}
}

// write writes a file under the env folder; mtimes step by a second per
// write so that a reload always sees a change.
func (e *env) write(name, content string) string {
	e.t.Helper()
	p := filepath.Join(e.dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
	writes++
	mt := time.Now().Add(time.Duration(writes) * time.Second)
	if err := os.Chtimes(p, mt, mt); err != nil {
		e.t.Fatal(err)
	}
	return p
}

var writes int

// build returns the Build a loader would pass for a stage whose script is
// scripts/x.js holding src; set overrides settings.
func (e *env) build(src string, set map[string]cty.Value) engine.Build {
	e.t.Helper()
	path := e.write("scripts/x.js", src)
	settings := map[string]cty.Value{
		"script":         cty.StringVal(path),
		"timeout":        cty.StringVal("5s"),
		"config":         cty.EmptyObjectVal,
		"pool":           cty.NumberIntVal(2),
		"max_call_stack": cty.NumberIntVal(DefaultMaxCallStack),
	}
	for k, v := range set {
		settings[k] = v
	}
	return engine.Build{
		Pipeline: "p",
		Stage:    "js",
		Dir:      e.dir,
		Settings: settings,
		Reader:   e.reader,
		Logger:   slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("pipeline", "p", "stage", "js"),
	}
}

// stage builds a Stage from src and fails the test on error.
func (e *env) stage(src string, set map[string]cty.Value) *Stage {
	e.t.Helper()
	s, err := New(e.build(src, set))
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	return s
}

func testEntity(name string) *catalog.Entity {
	e, err := catalog.FromMap(map[string]any{
		"apiVersion": "backstage.io/v1alpha1",
		"kind":       "Component",
		"metadata": map[string]any{
			"name":      name,
			"namespace": "default",
			"annotations": map[string]any{
				catalog.AnnotationManagedByLocation:       "url:https://example.com/catalog-info.yaml",
				catalog.AnnotationManagedByOriginLocation: "file:/catalog/root.yaml",
			},
			"labels": map[string]any{"tier": "1"},
			"tags":   []any{"go", "js"},
		},
		"spec": map[string]any{"type": "service", "owner": "team-a", "lifecycle": "production"},
	})
	if err != nil {
		panic(err)
	}
	return e
}

var (
	urlLoc = engine.Location{Type: "url", Target: "https://example.com/catalog-info.yaml"}
	ctx    = context.Background()
)

func mustContain(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s does not contain %q:\n%s", what, w, got)
		}
	}
}
