package catalog

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// kindSpecimens holds one valid entity of each builtin kind, with every
// optional field filled in, as JSON-shaped maps.
func kindSpecimens() map[string]*Entity {
	mk := func(apiVersion, kind string, spec map[string]any) *Entity {
		return &Entity{APIVersion: apiVersion, Kind: kind, Metadata: Metadata{Name: "x"}, Spec: spec}
	}
	return map[string]*Entity{
		KindComponent: mk(APIVersionV1alpha1, KindComponent, map[string]any{
			"type": "service", "lifecycle": "production", "owner": "team-a",
			"system": "shop", "subcomponentOf": "shop-web",
			"providesApis": []any{"orders"}, "consumesApis": []any{"users"},
			"dependsOn": []any{"resource:db"}, "dependencyOf": []any{"component:gateway"},
		}),
		KindAPI: mk(APIVersionV1beta1, KindAPI, map[string]any{
			"type": "openapi", "lifecycle": "production", "owner": "team-a", "definition": "openapi: 3.0.0", "system": "shop",
		}),
		KindResource: mk(APIVersionV1alpha1, KindResource, map[string]any{
			"type": "database", "owner": "team-a", "system": "shop",
			"dependsOn": []any{"resource:disk"}, "dependencyOf": []any{"component:orders"},
		}),
		KindSystem: mk(APIVersionV1alpha1, KindSystem, map[string]any{"owner": "team-a", "domain": "commerce", "type": "product"}),
		KindDomain: mk(APIVersionV1alpha1, KindDomain, map[string]any{"owner": "team-a", "subdomainOf": "business", "type": "area"}),
		KindGroup: mk(APIVersionV1alpha1, KindGroup, map[string]any{
			"type": "team", "children": []any{}, "parent": "eng", "members": []any{"jane"},
			"profile": map[string]any{"displayName": "Team A", "email": "a@example.com", "picture": "https://example.com/a.png"},
		}),
		KindUser: mk(APIVersionV1alpha1, KindUser, map[string]any{
			"memberOf": []any{"team-a"}, "profile": map[string]any{"displayName": "Jane"},
		}),
		KindLocation: mk(APIVersionV1alpha1, KindLocation, map[string]any{
			"type": "url", "target": "https://example.com/a.yaml", "targets": []any{"./b.yaml"}, "presence": "optional",
		}),
		KindTemplate: mk(APIVersionScaffolderV1beta3, KindTemplate, map[string]any{
			"type": "service", "owner": "team-a",
			"parameters": []any{map[string]any{"title": "x"}},
			"steps":      []any{map[string]any{"id": "fetch", "action": "fetch:template", "input": map[string]any{"url": "./skeleton"}}},
		}),
	}
}

// Fields of each kind: required ones and their expected type.
var kindFields = map[string][]struct {
	key      string
	required bool
	array    bool
}{
	KindComponent: {{"type", true, false}, {"lifecycle", true, false}, {"owner", true, false}, {"system", false, false},
		{"subcomponentOf", false, false}, {"providesApis", false, true}, {"consumesApis", false, true},
		{"dependsOn", false, true}, {"dependencyOf", false, true}},
	KindAPI:      {{"type", true, false}, {"lifecycle", true, false}, {"owner", true, false}, {"definition", true, false}, {"system", false, false}},
	KindResource: {{"type", true, false}, {"owner", true, false}, {"system", false, false}, {"dependsOn", false, true}, {"dependencyOf", false, true}},
	KindSystem:   {{"owner", true, false}, {"domain", false, false}, {"type", false, false}},
	KindDomain:   {{"owner", true, false}, {"subdomainOf", false, false}, {"type", false, false}},
	KindGroup:    {{"type", true, false}, {"children", true, true}, {"parent", false, false}, {"members", false, true}},
	KindUser:     {{"memberOf", true, true}},
	KindLocation: {{"type", false, false}, {"target", false, false}, {"targets", false, true}},
	KindTemplate: {{"type", true, false}, {"owner", false, false}},
}

func TestValidateKindSpecimens(t *testing.T) {
	for kind, e := range kindSpecimens() {
		known, err := ValidateKind(e)
		if !known || err != nil {
			t.Errorf("%s: known=%v err=%v, want known and valid", kind, known, err)
		}
	}
	if len(kindSpecimens()) != len(builtinKinds) {
		t.Errorf("%d specimens for %d builtin kinds", len(kindSpecimens()), len(builtinKinds))
	}
}

func TestValidateKindFields(t *testing.T) {
	for kind, fields := range kindFields {
		for _, f := range fields {
			path := "spec." + f.key
			type variant struct {
				name  string
				set   func(spec map[string]any)
				paths []string
			}
			variants := []variant{
				{"number", func(s map[string]any) { s[f.key] = 42 }, []string{path}},
				{"null", func(s map[string]any) { s[f.key] = nil }, []string{path}},
				{"object", func(s map[string]any) { s[f.key] = map[string]any{} }, []string{path}},
			}
			if f.required {
				variants = append(variants, variant{"missing", func(s map[string]any) { delete(s, f.key) }, []string{path}})
			} else {
				variants = append(variants, variant{"missing", func(s map[string]any) { delete(s, f.key) }, nil})
			}
			if f.array {
				variants = append(variants,
					variant{"string instead of array", func(s map[string]any) { s[f.key] = "a" }, []string{path}},
					variant{"non-string item", func(s map[string]any) { s[f.key] = []any{"a", 1, "b", true} }, []string{path + "[1]", path + "[3]"}},
					variant{"empty item", func(s map[string]any) { s[f.key] = []any{"a", ""} }, []string{path + "[1]"}},
					variant{"go string slice", func(s map[string]any) { s[f.key] = []string{"a", "b"} }, nil},
					variant{"empty array", func(s map[string]any) { s[f.key] = []any{} }, nil},
				)
			} else {
				variants = append(variants,
					variant{"array instead of string", func(s map[string]any) { s[f.key] = []any{"a"} }, []string{path}},
					variant{"empty string", func(s map[string]any) { s[f.key] = "" }, []string{path}},
					variant{"boolean", func(s map[string]any) { s[f.key] = true }, []string{path}},
				)
			}
			for _, v := range variants {
				t.Run(kind+"/"+f.key+"/"+v.name, func(t *testing.T) {
					e := kindSpecimens()[kind]
					v.set(e.Spec)
					known, err := ValidateKind(e)
					if !known {
						t.Fatal("not known")
					}
					if got := problemPaths(t, err); !slices.Equal(got, v.paths) {
						t.Errorf("problems at %q, want %q (err: %v)", got, v.paths, err)
					}
				})
			}
		}
	}
}

func TestValidateKindSpecial(t *testing.T) {
	tests := []struct {
		name  string
		kind  string
		set   func(spec map[string]any)
		paths []string
	}{
		{"presence required", KindLocation, func(s map[string]any) { s["presence"] = "required" }, nil},
		{"presence optional", KindLocation, func(s map[string]any) { s["presence"] = "optional" }, nil},
		{"presence other word", KindLocation, func(s map[string]any) { s["presence"] = "sometimes" }, []string{"spec.presence"}},
		{"presence capitalised", KindLocation, func(s map[string]any) { s["presence"] = "Required" }, []string{"spec.presence"}},
		{"presence boolean", KindLocation, func(s map[string]any) { s["presence"] = true }, []string{"spec.presence"}},
		{"location empty spec", KindLocation, func(s map[string]any) { clear(s) }, nil},

		{"template without steps", KindTemplate, func(s map[string]any) { delete(s, "steps") }, []string{"spec.steps"}},
		{"template without type", KindTemplate, func(s map[string]any) { delete(s, "type") }, []string{"spec.type"}},
		{"template empty steps", KindTemplate, func(s map[string]any) { s["steps"] = []any{} }, nil},
		{"template steps object", KindTemplate, func(s map[string]any) { s["steps"] = map[string]any{"action": "x"} }, []string{"spec.steps"}},
		{"template step not object", KindTemplate, func(s map[string]any) { s["steps"] = []any{"fetch:template"} }, []string{"spec.steps[0]"}},
		{"template step without action", KindTemplate, func(s map[string]any) {
			s["steps"] = []any{map[string]any{"action": "a"}, map[string]any{"id": "x"}}
		}, []string{"spec.steps[1].action"}},
		{"template step empty action", KindTemplate, func(s map[string]any) { s["steps"] = []any{map[string]any{"action": ""}} }, []string{"spec.steps[0].action"}},
		{"template step number action", KindTemplate, func(s map[string]any) { s["steps"] = []any{map[string]any{"action": 1}} }, []string{"spec.steps[0].action"}},

		{"group profile not object", KindGroup, func(s map[string]any) { s["profile"] = "Team A" }, []string{"spec.profile"}},
		{"group profile bad fields", KindGroup, func(s map[string]any) {
			s["profile"] = map[string]any{"displayName": 1, "email": "", "picture": "p", "extra": 5}
		}, []string{"spec.profile.displayName", "spec.profile.email"}},
		{"user profile not object", KindUser, func(s map[string]any) { s["profile"] = []any{} }, []string{"spec.profile"}},
		{"user profile empty", KindUser, func(s map[string]any) { s["profile"] = map[string]any{} }, nil},

		{"unknown spec fields are allowed", KindComponent, func(s map[string]any) { s["x-custom"] = map[string]any{"a": 1} }, nil},
		{"all required missing", KindAPI, func(s map[string]any) { clear(s) }, []string{"spec.type", "spec.lifecycle", "spec.owner", "spec.definition"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := kindSpecimens()[tt.kind]
			tt.set(e.Spec)
			known, err := ValidateKind(e)
			if !known {
				t.Fatal("not known")
			}
			if got := problemPaths(t, err); !slices.Equal(got, tt.paths) {
				t.Errorf("problems at %q, want %q (err: %v)", got, tt.paths, err)
			}
		})
	}
}

func TestValidateKindMessages(t *testing.T) {
	e := kindSpecimens()[KindComponent]
	delete(e.Spec, "owner")
	e.Spec["lifecycle"] = 3
	_, err := ValidateKind(e)
	want := "spec.lifecycle: must be a string, got number; spec.owner: is required for kind Component"
	if err == nil || err.Error() != want {
		t.Errorf("error %v\nwant  %s", err, want)
	}
	e = kindSpecimens()[KindLocation]
	e.Spec["presence"] = "maybe"
	_, err = ValidateKind(e)
	if err == nil || !strings.Contains(err.Error(), `"maybe" is invalid: must be "required" or "optional"`) {
		t.Errorf("presence error %v", err)
	}
}

func TestValidateKindNilSpec(t *testing.T) {
	for kind := range kindSpecimens() {
		e := kindSpecimens()[kind]
		e.Spec = nil
		known, err := ValidateKind(e)
		if got := problemPaths(t, err); !known || !slices.Equal(got, []string{"spec"}) {
			t.Errorf("%s without spec: known=%v problems %q", kind, known, got)
		}
	}
}

func TestValidateKindUnknownPairs(t *testing.T) {
	tests := []struct {
		apiVersion, kind string
		known            bool
	}{
		{APIVersionV1alpha1, KindComponent, true},
		{APIVersionV1beta1, KindComponent, true},
		{APIVersionV1beta1, KindLocation, true},
		{APIVersionScaffolderV1beta3, KindTemplate, true},
		{"example.com/v1", KindComponent, false},
		{"backstage.io/v2", KindComponent, false},
		{APIVersionV1alpha1, "component", false}, // kinds match exactly, as in Backstage's schemas
		{APIVersionV1alpha1, "Widget", false},
		{APIVersionV1alpha1, KindTemplate, false},
		{"scaffolder.backstage.io/v1beta2", KindTemplate, false},
		{APIVersionScaffolderV1beta3, KindComponent, false},
		{"", "", false},
	}
	for _, tt := range tests {
		// An invalid spec shows that unknown pairs are not even looked at.
		e := &Entity{APIVersion: tt.apiVersion, Kind: tt.kind, Metadata: Metadata{Name: "x"}, Spec: map[string]any{"type": 1}}
		known, err := ValidateKind(e)
		if known != tt.known {
			t.Errorf("%s %s: known=%v, want %v", tt.apiVersion, tt.kind, known, tt.known)
		}
		if !known && err != nil {
			t.Errorf("%s %s: unknown pair gave error %v", tt.apiVersion, tt.kind, err)
		}
		if known {
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Errorf("%s %s: known pair with bad spec gave %v", tt.apiVersion, tt.kind, err)
			}
		}
	}
}

func TestSortSpecArrays(t *testing.T) {
	e := &Entity{Spec: map[string]any{
		"providesApis": []any{"b", "a", "c"},
		"consumesApis": []any{"API:z", "api:a"},
		"dependsOn":    []any{"resource:b", "component:a"},
		"dependencyOf": []any{"y", "x"},
		"memberOf":     []any{"team-b", "team-a"},
		"children":     []string{"c2", "c1"},
		"members":      []any{"zoe", "adam", "adam"},
		"mixed":        []any{"b", "a"},     // not in the list: left alone
		"steps":        []any{"z", "a"},     // not in the list
		"targets":      []any{"./b", "./a"}, // order of targets is kept
		"tags":         []any{"b", "a"},     // not in the list
		"owner":        "b",                 // not an array
		"nested":       map[string]any{"members": []any{"b", "a"}},
	}}
	e2 := &Entity{Spec: map[string]any{
		"dependsOn": []any{"b", 1, "a"}, // not all strings: untouched
		"members":   []any{"b", nil},
		"children":  "b,a",
	}}
	SortSpecArrays(e)
	SortSpecArrays(e2)
	SortSpecArrays(&Entity{}) // nil spec must not panic
	want := map[string]any{
		"providesApis": []any{"a", "b", "c"},
		"consumesApis": []any{"API:z", "api:a"}, // byte order, like JS sort()
		"dependsOn":    []any{"component:a", "resource:b"},
		"dependencyOf": []any{"x", "y"},
		"memberOf":     []any{"team-a", "team-b"},
		"children":     []string{"c1", "c2"},
		"members":      []any{"adam", "adam", "zoe"},
		"mixed":        []any{"b", "a"},
		"steps":        []any{"z", "a"},
		"targets":      []any{"./b", "./a"},
		"tags":         []any{"b", "a"},
		"owner":        "b",
		"nested":       map[string]any{"members": []any{"b", "a"}},
	}
	if !reflect.DeepEqual(e.Spec, want) {
		t.Errorf("sorted spec\n got %v\nwant %v", e.Spec, want)
	}
	want2 := map[string]any{"dependsOn": []any{"b", 1, "a"}, "members": []any{"b", nil}, "children": "b,a"}
	if !reflect.DeepEqual(e2.Spec, want2) {
		t.Errorf("mixed arrays changed: %v", e2.Spec)
	}
}
