package engine

import "time"

// SetClock replaces the clock the engine schedules by (next refresh times,
// retry backoff, the horizon of what is due). It is meant for tests and
// simulations that need to know "now" exactly; call it before RunOnce,
// Serve or Process, not while they run.
func (e *Engine) SetClock(now func() time.Time) {
	if now == nil {
		now = time.Now
	}
	e.now = now
}
