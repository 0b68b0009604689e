package engine

import (
	"runtime"
	"time"
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
	// AllowFiles and AllowHosts are the read confinement the pipeline's
	// stages were built with; kept here for status endpoints and for
	// checking locations registered later.
	AllowFiles []string
	AllowHosts []string
}

// RootLocation is a location declared in configuration: it becomes a root
// Location entity of its pipeline. Pos is "file:line" of its block, for
// messages.
type RootLocation struct {
	Location Location
	Optional bool
	Pos      string
}

// Settings are the engine-wide knobs of the `engine { ... }` block.
type Settings struct {
	// Workers is how many entities are processed concurrently.
	Workers int
	// BatchSize is how many processed entities are committed per bbolt
	// transaction.
	BatchSize int
	// Interval and Jitter give the refresh interval: each processed entity is
	// due again after a duration drawn uniformly from [Interval,
	// Interval+Jitter) — Backstage's default is 100 s + up to 50 s.
	Interval time.Duration
	Jitter   time.Duration
}

// DefaultSettings are used for anything the configuration leaves out.
func DefaultSettings() Settings {
	return Settings{
		Workers:   runtime.NumCPU(),
		BatchSize: 500,
		Interval:  100 * time.Second,
		Jitter:    50 * time.Second,
	}
}
