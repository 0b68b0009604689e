package builtin

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/catalog-pipeline/pipeline/catalog"
	"github.com/catalog-pipeline/pipeline/engine"
)

// kindsStage is builtin-kinds seen through all three hooks it implements.
type kindsStage interface {
	engine.PreProcessor
	engine.KindValidator
	engine.PostProcessor
}

func newKinds(t *testing.T) kindsStage {
	t.Helper()
	st, err := BuiltinKindsSpec.New(engine.Build{Pipeline: "test", Stage: "kinds"})
	if err != nil {
		t.Fatal(err)
	}
	if st.Name() != "kinds" {
		t.Fatalf("Name() = %q", st.Name())
	}
	return st.(kindsStage)
}

func kindsEntity(apiVersion, kind, namespace, name string, spec map[string]any) *catalog.Entity {
	return &catalog.Entity{
		APIVersion: apiVersion,
		Kind:       kind,
		Metadata:   catalog.Metadata{Name: name, Namespace: namespace},
		Spec:       spec,
	}
}

func TestBuiltinKindsValidate(t *testing.T) {
	st := newKinds(t)
	cases := []struct {
		name    string
		e       *catalog.Entity
		known   bool
		wantErr string
	}{
		{
			name:  "valid component",
			e:     kindsEntity(catalog.APIVersionV1alpha1, "Component", "", "cart", map[string]any{"type": "service", "lifecycle": "production", "owner": "team-a"}),
			known: true,
		},
		{
			name:  "valid group under v1beta1",
			e:     kindsEntity(catalog.APIVersionV1beta1, "Group", "", "team-a", map[string]any{"type": "team", "children": []any{}}),
			known: true,
		},
		{
			name: "foreign kind is not ours",
			e:    kindsEntity("acme.io/v1", "Widget", "", "w", map[string]any{}),
		},
		{
			name: "builtin kind under a foreign apiVersion is not ours",
			e:    kindsEntity("acme.io/v1", "Component", "", "w", map[string]any{}),
		},
		{
			name:    "component without owner",
			e:       kindsEntity(catalog.APIVersionV1alpha1, "Component", "", "cart", map[string]any{"type": "service", "lifecycle": "production"}),
			wantErr: "spec.owner",
		},
		{
			name:    "api with a non-string definition",
			e:       kindsEntity(catalog.APIVersionV1alpha1, "API", "", "petstore", map[string]any{"type": "openapi", "lifecycle": "production", "owner": "team-a", "definition": map[string]any{"$text": "./x"}}),
			wantErr: "spec.definition",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			known, err := st.ValidateEntityKind(context.Background(), tc.e)
			if tc.wantErr != "" {
				var pe *engine.ProcessingError
				if err == nil || !errors.As(err, &pe) || pe.Name != engine.InputErrorName || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want an InputError mentioning %q", err, tc.wantErr)
				}
				var ve *catalog.ValidationError
				if !errors.As(err, &ve) {
					t.Errorf("the catalog's ValidationError is not reachable through %v", err)
				}
				if known {
					t.Errorf("known = true together with an error")
				}
				return
			}
			if err != nil || known != tc.known {
				t.Fatalf("ValidateEntityKind = %v, %v; want %v, nil", known, err, tc.known)
			}
		})
	}
}

func TestBuiltinKindsSortsArrays(t *testing.T) {
	st := newKinds(t)
	e := kindsEntity(catalog.APIVersionV1alpha1, "Component", "", "cart", map[string]any{
		"providesApis": []any{"b", "a"},
		"consumesApis": []any{"z", "y", "x"},
		"dependsOn":    []any{"resource:db", "component:cache"},
		"tags":         []any{"b", "a"}, // not a reference list: left alone
	})
	out, err := st.PreProcessEntity(context.Background(), e, engine.Location{Type: "file", Target: "/x"}, func(engine.Result) {}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"providesApis": []any{"a", "b"},
		"consumesApis": []any{"x", "y", "z"},
		"dependsOn":    []any{"component:cache", "resource:db"},
		"tags":         []any{"b", "a"},
	}
	if !reflect.DeepEqual(out.Spec, want) {
		t.Errorf("spec = %#v, want %#v", out.Spec, want)
	}
}

// runKinds runs builtin-kinds the way the engine does: pre, validate, post.
func runKinds(t *testing.T, e *catalog.Entity) ([]engine.RelationResult, error) {
	t.Helper()
	st := newKinds(t)
	ctx := context.Background()
	loc := engine.Location{Type: "file", Target: "/srv/catalog-info.yaml"}
	var c resultLog
	e, err := st.PreProcessEntity(ctx, e, loc, c.emit, nil)
	if err != nil {
		t.Fatal(err)
	}
	if known, err := st.ValidateEntityKind(ctx, e); err != nil || !known {
		t.Fatalf("ValidateEntityKind = %v, %v", known, err)
	}
	out, err := st.PostProcessEntity(ctx, e, loc, c.emit, nil)
	if out != e {
		t.Errorf("PostProcessEntity returned a different entity")
	}
	if len(c.relations()) != len(c.results) {
		t.Errorf("emitted something other than relations: %v", c.results)
	}
	return c.relations(), err
}

func TestBuiltinKindsRelations(t *testing.T) {
	self := catalog.Ref{Kind: "Component", Namespace: "ops", Name: "cart"}
	pair := func(fwd, rev string, target catalog.Ref) []engine.RelationResult {
		return []engine.RelationResult{
			{Source: self, Type: fwd, Target: target},
			{Source: target, Type: rev, Target: self},
		}
	}
	ref := func(kind, ns, name string) catalog.Ref { return catalog.Ref{Kind: kind, Namespace: ns, Name: name} }

	t.Run("component with every field", func(t *testing.T) {
		got, err := runKinds(t, kindsEntity(catalog.APIVersionV1alpha1, "Component", "ops", "cart", map[string]any{
			"type":           "service",
			"lifecycle":      "production",
			"owner":          "team-a",
			"subcomponentOf": "shop",
			"providesApis":   []any{"cart-api", "admin-api"},
			"consumesApis":   []any{"default/payments"},
			"dependsOn":      []any{"resource:db", "component:other/cache"},
			"dependencyOf":   []any{"component:web"},
			"system":         "shop-system",
		}))
		if err != nil {
			t.Fatal(err)
		}
		var want []engine.RelationResult
		for _, p := range [][]engine.RelationResult{
			pair(catalog.RelationOwnedBy, catalog.RelationOwnerOf, ref("Group", "ops", "team-a")),
			pair(catalog.RelationPartOf, catalog.RelationHasPart, ref("Component", "ops", "shop")),
			pair(catalog.RelationProvidesAPI, catalog.RelationAPIProvidedBy, ref("API", "ops", "admin-api")),
			pair(catalog.RelationProvidesAPI, catalog.RelationAPIProvidedBy, ref("API", "ops", "cart-api")),
			pair(catalog.RelationConsumesAPI, catalog.RelationAPIConsumedBy, ref("API", "default", "payments")),
			pair(catalog.RelationDependsOn, catalog.RelationDependencyOf, ref("component", "other", "cache")),
			pair(catalog.RelationDependsOn, catalog.RelationDependencyOf, ref("resource", "ops", "db")),
			pair(catalog.RelationDependencyOf, catalog.RelationDependsOn, ref("component", "ops", "web")),
			pair(catalog.RelationPartOf, catalog.RelationHasPart, ref("System", "ops", "shop-system")),
		} {
			want = append(want, p...)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("relations:\n%s\nwant\n%s", fmtRels(got), fmtRels(want))
		}
	})

	t.Run("bad dependsOn: error plus the good relations", func(t *testing.T) {
		got, err := runKinds(t, kindsEntity(catalog.APIVersionV1alpha1, "Component", "ops", "cart", map[string]any{
			"type":      "service",
			"lifecycle": "production",
			"owner":     "team-a",
			"dependsOn": []any{"db", "resource:queue"},
		}))
		var pe *engine.ProcessingError
		if err == nil || !errors.As(err, &pe) || pe.Name != engine.InputErrorName {
			t.Fatalf("error = %v, want an InputError", err)
		}
		if !strings.Contains(err.Error(), "spec.dependsOn[0]") {
			t.Errorf("error %q does not name spec.dependsOn[0]", err)
		}
		want := append(
			pair(catalog.RelationOwnedBy, catalog.RelationOwnerOf, ref("Group", "ops", "team-a")),
			pair(catalog.RelationDependsOn, catalog.RelationDependencyOf, ref("resource", "ops", "queue"))...)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("relations:\n%s\nwant\n%s", fmtRels(got), fmtRels(want))
		}
	})

	t.Run("foreign kind: nothing", func(t *testing.T) {
		st := newKinds(t)
		var c resultLog
		_, err := st.PostProcessEntity(context.Background(), kindsEntity("acme.io/v1", "Widget", "", "w", map[string]any{"owner": "x"}), engine.Location{}, c.emit, nil)
		if err != nil || len(c.results) != 0 {
			t.Errorf("got %v, %v", c.results, err)
		}
	})
}

func fmtRels(rs []engine.RelationResult) string {
	var b strings.Builder
	for _, r := range rs {
		b.WriteString("  " + r.Source.String() + " " + r.Type + " " + r.Target.String() + "\n")
	}
	return b.String()
}
