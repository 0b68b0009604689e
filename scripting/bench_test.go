package scripting

import (
	"fmt"
	"testing"

	"github.com/dop251/goja"

	"github.com/catalog-pipeline/pipeline/catalog"
	"github.com/catalog-pipeline/pipeline/engine"
)

// benchEntities are entity-like objects with about ten spec fields, as a
// System-X import produces.
func benchEntities(n int) []*catalog.Entity {
	out := make([]*catalog.Entity, n)
	for i := range out {
		e, err := catalog.FromMap(map[string]any{
			"apiVersion": "backstage.io/v1alpha1",
			"kind":       "Component",
			"metadata": map[string]any{
				"name":        fmt.Sprintf("service-%05d", i),
				"namespace":   "default",
				"description": "A service imported from System-X",
				"annotations": map[string]any{
					catalog.AnnotationManagedByLocation:       "system-x:https://system-x.example.com/records",
					catalog.AnnotationManagedByOriginLocation: "file:/catalog/root.yaml",
					"system-x.example.com/id":                 fmt.Sprint(i),
				},
				"labels": map[string]any{"tier": "2"},
				"tags":   []any{"java", "payments"},
			},
			"spec": map[string]any{
				"type":         "service",
				"owner":        "team-payments",
				"lifecycle":    "production",
				"system":       "payments",
				"dependsOn":    []any{"resource:default/db", "component:default/auth"},
				"providesApis": []any{"payments-api"},
				"tier":         2,
				"costCenter":   "cc-1234",
				"oncall":       "payments-oncall",
				"repository":   map[string]any{"url": "https://git.example.com/payments", "branch": "main"},
			},
		})
		if err != nil {
			panic(err)
		}
		out[i] = e
	}
	return out
}

// BenchmarkPostProcess measures the per-entity overhead of a JS stage: a
// postProcessEntity that returns its input, over 10k distinct entities
// (entity → JS objects, the call, JS objects → entity).
func BenchmarkPostProcess(b *testing.B) {
	e := newEnv(&testing.T{})
	s, err := New(e.build(`exports.postProcessEntity = (entity, location) => entity;`, nil))
	if err != nil {
		b.Fatal(err)
	}
	ents := benchEntities(10000)
	emit := (&collector{}).emit
	cache := newMemCache()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.PostProcessEntity(ctx, ents[i%len(ents)], urlLoc, emit, cache); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPostProcessEager is BenchmarkPostProcess with metadata and spec
// built up front, as a hook that reads everything would pay.
func BenchmarkPostProcessEager(b *testing.B) {
	lazyParts = false
	defer func() { lazyParts = true }()
	BenchmarkPostProcess(b)
}

// BenchmarkPostProcessAnnotate is a typical enrichment: read an
// annotation, add a label, return the entity (metadata is built and
// converted back; spec is not).
func BenchmarkPostProcessAnnotate(b *testing.B) {
	e := newEnv(&testing.T{})
	s, err := New(e.build(`exports.postProcessEntity = (entity) => {
  const id = entity.metadata.annotations['system-x.example.com/id'];
  if (id) entity.metadata.labels['system-x-id'] = id;
  return entity;
};`, nil))
	if err != nil {
		b.Fatal(err)
	}
	ents := benchEntities(10000)
	emit := (&collector{}).emit
	cache := newMemCache()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.PostProcessEntity(ctx, ents[i%len(ents)], urlLoc, emit, cache); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPostProcessParallel is BenchmarkPostProcess from as many
// goroutines as CPUs, on the default pool (one runtime per CPU).
func BenchmarkPostProcessParallel(b *testing.B) {
	e := newEnv(&testing.T{})
	s, err := New(e.build(`exports.postProcessEntity = (entity, location) => entity;`, nil))
	if err != nil {
		b.Fatal(err)
	}
	s.sem = make(chan struct{}, 64)
	s.idle = make(chan *jsRuntime, 64)
	ents := benchEntities(10000)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		emit := (&collector{}).emit
		cache := newMemCache()
		i := 0
		for pb.Next() {
			if _, err := s.PostProcessEntity(ctx, ents[i%len(ents)], urlLoc, emit, cache); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkReadLocationEmit measures a readLocation that builds one entity
// in JS and emits it (the System-X shape: one emit per upstream record).
func BenchmarkReadLocationEmit(b *testing.B) {
	e := newEnv(&testing.T{})
	s, err := New(e.build(`
exports.readLocation = (location) => {
  emit(results.entity(location, {
    apiVersion: 'backstage.io/v1alpha1',
    kind: 'Component',
    metadata: { name: 'service-1', annotations: { 'system-x.example.com/id': '1' } },
    spec: { type: 'service', owner: 'team-payments', lifecycle: 'production', system: 'payments' },
  }));
  return true;
};`, nil))
	if err != nil {
		b.Fatal(err)
	}
	loc := engine.Location{Type: "system-x", Target: "https://system-x.example.com/records"}
	n := 0
	emit := func(engine.Result) { n++ }
	cache := newMemCache()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.ReadLocation(ctx, loc, false, emit, cache); err != nil {
			b.Fatal(err)
		}
	}
	if n != b.N {
		b.Fatalf("%d emits for %d calls", n, b.N)
	}
}

// BenchmarkGojaCall is the yardstick for the others: calling a JS function
// that returns its argument, with nothing of this package around it. On a
// busy machine every figure grows; the ratios hold.
func BenchmarkGojaCall(b *testing.B) {
	vm := goja.New()
	v, err := vm.RunString(`(function (x) { return x; })`)
	if err != nil {
		b.Fatal(err)
	}
	f, _ := goja.AssertFunction(v)
	arg := vm.ToValue(1)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := f(goja.Undefined(), arg); err != nil {
			b.Fatal(err)
		}
	}
}
