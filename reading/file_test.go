package reading

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// tree builds files (path → content) under a fresh folder and returns its
// symlink-resolved path, so that tests compare against what the OS reports.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Skipf("symlinks not available: %v", err)
	}
}

func TestReadFile(t *testing.T) {
	outside := tree(t, map[string]string{"secret.txt": "secret", "dir/x.yaml": "x"})
	base := tree(t, map[string]string{
		"root/a.yaml":     "kind: A",
		"root/sub/b.yaml": "kind: B",
		"root/big.yaml":   strings.Repeat("x", 101),
		"root/exact.yaml": strings.Repeat("x", 100),
		"sibling/c.yaml":  "kind: C",
	})
	root := filepath.Join(base, "root")
	symlink(t, filepath.Join(outside, "secret.txt"), filepath.Join(root, "secret-link.txt"))
	symlink(t, filepath.Join(outside, "dir"), filepath.Join(root, "dirlink"))
	symlink(t, filepath.Join(root, "a.yaml"), filepath.Join(root, "inner-link.yaml"))
	symlink(t, filepath.Join(root, "missing.yaml"), filepath.Join(root, "dangling.yaml"))

	r := New(Policy{Roots: []string{root, filepath.Join(base, "other")}, MaxBytes: 100})

	tests := []struct {
		name    string
		path    string
		want    string
		errIs   error
		errText string
	}{
		{name: "plain", path: filepath.Join(root, "a.yaml"), want: "kind: A"},
		{name: "nested", path: filepath.Join(root, "sub", "b.yaml"), want: "kind: B"},
		{name: "dot segments that stay inside", path: root + "/sub/../a.yaml", want: "kind: A"},
		{name: "symlink inside the root", path: filepath.Join(root, "inner-link.yaml"), want: "kind: A"},
		{name: "exactly the limit", path: filepath.Join(root, "exact.yaml"), want: strings.Repeat("x", 100)},
		{name: "missing", path: filepath.Join(root, "nope.yaml"), errIs: ErrNotFound},
		{name: "dangling symlink", path: filepath.Join(root, "dangling.yaml"), errIs: ErrNotFound},
		{name: "outside", path: filepath.Join(outside, "secret.txt"), errIs: ErrNotAllowed,
			errText: "read file " + filepath.Join(outside, "secret.txt") + ": outside the allowed folders [" + root + " " + filepath.Join(base, "other") + "]: not allowed"},
		{name: "sibling folder with the root as prefix", path: filepath.Join(base, "sibling", "c.yaml"), errIs: ErrNotAllowed},
		{name: "root name prefix", path: root + "x/a.yaml", errIs: ErrNotAllowed},
		{name: "dot-dot escape", path: root + "/../sibling/c.yaml", errIs: ErrNotAllowed},
		{name: "symlinked file escape", path: filepath.Join(root, "secret-link.txt"), errIs: ErrNotAllowed},
		{name: "symlinked folder escape", path: filepath.Join(root, "dirlink", "x.yaml"), errIs: ErrNotAllowed},
		{name: "missing outside is not allowed, not not found", path: filepath.Join(outside, "nope"), errIs: ErrNotAllowed},
		{name: "relative", path: "a.yaml", errIs: ErrNotAllowed},
		{name: "over the limit", path: filepath.Join(root, "big.yaml"), errText: "over the limit of 100 bytes"},
		{name: "a folder", path: filepath.Join(root, "sub"), errText: "not a regular file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := r.ReadFile(context.Background(), tc.path)
			if tc.errIs == nil && tc.errText == "" {
				if err != nil {
					t.Fatalf("ReadFile: %v", err)
				}
				if string(got) != tc.want {
					t.Fatalf("got %q, want %q", got, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("ReadFile succeeded with %q, want an error", got)
			}
			if tc.errIs != nil && !errors.Is(err, tc.errIs) {
				t.Errorf("error %q does not wrap %v", err, tc.errIs)
			}
			if tc.errText != "" && !strings.Contains(err.Error(), tc.errText) {
				t.Errorf("error %q does not contain %q", err, tc.errText)
			}
			if !strings.Contains(err.Error(), tc.path) {
				t.Errorf("error %q does not name the path", err)
			}
		})
	}
}

func TestZeroPolicyAllowsNothing(t *testing.T) {
	dir := tree(t, map[string]string{"a.yaml": "a"})
	r := New(Policy{})
	if _, err := r.ReadFile(context.Background(), filepath.Join(dir, "a.yaml")); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("ReadFile with no roots: %v, want ErrNotAllowed", err)
	}
	if _, err := r.Fetch(context.Background(), "https://example.com/x", FetchOptions{}); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("Fetch with no hosts: %v, want ErrNotAllowed", err)
	}
}

func TestRootThroughSymlink(t *testing.T) {
	// A root that is itself a symlink (as /tmp is on macOS) must work both
	// when files are named through the link and through the real path.
	real := tree(t, map[string]string{"a.yaml": "a"})
	linkBase := t.TempDir()
	link := filepath.Join(linkBase, "link")
	symlink(t, real, link)
	r := New(Policy{Roots: []string{link}})
	for _, p := range []string{filepath.Join(link, "a.yaml")} {
		if _, err := r.ReadFile(context.Background(), p); err != nil {
			t.Errorf("ReadFile(%s): %v", p, err)
		}
	}
	if _, err := r.ReadFile(context.Background(), filepath.Join(real, "a.yaml")); !errors.Is(err, ErrNotAllowed) {
		// The cleaned path must be under a root as written.
		t.Errorf("ReadFile through the real path: %v, want ErrNotAllowed", err)
	}
}

func TestGlob(t *testing.T) {
	outside := tree(t, map[string]string{"x.yaml": "x", "d/y.yaml": "y"})
	root := tree(t, map[string]string{
		"a.yaml":          "a",
		"b.yaml":          "b",
		"c.json":          "c",
		"sub/d.yaml":      "d",
		"sub/deep/e.yaml": "e",
		"dir.yaml/f.txt":  "a folder named like a file",
	})
	symlink(t, filepath.Join(outside, "x.yaml"), filepath.Join(root, "escape.yaml"))
	symlink(t, filepath.Join(outside, "d"), filepath.Join(root, "linkdir"))
	symlink(t, filepath.Join(root, "a.yaml"), filepath.Join(root, "z-inner.yaml"))
	r := New(Policy{Roots: []string{root}})
	j := func(names ...string) []string {
		var out []string
		for _, n := range names {
			out = append(out, filepath.Join(root, filepath.FromSlash(n)))
		}
		return out
	}

	tests := []struct {
		name    string
		pattern string
		want    []string
		errIs   error
	}{
		{name: "star", pattern: root + "/*.yaml", want: j("a.yaml", "b.yaml", "z-inner.yaml")},
		{name: "doublestar", pattern: root + "/**/*.yaml", want: j("a.yaml", "b.yaml", "sub/d.yaml", "sub/deep/e.yaml", "z-inner.yaml")},
		{name: "alternatives", pattern: root + "/{a,c}.{yaml,json}", want: j("a.yaml", "c.json")},
		{name: "plain file", pattern: root + "/sub/d.yaml", want: j("sub/d.yaml")},
		{name: "plain missing file", pattern: root + "/nope.yaml", want: nil},
		{name: "missing base folder", pattern: root + "/nope/*.yaml", want: nil},
		{name: "no match", pattern: root + "/*.toml", want: nil},
		{name: "the root folder itself", pattern: root, want: nil},
		{name: "base outside", pattern: outside + "/*.yaml", errIs: ErrNotAllowed},
		{name: "dot-dot escape", pattern: root + "/../*/*.yaml", errIs: ErrNotAllowed},
		{name: "wildcard then dot-dot", pattern: root + "/*/../../*.yaml", errIs: ErrNotAllowed},
		{name: "base through an escaping symlink", pattern: root + "/linkdir/*.yaml", errIs: ErrNotAllowed},
		{name: "relative", pattern: "*.yaml", errIs: ErrNotAllowed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := r.Glob(context.Background(), tc.pattern)
			if tc.errIs != nil {
				if !errors.Is(err, tc.errIs) {
					t.Fatalf("Glob(%s) = %v, %v; want %v", tc.pattern, got, err, tc.errIs)
				}
				return
			}
			if err != nil {
				t.Fatalf("Glob(%s): %v", tc.pattern, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Glob(%s)\n got %v\nwant %v", tc.pattern, got, tc.want)
			}
		})
	}
}

func TestReadDispatch(t *testing.T) {
	root := tree(t, map[string]string{"a.yaml": "kind: A"})
	r := New(Policy{Roots: []string{root}})
	ctx := context.Background()
	for _, target := range []string{root + "/a.yaml", "file://" + root + "/a.yaml", "file://localhost" + root + "/a.yaml"} {
		resp, err := r.Read(ctx, target, FetchOptions{})
		if err != nil {
			t.Fatalf("Read(%s): %v", target, err)
		}
		if resp.Status != 200 || string(resp.Body) != "kind: A" {
			t.Fatalf("Read(%s) = %d %q", target, resp.Status, resp.Body)
		}
	}
	for _, target := range []string{"a.yaml", "ftp://example.com/a", "file://other-host/etc/passwd", ""} {
		if _, err := r.Read(ctx, target, FetchOptions{}); err == nil {
			t.Errorf("Read(%q) succeeded, want an error", target)
		}
	}
	if _, err := r.Read(ctx, "file:///etc/passwd", FetchOptions{}); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("Read(file:///etc/passwd): %v, want ErrNotAllowed", err)
	}
}

func TestPolicyDefaults(t *testing.T) {
	p := New(Policy{Roots: []string{"/a/b/../c/", "relative"}, Hosts: []string{"x.com"}}).Policy()
	if p.MaxBytes != DefaultMaxBytes || p.Timeout != DefaultTimeout {
		t.Errorf("defaults not applied: %+v", p)
	}
	if !reflect.DeepEqual(p.Roots, []string{"/a/c"}) {
		t.Errorf("roots = %v, want [/a/c]", p.Roots)
	}
}
