package scripting

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/catalog-pipeline/pipeline/engine"
	"github.com/catalog-pipeline/pipeline/engine/config"
)

func scriptVersion(n string) string {
	return `exports.postProcessEntity = (entity) => { entity.spec.v = ` + n + `; return entity; };
exports.readLocation = (location) => location.type === 'v` + n + `';`
}

func TestHotReload(t *testing.T) {
	e := newEnv(t)
	s := e.stage(scriptVersion("1"), nil)
	s.reloadEvery = 0
	post := func() (any, []string) {
		t.Helper()
		c := &collector{}
		got, err := s.PostProcessEntity(ctx, testEntity("foo"), urlLoc, c.emit, newMemCache())
		if err != nil {
			t.Fatal(err)
		}
		return got.Spec["v"], c.errors()
	}
	expect := func(want any, wantErrs int) []string {
		t.Helper()
		v, errs := post()
		if v != want || len(errs) != wantErrs {
			t.Fatalf("v = %v with errors %q; want %v with %d errors", v, errs, want, wantErrs)
		}
		return errs
	}
	expect(1, 0)

	// A good edit takes effect on the next call.
	e.write("scripts/x.js", scriptVersion("2"))
	expect(2, 0)
	for n := len(s.idle); n > 0; n-- {
		rt := <-s.idle
		if rt.ver != s.cur.Load() {
			t.Error("a runtime of the old version is still pooled")
		}
		s.idle <- rt
	}

	// A syntax error keeps version 2 running and says so on every call.
	e.write("scripts/x.js", "exports.postProcessEntity = (entity) => {\n  return entity +;\n};")
	errs := expect(2, 1)
	want := "script " + s.display + " has an error at 2:18: SyntaxError: Unexpected token ;; still running the previous version"
	if errs[0] != want {
		t.Errorf("error result %q\nwant %q", errs[0], want)
	}
	expect(2, 1)
	if n := strings.Count(e.logs.String(), "has an error at 2:18"); n != 1 {
		t.Errorf("the bad version was logged %d times, want once:\n%s", n, e.logs)
	}
	if s.Err() == nil {
		t.Error("Err() is nil while the script is broken")
	}
	// readLocation reports it too, when it handles the location.
	c := &collector{}
	if ok, err := s.ReadLocation(ctx, engine.Location{Type: "v2", Target: "t"}, false, c.emit, newMemCache()); !ok || err != nil || len(c.errors()) != 1 {
		t.Errorf("ReadLocation = %v, %v, %v", ok, err, c.errors())
	}
	c = &collector{}
	if ok, _ := s.ReadLocation(ctx, engine.Location{Type: "other", Target: "t"}, false, c.emit, newMemCache()); ok || len(c.errors()) != 0 {
		t.Errorf("a location the script does not read got %v", c.errors())
	}

	// A top-level error is an error of the version too.
	e.write("scripts/x.js", "exports.postProcessEntity = (e) => e;\nnotDefined();")
	errs = expect(2, 1)
	mustContain(t, "error", errs[0], "has an error at 2:11: ReferenceError: notDefined is not defined; still running")

	// Fixed: version 3 runs, no more errors.
	e.write("scripts/x.js", scriptVersion("3"))
	expect(3, 0)
	if s.Err() != nil {
		t.Errorf("Err() = %v after the fix", s.Err())
	}
	mustContain(t, "logs", e.logs.String(), "script reloaded", "script is good again")

	// Putting back the same content costs no reload; a deleted file keeps
	// the running version.
	e.write("scripts/x.js", scriptVersion("3"))
	expect(3, 0)
	if err := os.Remove(filepath.Join(e.dir, "scripts/x.js")); err != nil {
		t.Fatal(err)
	}
	errs = expect(3, 1)
	mustContain(t, "error", errs[0], "cannot be read (no such file or directory); still running the previous version")
	e.write("scripts/x.js", scriptVersion("4"))
	expect(4, 0)
}

func TestReloadIsThrottled(t *testing.T) {
	e := newEnv(t)
	s := e.stage(scriptVersion("1"), nil)
	e.write("scripts/x.js", scriptVersion("2"))
	// Within a second of New, the file is not looked at.
	got, err := s.PostProcessEntity(ctx, testEntity("foo"), urlLoc, (&collector{}).emit, newMemCache())
	if err != nil || got.Spec["v"] != 1 {
		t.Fatalf("v = %v, %v", got.Spec["v"], err)
	}
	s.lastCheck.Store(0)
	got, err = s.PostProcessEntity(ctx, testEntity("foo"), urlLoc, (&collector{}).emit, newMemCache())
	if err != nil || got.Spec["v"] != 2 {
		t.Fatalf("v = %v, %v", got.Spec["v"], err)
	}
}

// TestHCL wires a script stage through the configuration loader, as a
// pipeline file would.
func TestHCL(t *testing.T) {
	e := newEnv(t)
	e.write("scripts/system-x.js", `exports.name = 'system-x';
exports.postProcessEntity = (entity) => { entity.spec.base = config.base_url; entity.spec.n = config.n; return entity; };`)
	e.write("pipelines/p.hcl", `
pipeline "p" {
  allow_files = [".."]
  stage "system-x" {
    script  = "../scripts/system-x.js"
    timeout = "3s"
    pool    = 4
    config  = { base_url = "https://system-x.example.com", n = 2 }
  }
}`)
	cfg, err := config.Load(filepath.Join(e.dir, "pipelines"), config.Options{Specs: []engine.StageSpec{Spec}})
	if err != nil {
		t.Fatal(err)
	}
	s, ok := cfg.Pipelines[0].Stages[0].(*Stage)
	if !ok {
		t.Fatalf("stage is %T", cfg.Pipelines[0].Stages[0])
	}
	if s.Name() != "system-x" || s.Path() != filepath.Join(e.dir, "scripts/system-x.js") || s.timeout.String() != "3s" || cap(s.sem) != 4 {
		t.Errorf("stage %q %q %s pool %d", s.Name(), s.Path(), s.timeout, cap(s.sem))
	}
	got, err := s.PostProcessEntity(ctx, testEntity("foo"), urlLoc, (&collector{}).emit, newMemCache())
	if err != nil || got.Spec["base"] != "https://system-x.example.com" || got.Spec["n"] != 2 {
		t.Errorf("spec %v, %v", got.Spec, err)
	}

	// A syntax error is a diagnostic naming file, line and column.
	e.write("scripts/system-x.js", "\nexports.x = (;")
	_, err = config.Load(filepath.Join(e.dir, "pipelines"), config.Options{Specs: []engine.StageSpec{Spec}})
	mustContain(t, "diagnostic", errString(err), `cannot build stage "system-x"`, "system-x.js:2:14: SyntaxError")

	// Settings are checked.
	for _, bad := range []string{`pool = -1`, `pool = 1.5`, `max_call_stack = 0`, `timeout = "soon"`, `config = "x"`} {
		e.write("scripts/system-x.js", "")
		e.write("pipelines/p.hcl", `pipeline "p" {
  stage "system-x" {
    script = "../scripts/system-x.js"
    `+bad+`
  }
}`)
		_, err = config.Load(filepath.Join(e.dir, "pipelines"), config.Options{Specs: []engine.StageSpec{Spec}})
		if err == nil {
			t.Errorf("%s was accepted", bad)
		}
	}
}

func TestDefaults(t *testing.T) {
	e := newEnv(t)
	b := e.build(`exports.readLocation = () => true;`, nil)
	b.Settings = map[string]cty.Value{"script": b.Settings["script"]}
	s, err := New(b)
	if err != nil {
		t.Fatal(err)
	}
	if s.timeout != DefaultTimeout || s.maxStack != DefaultMaxCallStack || cap(s.sem) < 1 {
		t.Errorf("defaults: %s %d %d", s.timeout, s.maxStack, cap(s.sem))
	}
	// A relative script resolves against the pipeline folder.
	b.Settings["script"] = cty.StringVal("scripts/x.js")
	if s, err = New(b); err != nil || s.Path() != filepath.Join(e.dir, "scripts/x.js") {
		t.Errorf("relative script: %v, %v", s, err)
	}
}
