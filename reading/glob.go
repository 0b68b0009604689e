package reading

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
)

// Glob returns the regular files matching an absolute doublestar pattern
// ("/catalog/**/*.yaml", "/catalog/{a,b}.yaml"), sorted. The part of the
// pattern before the first wildcard must lie under a root, else
// ErrNotAllowed. Matches whose resolved path escapes the roots through a
// symlink are left out, so the result never names a file ReadFile would
// refuse; symlinked folders are not descended by "**", which also keeps
// symlink loops from running away. A pattern without wildcards matches the
// file it names, if it exists. No match is not an error: it returns nil.
//
// A Sources in ctx (WithSources) records the pattern and what it matched,
// so that a file added or removed later counts as a change.
func (r *Reader) Glob(ctx context.Context, pattern string) ([]string, error) {
	src := sourcesOf(ctx)
	matches, err := r.glob(pattern)
	if err != nil {
		src.MarkVolatile()
		return nil, err
	}
	src.glob(pattern, matches)
	return matches, nil
}

func (r *Reader) glob(pattern string) ([]string, error) {
	if !filepath.IsAbs(pattern) {
		return nil, fmt.Errorf("glob %s: pattern is not absolute: %w", pattern, ErrNotAllowed)
	}
	if !strings.ContainsAny(pattern, `*?[{\`) {
		// No wildcard: the pattern names one path.
		resolved, err := r.confine(pattern)
		if errors.Is(err, ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("glob %s: %w", pattern, err)
		}
		if st, err := os.Stat(resolved); err != nil || !st.Mode().IsRegular() {
			return nil, nil
		}
		return []string{filepath.Clean(pattern)}, nil
	}
	clean := filepath.ToSlash(filepath.Clean(pattern))
	if !doublestar.ValidatePattern(clean) {
		return nil, fmt.Errorf("glob %s: %w", pattern, doublestar.ErrBadPattern)
	}
	base, rest := doublestar.SplitPattern(clean)
	base = filepath.FromSlash(base)
	if !r.underRoot(base, false) {
		return nil, fmt.Errorf("glob %s: %w", pattern, r.outside())
	}
	resolvedBase, err := filepath.EvalSymlinks(base)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("glob %s: %w", pattern, fileErr(err))
	}
	if !r.underRoot(resolvedBase, true) {
		return nil, fmt.Errorf("glob %s: %w", pattern, r.outside())
	}
	found, err := doublestar.Glob(os.DirFS(resolvedBase), rest,
		doublestar.WithFilesOnly(), doublestar.WithNoFollow())
	if err != nil {
		return nil, fmt.Errorf("glob %s: %w", pattern, err)
	}
	var out []string
	for _, m := range found {
		p := filepath.Join(base, filepath.FromSlash(m))
		// WithNoFollow reports symlinks to folders as files; keep regular
		// files (through symlinks) that stay under the roots only.
		res, err := filepath.EvalSymlinks(p)
		if err != nil || !r.underRoot(res, true) {
			continue
		}
		st, err := os.Stat(res)
		if err != nil || !st.Mode().IsRegular() {
			continue
		}
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}
