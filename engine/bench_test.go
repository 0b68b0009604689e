package engine_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/catalog-pipeline/pipeline/builtin"
	"github.com/catalog-pipeline/pipeline/catalog"
	"github.com/catalog-pipeline/pipeline/engine"
	"github.com/catalog-pipeline/pipeline/reading"
	"github.com/catalog-pipeline/pipeline/store"
)

// BenchmarkProcess measures processing one typical component through the
// builtin pre/validate/post stages (no reads): the engine's own cost per
// entity, without the store.
func BenchmarkProcess(b *testing.B) {
	var stages []engine.Stage
	for _, spec := range builtin.Specs() {
		st, err := spec.New(engine.Build{Pipeline: "bench", Stage: spec.Name, Settings: defaults(spec),
			Reader: reading.New(reading.Policy{}), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			b.Fatal(err)
		}
		stages = append(stages, st)
	}
	cfg := &engine.Config{Engine: engine.DefaultSettings(), Pipelines: []*engine.Pipeline{{Name: "bench", Stages: stages}}}
	db, err := store.Open(filepath.Join(b.TempDir(), "b.db"), store.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	e := engine.New(cfg, db, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ent := map[string]any{"apiVersion": "backstage.io/v1alpha1", "kind": "Component",
		"metadata": map[string]any{"name": "orders", "description": "Takes orders.", "tags": []any{"go", "grpc"},
			"annotations": map[string]any{catalog.AnnotationManagedByLocation: "file:/c/a.yaml", catalog.AnnotationManagedByOriginLocation: "file:/c/root.yaml"}},
		"spec": map[string]any{"type": "service", "lifecycle": "production", "owner": "team-a", "system": "shop",
			"dependsOn": []any{"component:default/payments", "resource:default/orders-db"}, "providesApis": []any{"orders-api"}, "consumesApis": []any{"payments-api"}}}
	body, _ := json.Marshal(ent)
	st := &store.State{Ref: "component:default/orders", Pipeline: "bench", Unprocessed: body, UnprocessedHash: "h"}
	ctx := context.Background()
	b.Run("run", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if o := e.Process(ctx, st); !o.OK {
				b.Fatal(o.Errors)
			}
		}
	})
	// The same entity when its last run's memo still holds: what a
	// refresh pass pays per unchanged entity besides the store.
	b.Run("skipped", func(b *testing.B) {
		o := e.Process(ctx, st)
		hit := *st
		hit.Memo, hit.ResultHash = o.Memo, o.ResultHash
		b.ReportAllocs()
		for b.Loop() {
			if o := e.Process(ctx, &hit); !o.Skipped {
				b.Fatal("not skipped")
			}
		}
	})
}

// defaults gives a stage spec's default settings.
func defaults(spec engine.StageSpec) map[string]cty.Value {
	out := map[string]cty.Value{}
	for _, f := range spec.Fields {
		if f.Default == cty.NilVal {
			out[f.Name] = cty.NullVal(f.Type)
		} else {
			out[f.Name] = f.Default
		}
	}
	return out
}
