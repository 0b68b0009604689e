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
// While tuning, GOGC is Percent and the runtime's soft memory limit
// (GOMEMLIMIT) is Limit: the target, or twice the live heap once that is
// larger. A small live heap is then collected when the process's memory
// reaches the target, or at Percent's growth if that comes first; a large
// one as with the default GOGC=100, so memory grows with the catalog as
// before. A fixed limit with a high GOGC (the usual recipe) would instead
// make the runtime collect continuously once the live heap passed the
// limit. The limit is set again after every collection, from the heap that
// collection found live.
package gctune

import (
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// Percent is the GOGC in force while tuning: how much a small live heap
// may grow before a collection when the limit is farther. Without a bound,
// an idle server's few megabytes of live heap would wait for hundreds of
// megabytes of garbage.
const Percent = 400

// Limit is the soft memory limit for a live heap of live bytes and a
// target of target bytes: the target, or twice the live heap when that is
// larger (the memory GOGC=100 would let the heap reach).
func Limit(live, target uint64) int64 {
	l := max(target, 2*live)
	if l > math.MaxInt64 || live > math.MaxInt64/2 {
		return math.MaxInt64
	}
	return int64(l)
}

// Start tunes the collector towards target bytes of memory after every
// collection and returns the function that stops it, restoring GOGC and
// the memory limit in force before. It changes nothing (and stop does
// nothing) when target is 0 or when GOGC or GOMEMLIMIT is set in the
// environment: those are the user's explicit choice. onTune, if not nil,
// is called with every limit set (tests).
func Start(target uint64, onTune func(limit int64)) (stop func()) {
	if target == 0 || os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return func() {}
	}
	t := &tuner{target: target, onTune: onTune, samples: []metrics.Sample{{Name: liveMetric}}}
	t.prevLimit = debug.SetMemoryLimit(Limit(0, target))
	t.prevPercent = debug.SetGCPercent(Percent)
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

// liveMetric is the heap marked live by the last collection.
const liveMetric = "/gc/heap/live:bytes"

type tuner struct {
	target      uint64
	onTune      func(int64)
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
	var live uint64
	if v := t.samples[0].Value; v.Kind() == metrics.KindUint64 {
		live = v.Uint64()
	}
	l := Limit(live, t.target)
	debug.SetMemoryLimit(l)
	if t.onTune != nil {
		t.onTune(l)
	}
	t.arm()
}
