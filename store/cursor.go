package store

import "bytes"

// cursor is the part of *bolt.Cursor the queries use, so that they can walk
// the search index whether it is one bucket or several (segments.go).
type cursor interface {
	First() (key, value []byte)
	Last() (key, value []byte)
	Seek(seek []byte) (key, value []byte)
	Next() (key, value []byte)
	Prev() (key, value []byte)
}

// mergedCursor walks several cursors as one, in key order. No key may be
// in two of them (the search segments keep every key in one place), so
// the merge never has to drop duplicates.
//
// Every sub-cursor stays on the key nearest to the current one on the
// side the walk is heading: after a forward step, the smallest key greater
// than it; after a backward step, the greatest key smaller than it.
// Changing direction therefore repositions the other cursors, as in
// LevelDB's merging iterator. After Next or Prev returned nil the walk is
// over; a Seek, First or Last starts another.
type mergedCursor struct {
	subs []cursor
	keys [][]byte
	vals [][]byte
	cur  int // the sub-cursor at the current key, -1 when there is none
	back bool
}

func newMergedCursor(subs []cursor) *mergedCursor {
	return &mergedCursor{subs: subs, keys: make([][]byte, len(subs)), vals: make([][]byte, len(subs)), cur: -1}
}

func (m *mergedCursor) First() ([]byte, []byte) {
	for i, c := range m.subs {
		m.keys[i], m.vals[i] = c.First()
	}
	return m.pick(false)
}

func (m *mergedCursor) Last() ([]byte, []byte) {
	for i, c := range m.subs {
		m.keys[i], m.vals[i] = c.Last()
	}
	return m.pick(true)
}

func (m *mergedCursor) Seek(seek []byte) ([]byte, []byte) {
	for i, c := range m.subs {
		m.keys[i], m.vals[i] = c.Seek(seek)
	}
	return m.pick(false)
}

func (m *mergedCursor) Next() ([]byte, []byte) {
	if m.cur < 0 {
		return nil, nil
	}
	if m.back {
		// The others sit before the current key: move them past it.
		at := m.keys[m.cur]
		for i, c := range m.subs {
			if i != m.cur {
				m.keys[i], m.vals[i] = c.Seek(at)
			}
		}
	}
	m.keys[m.cur], m.vals[m.cur] = m.subs[m.cur].Next()
	return m.pick(false)
}

func (m *mergedCursor) Prev() ([]byte, []byte) {
	if m.cur < 0 {
		return nil, nil
	}
	if !m.back {
		// The others sit after the current key: move them before it.
		at := m.keys[m.cur]
		for i, c := range m.subs {
			if i == m.cur {
				continue
			}
			if k, _ := c.Seek(at); k == nil {
				m.keys[i], m.vals[i] = c.Last()
			} else {
				m.keys[i], m.vals[i] = c.Prev()
			}
		}
	}
	m.keys[m.cur], m.vals[m.cur] = m.subs[m.cur].Prev()
	return m.pick(true)
}

// pick makes the smallest key (the greatest when back) the current one.
func (m *mergedCursor) pick(back bool) ([]byte, []byte) {
	m.back = back
	m.cur = -1
	for i, k := range m.keys {
		if k == nil {
			continue
		}
		if m.cur < 0 {
			m.cur = i
			continue
		}
		c := bytes.Compare(k, m.keys[m.cur])
		if c < 0 && !back || c > 0 && back {
			m.cur = i
		}
	}
	if m.cur < 0 {
		return nil, nil
	}
	return m.keys[m.cur], m.vals[m.cur]
}
