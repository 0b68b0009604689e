package scripting

import (
	"reflect"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/catalog-pipeline/pipeline/catalog"
	"github.com/catalog-pipeline/pipeline/engine"
)

// TestLazyParts pins that building metadata and spec on first read is not
// observable: whatever the script does with the entity object, the result
// is what eager objects would give.
func TestLazyParts(t *testing.T) {
	tests := []struct {
		name string
		body string
		want func(e *catalog.Entity)
	}{
		{"untouched", `return entity;`, func(*catalog.Entity) {}},
		{"read only", `if (entity.metadata.name !== 'foo' || entity.spec.owner !== 'team-a') throw new Error('bad read'); return entity;`, func(*catalog.Entity) {}},
		{"keys, order and JSON", `
  const keys = Object.keys(entity).join(',') + '|' + Object.keys(entity.metadata).join(',');
  const json = JSON.stringify(entity);
  entity.spec.keys = keys;
  entity.spec.jsonHasSpec = json.includes('"spec":{"lifecycle":"production"');
  return entity;`, func(e *catalog.Entity) {
			e.Spec["keys"] = "apiVersion,kind,metadata,spec|annotations,labels,name,namespace,tags"
			e.Spec["jsonHasSpec"] = true
		}},
		{"assigned", `entity.spec = { type: 'new' }; return entity;`, func(e *catalog.Entity) { e.Spec = map[string]any{"type": "new"} }},
		{"deleted", `delete entity.spec; return entity;`, func(e *catalog.Entity) { e.Spec = nil }},
		{"defineProperty", `Object.defineProperty(entity, 'spec', { value: { type: 'defined' }, enumerable: true }); return entity;`,
			func(e *catalog.Entity) { e.Spec = map[string]any{"type": "defined"} }},
		{"spread copy", `return { ...entity, metadata: { ...entity.metadata, title: 'T' } };`, func(e *catalog.Entity) { e.Metadata.Title = "T" }},
		{"frozen", `Object.freeze(entity); if (entity.spec.owner !== 'team-a' || entity.spec !== entity.spec) throw new Error('frozen read'); return entity;`, func(*catalog.Entity) {}},
		{"nested in another object", `const box = { e: entity }; return box.e;`, func(*catalog.Entity) {}},
		{"emitted", `emit(results.entity(location, entity)); return entity;`, func(*catalog.Entity) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newEnv(t).stage("exports.postProcessEntity = (entity, location) => {\n"+tt.body+"\n};", nil)
			in := testEntity("foo")
			c := &collector{}
			got, err := s.PostProcessEntity(ctx, in, urlLoc, c.emit, newMemCache())
			if err != nil {
				t.Fatal(err)
			}
			want := testEntity("foo")
			tt.want(want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %#v\nwant %#v", got, want)
			}
			for _, r := range c.all() {
				er := r.(engine.EntityResult)
				er.Entity.SetAnnotation("x", "y")
				if _, ok := got.Metadata.Annotations["x"]; ok {
					t.Error("an emitted entity shares its maps with the result")
				}
			}
		})
	}
}

func TestLazyStale(t *testing.T) {
	s := newEnv(t).stage(`
let kept = null;
exports.postProcessEntity = (entity) => {
  if (kept) {
    entity.spec.keptName = kept.metadata.name; // read in its own call: fine
    try { kept.spec.owner; entity.spec.stale = 'no error'; } catch (e) { entity.spec.stale = e.message; }
  }
  entity.metadata.name; // read metadata, not spec
  kept = entity;
  return entity;
};`, map[string]cty.Value{"pool": cty.NumberIntVal(1)})
	if _, err := s.PostProcessEntity(ctx, testEntity("a"), urlLoc, (&collector{}).emit, newMemCache()); err != nil {
		t.Fatal(err)
	}
	got, err := s.PostProcessEntity(ctx, testEntity("b"), urlLoc, (&collector{}).emit, newMemCache())
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec["keptName"] != "a" {
		t.Errorf("keptName = %v", got.Spec["keptName"])
	}
	mustContain(t, "stale read", got.Spec["stale"].(string), "entity.spec was not read during the hook call that received this entity")
}

// TestLazyGetterDuringConversion: a getter of the script's that reads a
// lazy part while the result is converted gets the real value.
func TestLazyGetterDuringConversion(t *testing.T) {
	s := newEnv(t).stage(`exports.postProcessEntity = (entity) => ({
  apiVersion: entity.apiVersion,
  kind: entity.kind,
  get metadata() { return entity.metadata; },
  get spec() { return { owner: entity.spec.owner }; },
});`, nil)
	got, err := s.PostProcessEntity(ctx, testEntity("foo"), urlLoc, (&collector{}).emit, newMemCache())
	if err != nil {
		t.Fatal(err)
	}
	want := testEntity("foo")
	want.Spec = map[string]any{"owner": "team-a"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %#v\nwant %#v", got, want)
	}
}
