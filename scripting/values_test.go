package scripting

import (
	"encoding/json"
	"reflect"
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
		back, err := entityFromJS(entityToJS(vm, e), nil)
		if err != nil {
			t.Fatal(err)
		}
		again, _ := json.Marshal(back)
		if string(again) != string(want) {
			t.Errorf("round trip:\ngot  %s\nwant %s", again, want)
		}
	}
}

// TestFastEntity pins that the fast conversion gives what the general one
// gives, and leaves everything unusual to it.
func TestFastEntity(t *testing.T) {
	tests := []struct {
		src  string
		fast bool
	}{
		{`({apiVersion: 'v1', kind: 'Component', metadata: {name: 'a', namespace: 'ns', title: 't', description: 'd', labels: {b: '1', a: '2'}, annotations: {x: 'y'}, tags: ['p', 'q'], custom: {n: 1}, gone: undefined}, spec: {type: 'service', list: [1, 'x', null, {z: true}]}})`, true},
		{`({kind: 'X', metadata: {name: 'a', labels: null, tags: null}, spec: null})`, true},
		{`({kind: 'X', metadata: {name: 'a', tags: [1]}})`, false},
		{`({kind: 'X', metadata: {name: 'a', labels: {a: 1}}})`, false},
		{`({kind: 'X', metadata: {name: 5}})`, false},
		{`({kind: 'X', metadata: {name: null}})`, false},
		{`({kind: 'X', metadata: {name: 'a', links: [{url: 'https://x'}]}})`, false},
		{`({kind: 'X', metadata: {name: 'a'}, relations: []})`, false},
		{`({kind: 'X', metadata: {name: 'a'}, extra: 1})`, false},
		{`({kind: 'X', metadata: {name: 'a'}, spec: []})`, false},
		{`({kind: 'X', metadata: {name: 'a'}, spec: {f() {}}})`, false},
	}
	for _, tt := range tests {
		vm := goja.New()
		v, err := vm.RunString(tt.src)
		if err != nil {
			t.Fatal(err)
		}
		fast, ok := fastEntity(v.(*goja.Object), nil)
		if ok != tt.fast {
			t.Errorf("%s: fast path taken = %v, want %v", tt.src, ok, tt.fast)
		}
		m, err := fromJS(v, "")
		var slow *catalog.Entity
		if err == nil {
			slow, err = catalog.FromMap(m.(map[string]any))
		}
		if ok {
			if err != nil || !reflect.DeepEqual(fast, slow) {
				t.Errorf("%s:\nfast %#v\nslow %#v (%v)", tt.src, fast, slow, err)
			}
		}
	}
}
