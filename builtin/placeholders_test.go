package builtin

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/catalog-pipeline/pipeline/catalog"
	"github.com/catalog-pipeline/pipeline/engine"
	"github.com/catalog-pipeline/pipeline/reading"
)

// resultLog records what a hook emits.
type resultLog struct{ results []engine.Result }

func (c *resultLog) emit(r engine.Result) { c.results = append(c.results, r) }

func (c *resultLog) refreshKeys() []string {
	var out []string
	for _, r := range c.results {
		if k, ok := r.(engine.RefreshResult); ok {
			out = append(out, k.Key)
		}
	}
	return out
}

func (c *resultLog) relations() []engine.RelationResult {
	var out []engine.RelationResult
	for _, r := range c.results {
		if rel, ok := r.(engine.RelationResult); ok {
			out = append(out, rel)
		}
	}
	return out
}

func placeholderFixtures(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("testdata", "placeholders"))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func readPlaceholderFixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(placeholderFixtures(t), name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func newPlaceholders(t *testing.T, roots, hosts []string) engine.PreProcessor {
	t.Helper()
	r := reading.New(reading.Policy{Roots: roots, Hosts: hosts, MaxBytes: 1 << 20, Timeout: 5 * time.Second})
	st, err := PlaceholdersSpec.New(engine.Build{Pipeline: "test", Stage: "resolve", Reader: r})
	if err != nil {
		t.Fatal(err)
	}
	if st.Name() != "resolve" {
		t.Fatalf("Name() = %q, want the stage name it was built with", st.Name())
	}
	return st.(engine.PreProcessor)
}

func placeholderEntity(spec map[string]any) *catalog.Entity {
	return &catalog.Entity{
		APIVersion: catalog.APIVersionV1alpha1,
		Kind:       catalog.KindAPI,
		Metadata:   catalog.Metadata{Name: "petstore"},
		Spec:       spec,
	}
}

// placeholderSchema is testdata/placeholders/schema.json as it must come out:
// JSON-shaped, with its own $ref left alone.
var placeholderSchema = map[string]any{
	"type":       "object",
	"properties": map[string]any{"id": map[string]any{"$ref": "#/definitions/id"}},
	"count":      float64(3),
	"tags":       []any{"a", "b"},
}

// placeholderData is testdata/placeholders/data.yaml; the date stays a string.
var placeholderData = map[string]any{
	"name":     "petstore",
	"released": "2024-01-02",
	"count":    3,
	"ratio":    0.5,
	"flags":    []any{true, false},
	"nested":   []any{map[string]any{"key": "value"}},
}

type placeholderTest struct {
	name     string
	spec     map[string]any
	wantSpec map[string]any // nil: must equal spec (untouched)
	wantKeys []string
	wantErr  []string // substrings of the error; nil: no error
	errIs    error
}

func runPlaceholderCases(t *testing.T, st engine.PreProcessor, loc engine.Location, cases []placeholderTest) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := placeholderEntity(tc.spec)
			before := in.Clone()
			var c resultLog
			out, err := st.PreProcessEntity(context.Background(), in, loc, c.emit, nil)
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("no error; spec = %#v", out.Spec)
				}
				var pe *engine.ProcessingError
				if !errors.As(err, &pe) || pe.Name != engine.InputErrorName {
					t.Errorf("error %v is not an InputError", err)
				}
				for _, want := range tc.wantErr {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not contain %q", err, want)
					}
				}
				if tc.errIs != nil && !errors.Is(err, tc.errIs) {
					t.Errorf("error %v is not %v", err, tc.errIs)
				}
			} else if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			want := tc.wantSpec
			if want == nil {
				want = before.Spec
			}
			if err == nil && !reflect.DeepEqual(out.Spec, want) {
				t.Errorf("spec =\n%#v\nwant\n%#v", out.Spec, want)
			}
			if !reflect.DeepEqual(in.Spec, before.Spec) {
				t.Errorf("the input entity was changed: %#v", in.Spec)
			}
			if got := c.refreshKeys(); !reflect.DeepEqual(got, tc.wantKeys) {
				t.Errorf("refresh keys = %q, want %q", got, tc.wantKeys)
			}
		})
	}
}

func TestPlaceholdersFileLocation(t *testing.T) {
	dir := placeholderFixtures(t)
	st := newPlaceholders(t, []string{dir}, nil)
	loc := engine.Location{Type: "file", Target: filepath.Join(dir, "catalog-info.yaml")}
	outside := filepath.Join(t.TempDir(), "secret.txt")
	if err := os.WriteFile(outside, []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	openapi := readPlaceholderFixture(t, "openapi.yaml")
	fileKey := func(name string) string { return "file:" + filepath.Join(dir, name) }

	runPlaceholderCases(t, st, loc, []placeholderTest{
		{
			name:     "text",
			spec:     map[string]any{"type": "openapi", "definition": map[string]any{"$text": "./openapi.yaml"}},
			wantSpec: map[string]any{"type": "openapi", "definition": openapi},
			wantKeys: []string{fileKey("openapi.yaml")},
		},
		{
			name:     "json",
			spec:     map[string]any{"schema": map[string]any{"$json": "schema.json"}},
			wantSpec: map[string]any{"schema": placeholderSchema},
			wantKeys: []string{fileKey("schema.json")},
		},
		{
			name:     "yaml",
			spec:     map[string]any{"data": map[string]any{"$yaml": "./data.yaml"}},
			wantSpec: map[string]any{"data": placeholderData},
			wantKeys: []string{fileKey("data.yaml")},
		},
		{
			name:     "absolute path and subfolder",
			spec:     map[string]any{"a": map[string]any{"$text": filepath.Join(dir, "sub", "child.txt")}, "b": map[string]any{"$text": "sub/child.txt"}},
			wantSpec: map[string]any{"a": "from a subfolder\n", "b": "from a subfolder\n"},
			wantKeys: []string{fileKey("sub/child.txt"), fileKey("sub/child.txt")},
		},
		{
			name: "nested inside arrays and objects",
			spec: map[string]any{"items": []any{
				"plain",
				map[string]any{"doc": map[string]any{"$text": "./sub/child.txt"}},
				[]any{map[string]any{"$json": "./schema.json"}},
			}},
			wantSpec: map[string]any{"items": []any{
				"plain",
				map[string]any{"doc": "from a subfolder\n"},
				[]any{placeholderSchema},
			}},
			wantKeys: []string{fileKey("sub/child.txt"), fileKey("schema.json")},
		},
		{
			name: "more than one key is not a placeholder",
			spec: map[string]any{"definition": map[string]any{"$text": "./openapi.yaml", "other": "y"}},
		},
		{
			name: "unknown dollar key is not a placeholder",
			spec: map[string]any{"schema": map[string]any{"$ref": "./openapi.yaml"}},
		},
		{
			name:    "non-string value",
			spec:    map[string]any{"definition": map[string]any{"$text": 42}},
			wantErr: []string{"spec.definition", "$text", "string", "number"},
		},
		{
			name:    "yaml with two documents",
			spec:    map[string]any{"data": map[string]any{"$yaml": "./two-docs.yaml"}},
			wantErr: []string{"spec.data: $yaml ./two-docs.yaml: read YAML from " + filepath.Join(dir, "two-docs.yaml") + ": expected exactly one YAML document, found 2"},
			// the read itself succeeded, so its key was registered
			wantKeys: []string{fileKey("two-docs.yaml")},
		},
		{
			name:     "invalid json",
			spec:     map[string]any{"schema": map[string]any{"$json": "./broken.json"}},
			wantErr:  []string{"spec.schema: $json ./broken.json: parse JSON from " + filepath.Join(dir, "broken.json")},
			wantKeys: []string{fileKey("broken.json")},
		},
		{
			name:    "missing file names the placeholder, the field and the path",
			spec:    map[string]any{"definition": map[string]any{"$text": "./nope.yaml"}},
			wantErr: []string{"spec.definition: $text ./nope.yaml: read file " + filepath.Join(dir, "nope.yaml")},
			errIs:   reading.ErrNotFound,
		},
		{
			name:    "read outside the roots is refused",
			spec:    map[string]any{"definition": map[string]any{"$text": outside}},
			wantErr: []string{"spec.definition: $text " + outside, "read file " + outside},
			errIs:   reading.ErrNotAllowed,
		},
		{
			name:    "escape with .. is refused",
			spec:    map[string]any{"definition": map[string]any{"$text": "../../placeholders.go"}},
			wantErr: []string{"spec.definition"},
			errIs:   reading.ErrNotAllowed,
		},
		{
			name: "siblings are all resolved, the first error is returned",
			spec: map[string]any{
				"a": map[string]any{"$text": "./missing-a.txt"},
				"b": map[string]any{"$text": "./openapi.yaml"},
				"c": map[string]any{"$text": "./missing-c.txt"},
			},
			wantErr:  []string{"spec.a: $text ./missing-a.txt"},
			wantKeys: []string{fileKey("openapi.yaml")},
		},
	})
}

func TestPlaceholdersURLLocation(t *testing.T) {
	dir := placeholderFixtures(t)
	mux := http.NewServeMux()
	serve := func(path, name string) {
		body := readPlaceholderFixture(t, name)
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(body))
		})
	}
	serve("/repo/openapi.yaml", "openapi.yaml")
	serve("/repo/schema.json", "schema.json")
	serve("/repo/data.yaml", "data.yaml")
	serve("/repo/two-docs.yaml", "two-docs.yaml")
	serve("/shared/child.txt", "sub/child.txt")
	mux.HandleFunc("/branch/openapi.yaml", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("ref") != "dev" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte("dev branch"))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	st := newPlaceholders(t, []string{dir}, []string{"127.0.0.1"})
	loc := engine.Location{Type: "url", Target: srv.URL + "/repo/catalog-info.yaml"}
	openapi := readPlaceholderFixture(t, "openapi.yaml")
	// localhost is the same machine but not an allowed host.
	otherHost := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)

	runPlaceholderCases(t, st, loc, []placeholderTest{
		{
			name:     "text",
			spec:     map[string]any{"definition": map[string]any{"$text": "./openapi.yaml"}},
			wantSpec: map[string]any{"definition": openapi},
			wantKeys: []string{"url:" + srv.URL + "/repo/openapi.yaml"},
		},
		{
			name:     "json",
			spec:     map[string]any{"schema": map[string]any{"$json": "schema.json"}},
			wantSpec: map[string]any{"schema": placeholderSchema},
			wantKeys: []string{"url:" + srv.URL + "/repo/schema.json"},
		},
		{
			name:     "yaml",
			spec:     map[string]any{"data": map[string]any{"$yaml": "./data.yaml"}},
			wantSpec: map[string]any{"data": placeholderData},
			wantKeys: []string{"url:" + srv.URL + "/repo/data.yaml"},
		},
		{
			name:     "parent folder and absolute URL",
			spec:     map[string]any{"a": map[string]any{"$text": "../shared/child.txt"}, "b": map[string]any{"$text": srv.URL + "/repo/openapi.yaml"}},
			wantSpec: map[string]any{"a": "from a subfolder\n", "b": openapi},
			wantKeys: []string{"url:" + srv.URL + "/shared/child.txt", "url:" + srv.URL + "/repo/openapi.yaml"},
		},
		{
			name:     "nested inside arrays",
			spec:     map[string]any{"list": []any{[]any{map[string]any{"$json": "./schema.json"}}}},
			wantSpec: map[string]any{"list": []any{[]any{placeholderSchema}}},
			wantKeys: []string{"url:" + srv.URL + "/repo/schema.json"},
		},
		{
			name:     "yaml with two documents",
			spec:     map[string]any{"data": map[string]any{"$yaml": "./two-docs.yaml"}},
			wantErr:  []string{"spec.data: $yaml ./two-docs.yaml: read YAML from " + srv.URL + "/repo/two-docs.yaml", "found 2"},
			wantKeys: []string{"url:" + srv.URL + "/repo/two-docs.yaml"},
		},
		{
			name:    "missing",
			spec:    map[string]any{"definition": map[string]any{"$text": "./nope.yaml"}},
			wantErr: []string{"spec.definition: $text ./nope.yaml: fetch " + srv.URL + "/repo/nope.yaml"},
			errIs:   reading.ErrNotFound,
		},
		{
			name:    "host not allowed",
			spec:    map[string]any{"definition": map[string]any{"$text": otherHost + "/repo/openapi.yaml"}},
			wantErr: []string{"spec.definition: $text " + otherHost + "/repo/openapi.yaml"},
			errIs:   reading.ErrNotAllowed,
		},
		{
			name: "single-key rule",
			spec: map[string]any{"x": map[string]any{"$json": "./schema.json", "y": 1}, "z": map[string]any{"$ref": "./schema.json"}},
		},
	})

	t.Run("relative reference keeps the location's query", func(t *testing.T) {
		loc := engine.Location{Type: "url", Target: srv.URL + "/branch/catalog-info.yaml?ref=dev"}
		var c resultLog
		out, err := st.PreProcessEntity(context.Background(), placeholderEntity(map[string]any{"d": map[string]any{"$text": "openapi.yaml"}}), loc, c.emit, nil)
		if err != nil {
			t.Fatal(err)
		}
		if out.Spec["d"] != "dev branch" {
			t.Errorf("d = %#v", out.Spec["d"])
		}
		if want := []string{"url:" + srv.URL + "/branch/openapi.yaml?ref=dev"}; !reflect.DeepEqual(c.refreshKeys(), want) {
			t.Errorf("refresh keys = %q, want %q", c.refreshKeys(), want)
		}
	})
}

func TestPlaceholdersOtherLocationType(t *testing.T) {
	st := newPlaceholders(t, []string{placeholderFixtures(t)}, nil)
	loc := engine.Location{Type: "system-x", Target: "team-a"}
	_, err := st.PreProcessEntity(context.Background(), placeholderEntity(map[string]any{"definition": map[string]any{"$text": "./openapi.yaml"}}), loc, func(engine.Result) {}, nil)
	want := "placeholder $text in spec.definition: cannot resolve relative to location type system-x"
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %q", err, want)
	}
}

func TestPlaceholdersOutsideSpec(t *testing.T) {
	dir := placeholderFixtures(t)
	st := newPlaceholders(t, []string{dir}, nil)
	loc := engine.Location{Type: "file", Target: filepath.Join(dir, "catalog-info.yaml")}
	e := placeholderEntity(map[string]any{"type": "openapi"})
	e.Metadata.Extra = map[string]any{"readme": map[string]any{"$text": "sub/child.txt"}}
	e.Metadata.Annotations = map[string]string{"a": "b"}
	out, err := st.PreProcessEntity(context.Background(), e, loc, func(engine.Result) {}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := out.Metadata.Extra["readme"]; got != "from a subfolder\n" {
		t.Errorf("metadata.readme = %#v", got)
	}
	if out.Metadata.Name != "petstore" || out.Kind != catalog.KindAPI || out.Metadata.Annotations["a"] != "b" {
		t.Errorf("the rest of the entity was lost: %+v", out)
	}

	// An entity without placeholders comes back as it was, without a copy.
	plain := placeholderEntity(map[string]any{"type": "openapi", "x": map[string]any{"$ref": "#/a"}})
	got, err := st.PreProcessEntity(context.Background(), plain, loc, func(engine.Result) {}, nil)
	if err != nil || got != plain {
		t.Errorf("plain entity: got %p (%v), want the same pointer %p", got, err, plain)
	}
}

func TestDecodeSingleYAML(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    any
		wantErr string
	}{
		{in: "a: 1\n", want: map[string]any{"a": 1}},
		{in: "when: 2001-12-14t21:59:43.10-05:00\n", want: map[string]any{"when": "2001-12-14t21:59:43.10-05:00"}},
		{in: "1: one\n", want: map[string]any{"1": "one"}},
		{in: "- x\n- 2\n", want: []any{"x", 2}},
		{in: "", wantErr: "found 0"},
		{in: "a: 1\n---\nb: 2\n", wantErr: "found 2"},
		{in: "a: [\n", wantErr: "parse YAML"},
	} {
		got, err := decodeSingleYAML([]byte(tc.in))
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: error = %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %#v, %v; want %#v", tc.in, got, err, tc.want)
		}
	}
}
