package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Claim returns up to limit entities due at or before horizon, earliest
// first, skipping those for which skip returns true (the engine's in-flight
// set). It only reads: the engine's single writer moves each entity's next
// refresh time when it commits the outcome.
func (d *DB) Claim(horizon time.Time, limit int, skip func(ref string) bool) ([]*State, error) {
	var out []*State
	h := uint64(horizon.UnixNano())
	err := d.bolt.View(func(tx *bolt.Tx) error {
		b := open(tx)
		c := b.queue.Cursor()
		for k, _ := c.First(); k != nil && len(out) < limit; k, _ = c.Next() {
			if binary.BigEndian.Uint64(k[:8]) > h {
				break
			}
			ref := string(k[8:])
			if skip != nil && skip(ref) {
				continue
			}
			v := b.state.Get(k[8:])
			if v == nil {
				continue
			}
			st, err := decodeStateParts(ref, v, false)
			if err != nil {
				return err
			}
			out = append(out, st)
		}
		return nil
	})
	return out, err
}

// State returns the processing state of ref, or nil.
func (d *DB) State(ref string) (*State, error) {
	var st *State
	err := d.bolt.View(func(tx *bolt.Tx) error {
		var err error
		st, err = open(tx).getState(ref)
		return err
	})
	return st, err
}

// Final returns the served JSON of ref (nil when it is not served) and its
// etag.
func (d *DB) Final(ref string) (body []byte, etag string, err error) {
	err = d.bolt.View(func(tx *bolt.Tx) error {
		v := open(tx).final.Get([]byte(ref))
		if body, err = finalBody(v); err != nil || body == nil {
			return err
		}
		etag = string(v[:etagLen])
		return nil
	})
	return body, etag, err
}

// ForEachFinal calls fn with the served JSON of every entity whose ref starts
// with refPrefix (such as "component:"; "" for all), in ref order. body is
// only valid during the call. The read transaction is held for the walk, so
// fn must be quick (no network writes).
func (d *DB) ForEachFinal(refPrefix string, fn func(ref string, body []byte) error) error {
	return d.bolt.View(func(tx *bolt.Tx) error {
		c := open(tx).final.Cursor()
		p := []byte(refPrefix)
		var buf []byte
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			body, ok, err := appendFinalBody(buf[:0], v)
			if err != nil {
				return fmt.Errorf("entity %s: %w", k, err)
			}
			if !ok {
				continue
			}
			buf = body
			if err := fn(string(k), body); err != nil {
				return err
			}
		}
		return nil
	})
}

// Summary counts what the store serves.
type Summary struct {
	// ByKind counts served entities by lowercased kind.
	ByKind map[string]int
	// Entities is the number of served entities; States counts every
	// entity known, served or not (an entity that never processed cleanly is
	// known but not served).
	Entities, States int
	// Relations counts distinct served relations.
	Relations int
	// WithErrors counts entities whose last run recorded errors.
	WithErrors int
}

// Summarize counts entities by kind, relations and errors by walking keys
// only (no entity is decoded).
func (d *DB) Summarize() (Summary, error) {
	s := Summary{ByKind: map[string]int{}}
	err := d.bolt.View(func(tx *bolt.Tx) error {
		b := open(tx)
		c := b.final.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if i := bytes.IndexByte(k, ':'); i > 0 {
				s.ByKind[string(k[:i])]++
			}
			s.Entities++
		}
		s.States = b.state.Stats().KeyN
		s.WithErrors = b.errs.Stats().KeyN
		var last []byte
		var lastSource string
		var served bool
		rc := newBlockCursor(b.bySource)
		for k, _ := rc.First(); k != nil; k, _ = rc.Next() {
			sig := k[:bytes.LastIndexByte(k, 0)]
			if bytes.Equal(sig, last) {
				continue
			}
			last = append(last[:0], sig...)
			if src := string(k[:bytes.IndexByte(k, 0)]); src != lastSource {
				lastSource, served = src, b.final.Get([]byte(src)) != nil
			}
			if served {
				s.Relations++
			}
		}
		return rc.err
	})
	return s, err
}

// ForEachError calls fn with the state of every entity whose last run
// recorded errors, in ref order.
func (d *DB) ForEachError(fn func(st *State) error) error {
	return d.bolt.View(func(tx *bolt.Tx) error {
		b := open(tx)
		c := b.errs.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			st, err := b.getState(string(k))
			if err != nil {
				return err
			}
			if st != nil {
				if err := fn(st); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// Parents returns the parent keys of ref (refs, or "provider:NAME" for
// roots).
func (d *DB) Parents(ref string) ([]string, error) {
	var out []string
	err := d.bolt.View(func(tx *bolt.Tx) error {
		c := open(tx).parents.Cursor()
		p := prefix(ref)
		for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
			out = append(out, string(k[len(p):]))
		}
		return nil
	})
	return out, err
}

// Children returns the child refs of parent.
func (d *DB) Children(parent string) ([]string, error) {
	var out []string
	err := d.bolt.View(func(tx *bolt.Tx) error {
		c := open(tx).edges.Cursor()
		p := prefix(parent)
		for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
			out = append(out, string(k[len(p):]))
		}
		return nil
	})
	return out, err
}

// RefByUID maps a metadata.uid back to its ref ("" when unknown).
func (d *DB) RefByUID(uid string) (string, error) {
	var ref string
	err := d.bolt.View(func(tx *bolt.Tx) error {
		ref = string(open(tx).uids.Get([]byte(strings.ToLower(uid))))
		return nil
	})
	return ref, err
}

// NextDue is the earliest next-update time in the queue; ok is false when
// the queue is empty. An idle loop sleeps until then.
func (d *DB) NextDue() (t time.Time, ok bool, err error) {
	err = d.bolt.View(func(tx *bolt.Tx) error {
		if k, _ := open(tx).queue.Cursor().First(); k != nil {
			t, ok = time.Unix(0, int64(binary.BigEndian.Uint64(k[:8]))), true
		}
		return nil
	})
	return t, ok, err
}
