package engine

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/catalog-pipeline/pipeline/catalog"
	"github.com/catalog-pipeline/pipeline/reading"
)

// Location is where entities come from: a type ("file", "url", "system-x",
// ...) and a target whose meaning the type defines. Its String form
// "type:target" is the location key used for ownership and conflicts.
type Location struct {
	Type   string
	Target string
}

// String returns "type:target", Backstage's location ref.
func (l Location) String() string { return l.Type + ":" + l.Target }

// ParseLocationRef splits "type:target" at the first colon, refusing the
// forms Backstage refuses ("http:", "https:" types; "javascript:" targets).
func ParseLocationRef(s string) (Location, error) {
	i := strings.IndexByte(s, ':')
	if i <= 0 || i == len(s)-1 {
		return Location{}, fmt.Errorf("location ref %q is not of the form type:target", s)
	}
	l := Location{Type: s[:i], Target: s[i+1:]}
	if l.Type == "http" || l.Type == "https" {
		return Location{}, fmt.Errorf("location ref %q has type %q; prefix it with url:", s, l.Type)
	}
	if strings.HasPrefix(strings.ToLower(strings.TrimSpace(l.Target)), "javascript:") {
		return Location{}, fmt.Errorf("location ref %q has a javascript: target, which is refused", s)
	}
	return l, nil
}

// Emit receives what a hook produces besides its return value: child
// entities, locations, relations, errors and refresh keys. Emitting after the
// hook returned is ignored.
type Emit func(Result)

// Result is one emitted item; it is one of the *Result types below.
type Result interface{ isResult() }

// EntityResult emits a child entity read from Location. The engine overwrites
// the child's managed-by-location annotations. LocationKey decides ownership:
// by default it is Location.String(); NoLocationKey leaves it unowned, so that
// any location may later claim it (Backstage's `locationKey: null`).
type EntityResult struct {
	Location      Location
	Entity        *catalog.Entity
	LocationKey   string
	NoLocationKey bool
}

// LocationResult emits a location; it becomes a generated Location entity,
// a child of the entity being processed, whose targets are read when it is
// processed in turn.
type LocationResult struct {
	Location Location
	Optional bool
}

// RelationResult emits one directed relation. Relations are owned by the
// entity whose processing emitted them and are served on their Source.
type RelationResult struct {
	Source catalog.Ref
	Type   string
	Target catalog.Ref
}

// ErrorResult records a problem found at Location without aborting the hook.
// Err is usually a *ProcessingError (InputError, NotFoundError, Error).
type ErrorResult struct {
	Location Location
	Err      error
}

// RefreshResult registers a refresh key (such as "file:/abs/path") on the
// entity being processed, so that a change to that source can make it due.
type RefreshResult struct {
	Key string
}

func (EntityResult) isResult()   {}
func (LocationResult) isResult() {}
func (RelationResult) isResult() {}
func (ErrorResult) isResult()    {}
func (RefreshResult) isResult()  {}

// Error names used by Backstage and by the API's status mapping.
const (
	InputErrorName    = "InputError"
	NotFoundErrorName = "NotFoundError"
	GeneralErrorName  = "Error"
	ConflictErrorName = "ConflictError"
)

// ProcessingError is an error with a Backstage error name, so that it can be
// served in status.items and mapped to HTTP statuses unchanged.
type ProcessingError struct {
	Name    string
	Message string
	// Cause is kept for errors.Is/As; it is not serialised.
	Cause error
}

func (e *ProcessingError) Error() string { return e.Message }

// Unwrap exposes the cause.
func (e *ProcessingError) Unwrap() error { return e.Cause }

// InputError reports bad input data (invalid entity, bad YAML...).
func InputError(format string, args ...any) *ProcessingError {
	return &ProcessingError{Name: InputErrorName, Message: fmt.Sprintf(format, args...)}
}

// NotFoundError reports a location target that does not exist.
func NotFoundError(format string, args ...any) *ProcessingError {
	return &ProcessingError{Name: NotFoundErrorName, Message: fmt.Sprintf(format, args...)}
}

// GeneralError reports any other failure (network, upstream 500, ...).
func GeneralError(format string, args ...any) *ProcessingError {
	return &ProcessingError{Name: GeneralErrorName, Message: fmt.Sprintf(format, args...)}
}

// Cache is a stage's small JSON key/value store, scoped to (stage, entity
// being processed) and, for ReadLocation, to the target too. Values written
// in one run are visible in the next; a stage that writes nothing in a run
// keeps its previous values (Backstage's carry-over rule).
type Cache interface {
	Get(key string) (any, bool)
	Set(key string, value any)
}

// Stage is a named processor. A stage implements any subset of the hook
// interfaces below; the engine calls only what it implements.
type Stage interface {
	Name() string
}

// LocationReader reads the entities at a location. It returns handled=false
// for location types it does not know; the first stage that handles a
// location wins.
type LocationReader interface {
	Stage
	ReadLocation(ctx context.Context, loc Location, optional bool, emit Emit, cache Cache) (handled bool, err error)
}

// PreProcessor runs before validation and may enrich or rewrite the entity.
// The returned entity is passed to the next stage.
type PreProcessor interface {
	Stage
	PreProcessEntity(ctx context.Context, e *catalog.Entity, loc Location, emit Emit, cache Cache) (*catalog.Entity, error)
}

// KindValidator accepts the kinds it knows: true when e is a valid entity of
// a known kind, false when the kind is not its own, an error when the kind is
// its own but e is invalid. At least one stage must accept every entity.
type KindValidator interface {
	Stage
	ValidateEntityKind(ctx context.Context, e *catalog.Entity) (bool, error)
}

// PostProcessor runs after validation; builtin-kinds emits relations here.
type PostProcessor interface {
	Stage
	PostProcessEntity(ctx context.Context, e *catalog.Entity, loc Location, emit Emit, cache Cache) (*catalog.Entity, error)
}

// StageSpec describes one stage type: its HCL settings and its constructor.
// The same spec decodes and validates HCL and documents the stage, so that a
// new stage is one file plus one registration.
type StageSpec struct {
	// Name is the label used in HCL: stage "NAME" { ... }.
	Name string
	// Summary is a one-line description for docs and `pipeline stages`.
	Summary string
	// Fields are the settings the stage block accepts.
	Fields []Field
	// New builds a stage from decoded settings.
	New func(b Build) (Stage, error)
}

// Field is one setting of a stage block.
type Field struct {
	Name     string
	Type     cty.Type
	Required bool
	// Default is used when the attribute is absent; cty.NilVal means null.
	Default cty.Value
	Doc     string
	// Path marks string (or list of string) settings that are file paths:
	// relative values resolve against the folder of the HCL file.
	Path bool
	// Check validates a value; its error is reported at the attribute.
	Check func(cty.Value) error
}

// Build is what a stage constructor receives.
type Build struct {
	// Pipeline and Stage name where the stage is declared.
	Pipeline string
	Stage    string
	// Dir is the folder of the HCL file that declares the stage.
	Dir string
	// Settings holds every field of the spec (defaults applied, paths
	// resolved), keyed by field name.
	Settings map[string]cty.Value
	// Reader performs file and network reads confined to what the pipeline
	// allows.
	Reader *reading.Reader
	// Logger is tagged with pipeline and stage.
	Logger *slog.Logger
}

// String returns a string setting, or "" when it is null.
func (b Build) String(name string) string {
	v := b.Settings[name]
	if v == cty.NilVal || v.IsNull() || !v.Type().Equals(cty.String) {
		return ""
	}
	return v.AsString()
}

// Strings returns a list-of-string setting.
func (b Build) Strings(name string) []string {
	v := b.Settings[name]
	if v == cty.NilVal || v.IsNull() || !v.CanIterateElements() {
		return nil
	}
	var out []string
	for it := v.ElementIterator(); it.Next(); {
		_, e := it.Element()
		if e.Type().Equals(cty.String) && !e.IsNull() {
			out = append(out, e.AsString())
		}
	}
	return out
}

// Bool returns a bool setting, false when null.
func (b Build) Bool(name string) bool {
	v := b.Settings[name]
	if v == cty.NilVal || v.IsNull() || !v.Type().Equals(cty.Bool) {
		return false
	}
	return v.True()
}

// Int returns a number setting as an int, 0 when null.
func (b Build) Int(name string) int {
	v := b.Settings[name]
	if v == cty.NilVal || v.IsNull() || !v.Type().Equals(cty.Number) {
		return 0
	}
	i, _ := v.AsBigFloat().Int64()
	return int(i)
}

// Duration returns a duration setting written as a Go duration string
// ("10s"); fields holding durations should use CheckDuration.
func (b Build) Duration(name string) time.Duration {
	d, _ := time.ParseDuration(b.String(name))
	return d
}

// CheckDuration is a Field.Check for duration strings such as "10s".
func CheckDuration(v cty.Value) error {
	if v.IsNull() {
		return nil
	}
	d, err := time.ParseDuration(v.AsString())
	if err != nil {
		return fmt.Errorf("%q is not a duration such as \"10s\" or \"2m\"", v.AsString())
	}
	if d < 0 {
		return fmt.Errorf("duration %q must not be negative", v.AsString())
	}
	return nil
}
