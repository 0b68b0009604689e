package builtin

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/catalog-pipeline/pipeline/engine"
	"github.com/catalog-pipeline/pipeline/reading"
)

// locLog collects what a ReadLocation call emits.
type locLog struct{ results []engine.Result }

func (l *locLog) emit(r engine.Result) { l.results = append(l.results, r) }

// entities returns "location target → entity name" for each entity result.
func (l *locLog) entities() []string {
	var out []string
	for _, r := range l.results {
		if e, ok := r.(engine.EntityResult); ok {
			out = append(out, e.Location.Type+":"+e.Location.Target+" "+e.Entity.Metadata.Name)
		}
	}
	return out
}

func (l *locLog) errors() []engine.ErrorResult {
	var out []engine.ErrorResult
	for _, r := range l.results {
		if e, ok := r.(engine.ErrorResult); ok {
			out = append(out, e)
		}
	}
	return out
}

func (l *locLog) refreshKeys() []string {
	var out []string
	for _, r := range l.results {
		if k, ok := r.(engine.RefreshResult); ok {
			out = append(out, k.Key)
		}
	}
	return out
}

// memoryCache is an engine.Cache kept in a map.
type memoryCache map[string]any

func (c memoryCache) Get(k string) (any, bool) { v, ok := c[k]; return v, ok }
func (c memoryCache) Set(k string, v any)      { c[k] = v }

func writeFiles(t *testing.T, files map[string]string) string {
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

func newLocationReader(t *testing.T, spec engine.StageSpec, p reading.Policy, settings map[string]string) engine.LocationReader {
	t.Helper()
	b := engine.Build{Pipeline: "test", Stage: spec.Name, Reader: reading.New(p), Settings: defaultSettings(spec)}
	for k, v := range settings {
		b.Settings[k] = ctyString(v)
	}
	st, err := spec.New(b)
	if err != nil {
		t.Fatal(err)
	}
	lr, ok := st.(engine.LocationReader)
	if !ok {
		t.Fatalf("%s is not a LocationReader", spec.Name)
	}
	return lr
}

func entityDoc(name string) string {
	return "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: " + name + "\nspec:\n  type: service\n"
}

func TestFileStage(t *testing.T) {
	outside := writeFiles(t, map[string]string{"secret.yaml": entityDoc("secret")})
	root := writeFiles(t, map[string]string{
		"one.yaml":        entityDoc("one"),
		"multi.yaml":      entityDoc("m1") + "---\n- not an object\n---\n" + entityDoc("m2") + "---\n",
		"broken.yaml":     entityDoc("before-break") + "---\nkind: X\n  bad: [\n",
		"data.json":       `{"apiVersion": "backstage.io/v1alpha1", "kind": "Component", "metadata": {"name": "from-json"}}`,
		"glob/a.yaml":     entityDoc("ga"),
		"glob/b.yaml":     entityDoc("gb"),
		"glob/sub/c.yaml": entityDoc("gc"),
		"glob/skip.txt":   "not yaml",
	})
	if err := os.Symlink(filepath.Join(outside, "secret.yaml"), filepath.Join(root, "glob", "escape.yaml")); err != nil {
		t.Skipf("symlinks not available: %v", err)
	}
	st := newLocationReader(t, FileSpec, reading.Policy{Roots: []string{root}}, nil)
	f := func(name string) string { return filepath.Join(root, filepath.FromSlash(name)) }

	tests := []struct {
		name     string
		target   string
		optional bool
		entities []string
		errs     []string // substrings of emitted errors (InputError unless noted)
		refresh  []string
		retName  string // engine error name of the returned error, "" for none
		retText  string
	}{
		{
			name: "single file", target: f("one.yaml"),
			entities: []string{"file:" + f("one.yaml") + " one"},
			refresh:  []string{"file:" + f("one.yaml")},
		},
		{
			name: "multi-document with a bad document", target: f("multi.yaml"),
			entities: []string{"file:" + f("multi.yaml") + " m1", "file:" + f("multi.yaml") + " m2"},
			errs:     []string{f("multi.yaml") + ":8: expected an object at the root of the document, got array"},
			refresh:  []string{"file:" + f("multi.yaml")},
		},
		{
			name: "syntax error keeps earlier documents", target: f("broken.yaml"),
			entities: []string{"file:" + f("broken.yaml") + " before-break"},
			errs:     []string{f("broken.yaml") + ":9: yaml: "},
			refresh:  []string{"file:" + f("broken.yaml")},
		},
		{
			name: "JSON file", target: f("data.json"),
			entities: []string{"file:" + f("data.json") + " from-json"},
			refresh:  []string{"file:" + f("data.json")},
		},
		{
			name: "glob over several files, escaping symlink left out", target: root + "/glob/**/*.yaml",
			entities: []string{"file:" + f("glob/a.yaml") + " ga", "file:" + f("glob/b.yaml") + " gb", "file:" + f("glob/sub/c.yaml") + " gc"},
			refresh:  []string{"file:" + f("glob/a.yaml"), "file:" + f("glob/b.yaml"), "file:" + f("glob/sub/c.yaml")},
		},
		{
			name: "missing, required", target: f("nope.yaml"),
			retName: engine.NotFoundErrorName, retText: "file " + f("nope.yaml") + " does not exist",
		},
		{name: "missing, optional", target: f("nope.yaml"), optional: true},
		{name: "glob without match, optional", target: root + "/nothing/*.yaml", optional: true},
		{
			name: "outside the roots", target: filepath.Join(outside, "secret.yaml"),
			retName: engine.GeneralErrorName, retText: "outside the allowed folders",
		},
		{
			name: "dot-dot escape", target: root + "/../" + filepath.Base(outside) + "/secret.yaml",
			retName: engine.GeneralErrorName, retText: "not allowed",
		},
		{
			name: "direct symlink escape", target: f("glob/escape.yaml"),
			retName: engine.GeneralErrorName, retText: "not allowed",
		},
		{
			name: "relative target", target: "one.yaml",
			retName: engine.InputErrorName, retText: "not an absolute path",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var log locLog
			handled, err := st.ReadLocation(context.Background(), engine.Location{Type: "file", Target: tc.target}, tc.optional, log.emit, memoryCache{})
			if !handled {
				t.Fatal("not handled")
			}
			checkReturned(t, err, tc.retName, tc.retText)
			if got := log.entities(); !reflect.DeepEqual(got, tc.entities) {
				t.Errorf("entities\n got %q\nwant %q", got, tc.entities)
			}
			if got := log.refreshKeys(); !reflect.DeepEqual(got, tc.refresh) {
				t.Errorf("refresh keys\n got %q\nwant %q", got, tc.refresh)
			}
			errs := log.errors()
			if len(errs) != len(tc.errs) {
				t.Fatalf("emitted errors %v, want %d", errs, len(tc.errs))
			}
			for i, e := range errs {
				var pe *engine.ProcessingError
				if !errors.As(e.Err, &pe) || pe.Name != engine.InputErrorName {
					t.Errorf("error %d is %#v, want an InputError", i, e.Err)
				}
				if !strings.Contains(e.Err.Error(), tc.errs[i]) {
					t.Errorf("error %d = %q, want it to contain %q", i, e.Err, tc.errs[i])
				}
				if e.Location.Type != "file" || e.Location.Target != tc.target {
					t.Errorf("error %d at %v, want file:%s", i, e.Location, tc.target)
				}
			}
		})
	}

	t.Run("other location types are not handled", func(t *testing.T) {
		var log locLog
		handled, err := st.ReadLocation(context.Background(), engine.Location{Type: "url", Target: "https://x/y.yaml"}, false, log.emit, memoryCache{})
		if handled || err != nil || len(log.results) != 0 {
			t.Fatalf("handled=%v err=%v results=%v", handled, err, log.results)
		}
	})
}

func TestFileStageUnreadableFileInGlob(t *testing.T) {
	root := writeFiles(t, map[string]string{
		"a.yaml":   entityDoc("a"),
		"big.yaml": entityDoc("big") + "  padding: " + strings.Repeat("x", 400) + "\n",
		"c.yaml":   entityDoc("c"),
	})
	st := newLocationReader(t, FileSpec, reading.Policy{Roots: []string{root}, MaxBytes: 300}, nil)
	var log locLog
	handled, err := st.ReadLocation(context.Background(), engine.Location{Type: "file", Target: root + "/*.yaml"}, false, log.emit, memoryCache{})
	if !handled || err != nil {
		t.Fatalf("handled=%v err=%v", handled, err)
	}
	want := []string{"file:" + root + "/a.yaml a", "file:" + root + "/c.yaml c"}
	if got := log.entities(); !reflect.DeepEqual(got, want) {
		t.Errorf("entities %q, want %q", got, want)
	}
	errs := log.errors()
	if len(errs) != 1 || errs[0].Location.Target != root+"/big.yaml" || !strings.Contains(errs[0].Err.Error(), "over the limit") {
		t.Fatalf("errors %v", errs)
	}
	var pe *engine.ProcessingError
	if !errors.As(errs[0].Err, &pe) || pe.Name != engine.GeneralErrorName {
		t.Errorf("error is %#v, want a general Error", errs[0].Err)
	}
	if got := log.refreshKeys(); len(got) != 3 {
		t.Errorf("refresh keys %q, want one per matched file", got)
	}
}

func TestFileStageCancelled(t *testing.T) {
	root := writeFiles(t, map[string]string{"a.yaml": entityDoc("a")})
	st := newLocationReader(t, FileSpec, reading.Policy{Roots: []string{root}}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	var log locLog
	_, err := st.ReadLocation(ctx, engine.Location{Type: "file", Target: root + "/a.yaml"}, false, log.emit, memoryCache{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the context's error", err)
	}
}

// checkReturned checks the error ReadLocation returned.
func checkReturned(t *testing.T, err error, name, text string) {
	t.Helper()
	if name == "" {
		if err != nil {
			t.Fatalf("returned %v", err)
		}
		return
	}
	var pe *engine.ProcessingError
	if !errors.As(err, &pe) {
		t.Fatalf("returned %#v, want a *ProcessingError %s", err, name)
	}
	if pe.Name != name || !strings.Contains(pe.Message, text) {
		t.Fatalf("returned %s %q, want %s containing %q", pe.Name, pe.Message, name, text)
	}
}

// defaultSettings gives every field of a spec its default, as the
// configuration loader does.
func defaultSettings(spec engine.StageSpec) map[string]cty.Value {
	out := map[string]cty.Value{}
	for _, f := range spec.Fields {
		if f.Default == cty.NilVal {
			out[f.Name] = cty.NullVal(f.Type)
		} else {
			out[f.Name] = f.Default
		}
	}
	return out
}

func ctyString(s string) cty.Value { return cty.StringVal(s) }
