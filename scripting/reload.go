package scripting

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/catalog-pipeline/pipeline/engine"
)

// maybeReload polls the script file, at most once per reloadEvery, from
// whichever call comes first; other calls never wait for it. Polling on use
// needs no watcher goroutine and costs one atomic load per call otherwise.
func (s *Stage) maybeReload() {
	now := time.Now().UnixNano()
	last := s.lastCheck.Load()
	if now-last < int64(s.reloadEvery) || !s.lastCheck.CompareAndSwap(last, now) {
		return
	}
	if !s.reloadMu.TryLock() {
		return
	}
	defer s.reloadMu.Unlock()
	s.reload()
}

// reload stats the script and, when its modification time or size
// changed and its content hash differs from the running version, compiles
// and loads it. A good version replaces the running one: new calls get
// runtimes built from it, and runtimes of the old version are dropped as
// they come back. A bad one is logged once, recorded so that calls report
// it, and the running version stays.
func (s *Stage) reload() {
	st, err := os.Stat(s.path)
	if err != nil {
		s.stamp = fileStamp{}
		s.setBad([sha256.Size]byte{}, fmt.Sprintf("script %s cannot be read (%v); still running the previous version", s.display, unwrapPathError(err)))
		return
	}
	stamp := fileStamp{st.ModTime(), st.Size()}
	if stamp == s.stamp {
		return
	}
	src, err := os.ReadFile(s.path)
	if err != nil {
		s.stamp = fileStamp{}
		s.setBad([sha256.Size]byte{}, fmt.Sprintf("script %s cannot be read (%v); still running the previous version", s.display, unwrapPathError(err)))
		return
	}
	s.stamp = stamp
	sum := sha256.Sum256(src)
	if sum == s.cur.Load().hash {
		// Touched, or put back as it was.
		s.clearBad()
		return
	}
	if b := s.bad.Load(); b != nil && b.hash == sum {
		return
	}
	ver, rt, err := s.build(src)
	if err != nil {
		s.setBad(sum, fmt.Sprintf("script %s has an error at %s; still running the previous version", s.display, s.where(err)))
		return
	}
	s.cur.Store(ver)
	s.clearBad()
	s.offer(rt)
	s.log.Info("script reloaded", "script", s.display, "hooks", strings.Join(s.Hooks(), ","))
}

// where renders a build error as "line:col: message" (the first line only;
// the log and the entity errors need the position and the reason).
func (s *Stage) where(err error) string {
	var ce *compileError
	if errors.As(err, &ce) {
		return ce.at()
	}
	msg := err.Error()
	var pe *engine.ProcessingError
	if errors.As(err, &pe) {
		msg = pe.Message
	}
	msg, _, _ = strings.Cut(msg, "\n")
	return strings.TrimPrefix(msg, s.display+":")
}

// setBad records a broken script, logging it once per distinct problem.
func (s *Stage) setBad(hash [sha256.Size]byte, msg string) {
	prev := s.bad.Load()
	if prev != nil && prev.hash == hash && prev.msg == msg {
		return
	}
	s.bad.Store(&badVersion{hash: hash, msg: msg})
	s.log.Error(msg, "script", s.display)
}

func (s *Stage) clearBad() {
	if s.bad.Swap(nil) != nil {
		s.log.Info("script is good again", "script", s.display)
	}
}
