package scripting

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/catalog-pipeline/pipeline/catalog"
	"github.com/catalog-pipeline/pipeline/engine"
)

func TestHooks(t *testing.T) {
	fileLoc := engine.Location{Type: "file", Target: "/catalog/x.yaml"}
	tests := []struct {
		name  string
		src   string
		check func(t *testing.T, s *Stage)
	}{
		{
			name: "readLocation",
			src: `exports.readLocation = function (location, optional) {
  return location.type === 'system-x' && location.target === 'inv' && optional === true;
};`,
			check: checkReadLocation,
		},
		{
			name: "async readLocation",
			src: `exports.readLocation = async (location, optional) => {
  await null;
  const v = await Promise.resolve(location.type === 'system-x');
  return v && location.target === 'inv' && optional;
};`,
			check: checkReadLocation,
		},
		{
			name: "preProcessEntity",
			src: `exports.preProcessEntity = (entity, location, originLocation) => {
  entity.metadata.labels.from = location.type;
  entity.metadata.labels.origin = originLocation.type + ':' + originLocation.target;
  return entity;
};`,
			check: checkPreProcess,
		},
		{
			name: "async preProcessEntity returning a new object",
			src: `module.exports = {
  async preProcessEntity(entity, location, originLocation) {
    await null;
    return { ...entity, metadata: { ...entity.metadata, labels: { ...entity.metadata.labels, from: location.type, origin: originLocation.type + ':' + originLocation.target } } };
  },
};`,
			check: checkPreProcess,
		},
		{
			name:  "validateEntityKind",
			src:   `exports.validateEntityKind = (entity) => entity.kind === 'Component';`,
			check: checkValidate,
		},
		{
			name:  "async validateEntityKind",
			src:   `exports.validateEntityKind = async function (entity) { return entity.kind === 'Component'; };`,
			check: checkValidate,
		},
		{
			name:  "postProcessEntity",
			src:   `exports.postProcessEntity = (entity, location) => { entity.spec.readFrom = location.target; return entity; };`,
			check: checkPostProcess,
		},
		{
			name:  "async postProcessEntity",
			src:   `exports.postProcessEntity = async (entity, location) => { entity.spec.readFrom = await Promise.resolve(location.target); return entity; };`,
			check: checkPostProcess,
		},
		{
			name: "class instance with hooks on the prototype",
			src: `class P {
  getProcessorName() { return 'my-processor'; }
  suffix() { return '!'; }
  postProcessEntity(entity, location) { entity.spec.readFrom = location.target; return entity; }
}
module.exports = new P();`,
			check: func(t *testing.T, s *Stage) {
				checkPostProcess(t, s)
				if s.Name() != "my-processor" {
					t.Errorf("Name = %q, want my-processor", s.Name())
				}
			},
		},
		{
			name: "no hooks",
			src:  `// nothing exported`,
			check: func(t *testing.T, s *Stage) {
				e := testEntity("foo")
				if ok, err := s.ReadLocation(ctx, fileLoc, false, (&collector{}).emit, newMemCache()); ok || err != nil {
					t.Errorf("ReadLocation = %v, %v; want false, nil", ok, err)
				}
				if got, err := s.PreProcessEntity(ctx, e, urlLoc, (&collector{}).emit, newMemCache()); got != e || err != nil {
					t.Errorf("PreProcessEntity = %p, %v; want the entity unchanged", got, err)
				}
				if got, err := s.PostProcessEntity(ctx, e, urlLoc, (&collector{}).emit, newMemCache()); got != e || err != nil {
					t.Errorf("PostProcessEntity = %p, %v; want the entity unchanged", got, err)
				}
				if ok, err := s.ValidateEntityKind(ctx, e); ok || err != nil {
					t.Errorf("ValidateEntityKind = %v, %v; want false, nil", ok, err)
				}
				if s.Name() != "js" {
					t.Errorf("Name = %q, want the stage label", s.Name())
				}
				if len(s.Hooks()) != 0 {
					t.Errorf("Hooks = %v", s.Hooks())
				}
			},
		},
		{
			name: "exported name",
			src:  `exports.name = 'system-x'; exports.readLocation = () => false;`,
			check: func(t *testing.T, s *Stage) {
				if s.Name() != "system-x" {
					t.Errorf("Name = %q", s.Name())
				}
				if !reflect.DeepEqual(s.Hooks(), []string{"readLocation"}) {
					t.Errorf("Hooks = %v", s.Hooks())
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, newEnv(t).stage(tt.src, nil))
		})
	}
}

func checkReadLocation(t *testing.T, s *Stage) {
	t.Helper()
	for _, c := range []struct {
		loc      engine.Location
		optional bool
		want     bool
	}{
		{engine.Location{Type: "system-x", Target: "inv"}, true, true},
		{engine.Location{Type: "system-x", Target: "inv"}, false, false},
		{engine.Location{Type: "file", Target: "inv"}, true, false},
	} {
		got, err := s.ReadLocation(ctx, c.loc, c.optional, (&collector{}).emit, newMemCache())
		if err != nil || got != c.want {
			t.Errorf("ReadLocation(%v, %v) = %v, %v; want %v", c.loc, c.optional, got, err, c.want)
		}
	}
}

func checkPreProcess(t *testing.T, s *Stage) {
	t.Helper()
	in := testEntity("foo")
	got, err := s.PreProcessEntity(ctx, in, urlLoc, (&collector{}).emit, newMemCache())
	if err != nil {
		t.Fatal(err)
	}
	want := testEntity("foo")
	want.Metadata.Labels["from"] = "url"
	want.Metadata.Labels["origin"] = "file:/catalog/root.yaml"
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if !reflect.DeepEqual(in, testEntity("foo")) {
		t.Errorf("the input entity was changed: %+v", in)
	}
}

func checkValidate(t *testing.T, s *Stage) {
	t.Helper()
	if ok, err := s.ValidateEntityKind(ctx, testEntity("foo")); !ok || err != nil {
		t.Errorf("ValidateEntityKind(Component) = %v, %v", ok, err)
	}
	other := testEntity("foo")
	other.Kind = "Thing"
	if ok, err := s.ValidateEntityKind(ctx, other); ok || err != nil {
		t.Errorf("ValidateEntityKind(Thing) = %v, %v", ok, err)
	}
}

func checkPostProcess(t *testing.T, s *Stage) {
	t.Helper()
	got, err := s.PostProcessEntity(ctx, testEntity("foo"), urlLoc, (&collector{}).emit, newMemCache())
	if err != nil {
		t.Fatal(err)
	}
	want := testEntity("foo")
	want.Spec["readFrom"] = urlLoc.Target
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestEmitEveryResult(t *testing.T) {
	s := newEnv(t).stage(`
const comp = (name) => ({ apiVersion: 'backstage.io/v1alpha1', kind: 'Component', metadata: { name }, spec: { owner: 'team-a' } });
exports.readLocation = (location) => {
  emit(results.entity(location, comp('a')));
  emit(results.entity(location, comp('b'), { locationKey: null }));
  emit(processingResult.entity({ type: 'url', target: 'https://h/c.yaml' }, comp('c'), { locationKey: 'custom' }));
  emit(results.location({ type: 'url', target: 'https://h/opt.yaml' }, true));
  emit(processingResult.location({ type: 'file', target: '/req.yaml', presence: 'required' }));
  emit(results.location({ type: 'file', target: '/opt2.yaml', presence: 'optional' }));
  emit(results.relation({ source: { kind: 'Component', namespace: 'default', name: 'a' }, type: 'ownedBy', target: { kind: 'Group', name: 'team-a' } }));
  emit(results.generalError(location, 'general'));
  emit(results.inputError(location, 'input'));
  emit(processingResult.notFoundError(location, 'missing'));
  emit(results.refresh('url:https://h/'));
  emit({ type: 'error', location: 'url:https://h/raw', error: new InputError('raw class') });
  emit({ type: 'error', error: 'plain string' });
  const late = results.entity(location, comp('d'));
  late.entity.spec.owner = 'team-b';
  emit(late);
  return true;
};`, nil)
	c := &collector{}
	loc := engine.Location{Type: "system-x", Target: "inv"}
	ok, err := s.ReadLocation(ctx, loc, false, c.emit, newMemCache())
	if err != nil || !ok {
		t.Fatalf("ReadLocation = %v, %v", ok, err)
	}
	comp := func(name, owner string) *catalog.Entity {
		return &catalog.Entity{APIVersion: "backstage.io/v1alpha1", Kind: "Component",
			Metadata: catalog.Metadata{Name: name}, Spec: map[string]any{"owner": owner}}
	}
	pe := func(name, msg string) *engine.ProcessingError {
		return &engine.ProcessingError{Name: name, Message: msg}
	}
	want := []engine.Result{
		engine.EntityResult{Location: loc, Entity: comp("a", "team-a")},
		engine.EntityResult{Location: loc, Entity: comp("b", "team-a"), NoLocationKey: true},
		engine.EntityResult{Location: engine.Location{Type: "url", Target: "https://h/c.yaml"}, Entity: comp("c", "team-a"), LocationKey: "custom"},
		engine.LocationResult{Location: engine.Location{Type: "url", Target: "https://h/opt.yaml"}, Optional: true},
		engine.LocationResult{Location: engine.Location{Type: "file", Target: "/req.yaml"}},
		engine.LocationResult{Location: engine.Location{Type: "file", Target: "/opt2.yaml"}, Optional: true},
		engine.RelationResult{Source: catalog.Ref{Kind: "Component", Namespace: "default", Name: "a"}, Type: "ownedBy",
			Target: catalog.Ref{Kind: "Group", Namespace: "default", Name: "team-a"}},
		engine.ErrorResult{Location: loc, Err: pe("Error", "general")},
		engine.ErrorResult{Location: loc, Err: pe("InputError", "input")},
		engine.ErrorResult{Location: loc, Err: pe("NotFoundError", "missing")},
		engine.RefreshResult{Key: "url:https://h/"},
		engine.ErrorResult{Location: engine.Location{Type: "url", Target: "https://h/raw"}, Err: pe("InputError", "raw class")},
		engine.ErrorResult{Err: pe("Error", "plain string")},
		engine.EntityResult{Location: loc, Entity: comp("d", "team-b")},
	}
	got := c.all()
	if len(got) != len(want) {
		t.Fatalf("got %d results, want %d: %#v", len(got), len(want), got)
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("result %d:\ngot  %#v\nwant %#v", i, got[i], want[i])
		}
	}
}

func TestRelationStringRefs(t *testing.T) {
	s := newEnv(t).stage(`
exports.postProcessEntity = (entity) => {
  const r = results.relation({ source: 'component:default/foo', type: 'ownedBy', target: 'group:team-a' });
  entity.spec.shape = JSON.stringify(r);
  emit(r);
  emit({ type: 'relation', relation: { source: 'component:ns/bar', type: 'dependsOn', target: { kind: 'Resource', name: 'db' } } });
  return entity;
};`, nil)
	c := &collector{}
	got, err := s.PostProcessEntity(ctx, testEntity("foo"), urlLoc, c.emit, newMemCache())
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"type":"relation","relation":{"source":{"kind":"component","namespace":"default","name":"foo"},"type":"ownedBy","target":{"kind":"group","namespace":"default","name":"team-a"}}}`; got.Spec["shape"] != want {
		t.Errorf("results.relation returned %v\nwant %s", got.Spec["shape"], want)
	}
	want := []engine.Result{
		engine.RelationResult{Source: catalog.Ref{Kind: "component", Namespace: "default", Name: "foo"}, Type: "ownedBy", Target: catalog.Ref{Kind: "group", Namespace: "default", Name: "team-a"}},
		engine.RelationResult{Source: catalog.Ref{Kind: "component", Namespace: "ns", Name: "bar"}, Type: "dependsOn", Target: catalog.Ref{Kind: "Resource", Namespace: "default", Name: "db"}},
	}
	if !reflect.DeepEqual(c.all(), want) {
		t.Errorf("got  %#v\nwant %#v", c.all(), want)
	}
}

// TestBadShapes: what the bindings refuse is a TypeError thrown in JS, at
// the script's line.
func TestBadShapes(t *testing.T) {
	tests := []struct{ code, want string }{
		{`emit(42)`, "emit: expected a result object such as results.entity(...) returns, got number 42"},
		{`emit({})`, "emit: the result has no type"},
		{`emit({ type: 'nope' })`, `emit: unknown result type "nope"`},
		{`emit({ type: 'entity', location, entity: { metadata: { name: 5 } } })`, "emit: entity result: entity: metadata.name: must be a string, got number"},
		{`emit({ type: 'entity', location, entity: { metadata: { name: 'x', f() {} } } })`, "emit: entity result: entity: metadata.f: is a function, not a JSON value"},
		{`emit({ type: 'entity', location, entity: { spec: { when: new Date(0) } } })`, "emit: entity result: entity: spec.when: is a Date, not a JSON value"},
		{`emit({ type: 'entity', location, entity: { spec: { n: NaN } } })`, "emit: entity result: entity: spec.n: NaN is not a JSON number"},
		{`const o = { kind: 'x' }; o.self = o; emit({ type: 'entity', location, entity: o })`, "emit: entity result: entity: self.self.self.self.self.self.self.self....: is nested more than 100 levels deep (does an object contain itself?)"},
		{`emit({ type: 'entity', location: {}, entity: {} })`, "emit: entity result: location must have a non-empty string type and target"},
		{`results.entity(location)`, "results.entity: entity must be an entity object, got undefined"},
		{`results.entity('nocolon', {})`, `results.entity: location: location ref "nocolon" is not of the form type:target`},
		{`results.entity(location, {}, { locationKey: 5 })`, "results.entity: locationKey must be a string or null, got number 5"},
		{`results.location({ type: 'url' })`, "results.location: location must have a non-empty string type and target"},
		{`results.location({ type: 'url', target: 'x', presence: 'maybe' })`, `results.location: presence must be "required" or "optional", got string "maybe"`},
		{`results.relation({ source: 'foo', type: 'ownedBy', target: 'group:a' })`, `results.relation: relation source: entity reference "foo" has no kind`},
		{`results.relation({ source: { kind: 'Component' }, type: 'ownedBy', target: 'group:a' })`, "results.relation: relation source must have a non-empty string kind and name"},
		{`results.relation({ source: 'component:a', target: 'group:a' })`, "results.relation: relation type must be a non-empty string"},
		{`results.relation()`, "results.relation: expected {source, type, target}, got undefined"},
		{`results.inputError(location)`, "results.inputError: message must be a string, got undefined"},
		{`results.refresh('')`, "results.refresh: key must be a non-empty string"},
		{`emit({ type: 'refresh' })`, "emit: refresh result: key must be a non-empty string, got undefined"},
		{`cache.set('k', () => 1)`, `cache.set("k"): the value must be JSON: is a function, not a JSON value`},
		{`cache.set('k')`, `cache.set("k"): the value is undefined`},
		{`cache.get(1)`, "cache.get: key must be a string, got number 1"},
		{`read(42)`, "read: target must be a URL or a path, got number 42"},
		{`read('x', { etag: 1 })`, "read: etag must be a string, got number 1"},
		{`read('x', { headers: { a: 1 } })`, `read: header "a" must be a string, got number 1`},
	}
	e := newEnv(t)
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			s := e.stage("exports.readLocation = (location) => {\n  "+tt.code+";\n  return true;\n};\n", nil)
			_, err := s.ReadLocation(ctx, urlLoc, false, (&collector{}).emit, newMemCache())
			if err == nil {
				t.Fatal("no error")
			}
			mustContain(t, "error", err.Error(), s.display+":2:", "TypeError: "+tt.want)
		})
	}
}

func TestWrongReturnTypes(t *testing.T) {
	tests := []struct {
		name, src string
		h         hook
		want      string
	}{
		{"readLocation string", `exports.readLocation = () => 'yes';`, hookReadLocation,
			`readLocation must return a boolean (true when it read the location, false when the location is not its type), but it returned string "yes"`},
		{"readLocation undefined", `exports.readLocation = () => {};`, hookReadLocation,
			"readLocation must return a boolean (true when it read the location, false when the location is not its type), but it returned undefined"},
		{"validateEntityKind number", `exports.validateEntityKind = () => 1;`, hookValidate,
			"validateEntityKind must return a boolean (true for a valid entity of a kind it knows, false for a kind it does not know), but it returned number 1"},
		{"preProcessEntity undefined", `exports.preProcessEntity = (e) => { e.x = 1; };`, hookPreProcess,
			"preProcessEntity must return the entity object, but it returned undefined"},
		{"postProcessEntity array", `exports.postProcessEntity = (e) => [e];`, hookPostProcess,
			"postProcessEntity must return the entity object, but it returned array"},
		{"postProcessEntity a promise of null", `exports.postProcessEntity = async () => null;`, hookPostProcess,
			"postProcessEntity must return the entity object, but it returned null"},
		{"postProcessEntity bad entity", `exports.postProcessEntity = (e) => { e.metadata.annotations.x = 5; return e; };`, hookPostProcess,
			"postProcessEntity returned an invalid entity: metadata.annotations.x: must be a string, got number"},
		{"pending promise", `exports.postProcessEntity = () => new Promise(() => {});`, hookPostProcess,
			"postProcessEntity returned a promise that did not settle; read/cache are synchronous, do not await timers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newEnv(t).stage(tt.src, nil)
			err := callHook(s, tt.h)
			if err == nil {
				t.Fatal("no error")
			}
			mustContain(t, "error", err.Error(), s.display, tt.want)
			var pe *engine.ProcessingError
			if !errors.As(err, &pe) || pe.Name != engine.GeneralErrorName {
				t.Errorf("error is %T %+v, want a ProcessingError named Error", err, err)
			}
		})
	}
}

// callHook calls one hook with a test entity and returns its error.
func callHook(s *Stage, h hook) error {
	var err error
	switch h {
	case hookReadLocation:
		_, err = s.ReadLocation(ctx, urlLoc, false, (&collector{}).emit, newMemCache())
	case hookPreProcess:
		_, err = s.PreProcessEntity(ctx, testEntity("foo"), urlLoc, (&collector{}).emit, newMemCache())
	case hookValidate:
		_, err = s.ValidateEntityKind(ctx, testEntity("foo"))
	case hookPostProcess:
		_, err = s.PostProcessEntity(ctx, testEntity("foo"), urlLoc, (&collector{}).emit, newMemCache())
	}
	return err
}

func TestThrow(t *testing.T) {
	src := `'use strict';
exports.readLocation = function readLocation(location) {
  return helper(location);
};
function helper(location) {
  throw new Error('boom ' + location.target);
}
exports.preProcessEntity = () => { throw new InputError('bad input'); };
exports.validateEntityKind = () => { const e = new Error('gone'); e.name = 'NotFoundError'; throw e; };
exports.postProcessEntity = (e) => e.nope.deeper;
`
	e := newEnv(t)
	s := e.stage(src, nil)
	d := s.display
	tests := []struct {
		h        hook
		name     string
		messages []string
	}{
		{hookReadLocation, "Error", []string{d + ":6:9: boom " + urlLoc.Target + "\n    at helper (" + d + ":6:9)\n    at readLocation (" + d + ":3:16)"}},
		{hookPreProcess, "InputError", []string{d + ":8:42: bad input\n    at "}},
		{hookValidate, "NotFoundError", []string{d + ":9:48: gone\n"}},
		{hookPostProcess, "Error", []string{d + ":10:43: TypeError: Cannot read property 'deeper' of undefined"}},
	}
	for _, tt := range tests {
		t.Run(tt.h.String(), func(t *testing.T) {
			err := callHook(s, tt.h)
			var pe *engine.ProcessingError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T %v is not a ProcessingError", err, err)
			}
			if pe.Name != tt.name {
				t.Errorf("name = %q, want %q", pe.Name, tt.name)
			}
			mustContain(t, "message", pe.Message, tt.messages...)
		})
	}

	// Columns of the first line are the file's, not the wrapper's.
	s = e.stage(`exports.readLocation = () => { throw new Error('one'); };`, nil)
	err := callHook(s, hookReadLocation)
	mustContain(t, "message", err.Error(), s.display+":1:38: one")

	// A rejected async hook reports the line of its throw.
	s = e.stage("exports.readLocation = async () => {\n  await null;\n  throw new InputError('later');\n};", nil)
	err = callHook(s, hookReadLocation)
	var pe *engine.ProcessingError
	if !errors.As(err, &pe) || pe.Name != "InputError" {
		t.Fatalf("rejection: %T %v", err, err)
	}
	mustContain(t, "rejection", pe.Message, s.display+":3:9: later\n    at ")

	// Throwing a non-Error still says what was thrown.
	s = e.stage(`exports.readLocation = () => { throw { code: 7 }; };`, nil)
	mustContain(t, "non-Error", callHook(s, hookReadLocation).Error(), `a non-Error value was thrown: {"code":7}`)
}

func TestTimeout(t *testing.T) {
	e := newEnv(t)
	s := e.stage(`exports.readLocation = (location) => {
  if (location.target === 'loop') { for (;;) {} }
  return true;
};`, map[string]cty.Value{"timeout": cty.StringVal("100ms"), "pool": cty.NumberIntVal(1)})
	first := <-s.idle
	s.idle <- first

	loop := engine.Location{Type: "x", Target: "loop"}
	_, err := s.ReadLocation(ctx, loop, false, (&collector{}).emit, newMemCache())
	if err == nil {
		t.Fatal("an endless loop returned")
	}
	mustContain(t, "timeout error", err.Error(), s.display+":2:", "readLocation timed out after 100ms")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error does not wrap context.DeadlineExceeded: %v", err)
	}
	if n := len(s.idle); n != 0 {
		t.Errorf("the interrupted runtime went back to the pool (%d idle)", n)
	}
	ok, err := s.ReadLocation(ctx, engine.Location{Type: "x", Target: "fine"}, false, (&collector{}).emit, newMemCache())
	if !ok || err != nil {
		t.Fatalf("call after a timeout = %v, %v", ok, err)
	}
	if rt := <-s.idle; rt == first {
		t.Error("the pool reuses the interrupted runtime")
	}
}

func TestStackOverflow(t *testing.T) {
	s := newEnv(t).stage(`function f(n) { return f(n + 1) + 1; }
exports.readLocation = (location) => location.target === 'deep' ? f(0) > 0 : true;`, map[string]cty.Value{"max_call_stack": cty.NumberIntVal(50)})
	_, err := s.ReadLocation(ctx, engine.Location{Type: "x", Target: "deep"}, false, (&collector{}).emit, newMemCache())
	if err == nil {
		t.Fatal("endless recursion returned")
	}
	mustContain(t, "error", err.Error(), "maximum call stack size (50) exceeded in readLocation", s.display+":1:")
	if ok, err := s.ReadLocation(ctx, urlLoc, false, (&collector{}).emit, newMemCache()); !ok || err != nil {
		t.Fatalf("next call = %v, %v", ok, err)
	}
}

// panicCache stands for a bug on the Go side of a binding.
type panicCache struct{}

func (panicCache) Get(string) (any, bool) { panic("cache exploded") }
func (panicCache) Set(string, any)        {}

func TestPanicRecovered(t *testing.T) {
	s := newEnv(t).stage(`exports.readLocation = () => { cache.get('k'); return true; };`, nil)
	_, err := s.ReadLocation(ctx, urlLoc, false, (&collector{}).emit, panicCache{})
	if err == nil {
		t.Fatal("no error")
	}
	mustContain(t, "error", err.Error(), "readLocation crashed the script runtime: cache exploded")
	if ok, err := s.ReadLocation(ctx, urlLoc, false, (&collector{}).emit, newMemCache()); !ok || err != nil {
		t.Fatalf("next call = %v, %v", ok, err)
	}
}

func TestCancel(t *testing.T) {
	s := newEnv(t).stage(`exports.readLocation = () => { for (;;) {} };`, nil)
	c, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err := s.ReadLocation(c, urlLoc, false, (&collector{}).emit, newMemCache())
	if err == nil {
		t.Fatal("no error")
	}
	mustContain(t, "error", err.Error(), "readLocation was stopped: context deadline exceeded")
}

func TestGlobals(t *testing.T) {
	// Only the documented bindings are global: no per-call data, no
	// require/process/fs.
	s := newEnv(t).stage(`
const builtin = new Set(Object.getOwnPropertyNames(globalThis));
let previous = null;
exports.postProcessEntity = (entity) => {
  entity.metadata.seen = true; // read during the call: kept for later calls
  entity.spec.previous = previous ? previous.metadata.name : null;
  entity.spec.same = previous === entity;
  if (previous) previous.metadata.name = 'changed-later';
  previous = entity;
  entity.spec.types = ['require', 'process', 'fs', 'setTimeout', 'entity'].map((n) => typeof globalThis[n]).join(',');
  entity.spec.ours = ['emit', 'results', 'processingResult', 'read', 'cache', 'config', 'log', 'console', 'InputError', 'NotFoundError', 'NotModifiedError', 'NotAllowedError'].every((n) => builtin.has(n));
  return entity;
};`, map[string]cty.Value{"pool": cty.NumberIntVal(1)})
	a, err := s.PostProcessEntity(ctx, testEntity("a"), urlLoc, (&collector{}).emit, newMemCache())
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.PostProcessEntity(ctx, testEntity("b"), urlLoc, (&collector{}).emit, newMemCache())
	if err != nil {
		t.Fatal(err)
	}
	delete(a.Metadata.Extra, "seen")
	if a.Metadata.Name != "a" {
		t.Errorf("changing a previous call's object reached its result: %q", a.Metadata.Name)
	}
	if b.Metadata.Name != "b" || b.Spec["previous"] != "a" || b.Spec["same"] != false {
		t.Errorf("second call got %v / %v", b.Metadata.Name, b.Spec)
	}
	if b.Spec["types"] != "undefined,undefined,undefined,undefined,undefined" || b.Spec["ours"] != true {
		t.Errorf("globals: %v, ours=%v", b.Spec["types"], b.Spec["ours"])
	}

	// require explains itself; bindings need a hook.
	e := newEnv(t)
	_, err = New(e.build(`require('fs');`, nil))
	mustContain(t, "require", errString(err), "require is not available")
	_, err = New(e.build(`emit({});`, nil))
	mustContain(t, "top-level emit", errString(err), "emit can only be used inside a hook")
	// The globals are read-only.
	s = e.stage(`'use strict'; exports.readLocation = () => { emit = null; return true; };`, nil)
	mustContain(t, "assign", errString(callHook(s, hookReadLocation)), "TypeError")
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

func TestNewErrors(t *testing.T) {
	e := newEnv(t)
	tests := []struct{ src, want string }{
		{"exports.readLocation = function() { return 1 +; };", ":1:47: SyntaxError: Unexpected token ;"},
		{"// ok\n// ok\nexports.x = ;\n", ":3:13: SyntaxError: "},
		{"\nundefinedThing.call();", ":2:1: ReferenceError: undefinedThing is not defined"},
		{"exports.readLocation = 'nope';", "module.exports.readLocation must be a function, got string \"nope\""},
		{"module.exports = 5;", "module.exports must be an object with the hooks, got number 5"},
		{"exports.name = 5;", "module.exports.name must be a string, got number 5"},
		{"for (;;) {}", "loading the script timed out after 200ms"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			_, err := New(e.build(tt.src, map[string]cty.Value{"timeout": cty.StringVal("200ms")}))
			if err == nil {
				t.Fatal("no error")
			}
			mustContain(t, "error", err.Error(), "script "+displayPath(e.dir+"/scripts/x.js"), tt.want)
		})
	}
	b := e.build("", nil)
	b.Settings["script"] = cty.StringVal(e.dir + "/scripts/missing.js")
	_, err := New(b)
	mustContain(t, "missing", errString(err), "missing.js: no such file or directory")
}

func TestShebangAndStrict(t *testing.T) {
	s := newEnv(t).stage("#!/usr/bin/env node\n'use strict';\nexports.readLocation = function () { return this === module.exports && typeof undeclared === 'undefined'; };", nil)
	if ok, err := s.ReadLocation(ctx, urlLoc, false, (&collector{}).emit, newMemCache()); !ok || err != nil {
		t.Fatalf("ReadLocation = %v, %v", ok, err)
	}
	if !strings.HasPrefix(s.display, "/") && !strings.HasPrefix(s.display, "scripts") {
		t.Errorf("display path %q", s.display)
	}
}
