package store

import (
	"encoding/binary"
	"time"

	bolt "go.etcd.io/bbolt"
)

// QueueDepth counts the entities due at or before now: the backlog the
// loop has yet to work through. It walks only the due part of the queue.
func (d *DB) QueueDepth(now time.Time) (int, error) {
	n := 0
	h := uint64(now.UnixNano())
	err := d.bolt.View(func(tx *bolt.Tx) error {
		c := open(tx).queue.Cursor()
		for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k[:8]) <= h; k, _ = c.Next() {
			n++
		}
		return nil
	})
	return n, err
}

// ErrorCount is the number of entities whose last run recorded errors,
// counted from the errors index without decoding any state.
func (d *DB) ErrorCount() (int, error) {
	n := 0
	err := d.bolt.View(func(tx *bolt.Tx) error {
		n = open(tx).errs.Stats().KeyN
		return nil
	})
	return n, err
}

// StitchBacklog is the number of entities whose served form waits to be
// rebuilt (deferred stitching): how far the API is behind the engine.
func (d *DB) StitchBacklog() (int, error) {
	n := 0
	err := d.bolt.View(func(tx *bolt.Tx) error {
		n = open(tx).stitchQ.Stats().KeyN
		return nil
	})
	return n, err
}
