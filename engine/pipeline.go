package engine

import (
	"runtime"
	"time"

	"github.com/catalog-pipeline/pipeline/reading"
)

// Config is a loaded, runnable configuration: engine settings and the
// pipelines, in the order their files and blocks were read.
type Config struct {
	Engine    Settings
	Pipelines []*Pipeline
	// Files lists the configuration files the Config was built from, so that
	// a watcher knows what to watch.
	Files []string
}

// Pipeline is one `pipeline "NAME"` block: its root locations and its
// ordered stages. The stages run in the order they were declared.
type Pipeline struct {
	Name      string
	Locations []RootLocation
	Stages    []Stage
	// StageInfo describes Stages (same order) for status endpoints.
	StageInfo []StageInfo
	// AllowFiles and AllowHosts are the read confinement the pipeline's
	// stages were built with; kept here for status endpoints and for
	// checking locations registered later.
	AllowFiles []string
	AllowHosts []string
	// Refresh overrides the engine's refresh schedule for the pipeline's
	// entities; nil inherits it.
	Refresh *Refresh
	// Reader is the reader the stages were built with; the engine uses it
	// to check whether the files a run read have changed (memo.go).
	Reader *reading.Reader
	// Fingerprint identifies the pipeline's definition (stages, their
	// settings, the read confinement): a new one makes every entity of the
	// pipeline run again rather than reuse its last result.
	Fingerprint string
}

// Refresh is a refresh schedule: an entity is due again Interval plus a
// random part of Jitter after it was processed (Backstage draws from
// [100 s, 150 s) by default). Off disables periodic refresh: entities are
// processed when they are new or changed, and on explicit refresh.
type Refresh struct {
	Interval time.Duration
	Jitter   time.Duration
	Off      bool
}

// RootLocation is a location declared in configuration: it becomes a root
// Location entity of its pipeline. Pos is "file:line" of its block, for
// messages.
type RootLocation struct {
	Location Location
	Optional bool
	Pos      string
	// Refresh overrides the pipeline's schedule for everything under this
	// location; nil inherits it.
	Refresh *Refresh
}

// Settings are the engine-wide knobs of the `engine { ... }` block.
type Settings struct {
	// Workers is how many entities are processed concurrently.
	Workers int
	// BatchSize is how many processed entities are committed per bbolt
	// transaction.
	BatchSize int
	// Refresh is the default schedule: each processed entity is due again
	// after a duration drawn uniformly from [Interval, Interval+Jitter) —
	// Backstage's default is 100 s + up to 50 s.
	Refresh Refresh
	// Orphans is the orphan strategy: "delete" (default, like Backstage
	// since 1.41) removes an entity no parent emits any more, with its
	// subtree; "keep" keeps it annotated backstage.io/orphan: "true".
	Orphans string
	// AlwaysReprocess turns off skipping runs whose inputs are unchanged
	// (memo.go): every refresh runs every stage, as Backstage does.
	AlwaysReprocess bool
}

// Orphan strategies.
const (
	OrphansDelete = "delete"
	OrphansKeep   = "keep"
)

// DefaultSettings are used for anything the configuration leaves out.
func DefaultSettings() Settings {
	return Settings{
		Workers:   runtime.NumCPU(),
		BatchSize: 500,
		Refresh:   Refresh{Interval: 100 * time.Second, Jitter: 50 * time.Second},
		Orphans:   OrphansDelete,
	}
}
