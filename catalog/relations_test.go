package catalog

import (
	"slices"
	"strings"
	"testing"
)

// wantPairs is reference §3.5 written out independently of relationTable:
// changing a row there without changing it here fails the tests below.
var wantPairs = []struct {
	kind, field, defaultKind, forward, reverse string
}{
	{"Component", "owner", "Group", "ownedBy", "ownerOf"},
	{"Component", "subcomponentOf", "Component", "partOf", "hasPart"},
	{"Component", "providesApis", "API", "providesApi", "apiProvidedBy"},
	{"Component", "consumesApis", "API", "consumesApi", "apiConsumedBy"},
	{"Component", "dependsOn", "", "dependsOn", "dependencyOf"},
	{"Component", "dependencyOf", "", "dependencyOf", "dependsOn"},
	{"Component", "system", "System", "partOf", "hasPart"},
	{"API", "owner", "Group", "ownedBy", "ownerOf"},
	{"API", "system", "System", "partOf", "hasPart"},
	{"Resource", "owner", "Group", "ownedBy", "ownerOf"},
	{"Resource", "dependsOn", "", "dependsOn", "dependencyOf"},
	{"Resource", "dependencyOf", "", "dependencyOf", "dependsOn"},
	{"Resource", "system", "System", "partOf", "hasPart"},
	{"User", "memberOf", "Group", "memberOf", "hasMember"},
	{"Group", "parent", "Group", "childOf", "parentOf"},
	{"Group", "children", "Group", "parentOf", "childOf"},
	{"Group", "members", "User", "hasMember", "memberOf"},
	{"System", "owner", "Group", "ownedBy", "ownerOf"},
	{"System", "domain", "Domain", "partOf", "hasPart"},
	{"Domain", "owner", "Group", "ownedBy", "ownerOf"},
	{"Domain", "subdomainOf", "Domain", "partOf", "hasPart"},
	{"Template", "owner", "Group", "ownedBy", "ownerOf"},
	{"Template", "owners", "Group", "ownedBy", "ownerOf"},
}

func relEntity(kind, namespace string, spec map[string]any) *Entity {
	return &Entity{APIVersion: APIVersionV1alpha1, Kind: kind, Metadata: Metadata{Name: "self", Namespace: namespace}, Spec: spec}
}

func TestKindRelationsEveryPair(t *testing.T) {
	if len(relationTable) != len(wantPairs) {
		t.Errorf("relationTable has %d rows, the reference %d", len(relationTable), len(wantPairs))
	}
	for _, p := range wantPairs {
		t.Run(p.kind+"."+p.field, func(t *testing.T) {
			self := Ref{Kind: p.kind, Namespace: "ops", Name: "self"}
			// A short ref takes the row's default kind and the entity's
			// namespace; rows without a default kind need a full ref.
			value, target := "target-x", Ref{Kind: p.defaultKind, Namespace: "ops", Name: "target-x"}
			if p.defaultKind == "" {
				value, target = "Widget:target-x", Ref{Kind: "Widget", Namespace: "ops", Name: "target-x"}
			}
			want := []RelationSpec{
				{Source: self, Type: p.forward, Target: target},
				{Source: target, Type: p.reverse, Target: self},
			}
			for _, v := range []any{value, []any{value}, []string{value}} {
				got, err := KindRelations(relEntity(p.kind, "ops", map[string]any{p.field: v}))
				if err != nil {
					t.Fatalf("value %#v: %v", v, err)
				}
				if !slices.Equal(got, want) {
					t.Errorf("value %#v:\n got %v\nwant %v", v, got, want)
				}
			}
			if p.defaultKind == "" {
				_, err := KindRelations(relEntity(p.kind, "ops", map[string]any{p.field: []any{"target-x"}}))
				if err == nil {
					t.Errorf("a short ref in %s was accepted without a default kind", p.field)
				}
			}
		})
	}
}

func TestKindRelationsOrder(t *testing.T) {
	e := relEntity("Component", "", map[string]any{
		// Map order must not matter: output follows the table.
		"system":       "shop",
		"providesApis": []any{"orders-v2", "orders-v1"},
		"owner":        "team-a",
		"type":         "service",
	})
	got, err := KindRelations(e)
	if err != nil {
		t.Fatal(err)
	}
	self := "component:default/self"
	want := []string{
		self + " ownedBy group:default/team-a",
		"group:default/team-a ownerOf " + self,
		self + " providesApi api:default/orders-v2",
		"api:default/orders-v2 apiProvidedBy " + self,
		self + " providesApi api:default/orders-v1",
		"api:default/orders-v1 apiProvidedBy " + self,
		self + " partOf system:default/shop",
		"system:default/shop hasPart " + self,
	}
	if s := relStrings(got); !slices.Equal(s, want) {
		t.Errorf("relations\n got %q\nwant %q", s, want)
	}
}

func relStrings(rs []RelationSpec) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Source.String() + " " + r.Type + " " + r.Target.String()
	}
	return out
}

func TestKindRelationsNamespacesAndKinds(t *testing.T) {
	tests := []struct {
		name      string
		namespace string
		owner     string
		want      string // forward target
	}{
		{"short ref takes own namespace", "ops", "team-a", "group:ops/team-a"},
		{"no namespace means default", "", "team-a", "group:default/team-a"},
		{"explicit namespace", "ops", "default/team-a", "group:default/team-a"},
		{"explicit kind", "ops", "user:jane", "user:ops/jane"},
		{"full ref", "ops", "User:people/Jane", "user:people/jane"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := KindRelations(relEntity("System", tt.namespace, map[string]any{"owner": tt.owner}))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 || got[0].Target.String() != tt.want || !got[1].Source.Equal(got[0].Target) {
				t.Errorf("got %q, want target %s", relStrings(got), tt.want)
			}
		})
	}
	// The author's spelling is kept in the Ref; only String lowercases.
	got, _ := KindRelations(relEntity("System", "", map[string]any{"owner": "User:people/Jane"}))
	if got[0].Target != (Ref{Kind: "User", Namespace: "people", Name: "Jane"}) {
		t.Errorf("target %#v lost its spelling", got[0].Target)
	}
}

func TestKindRelationsKindMatching(t *testing.T) {
	// Kind is matched case-insensitively, apiVersion is not looked at.
	e := relEntity("component", "", map[string]any{"owner": "a"})
	e.APIVersion = "example.com/v9"
	got, err := KindRelations(e)
	if err != nil || len(got) != 2 {
		t.Errorf("lowercase kind: %q, %v", relStrings(got), err)
	}
	for _, e := range []*Entity{
		relEntity("Widget", "", map[string]any{"owner": "a", "dependsOn": []any{"x"}}),
		relEntity("Location", "", map[string]any{"target": "./a.yaml", "owner": "a"}),
		relEntity("Component", "", nil),
		relEntity("Component", "", map[string]any{}),
		relEntity("Component", "", map[string]any{"owner": "", "system": nil, "providesApis": []any{}}),
	} {
		got, err := KindRelations(e)
		if len(got) != 0 || err != nil {
			t.Errorf("%s %v: got %q, %v; want nothing", e.Kind, e.Spec, relStrings(got), err)
		}
	}
}

func TestKindRelationsBadValues(t *testing.T) {
	e := relEntity("Component", "", map[string]any{
		"owner":        ":nobody",
		"providesApis": []any{"good", 5, ""},
		"dependsOn":    []any{"db", "resource:db", "resource:"},
		"system":       map[string]any{"name": "x"},
	})
	got, err := KindRelations(e)
	want := []string{
		"component:default/self providesApi api:default/good",
		"api:default/good apiProvidedBy component:default/self",
		"component:default/self dependsOn resource:default/db",
		"resource:default/db dependencyOf component:default/self",
	}
	if s := relStrings(got); !slices.Equal(s, want) {
		t.Errorf("good relations\n got %q\nwant %q", s, want)
	}
	paths := problemPaths(t, err)
	wantPaths := []string{"spec.owner", "spec.providesApis[1]", "spec.providesApis[2]", "spec.dependsOn[0]", "spec.dependsOn[2]", "spec.system"}
	if !slices.Equal(paths, wantPaths) {
		t.Errorf("problems at %q, want %q", paths, wantPaths)
	}
	msg := err.Error()
	if n := strings.Count(msg, "needs full refs"); n != 1 {
		t.Errorf("the full-ref hint appears %d times in %q, want once (only for \"db\")", n, msg)
	}
	for _, frag := range []string{`":nobody"`, `"db"`, "spec.dependsOn needs full refs", "got number", "got object"} {
		if !strings.Contains(msg, frag) {
			t.Errorf("error %q does not mention %s", msg, frag)
		}
	}
}

func TestRelationConstants(t *testing.T) {
	// The served spelling is part of Backstage's API.
	got := []string{
		RelationOwnedBy, RelationOwnerOf, RelationPartOf, RelationHasPart,
		RelationProvidesAPI, RelationAPIProvidedBy, RelationConsumesAPI, RelationAPIConsumedBy,
		RelationDependsOn, RelationDependencyOf, RelationMemberOf, RelationHasMember,
		RelationChildOf, RelationParentOf,
	}
	want := []string{
		"ownedBy", "ownerOf", "partOf", "hasPart",
		"providesApi", "apiProvidedBy", "consumesApi", "apiConsumedBy",
		"dependsOn", "dependencyOf", "memberOf", "hasMember",
		"childOf", "parentOf",
	}
	if !slices.Equal(got, want) {
		t.Errorf("relation constants %q, want %q", got, want)
	}
}

func BenchmarkKindRelations(b *testing.B) {
	e := kindSpecimens()[KindComponent]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := KindRelations(e); err != nil {
			b.Fatal(err)
		}
	}
}
