package engine

import (
	"bytes"
	"crypto/sha1"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/catalog-pipeline/pipeline/reading"
	"github.com/catalog-pipeline/pipeline/store"
)

// Skipping unchanged work. A refresh pass reprocesses every entity, but
// for nearly all of them nothing processing depends on has moved: the same
// unprocessed entity, the same stages, the same cache, the same files. Each
// successful run therefore leaves a memo in the entity's state: the
// fingerprint of its inputs and the record of the sources it read
// (reading.Sources: file stamps and glob matches). The next run compares
// the fingerprint and stats the files; when all agree, the previous
// outcome stands and only the entity's schedule moves: no decode, no
// stage, no YAML parse of a Location's files.
//
// It applies only where it is sound: every stage of the pipeline must
// declare itself Pure, and the run must not have read anything a stat
// cannot revalidate (an HTTP request, a failed read). Script stages are
// Pure with their source's hash as Version: a script that depends on the
// clock or on Math.random must not rely on being re-run with unchanged
// input, and `engine { always_reprocess = true }` turns the memo off.

// Pure is implemented by stages whose hooks' results depend only on the
// entity and location they are given, their configuration, their cache,
// and what they read through the pipeline's reading.Reader with the hook's
// context (which records it). The engine skips such a stage's work when
// none of that changed.
type Pure interface {
	Pure() bool
}

// Versioned is implemented by stages whose behaviour can change while the
// engine runs (a script reloaded from disk): Version names the behaviour
// in use, and a new one makes every entity run again.
type Versioned interface {
	Version() string
}

// memoVersion changes when processing changes in a way the build revision
// does not capture.
const memoVersion = "memo-1"

// buildRevision identifies the running program, so that results of an
// older (or newer) build are not reused: the module version and VCS
// revision when the build recorded them, and the executable's size and
// modification time, which every rebuild changes even without VCS
// information (go build -buildvcs=false, a source tarball).
var buildRevision = sync.OnceValue(func() string {
	var b strings.Builder
	if info, ok := debug.ReadBuildInfo(); ok {
		b.WriteString(info.Main.Version)
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" || s.Key == "vcs.modified" {
				b.WriteString(" " + s.Value)
			}
		}
	}
	if exe, err := os.Executable(); err == nil {
		if st, err := os.Stat(exe); err == nil {
			fmt.Fprintf(&b, " %d %d", st.Size(), st.ModTime().UnixNano())
		}
	}
	return b.String()
})

// memoizable reports whether the memo can apply to p's entities.
func memoizable(p *Pipeline) bool {
	for _, s := range p.Stages {
		if ps, ok := s.(Pure); !ok || !ps.Pure() {
			return false
		}
	}
	return true
}

// fingerprint hashes what a run of st under p depends on besides the
// sources it reads.
func fingerprint(p *pipelineRT, st *store.State) [sha1.Size]byte {
	var h outcomeHash
	h.init(memoVersion)
	h.str(buildRevision())
	h.str(p.Name)
	h.str(p.Fingerprint)
	for _, s := range p.Stages {
		h.str(s.Name())
		if v, ok := s.(Versioned); ok {
			h.str(v.Version())
		}
	}
	h.str(st.UnprocessedHash)
	h.bytes(st.Cache)
	var out [sha1.Size]byte
	h.h.Sum(out[:0])
	return out
}

// memoHit reports whether st's last run can stand for a run now: its
// inputs' fingerprint is fp and its sources are unchanged. updated is a
// new memo to store when checking the sources refreshed their stamps (a
// touched file, one no longer too recent to trust), else nil.
func memoHit(p *pipelineRT, st *store.State, fp [sha1.Size]byte) (hit bool, updated []byte) {
	m := st.Memo
	if len(m) < sha1.Size || st.ResultHash == "" || st.Failures > 0 || !bytes.Equal(m[:sha1.Size], fp[:]) {
		return false, nil
	}
	rec := m[sha1.Size:]
	if len(rec) == 0 {
		return true, nil // read nothing
	}
	if p.Reader == nil {
		return false, nil
	}
	ok, rec := p.Reader.Revalidate(rec)
	if !ok || rec == nil {
		return ok, nil
	}
	return true, append(fp[:], rec...)
}

// memoOf is the memo a successful run leaves: nil when what it read cannot
// be revalidated.
func memoOf(fp [sha1.Size]byte, src *reading.Sources) []byte {
	if src.Volatile() {
		return nil
	}
	if src.Empty() {
		return fp[:]
	}
	return append(fp[:], src.Encode()...)
}
