package reading

import (
	"context"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"os"
	"runtime"
	"slices"
	"sync"
	"time"
)

// Sources records what the reads made under one context depended on, so
// that the engine can tell on the next run, with a stat per file instead of
// a read and a parse, whether any of it changed. A read that cannot be
// checked that way (an HTTP request, a failed read) makes the record
// volatile: the run must be repeated to know.
//
// Files are identified as git's index does, by size and modification time,
// backed by a hash of their content: a file whose stamp moved (touched,
// checked out again) is read and hashed, not reported changed, and a file
// modified less than racyWindow before it was read, which may still change
// within the same timestamp ("racy git"), is always hashed again.
type Sources struct {
	mu       sync.Mutex
	files    map[string]fileStamp // path as read → resolved path, size, mtime
	globs    map[string][sha1.Size]byte
	volatile bool
}

type fileStamp struct {
	resolved string
	size     int64
	mtime    int64
	racy     bool
	sum      [sha1.Size]byte
}

// racyWindow is how recent a file's modification time may be before its
// stamp is not trusted: filesystems with coarse timestamps can change a
// file again without moving them.
const racyWindow = 2 * time.Second

type sourcesKey struct{}

// WithSources returns a context whose reads are recorded into s.
func WithSources(ctx context.Context, s *Sources) context.Context {
	return context.WithValue(ctx, sourcesKey{}, s)
}

func sourcesOf(ctx context.Context) *Sources {
	s, _ := ctx.Value(sourcesKey{}).(*Sources)
	return s
}

// Volatile reports whether a read was recorded that a stat cannot
// revalidate.
func (s *Sources) Volatile() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.volatile
}

// MarkVolatile records a dependency the record cannot describe.
func (s *Sources) MarkVolatile() {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.volatile = true
	s.mu.Unlock()
}

func (s *Sources) file(path, resolved string, st os.FileInfo, data []byte, now time.Time) {
	if s == nil {
		return
	}
	f := fileStamp{resolved: resolved, size: st.Size(), mtime: st.ModTime().UnixNano(),
		racy: now.Sub(st.ModTime()) < racyWindow, sum: sha1.Sum(data)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.files == nil {
		s.files = map[string]fileStamp{}
	}
	s.files[path] = f
}

func (s *Sources) glob(pattern string, matches []string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.globs == nil {
		s.globs = map[string][sha1.Size]byte{}
	}
	s.globs[pattern] = hashList(matches)
}

func hashList(items []string) [sha1.Size]byte {
	h := sha1.New()
	var b []byte
	for _, it := range items {
		b = binary.AppendUvarint(b[:0], uint64(len(it)))
		h.Write(b)
		h.Write([]byte(it))
	}
	var out [sha1.Size]byte
	h.Sum(out[:0])
	return out
}

// Empty reports whether nothing was recorded.
func (s *Sources) Empty() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.volatile && len(s.files) == 0 && len(s.globs) == 0
}

// Encode returns the record in a stable binary form (sorted, so that the
// same reads always encode the same bytes). A volatile record encodes as
// nil: there is nothing to revalidate.
func (s *Sources) Encode() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.volatile {
		return nil
	}
	b := []byte{sourcesVersion}
	b = binary.AppendUvarint(b, uint64(len(s.files)))
	for _, p := range sortedKeys(s.files) {
		f := s.files[p]
		b = appendStr(appendStr(b, p), f.resolved)
		b = binary.AppendVarint(binary.AppendVarint(b, f.size), f.mtime)
		racy := byte(0)
		if f.racy {
			racy = 1
		}
		b = append(append(b, racy), f.sum[:]...)
	}
	b = binary.AppendUvarint(b, uint64(len(s.globs)))
	for _, p := range sortedKeys(s.globs) {
		sum := s.globs[p]
		b = append(appendStr(b, p), sum[:]...)
	}
	return b
}

const sourcesVersion = 2

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func appendStr(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

var errBadRecord = errors.New("bad sources record")

// Unchanged reports whether every source in rec, a record Encode wrote, is
// as it was: each file still resolves to the same path with the same
// content (a stat when its stamp is trusted, else a read and a hash), each
// glob still matches the same files. Anything
// it cannot check (a corrupt record, a file now outside the roots, an
// error) counts as changed, so the caller reads again.
func (r *Reader) Unchanged(rec []byte) bool {
	ok, _ := r.Revalidate(rec)
	return ok
}

// Revalidate is Unchanged that also returns an updated record when a file
// had to be hashed to prove it unchanged (its stamp moved, or it was racy
// and is old enough now): storing it lets the next check stat the file
// instead of reading it again. updated is nil when rec needs no update.
func (r *Reader) Revalidate(rec []byte) (ok bool, updated []byte) {
	src, ok, err := r.revalidate(rec)
	if err != nil || !ok {
		return false, nil
	}
	if src != nil {
		return true, src.Encode()
	}
	return true, nil
}

// rehash reads and hashes the files at paths, in parallel, and updates
// their stamps in files. same is false when any content (or readability)
// changed; refreshed says whether a stamp moved.
func (r *Reader) rehash(files map[string]fileStamp, paths []string) (refreshed, same bool) {
	if len(paths) == 0 {
		return false, true
	}
	now := time.Now()
	fresh := make([]fileStamp, len(paths))
	ok := make([]bool, len(paths))
	sem := make(chan struct{}, max(1, runtime.GOMAXPROCS(0)))
	var wg sync.WaitGroup
	for i, path := range paths {
		f := files[path]
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			data, _, st, err := r.readFile(path)
			if err != nil || sha1.Sum(data) != f.sum {
				return
			}
			fresh[i] = fileStamp{resolved: f.resolved, size: st.Size(), mtime: st.ModTime().UnixNano(),
				racy: now.Sub(st.ModTime()) < racyWindow, sum: f.sum}
			ok[i] = true
		})
	}
	wg.Wait()
	for i, path := range paths {
		if !ok[i] {
			return false, false
		}
		if fresh[i] != files[path] {
			files[path], refreshed = fresh[i], true
		}
	}
	return refreshed, true
}

// revalidate checks rec; src is the record rebuilt with fresh stamps when
// any file's stamp was refreshed, else nil.
func (r *Reader) revalidate(rec []byte) (src *Sources, ok bool, err error) {
	if len(rec) == 0 || rec[0] != sourcesVersion {
		return nil, false, errBadRecord
	}
	d := recDecoder{b: rec[1:]}
	files := map[string]fileStamp{}
	// Files whose stamp cannot be trusted are hashed after the stat pass,
	// in parallel: a Location listing a hundred freshly written files
	// would otherwise read them one after the other.
	var rehash []string
	for n := d.uvarint(); n > 0 && d.err == nil; n-- {
		path, resolved := d.str(), d.str()
		size, mtime := d.varint(), d.varint()
		racy := d.fixed(1)
		sum := d.fixed(sha1.Size)
		if d.err != nil {
			break
		}
		f := fileStamp{resolved: resolved, size: size, mtime: mtime, racy: racy[0] != 0}
		copy(f.sum[:], sum)
		res, err := r.confine(path)
		if err != nil || res != resolved {
			return nil, false, nil
		}
		st, err := os.Stat(res)
		if err != nil || st.Size() != size {
			return nil, false, nil
		}
		if st.ModTime().UnixNano() != mtime || f.racy {
			rehash = append(rehash, path)
		}
		files[path] = f
	}
	if d.err != nil {
		return nil, false, errBadRecord
	}
	refreshed, same := r.rehash(files, rehash)
	if !same {
		return nil, false, nil
	}
	globs := map[string][sha1.Size]byte{}
	for n := d.uvarint(); n > 0 && d.err == nil; n-- {
		pattern := d.str()
		sum := d.fixed(sha1.Size)
		if d.err != nil {
			break
		}
		matches, err := r.glob(pattern)
		if err != nil {
			return nil, false, nil
		}
		got := hashList(matches)
		if string(got[:]) != string(sum) {
			return nil, false, nil
		}
		globs[pattern] = got
	}
	if d.err != nil || len(d.b) != 0 {
		return nil, false, errBadRecord
	}
	if refreshed {
		return &Sources{files: files, globs: globs}, true, nil
	}
	return nil, true, nil
}

type recDecoder struct {
	b   []byte
	err error
}

func (d *recDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	n, k := binary.Uvarint(d.b)
	if k <= 0 || n > uint64(len(d.b)) {
		d.err = errBadRecord
		return 0
	}
	d.b = d.b[k:]
	return n
}

func (d *recDecoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	n, k := binary.Varint(d.b)
	if k <= 0 {
		d.err = errBadRecord
		return 0
	}
	d.b = d.b[k:]
	return n
}

func (d *recDecoder) fixed(n int) []byte {
	if d.err != nil || len(d.b) < n {
		d.err = errBadRecord
		return nil
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out
}

func (d *recDecoder) str() string {
	n := d.uvarint()
	return string(d.fixed(int(n)))
}
