package config

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/txtar"
	"github.com/zclconf/go-cty/cty"

	"github.com/catalog-pipeline/pipeline/engine"
)

// fakeStage records what its constructor was given.
type fakeStage struct {
	typ string
	b   engine.Build
}

func (s *fakeStage) Name() string { return s.b.Stage }

// fakeSpecs stand in for the builtin stages, so that these tests pin the
// loader's behaviour and not the stages'.
func fakeSpecs() []engine.StageSpec {
	build := func(typ string) func(engine.Build) (engine.Stage, error) {
		return func(b engine.Build) (engine.Stage, error) {
			b.Logger.Info("built")
			return &fakeStage{typ: typ, b: b}, nil
		}
	}
	return []engine.StageSpec{
		{
			Name: "reader",
			Fields: []engine.Field{
				{Name: "root", Type: cty.String, Default: cty.StringVal("."), Path: true},
				{Name: "globs", Type: cty.List(cty.String), Path: true},
				{Name: "timeout", Type: cty.String, Default: cty.StringVal("10s"), Check: engine.CheckDuration},
				{Name: "retries", Type: cty.Number, Default: cty.NumberIntVal(3)},
			},
			New: build("reader"),
		},
		{
			Name: "annotate",
			Fields: []engine.Field{
				{Name: "key", Type: cty.String, Required: true},
				{Name: "value", Type: cty.String, Default: cty.StringVal("")},
				{Name: "token", Type: cty.String},
			},
			New: build("annotate"),
		},
		{Name: "validate", New: build("validate")},
		{
			Name: "broken",
			New: func(engine.Build) (engine.Stage, error) {
				return nil, errors.New("broken stage cannot start")
			},
		},
	}
}

// extract writes a txtar fixture from testdata into a fresh temp folder.
func extract(t *testing.T, name string) string {
	t.Helper()
	a, err := txtar.ParseFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := txtar.Write(a, dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func testEnv(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

func TestLoadGood(t *testing.T) {
	root := extract(t, "good.txtar")
	var logs bytes.Buffer
	cfg, err := Load(filepath.Join(root, "pipelines"), Options{
		Specs:     fakeSpecs(),
		Logger:    slog.New(slog.NewTextHandler(&logs, nil)),
		LookupEnv: testEnv(map[string]string{"OWNER": "team-a"}),
	})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	pdir := filepath.Join(root, "pipelines")
	data := filepath.Join(root, "data")

	wantFiles := []string{filepath.Join(pdir, "10-main.hcl"), filepath.Join(pdir, "20-confined.hcl")}
	if !slices.Equal(cfg.Files, wantFiles) {
		t.Errorf("Files = %q, want %q", cfg.Files, wantFiles)
	}

	def := engine.DefaultSettings()
	// An interval without jitter gets half of it, like Backstage's [d, 1.5·d].
	wantEngine := engine.Settings{Workers: 8, BatchSize: def.BatchSize,
		Refresh: engine.Refresh{Interval: 2 * time.Minute, Jitter: time.Minute}, Orphans: engine.OrphansDelete}
	if cfg.Engine != wantEngine {
		t.Errorf("Engine = %+v, want %+v", cfg.Engine, wantEngine)
	}

	if len(cfg.Pipelines) != 2 || cfg.Pipelines[0].Name != "main" || cfg.Pipelines[1].Name != "confined" {
		t.Fatalf("pipelines = %v, want main then confined", cfg.Pipelines)
	}
	main, confined := cfg.Pipelines[0], cfg.Pipelines[1]

	mainFile := filepath.Join(pdir, "10-main.hcl")
	wantLocs := []engine.RootLocation{
		{Location: engine.Location{Type: "file", Target: filepath.Join(data, "catalog-info.yaml")}, Pos: mainFile + ":7"},
		{Location: engine.Location{Type: "file", Target: filepath.Join(data, "teams", "**", "*.yaml")}, Optional: true, Pos: mainFile + ":10"},
		{Location: engine.Location{Type: "url", Target: "https://Example.com:8443/catalog.yaml"}, Pos: mainFile + ":14"},
		{Location: engine.Location{Type: "system-x", Target: "tenant-1"}, Pos: mainFile + ":17"},
	}
	if !slices.Equal(main.Locations, wantLocs) {
		t.Errorf("main locations:\n got %+v\nwant %+v", main.Locations, wantLocs)
	}
	if want := []string{data, filepath.Join(data, "teams")}; !slices.Equal(main.AllowFiles, want) {
		t.Errorf("main AllowFiles = %q, want %q (defaults from file locations)", main.AllowFiles, want)
	}
	if want := []string{"example.com:8443"}; !slices.Equal(main.AllowHosts, want) {
		t.Errorf("main AllowHosts = %q, want %q (defaults from url locations)", main.AllowHosts, want)
	}
	if want := []string{data, "/srv/catalog"}; !slices.Equal(confined.AllowFiles, want) {
		t.Errorf("confined AllowFiles = %q, want %q", confined.AllowFiles, want)
	}
	if want := []string{"*.example.org"}; !slices.Equal(confined.AllowHosts, want) {
		t.Errorf("confined AllowHosts = %q, want %q", confined.AllowHosts, want)
	}

	type wantStage struct {
		name, typ string
		settings  map[string]cty.Value
	}
	checkStages := func(p *engine.Pipeline, want []wantStage) {
		t.Helper()
		if len(p.Stages) != len(want) {
			t.Fatalf("%s: %d stages, want %d", p.Name, len(p.Stages), len(want))
		}
		for i, w := range want {
			s := p.Stages[i].(*fakeStage)
			if s.Name() != w.name || s.typ != w.typ {
				t.Errorf("%s stage %d = %s (%s), want %s (%s)", p.Name, i, s.Name(), s.typ, w.name, w.typ)
			}
			if s.b.Pipeline != p.Name || s.b.Dir != pdir || s.b.Reader == nil || s.b.Logger == nil {
				t.Errorf("%s/%s: Build = %+v", p.Name, w.name, s.b)
			}
			if got := s.b.Reader.Policy(); !slices.Equal(got.Roots, p.AllowFiles) || !slices.Equal(got.Hosts, p.AllowHosts) {
				t.Errorf("%s/%s: reader policy %+v, want the pipeline's confinement", p.Name, w.name, got)
			}
			if len(s.b.Settings) != len(w.settings) {
				t.Errorf("%s/%s: settings %#v, want %#v", p.Name, w.name, s.b.Settings, w.settings)
			}
			for k, wv := range w.settings {
				if gv, ok := s.b.Settings[k]; !ok || !gv.RawEquals(wv) {
					t.Errorf("%s/%s: setting %s = %#v, want %#v", p.Name, w.name, k, gv, wv)
				}
			}
		}
	}
	checkStages(main, []wantStage{
		{"reader", "reader", map[string]cty.Value{
			"root":    cty.StringVal(data),
			"globs":   cty.NullVal(cty.List(cty.String)),
			"timeout": cty.StringVal("5s"),
			"retries": cty.NumberIntVal(3),
		}},
		{"tag", "annotate", map[string]cty.Value{
			"key":   cty.StringVal("owner"),
			"value": cty.StringVal("team-a"),
			"token": cty.StringVal("s3cret\n"),
		}},
		{"annotate", "annotate", map[string]cty.Value{
			"key":   cty.StringVal("region"),
			"value": cty.StringVal("eu"),
			"token": cty.NullVal(cty.String),
		}},
	})
	checkStages(confined, []wantStage{
		{"validate", "validate", map[string]cty.Value{}},
		{"reader", "reader", map[string]cty.Value{
			"root":    cty.StringVal(pdir),
			"globs":   cty.ListVal([]cty.Value{cty.StringVal(filepath.Join(pdir, "*.yaml")), cty.StringVal("/abs/x.yaml")}),
			"timeout": cty.StringVal("10s"),
			"retries": cty.NumberIntVal(3),
		}},
	})

	if !strings.Contains(logs.String(), "msg=built pipeline=main stage=tag") {
		t.Errorf("stage loggers are not tagged with pipeline and stage:\n%s", logs.String())
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		fixture string
		env     map[string]string
		// want are substrings of the rendered error, in order of appearance.
		want []string
		// diags is the number of diagnostics expected (0: not checked).
		diags int
	}{
		{
			fixture: "syntax_error.txtar",
			want:    []string{"main.hcl:3:14: Error: Invalid expression", "on ", "main.hcl line 3", `target = = "x.yaml"`},
			diags:   1,
		},
		{
			fixture: "unknown_block.txtar",
			want:    []string{"main.hcl:1:1: Error: Unsupported block type", `Did you mean "pipeline"?`},
			diags:   1,
		},
		{
			fixture: "unknown_stage_type.txtar",
			want: []string{
				`main.hcl:3:12: Error: unknown stage type "anotate"`, `Did you mean "annotate"? Known stage types: annotate, broken, reader, validate.`,
				`main.hcl:5:9: Error: unknown stage type "readr"`, `Did you mean "reader"?`,
			},
			diags: 2,
		},
		{
			fixture: "unknown_attribute.txtar",
			want:    []string{"main.hcl:3:5: Error: Unsupported argument", `Did you mean "root"?`},
			diags:   1,
		},
		{
			fixture: "mistyped_attribute.txtar",
			want:    []string{"main.hcl:3:15: Error: Incorrect attribute value type", `retries = "three"`, "a number is required"},
			diags:   1,
		},
		{
			fixture: "missing_required.txtar",
			want:    []string{"main.hcl:2:", "Error: Missing required argument", `The argument "key" is required`},
			diags:   1,
		},
		{
			fixture: "bad_duration.txtar",
			want:    []string{`main.hcl:3:15: Error: invalid value for "timeout"`, `timeout = "soon"`, `"soon" is not a duration such as "10s"`},
			diags:   1,
		},
		{
			fixture: "bad_engine.txtar",
			want: []string{
				`main.hcl:2:14: Error: invalid value for "workers"`, "0 is not a whole number of at least 1",
				`main.hcl:3:14: Error: invalid value for "interval"`, `"500ms" is shorter than one second`,
				`main.hcl:4:14: Error: invalid value for "orphans"`, `"forget" is not an orphan strategy; use "delete" or "keep"`,
				"more.hcl:1:1: Error: duplicate engine block", "first declared at ", "main.hcl:1;",
			},
			diags: 4,
		},
		{
			fixture: "duplicate_stage.txtar",
			want:    []string{`main.hcl:4:3: Error: duplicate stage "reader"`, "main.hcl line 4", "first declared at ", "main.hcl:2;"},
			diags:   1,
		},
		{
			fixture: "duplicate_pipeline.txtar",
			want:    []string{`b.hcl:1:1: Error: duplicate pipeline "main"`, "first declared at ", "a.hcl:2;"},
			diags:   1,
		},
		{
			fixture: "duplicate_location.txtar",
			want:    []string{`main.hcl:5:3: Error: duplicate location "file:`, "catalog-info.yaml", "first declared at ", "main.hcl:2;"},
			diags:   1,
		},
		{
			fixture: "env_unset.txtar",
			want:    []string{"main.hcl:4:13: Error: Error in function call", `env("NOT_SET_ANYWHERE")`, `environment variable "NOT_SET_ANYWHERE" is not set`},
			diags:   1,
		},
		{
			fixture: "file_missing.txtar",
			want:    []string{"main.hcl:4:13: Error: Error in function call", `file("missing.txt")`, "no such file ", "missing.txt"},
			diags:   1,
		},
		{
			fixture: "empty_dir.txtar",
			want:    []string{"Error: no configuration files", "holds no *.hcl file"},
			diags:   1,
		},
		{
			fixture: "no_pipeline.txtar",
			want:    []string{"Error: no pipeline declared", "main.hcl"},
			diags:   1,
		},
		{
			fixture: "constructor_error.txtar",
			want:    []string{`main.hcl:2:3: Error: cannot build stage "broken"`, "Broken stage cannot start."},
			diags:   1,
		},
		{
			fixture: "many_errors.txtar",
			want: []string{
				"a.hcl:3:14: Error: invalid url location",
				"a.hcl:6:15: Error: Incorrect attribute value type",
				"a.hcl:9:5: Error: Unsupported argument",
				"a.hcl:12:11: Error: Error in function call",
				"b.hcl:2:17: Error: Incorrect attribute value type",
				`b.hcl:3:9: Error: unknown stage type "nope"`,
			},
			diags: 6,
		},
	}
	for _, tt := range tests {
		t.Run(strings.TrimSuffix(tt.fixture, ".txtar"), func(t *testing.T) {
			dir := extract(t, tt.fixture)
			cfg, err := Load(dir, Options{Specs: fakeSpecs(), LookupEnv: testEnv(tt.env), Logger: slog.New(slog.DiscardHandler)})
			if err == nil {
				t.Fatalf("Load succeeded with %d pipelines, want an error", len(cfg.Pipelines))
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %T is not a *config.Error: %v", err, err)
			}
			msg := err.Error()
			rest := msg
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("error does not contain %q (after the previous expectations):\n%s", w, msg)
				}
				rest = rest[i+len(w):]
			}
			if tt.diags > 0 && len(ce.Diags) != tt.diags {
				t.Errorf("%d diagnostics, want %d:\n%s", len(ce.Diags), tt.diags, msg)
			}
			if testing.Verbose() {
				t.Logf("\n%s", msg)
			}
		})
	}
}

func TestLoadMissingDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nope")
	_, err := Load(dir, Options{Specs: fakeSpecs()})
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %T is not a *config.Error: %v", err, err)
	}
	if len(ce.Diags) != 1 || ce.Diags[0].Subject != nil {
		t.Fatalf("want one diagnostic without subject, got %#v", ce.Diags)
	}
	if msg := err.Error(); !strings.Contains(msg, "cannot read configuration folder") || !strings.Contains(msg, dir) {
		t.Errorf("message does not name the problem and the folder:\n%s", msg)
	}
}

func TestLoadFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	b := write("b.hcl", `pipeline "b" {}`)
	a := write("a.hcl", `pipeline "a" {}`)

	// The given order wins over the names.
	cfg, err := LoadFiles([]string{b, a}, Options{Specs: fakeSpecs()})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Pipelines) != 2 || cfg.Pipelines[0].Name != "b" || cfg.Pipelines[1].Name != "a" {
		t.Errorf("pipelines = %v, want b then a", cfg.Pipelines)
	}
	if cfg.Engine != engine.DefaultSettings() {
		t.Errorf("Engine = %+v, want the defaults", cfg.Engine)
	}

	for _, files := range [][]string{nil, {a, filepath.Join(dir, "missing.hcl")}} {
		_, err = LoadFiles(files, Options{Specs: fakeSpecs()})
		var ce *Error
		if !errors.As(err, &ce) {
			t.Errorf("LoadFiles(%q): error %T is not a *config.Error: %v", files, err, err)
		}
	}
}

func TestBadSpecs(t *testing.T) {
	badDefault := engine.StageSpec{
		Name:   "bad",
		Fields: []engine.Field{{Name: "n", Type: cty.Number, Default: cty.StringVal("many")}},
		New:    func(engine.Build) (engine.Stage, error) { return nil, nil },
	}
	reserved := badDefault
	reserved.Fields = []engine.Field{{Name: "type", Type: cty.String}}
	tests := map[string][]engine.StageSpec{
		"registered twice":  append(fakeSpecs(), fakeSpecs()[0]),
		"default of a type": {badDefault},
		"reserved field":    {reserved},
		"no constructor":    {{Name: "x"}},
	}
	for name, specs := range tests {
		_, err := LoadFiles([]string{"x.hcl"}, Options{Specs: specs})
		var ce *Error
		if err == nil || errors.As(err, &ce) {
			t.Errorf("%s: want a programming error, not a *config.Error: %v", name, err)
		}
	}
}

func TestFileRoot(t *testing.T) {
	for target, want := range map[string]string{
		"/a/b/catalog-info.yaml": "/a/b",
		"/a/b/*.yaml":            "/a/b",
		"/a/b/**/c/*.yaml":       "/a/b",
		"/a/b/[xy]/c.yaml":       "/a/b",
		"/a/{b,c}/d.yaml":        "/a",
		"/*.yaml":                "/",
	} {
		if got := fileRoot(target); got != want {
			t.Errorf("fileRoot(%q) = %q, want %q", target, got, want)
		}
	}
}
