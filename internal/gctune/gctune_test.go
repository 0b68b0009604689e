package gctune

import (
	"math"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

const mib = 1 << 20

func TestLimit(t *testing.T) {
	for _, tc := range []struct {
		name         string
		live, target uint64
		want         int64
	}{
		{"no live heap yet", 0, 256 * mib, 256 * mib},
		{"small live heap: the target", 50 * mib, 256 * mib, 256 * mib},
		{"live heap half the target", 128 * mib, 256 * mib, 256 * mib},
		{"large live heap: what GOGC=100 allows", 600 * mib, 256 * mib, 1200 * mib},
		{"huge target", 1, math.MaxUint64, math.MaxInt64},
		{"huge live heap", math.MaxUint64 / 2, 256 * mib, math.MaxInt64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Limit(tc.live, tc.target); got != tc.want {
				t.Errorf("Limit(%d, %d) = %d, want %d", tc.live, tc.target, got, tc.want)
			}
		})
	}
}

// setBoth sets GOGC and the memory limit and returns the ones in force.
func setBoth(percent int, limit int64) (int, int64) {
	return debug.SetGCPercent(percent), debug.SetMemoryLimit(limit)
}

// TestStartTunesAfterCollections checks the loop itself: after collections
// the limit in force is Limit of the live heap, GOGC is Percent, and stop
// restores both. The tests of this package share the process's collector,
// so they do not run in parallel.
func TestStartTunesAfterCollections(t *testing.T) {
	t.Setenv("GOGC", "") // Start ignores empty variables
	t.Setenv("GOMEMLIMIT", "")
	p0, l0 := setBoth(77, 1<<40)
	defer setBoth(p0, l0)

	// Live heap: a 64 MiB block kept across the collections, so that the
	// limit follows it above a 16 MiB target.
	keep := make([]byte, 64*mib)
	const target = 16 * mib
	tuned := make(chan int64, 100)
	stop := Start(target, func(l int64) { tuned <- l })
	deadline := time.After(time.Minute)
	var last int64
	for n := 0; n < 3; {
		runtime.GC()
		select {
		case last = <-tuned:
			n++
		case <-deadline:
			t.Fatalf("tuned %d times after a minute of collections", n)
		default:
		}
	}
	runtime.KeepAlive(keep)
	if last < 2*64*mib {
		t.Errorf("limit %d MiB with 64 MiB live, want at least twice that", last/mib)
	}
	if p, l := setBoth(Percent, last); p != Percent || l != last {
		t.Errorf("in force: GOGC %d, limit %d; want %d, %d", p, l, Percent, last)
	}
	stop()
	stop() // idempotent
	if p, l := setBoth(77, 1<<40); p != 77 || l != 1<<40 {
		t.Errorf("after stop: GOGC %d, limit %d; want the previous 77, %d", p, l, int64(1<<40))
	}
	// Stopped: later collections leave both alone.
	runtime.GC()
	runtime.GC()
	if p, l := setBoth(77, 1<<40); p != 77 || l != 1<<40 {
		t.Errorf("a collection after stop set GOGC %d, limit %d", p, l)
	}
}

func TestStartRespectsEnvironmentAndZeroTarget(t *testing.T) {
	p0, l0 := setBoth(55, 1<<41)
	defer setBoth(p0, l0)
	for _, tc := range []struct {
		name, gogc, memlimit string
		target               uint64
	}{
		{"GOGC set", "150", "", 256 * mib},
		{"GOMEMLIMIT set", "", "1GiB", 256 * mib},
		{"no target", "", "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("GOGC", tc.gogc)
			t.Setenv("GOMEMLIMIT", tc.memlimit)
			stop := Start(tc.target, func(l int64) { t.Errorf("tuned to %d", l) })
			runtime.GC()
			runtime.GC()
			if p, l := setBoth(55, 1<<41); p != 55 || l != 1<<41 {
				t.Errorf("GOGC %d, limit %d; want them untouched", p, l)
			}
			stop()
		})
	}
}
