package store

import (
	"encoding/binary"
	"encoding/json"
	"time"

	"github.com/catalog-pipeline/pipeline/catalog"
)

// State is the processing state of one entity: what its parent (or
// provider) emitted, what processing made of it, and what processing needs
// next time. It is the engine's unit of work.
type State struct {
	// Ref is the canonical lowercased entity ref; it is the key, not stored.
	Ref string `json:"-"`
	// UID becomes metadata.uid; assigned once, stable until deletion.
	UID string `json:"uid"`
	// Pipeline names the pipeline whose stages process the entity; children
	// inherit their parent's.
	Pipeline string `json:"pipeline"`
	// Root is the location key of the configured or registered location the
	// entity descends from; children inherit it. The engine uses it for
	// per-location refresh intervals.
	Root string `json:"root,omitempty"`
	// Failures counts consecutive failed runs, for the retry backoff.
	Failures int `json:"failures,omitempty"`
	// Contender is the parent that last lost a location-key conflict over
	// this entity; it is made due when the owner lets go.
	Contender string `json:"contender,omitempty"`
	// Unprocessed is the entity as emitted, with location annotations.
	Unprocessed     json.RawMessage `json:"unprocessed"`
	UnprocessedHash string          `json:"unprocessedHash"`
	// Processed is the output of the last successful run; nil until one
	// succeeded (such an entity is never served).
	Processed json.RawMessage `json:"processed,omitempty"`
	// ResultHash summarises the last outcome; an equal outcome writes nothing.
	ResultHash string `json:"resultHash,omitempty"`
	// Errors of the last run, served in status.items.
	Errors []catalog.SerializedError `json:"errors,omitempty"`
	// LocationKey is the location that owns the ref ("first claimant wins").
	LocationKey string `json:"locationKey,omitempty"`
	// Cache is the stages' JSON cache: {stage: {key: value}}.
	Cache json.RawMessage `json:"cache,omitempty"`
	// RefreshKeys registered by the last successful run.
	RefreshKeys []string `json:"refreshKeys,omitempty"`
	// Relations are the relations this entity's processing emitted (it is
	// their originator), sorted; they are served on their sources.
	Relations []Relation `json:"relations,omitempty"`
	// Memo is the engine's record of what the last successful run depended
	// on (its inputs' fingerprint and the sources it read), so that a run
	// with the same inputs can be skipped. Opaque to the store; cleared
	// when a run fails or the entity must run again.
	Memo []byte `json:"memo,omitempty"`
}

// Relation is one directed relation, refs in canonical form.
type Relation struct {
	Source string
	Type   string
	Target string
}

// Child is an entity emitted by a parent (or, for roots, by a provider).
type Child struct {
	Ref         string
	Entity      json.RawMessage
	Hash        string
	LocationKey string
}

// Outcome is the result of processing one entity, as the engine hands it to
// Commit.
type Outcome struct {
	Ref string
	// UnprocessedHash is the hash of the unprocessed entity that was
	// processed. When the stored one differs, a parent changed the entity
	// while it was being processed: the outcome is stale and is dropped (the
	// entity is due again already).
	UnprocessedHash string
	// OK is false when a stage failed outright: the errors are recorded and
	// the previous processed entity and children are kept (last good wins).
	OK         bool
	Processed  json.RawMessage
	ResultHash string
	Errors     []catalog.SerializedError
	Cache      json.RawMessage
	Relations  []Relation
	Children   []Child
	// KeepOldChildren is set when errors were emitted while reading: a child
	// that was emitted before but not now is kept rather than orphaned,
	// because its source may only be unreadable for the moment.
	KeepOldChildren bool
	// KeepLocations keeps previously emitted children whose location key is
	// listed, even if not emitted now: their source failed to read. Children
	// of other locations that are gone are pruned at once (a deleted file's
	// entities disappear on the next run).
	KeepLocations []string
	RefreshKeys   []string
	// Memo replaces State.Memo when the outcome is OK (see State.Memo); a
	// Skipped outcome carries one only when it changed (nil keeps the
	// stored one).
	Memo []byte
	// Skipped says the engine did not run the stages because nothing the
	// last run depended on changed: the outcome repeats the stored one.
	Skipped bool
	// NextUpdate is when the entity is due again.
	NextUpdate time.Time
}

// Conflict reports a child whose ref is already owned by another location.
type Conflict struct {
	Ref         string
	Parent      string
	ExistingKey string
	NewKey      string
}

// CommitStats says what a Commit did; the engine logs and counts it.
type CommitStats struct {
	// Written is the number of entities whose state changed.
	Written int
	// Unchanged outcomes only moved their next refresh time.
	Unchanged int
	// Stale outcomes were dropped because the entity changed meanwhile.
	Stale int
	// Created and Deleted count entities added and removed (orphans).
	Created, Deleted int
	// Stitched counts final entities rewritten.
	Stitched  int
	Conflicts []Conflict
	// IndexRowsMerged counts the search rows StitchPending copied when it
	// merged the segments its large batches wrote (segments.go): the work,
	// a few seconds per million rows, that the last batch of a burst
	// pays.
	IndexRowsMerged int
}

// Add accumulates another commit's figures.
func (s *CommitStats) Add(o CommitStats) {
	s.Written += o.Written
	s.Unchanged += o.Unchanged
	s.Stale += o.Stale
	s.Created += o.Created
	s.Deleted += o.Deleted
	s.Stitched += o.Stitched
	s.IndexRowsMerged += o.IndexRowsMerged
	s.Conflicts = append(s.Conflicts, o.Conflicts...)
}

// dueNow is the queue time of anything that must be processed at once: it
// sorts before every real time.
const dueNow = 0

func timeKey(nanos int64, ref string) []byte {
	k := make([]byte, 8+len(ref))
	binary.BigEndian.PutUint64(k, uint64(nanos))
	copy(k[8:], ref)
	return k
}

func join(parts ...string) []byte {
	n := len(parts) - 1
	for _, p := range parts {
		n += len(p)
	}
	k := make([]byte, 0, n)
	for i, p := range parts {
		if i > 0 {
			k = append(k, 0)
		}
		k = append(k, p...)
	}
	return k
}

func prefix(p string) []byte { return append([]byte(p), 0) }
