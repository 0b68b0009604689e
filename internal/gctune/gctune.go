// Package gctune lets Go's garbage collector run less often while the live
// heap is small, up to a memory target.
//
// With the default GOGC=100 a collection starts whenever the heap has grown
// by the size of the live heap. During an ingest the live heap is often a
// few tens of megabytes while the engine allocates gigabytes (YAML trees,
// JSON, bbolt's nodes), so the collector runs every few tens of megabytes:
// a 100k-entity cold ingest spent a quarter of its CPU allocating and
// collecting (BENCHMARKS.md).
//
// After every collection the tuner looks at the heap it found live and at
// the rest of the memory a limit counts (the runtime's own, and free or
// fragmented heap memory not yet returned to the system). While twice the
// live heap plus that rest is under the target, GOGC is Percent and the
// runtime's soft memory limit (GOMEMLIMIT) is the target: the next
// collection starts when the process's memory reaches the target, or at
// Percent's growth if that comes first (at 100k entities: 231 collections
// instead of 924). Otherwise the runtime's defaults apply (GOGC=100, no
// limit), so memory grows with the catalog as it would without the tuner.
// A fixed limit with a high GOGC (the usual recipe) would instead make the
// runtime collect continuously once the live heap came near the limit; so
// did versions of this tuner that set the limit from the live heap alone
// (with a 32 MiB target they collected every few milliseconds and took
// 20-90% more CPU than the defaults; this one the same as them).
package gctune

import (
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// Percent is the GOGC in force while the live heap is small: how much it
// may grow before a collection when the target is farther. Without a bound,
// an idle server's few megabytes of live heap would wait for hundreds of
// megabytes of garbage.
const Percent = 400

// Settings returns the GOGC and the soft memory limit for a live heap of
// live bytes, other bytes of runtime memory outside the heap, and a target
// of target bytes: Percent and the target while twice the live heap plus
// the rest fits under the target, else the runtime's defaults (100 and no
// limit).
func Settings(live, other, target uint64) (percent int, limit int64) {
	if target > math.MaxInt64 || live >= target/2 || other >= target-2*live {
		return 100, math.MaxInt64
	}
	return Percent, int64(target)
}

// Start tunes the collector towards target bytes of memory after every
// collection and returns the function that stops it, restoring GOGC and
// the memory limit in force before. It changes nothing (and stop does
// nothing) when target is 0 or when GOGC or GOMEMLIMIT is set in the
// environment: those are the user's explicit choice. onTune, if not nil,
// is called with every setting made (tests).
func Start(target uint64, onTune func(percent int, limit int64)) (stop func()) {
	if target == 0 || os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return func() {}
	}
	t := &tuner{target: target, onTune: onTune, samples: []metrics.Sample{
		{Name: liveMetric}, {Name: totalMetric}, {Name: heapObjectsMetric}, {Name: heapReleasedMetric},
	}}
	p, l := Settings(0, 0, target)
	t.prevLimit = debug.SetMemoryLimit(l)
	t.prevPercent = debug.SetGCPercent(p)
	t.arm()
	var once sync.Once
	return func() {
		once.Do(func() {
			t.mu.Lock()
			defer t.mu.Unlock()
			t.stopped = true
			debug.SetGCPercent(t.prevPercent)
			debug.SetMemoryLimit(t.prevLimit)
		})
	}
}

// The metrics the tuner reads: the heap marked live by the last
// collection, and the runtime's memory, of which a memory limit counts all
// but what was released to the system.
const (
	liveMetric         = "/gc/heap/live:bytes"
	totalMetric        = "/memory/classes/total:bytes"
	heapObjectsMetric  = "/memory/classes/heap/objects:bytes"
	heapReleasedMetric = "/memory/classes/heap/released:bytes"
)

type tuner struct {
	target      uint64
	onTune      func(int, int64)
	prevPercent int
	prevLimit   int64
	samples     []metrics.Sample
	mu          sync.Mutex // orders tunings with stop
	stopped     bool
}

// sentinel is an object that only the next collection's cleanup refers
// to; it holds a pointer so that the allocator does not batch it with
// other tiny objects (which would delay its collection).
type sentinel struct{ _ *sentinel }

// arm registers the tuning to run once the next collection has found a
// fresh sentinel unreachable; each tuning arms the next one.
func (t *tuner) arm() {
	runtime.AddCleanup(new(sentinel), func(t *tuner) { t.afterGC() }, t)
}

func (t *tuner) afterGC() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	metrics.Read(t.samples)
	var v [4]uint64
	for i, s := range t.samples {
		if s.Value.Kind() == metrics.KindUint64 {
			v[i] = s.Value.Uint64()
		}
	}
	// What a limit counts besides the live objects: the runtime's own
	// memory, and heap memory that is free or fragmented but not yet
	// returned to the system.
	live, other := v[0], v[1]-min(v[1], v[2]+v[3])
	p, l := Settings(live, other, t.target)
	debug.SetGCPercent(p)
	debug.SetMemoryLimit(l)
	if t.onTune != nil {
		t.onTune(p, l)
	}
	t.arm()
}
