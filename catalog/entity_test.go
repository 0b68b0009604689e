package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// fullEntityMap is a JSON-shaped entity using every known field plus unknown
// ones at every level where Backstage allows them (metadata, links, spec) and
// one it does not (root), which must survive so validation can report it.
func fullEntityMap() map[string]any {
	return map[string]any{
		"apiVersion": "backstage.io/v1alpha1",
		"kind":       "Component",
		"metadata": map[string]any{
			"name":        "orders",
			"namespace":   "shop",
			"title":       "Orders",
			"description": "Takes orders.",
			"uid":         "0b8c0a4e-7f2e-4a8e-9d77-1a2b3c4d5e6f",
			"etag":        "abc123",
			"labels":      map[string]any{"tier": "backend", "empty": ""},
			"annotations": map[string]any{AnnotationManagedByLocation: "url:https://example.com/catalog-info.yaml"},
			"tags":        []any{"go", "grpc"},
			"links": []any{
				map[string]any{"url": "https://example.com/docs", "title": "Docs", "icon": "docs", "type": "doc", "x-extra": true},
				map[string]any{"url": "https://example.com/min"},
			},
			"x-cost-center": map[string]any{"id": 42.0, "tags": []any{"a", nil, false}},
		},
		"spec": map[string]any{
			"type":      "service",
			"lifecycle": "production",
			"owner":     "team-a",
			"x-deploy": map[string]any{
				"replicas": 3.0,
				"regions":  []any{"eu", "us"},
				"nested":   []any{map[string]any{"k": nil}},
			},
			"$ref": "keep me",
		},
		"relations": []any{
			map[string]any{"type": "ownedBy", "targetRef": "group:shop/team-a"},
		},
		"status": map[string]any{
			"items": []any{map[string]any{
				"type": "backstage.io/catalog-processing", "level": "error", "message": "boom",
				"error": map[string]any{"name": "InputError", "message": "boom"},
			}},
		},
		"x-foreign": "root",
	}
}

func TestEntityMapRoundTrip(t *testing.T) {
	in := fullEntityMap()
	e, err := FromMap(in)
	if err != nil {
		t.Fatal(err)
	}
	if e.Metadata.Name != "orders" || e.Metadata.Links[0].Extra["x-extra"] != true || e.Extra["x-foreign"] != "root" {
		t.Errorf("fields not decoded: %+v", e)
	}
	if got := e.ToMap(); !reflect.DeepEqual(got, fullEntityMap()) {
		t.Errorf("ToMap differs from the input\n got %#v\nwant %#v", got, fullEntityMap())
	}
	if err := ValidateFields(e); err == nil {
		t.Error("the foreign root field was not reported")
	}
}

func TestEntityJSONRoundTrip(t *testing.T) {
	e, err := FromMap(fullEntityMap())
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var back Entity
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&back, e) {
		t.Errorf("JSON round trip differs\n got %#v\nwant %#v", &back, e)
	}
	if got := back.ToMap(); !reflect.DeepEqual(got, fullEntityMap()) {
		t.Errorf("ToMap after JSON differs\n got %#v", got)
	}
	// Equal entities give equal bytes, whatever the map order was.
	b2, _ := json.Marshal(&back)
	if !bytes.Equal(b, b2) {
		t.Errorf("marshal is not stable:\n%s\n%s", b, b2)
	}
}

// The engine calls MarshalJSON directly, skipping the pass in which
// json.Marshal re-reads a Marshaler's output: that is only right while
// MarshalJSON's bytes are already what json.Marshal makes of them
// (compact, HTML characters and U+2028/U+2029 escaped).
func TestMarshalJSONIsWhatJSONMarshalWrites(t *testing.T) {
	m := fullEntityMap()
	m["spec"].(map[string]any)["x-text"] = "<b>a & b</b>\u2028\u2029\t\x01 é \xff"
	m["metadata"].(map[string]any)["description"] = "line one\nline \"two\""
	e, err := FromMap(m)
	if err != nil {
		t.Fatal(err)
	}
	direct, err := e.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	viaJSON, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(direct, viaJSON) {
		t.Errorf("MarshalJSON and json.Marshal differ:\n%s\n%s", direct, viaJSON)
	}
}

// A YAML decoder gives ints and, for non-string keys, map[any]any;
// NormalizeValue turns that into the JSON shape FromMap works on.
func TestEntityYAMLShapedRoundTrip(t *testing.T) {
	yamlish := map[string]any{
		"apiVersion": "backstage.io/v1alpha1",
		"kind":       "Component",
		"metadata":   map[string]any{"name": "orders", "x-count": int64(7)},
		"spec": map[string]any{
			"type": "service", "lifecycle": "production", "owner": "team-a",
			"ports":   []any{int64(80), uint64(443), float32(1.5)},
			"byPort":  map[any]any{8080: "http", true: "yes"},
			"enabled": true,
		},
	}
	m := NormalizeValue(yamlish).(map[string]any)
	e, err := FromMap(m)
	if err != nil {
		t.Fatal(err)
	}
	wantSpec := map[string]any{
		"type": "service", "lifecycle": "production", "owner": "team-a",
		"ports":   []any{80, 443.0, 1.5},
		"byPort":  map[string]any{"8080": "http", "true": "yes"},
		"enabled": true,
	}
	if !reflect.DeepEqual(e.Spec, wantSpec) {
		t.Errorf("normalized spec %#v", e.Spec)
	}
	if e.Metadata.Extra["x-count"] != 7 {
		t.Errorf("metadata extra %#v", e.Metadata.Extra)
	}
	if !reflect.DeepEqual(e.ToMap()["spec"], wantSpec) {
		t.Errorf("ToMap spec %#v", e.ToMap()["spec"])
	}
	// Through JSON, numbers become float64 but nothing is lost.
	b, err := e.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var back Entity
	if err := back.UnmarshalJSON(b); err != nil {
		t.Fatal(err)
	}
	if got := back.Spec["ports"]; !reflect.DeepEqual(got, []any{80.0, 443.0, 1.5}) {
		t.Errorf("ports after JSON %#v", got)
	}
	if back.Metadata.Extra["x-count"] != 7.0 || back.Spec["byPort"].(map[string]any)["8080"] != "http" {
		t.Errorf("unknown fields lost: %#v / %#v", back.Metadata.Extra, back.Spec)
	}
}

func TestFromMapTypeErrors(t *testing.T) {
	tests := []struct {
		name string
		set  func(m map[string]any)
		path string
	}{
		{"kind number", func(m map[string]any) { m["kind"] = 1.0 }, "kind"},
		{"apiVersion null", func(m map[string]any) { m["apiVersion"] = nil }, "apiVersion"},
		{"metadata string", func(m map[string]any) { m["metadata"] = "x" }, "metadata"},
		{"spec array", func(m map[string]any) { m["spec"] = []any{} }, "spec"},
		{"name number", func(m map[string]any) { md(m)["name"] = 1.0 }, "metadata.name"},
		{"labels array", func(m map[string]any) { md(m)["labels"] = []any{} }, "metadata.labels"},
		{"label value number", func(m map[string]any) { md(m)["labels"] = map[string]any{"a": 1.0} }, "metadata.labels.a"},
		{"tags string", func(m map[string]any) { md(m)["tags"] = "go" }, "metadata.tags"},
		{"tag number", func(m map[string]any) { md(m)["tags"] = []any{"go", 1.0} }, "metadata.tags[1]"},
		{"link without url", func(m map[string]any) { md(m)["links"] = []any{map[string]any{"title": "x"}} }, "metadata.links[0].url"},
		{"link title number", func(m map[string]any) {
			md(m)["links"] = []any{map[string]any{"url": "https://a", "title": 1.0}}
		}, "metadata.links[0].title"},
		{"relations object", func(m map[string]any) { m["relations"] = map[string]any{} }, "relations"},
		{"status wrong shape", func(m map[string]any) { m["status"] = map[string]any{"items": "x"} }, "status"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := fullEntityMap()
			tt.set(m)
			_, err := FromMap(m)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Path != tt.path {
				t.Errorf("error %v, want a FieldError at %s", err, tt.path)
			}
		})
	}
	var e Entity
	if err := e.UnmarshalJSON([]byte("null")); err == nil {
		t.Error("null entity accepted")
	}
	if err := e.UnmarshalJSON([]byte("[]")); err == nil {
		t.Error("array entity accepted")
	}
}

func md(m map[string]any) map[string]any { return m["metadata"].(map[string]any) }

func TestCloneIsDeep(t *testing.T) {
	orig, err := FromMap(fullEntityMap())
	if err != nil {
		t.Fatal(err)
	}
	c := orig.Clone()
	if !reflect.DeepEqual(c, orig) {
		t.Fatal("clone differs from the original")
	}
	c.Metadata.Labels["tier"] = "changed"
	c.Metadata.Annotations["new"] = "x"
	c.Metadata.Tags[0] = "changed"
	c.Metadata.Links[0].URL = "changed"
	c.Metadata.Links[0].Extra["x-extra"] = "changed"
	c.Metadata.Extra["x-cost-center"].(map[string]any)["id"] = "changed"
	c.Spec["x-deploy"].(map[string]any)["regions"].([]any)[0] = "changed"
	c.Relations[0].Type = "changed"
	c.Status.Items[0].Message = "changed"
	c.Status.Items[0].Error.Message = "changed"
	c.Extra["x-foreign"] = "changed"
	c.SetAnnotation("another", "y")

	want, _ := FromMap(fullEntityMap())
	if !reflect.DeepEqual(orig, want) {
		t.Errorf("changing the clone changed the original:\n%#v", orig)
	}
	if (*Entity)(nil).Clone() != nil {
		t.Error("nil clone is not nil")
	}
}
