package engine

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// StageInfo describes a stage for status endpoints: its name, its type
// (a builtin stage type such as "file", or "script") and, for scripts, the
// script's path.
type StageInfo struct {
	Name   string
	Type   string
	Script string
}

// PipelineInfo describes a configured pipeline.
type PipelineInfo struct {
	Name       string
	Stages     []StageInfo
	Locations  []RootLocation
	AllowFiles []string
	AllowHosts []string
}

// Pipelines describes the pipelines in use, in configuration order.
func (e *Engine) Pipelines() []PipelineInfo {
	cfg := e.rt.Load().cfg
	out := make([]PipelineInfo, 0, len(cfg.Pipelines))
	for _, p := range cfg.Pipelines {
		info := PipelineInfo{Name: p.Name, Locations: p.Locations, AllowFiles: p.AllowFiles, AllowHosts: p.AllowHosts}
		for i, s := range p.Stages {
			si := StageInfo{Name: s.Name()}
			if i < len(p.StageInfo) {
				si = p.StageInfo[i]
			}
			info.Stages = append(info.Stages, si)
		}
		out = append(out, info)
	}
	return out
}

// LocationStatus is what the engine last saw when it read a location (a
// target of a Location entity). It is kept in memory: it describes this
// process's reads.
type LocationStatus struct {
	Pipeline string
	Location Location
	// Entity is the ref of the Location entity whose target this is.
	Entity   string
	LastRead time.Time
	// LastError is the error of the last read, "" when it succeeded.
	LastError string
	// Requests and NotModified count the upstream requests of the last
	// read and how many of them were answered 304 (ETag hits).
	Requests, NotModified int64
	// Entities is how many entities the last read emitted.
	Entities int
	// Reads and Failures count every read since the process started.
	Reads, Failures int64
}

// HookStat counts the calls of one hook of one stage.
type HookStat struct {
	Pipeline, Stage, Hook string
	Calls, Errors         int64
	Total                 time.Duration
}

type hookKey struct{ pipeline, stage, hook string }

type hookCounters struct {
	calls, errors, nanos atomic.Int64
}

// observer keeps the engine's own statistics for the status endpoints and
// metrics. Counters are atomic; the maps are only locked on first use of a
// key and on reads.
type observer struct {
	mu        sync.Mutex
	hooks     map[hookKey]*hookCounters
	locations map[string]*LocationStatus
	etagHits  atomic.Int64
	etagMiss  atomic.Int64
}

func (o *observer) hook(pipeline, stage, hook string, start time.Time, err error) {
	k := hookKey{pipeline, stage, hook}
	o.mu.Lock()
	c := o.hooks[k]
	if c == nil {
		if o.hooks == nil {
			o.hooks = map[hookKey]*hookCounters{}
		}
		c = &hookCounters{}
		o.hooks[k] = c
	}
	o.mu.Unlock()
	c.calls.Add(1)
	c.nanos.Add(int64(time.Since(start)))
	if err != nil {
		c.errors.Add(1)
	}
}

func (o *observer) locationRead(s LocationStatus) {
	o.etagHits.Add(s.NotModified)
	o.etagMiss.Add(s.Requests - s.NotModified)
	key := s.Pipeline + "\x00" + s.Location.String()
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.locations == nil {
		o.locations = map[string]*LocationStatus{}
	}
	prev := o.locations[key]
	if prev != nil {
		s.Reads, s.Failures = prev.Reads, prev.Failures
	}
	s.Reads++
	if s.LastError != "" {
		s.Failures++
	}
	o.locations[key] = &s
}

// LocationStatuses returns the status of every location read since the
// process started, by pipeline then location.
func (e *Engine) LocationStatuses() []LocationStatus {
	e.obs.mu.Lock()
	out := make([]LocationStatus, 0, len(e.obs.locations))
	for _, s := range e.obs.locations {
		out = append(out, *s)
	}
	e.obs.mu.Unlock()
	slices.SortFunc(out, func(a, b LocationStatus) int {
		return cmp.Or(cmp.Compare(a.Pipeline, b.Pipeline), cmp.Compare(a.Location.String(), b.Location.String()))
	})
	return out
}

// HookStats returns the call counts of every stage hook called since the
// process started.
func (e *Engine) HookStats() []HookStat {
	e.obs.mu.Lock()
	out := make([]HookStat, 0, len(e.obs.hooks))
	for k, c := range e.obs.hooks {
		out = append(out, HookStat{Pipeline: k.pipeline, Stage: k.stage, Hook: k.hook,
			Calls: c.calls.Load(), Errors: c.errors.Load(), Total: time.Duration(c.nanos.Load())})
	}
	e.obs.mu.Unlock()
	slices.SortFunc(out, func(a, b HookStat) int {
		return cmp.Or(cmp.Compare(a.Pipeline, b.Pipeline), cmp.Compare(a.Stage, b.Stage), cmp.Compare(a.Hook, b.Hook))
	})
	return out
}

// ETagStats counts upstream requests answered 304 (hits) and otherwise
// (misses) since the process started.
func (e *Engine) ETagStats() (hits, misses int64) {
	return e.obs.etagHits.Load(), e.obs.etagMiss.Load()
}
