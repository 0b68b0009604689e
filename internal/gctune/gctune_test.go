package gctune

import (
	"math"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

const mib = 1 << 20

func TestSettings(t *testing.T) {
	for _, tc := range []struct {
		name                string
		live, other, target uint64
		percent             int
		limit               int64
	}{
		{"no live heap yet", 0, 0, 192 * mib, Percent, 192 * mib},
		{"small live heap: collect at the target", 50 * mib, 10 * mib, 192 * mib, Percent, 192 * mib},
		{"just fits", 90 * mib, 12*mib - 1, 192 * mib, Percent, 192 * mib},
		{"the rest of the runtime's memory tips it: the defaults", 90 * mib, 12 * mib, 192 * mib, 100, math.MaxInt64},
		{"half the target: the runtime's defaults", 96 * mib, 0, 192 * mib, 100, math.MaxInt64},
		{"live heap above the target: the defaults", 600 * mib, 10 * mib, 192 * mib, 100, math.MaxInt64},
		{"a target the runtime's own memory fills: the defaults", 5 * mib, 30 * mib, 32 * mib, 100, math.MaxInt64},
		{"target beyond a limit's range", 1, 0, math.MaxUint64, 100, math.MaxInt64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, l := Settings(tc.live, tc.other, tc.target)
			if p != tc.percent || l != tc.limit {
				t.Errorf("Settings(%d, %d, %d) = %d, %d; want %d, %d", tc.live, tc.other, tc.target, p, l, tc.percent, tc.limit)
			}
		})
	}
}

// setBoth sets GOGC and the memory limit and returns the ones in force.
func setBoth(percent int, limit int64) (int, int64) {
	return debug.SetGCPercent(percent), debug.SetMemoryLimit(limit)
}

type setting struct {
	percent int
	limit   int64
}

// collectUntilTuned runs collections until the tuner has reported n
// settings, and returns the last.
func collectUntilTuned(t *testing.T, tuned <-chan setting, n int) setting {
	t.Helper()
	deadline := time.After(time.Minute)
	var last setting
	for n > 0 {
		runtime.GC()
		select {
		case last = <-tuned:
			n--
		case <-deadline:
			t.Fatalf("%d tunings missing after a minute of collections", n)
		default:
		}
	}
	return last
}

// TestStartTunesAfterCollections checks the loop itself: after collections
// the settings in force are Settings of the live heap, and stop restores
// the previous ones. The tests of this package share the process's
// collector, so they do not run in parallel.
func TestStartTunesAfterCollections(t *testing.T) {
	t.Setenv("GOGC", "") // Start ignores empty variables
	t.Setenv("GOMEMLIMIT", "")
	p0, l0 := setBoth(77, 1<<40)
	defer setBoth(p0, l0)

	tuned := make(chan setting, 100)
	stop := Start(1<<40, func(p int, l int64) { tuned <- setting{p, l} })
	// A live heap far under the target: collect at the target.
	if got, want := collectUntilTuned(t, tuned, 3), (setting{Percent, 1 << 40}); got != want {
		t.Errorf("small live heap: tuned to %+v, want %+v", got, want)
	}
	if p, l := setBoth(Percent, 1<<40); p != Percent || l != 1<<40 {
		t.Errorf("in force: GOGC %d, limit %d", p, l)
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

	// A live heap over half the target: the runtime's defaults.
	keep := make([]byte, 64*mib)
	stop = Start(16*mib, func(p int, l int64) { tuned <- setting{p, l} })
	got := collectUntilTuned(t, tuned, 3)
	runtime.KeepAlive(keep)
	stop()
	if want := (setting{100, math.MaxInt64}); got != want {
		t.Errorf("64 MiB live, 16 MiB target: tuned to %+v, want %+v", got, want)
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
			stop := Start(tc.target, func(p int, l int64) { t.Errorf("tuned to %d, %d", p, l) })
			runtime.GC()
			runtime.GC()
			if p, l := setBoth(55, 1<<41); p != 55 || l != 1<<41 {
				t.Errorf("GOGC %d, limit %d; want them untouched", p, l)
			}
			stop()
		})
	}
}
