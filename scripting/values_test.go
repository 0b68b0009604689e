package scripting

import (
	"encoding/json"
	"testing"

	"github.com/dop251/goja"

	"github.com/catalog-pipeline/pipeline/catalog"
)

// TestEntityToJS pins that the direct renderer builds what toJS(e.ToMap())
// would: same keys in sorted order, same values.
func TestEntityToJS(t *testing.T) {
	full, err := catalog.FromMap(map[string]any{
		"apiVersion": "backstage.io/v1alpha1",
		"kind":       "Component",
		"zExtra":     map[string]any{"b": 1, "a": []any{true, nil, 1.5}},
		"aExtra":     "x",
		"metadata": map[string]any{
			"name": "n", "namespace": "ns", "title": "T", "description": "D", "uid": "u", "etag": "e",
			"labels":      map[string]any{"b": "2", "a": "1"},
			"annotations": map[string]any{"z": "1"},
			"tags":        []any{"t2", "t1"},
			"links":       []any{map[string]any{"url": "https://x", "title": "X", "icon": "i", "type": "t", "extra": 1}, map[string]any{"url": "https://y"}},
			"custom":      map[string]any{"k": "v"},
		},
		"spec":      map[string]any{"type": "service", "nested": map[string]any{"y": 1, "x": []any{map[string]any{"q": nil}}}},
		"relations": []any{map[string]any{"type": "ownedBy", "targetRef": "group:default/a"}},
		"status":    map[string]any{"items": []any{map[string]any{"type": "t", "level": "error", "message": "m", "error": map[string]any{"name": "Error", "message": "m"}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []*catalog.Entity{full, testEntity("foo"), {Kind: "X"}, benchEntities(1)[0]} {
		vm := goja.New()
		stringify, _ := goja.AssertFunction(vm.Get("JSON").ToObject(vm).Get("stringify"))
		got, err := stringify(goja.Undefined(), entityToJS(vm, e))
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(e.ToMap())
		if got.String() != string(want) {
			t.Errorf("entityToJS:\ngot  %s\nwant %s", got, want)
		}
		back, err := entityFromJS(entityToJS(vm, e))
		if err != nil {
			t.Fatal(err)
		}
		again, _ := json.Marshal(back)
		if string(again) != string(want) {
			t.Errorf("round trip:\ngot  %s\nwant %s", again, want)
		}
	}
}
