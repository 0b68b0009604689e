package store

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// locationsBucket holds the locations registered over the API (config
// locations live in the pipeline files). It is created on first write, so
// files made before it existed need no migration.
var locationsBucket = []byte("locations")

// LocationRecord is a location registered at run time, kept across
// restarts. ID is the API's handle; Pipeline names the pipeline that
// processes it.
type LocationRecord struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Target   string `json:"target"`
	Pipeline string `json:"pipeline"`
}

// PutLocation inserts or replaces a registered location.
func (d *DB) PutLocation(l LocationRecord) error {
	v, err := json.Marshal(l)
	if err != nil {
		return err
	}
	return d.boltUpdate(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(rootBucket).CreateBucketIfNotExists(locationsBucket)
		if err != nil {
			return err
		}
		return b.Put([]byte(strings.ToLower(l.ID)), v)
	})
}

// DeleteLocation removes a registered location; ok is false when it was
// not there. Its entities are removed when the engine next syncs its roots.
func (d *DB) DeleteLocation(id string) (ok bool, err error) {
	err = d.boltUpdate(func(tx *bolt.Tx) error {
		b := tx.Bucket(rootBucket).Bucket(locationsBucket)
		if b == nil || b.Get([]byte(strings.ToLower(id))) == nil {
			return nil
		}
		ok = true
		return b.Delete([]byte(strings.ToLower(id)))
	})
	return ok, err
}

// Locations lists the registered locations, by type then target.
func (d *DB) Locations() ([]LocationRecord, error) {
	var out []LocationRecord
	err := d.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(rootBucket).Bucket(locationsBucket)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var l LocationRecord
			if err := json.Unmarshal(v, &l); err != nil {
				return fmt.Errorf("decode location %s: %w", k, err)
			}
			out = append(out, l)
			return nil
		})
	})
	slices.SortFunc(out, func(a, b LocationRecord) int {
		return strings.Compare(a.Type+":"+a.Target, b.Type+":"+b.Target)
	})
	return out, err
}

// MakeDue makes the given entities due now (explicit refresh); unknown refs
// are skipped. It reports how many were known.
func (d *DB) MakeDue(refs []string) (int, error) {
	n := 0
	err := d.boltUpdate(func(tx *bolt.Tx) error {
		b := open(tx)
		for _, ref := range refs {
			if b.state.Get([]byte(ref)) == nil {
				continue
			}
			n++
			if err := b.requeue(ref, dueNow); err != nil {
				return err
			}
		}
		return nil
	})
	return n, err
}
