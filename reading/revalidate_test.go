package reading

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"
)

// Revalidate hands back a record with fresh stamps when it had to hash a
// file to prove it unchanged, so that the next check is a stat again.
func TestRevalidateRefreshesStamps(t *testing.T) {
	tests := []struct {
		name string
		// prepare runs before the first read; change between the read and
		// the first Revalidate.
		prepare, change func(t *testing.T, path string)
		wantUpdate      bool
	}{
		{name: "untouched old file", wantUpdate: false},
		{
			name:       "touched, same content",
			change:     func(t *testing.T, path string) { setMtime(t, path, time.Now().Add(-30*time.Minute)) },
			wantUpdate: true,
		},
		{
			name:       "read while racy, old enough now",
			prepare:    func(t *testing.T, path string) { setMtime(t, path, time.Now()) },
			change:     func(t *testing.T, path string) { setMtime(t, path, time.Now().Add(-30*time.Minute)) },
			wantUpdate: true,
		},
		{
			name:    "still racy",
			prepare: func(t *testing.T, path string) { setMtime(t, path, time.Now()) },
			// Hashed again, but still too recent to trust: nothing to update.
			wantUpdate: false,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := pastTree(t, map[string]string{"a.yaml": "kind: A\n"})
			path := filepath.Join(dir, "a.yaml")
			r := New(Policy{Roots: []string{dir}})
			if tc.prepare != nil {
				tc.prepare(t, path)
			}
			rec := record(t, r, readFiles(r, path)).Encode()
			if tc.change != nil {
				tc.change(t, path)
			}
			ok, updated := r.Revalidate(rec)
			if !ok {
				t.Fatal("unchanged content reported changed")
			}
			if (updated != nil) != tc.wantUpdate {
				t.Fatalf("updated record = %v, want one: %v", updated != nil, tc.wantUpdate)
			}
			if updated == nil {
				return
			}
			if bytes.Equal(updated, rec) {
				t.Fatal("the updated record is the old one")
			}
			// The updated record is trusted by a stat alone.
			ok, again := r.Revalidate(updated)
			if !ok || again != nil {
				t.Fatalf("revalidating the updated record: ok %v, updated again %v", ok, again != nil)
			}
			// And it still notices a change.
			writePast(t, path, "kind: B\n", time.Now().Add(-10*time.Minute))
			if ok, _ := r.Revalidate(updated); ok {
				t.Fatal("changed content reported unchanged after the update")
			}
		})
	}
}
