package builtin

import (
	"context"
	"errors"

	"github.com/catalog-pipeline/pipeline/catalog"
	"github.com/catalog-pipeline/pipeline/engine"
)

// BuiltinKindsSpec registers the `builtin-kinds` stage, Backstage's
// BuiltinKindsEntityProcessor. Without it no entity of Backstage's own kinds
// (Component, API, Group, ...) is accepted, and none of the relations the
// UI's graphs and ownership pages depend on exist. The rules themselves live
// in package catalog, so the API's validate-entity uses the same ones; this
// stage only plugs them into the three hooks.
var BuiltinKindsSpec = engine.StageSpec{
	Name:    "builtin-kinds",
	Summary: "Validates Backstage's builtin kinds, sorts their reference arrays and emits their relations (forward and reverse).",
	New: func(b engine.Build) (engine.Stage, error) {
		return &builtinKinds{name: b.Stage}, nil
	},
}

type builtinKinds struct{ name string }

// Name is the stage name from HCL.
func (k *builtinKinds) Name() string { return k.name }

// PreProcessEntity sorts the reference arrays (dependsOn, memberOf, ...), so
// that reordering them in the source does not change the entity's hash and
// cause a pointless rewrite. The engine hands each stage its own copy, so
// sorting in place is safe.
func (k *builtinKinds) PreProcessEntity(_ context.Context, e *catalog.Entity, _ engine.Location, _ engine.Emit, _ engine.Cache) (*catalog.Entity, error) {
	catalog.SortSpecArrays(e)
	return e, nil
}

// ValidateEntityKind accepts the builtin kinds and says false for any other,
// so that a custom stage can own a foreign kind. A builtin kind that breaks
// its rules is an InputError, which Backstage shows in status.items.
func (k *builtinKinds) ValidateEntityKind(_ context.Context, e *catalog.Entity) (bool, error) {
	known, err := catalog.ValidateKind(e)
	if err != nil {
		return false, asInputError(err)
	}
	return known, nil
}

// PostProcessEntity emits every relation pair the entity's spec implies. A
// bad reference does not hide the good ones: they are emitted first, then
// the problem is returned for the engine to record on the entity.
func (k *builtinKinds) PostProcessEntity(_ context.Context, e *catalog.Entity, _ engine.Location, emit engine.Emit, _ engine.Cache) (*catalog.Entity, error) {
	rels, err := catalog.KindRelations(e)
	for _, r := range rels {
		emit(engine.RelationResult{Source: r.Source, Type: r.Type, Target: r.Target})
	}
	if err != nil {
		return e, asInputError(err)
	}
	return e, nil
}

// asInputError keeps an error that already carries a Backstage name and
// otherwise names it InputError: bad entity data is the user's to fix.
func asInputError(err error) error {
	var pe *engine.ProcessingError
	if errors.As(err, &pe) {
		return pe
	}
	return &engine.ProcessingError{Name: engine.InputErrorName, Message: err.Error(), Cause: err}
}
