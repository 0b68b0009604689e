package engine_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/catalog-pipeline/pipeline/builtin"
	"github.com/catalog-pipeline/pipeline/engine"
	"github.com/catalog-pipeline/pipeline/engine/config"
	"github.com/catalog-pipeline/pipeline/scripting"
	"github.com/catalog-pipeline/pipeline/store"
)

// memoCatalog is a file catalog processed by the builtin stages and one
// script stage, loaded from real HCL, so that the memo sees what a user's
// pipeline gives it.
type memoCatalog struct {
	t   *testing.T
	dir string
	db  *store.DB
}

const memoHCL = `
pipeline "p" {
  location "file" {
    target = "./catalog-info.yaml"
  }
  stage "placeholders" {}
  stage "builtin-kinds" {}
  stage "file" {}
  stage "annotate-location" {}
  stage "label" {
    script = "./label.js"
  }
%s
}
%s
`

const labelJS = `module.exports = {
  postProcessEntity(entity) {
    entity.metadata.labels = Object.assign({}, entity.metadata.labels, { seen: "%s" });
    return entity;
  },
};
`

func newMemoCatalog(t *testing.T, extraStage, engineBlock string) *memoCatalog {
	t.Helper()
	dir := t.TempDir()
	c := &memoCatalog{t: t, dir: dir}
	c.write("pipeline.hcl", fmt.Sprintf(memoHCL, extraStage, engineBlock))
	c.write("label.js", fmt.Sprintf(labelJS, "yes"))
	c.write("catalog-info.yaml", `apiVersion: backstage.io/v1alpha1
kind: Location
metadata:
  name: root
spec:
  targets: ["./teams.yaml", "./services/*.yaml"]
`)
	c.write("teams.yaml", "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata:\n  name: rockets\nspec:\n  type: team\n  children: []\n")
	if err := os.Mkdir(filepath.Join(dir, "services"), 0o755); err != nil {
		t.Fatal(err)
	}
	c.write("services/orders.yaml", component2("orders", "rockets"))
	db, err := store.Open(filepath.Join(t.TempDir(), "c.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	c.db = db
	return c
}

func component2(name, owner string) string {
	return "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: " + name +
		"\nspec:\n  type: service\n  lifecycle: production\n  owner: " + owner + "\n"
}

// write writes a file with a modification time in the past, so that the
// memo trusts its stamp (a file modified within the last seconds may still
// change under the same timestamp and is always hashed again). Each write
// gets its own time, as an edit would.
var memoClock = time.Now().Add(-time.Hour)

func (c *memoCatalog) write(name, content string) {
	c.t.Helper()
	p := filepath.Join(c.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		c.t.Fatal(err)
	}
	memoClock = memoClock.Add(time.Second)
	if err := os.Chtimes(p, memoClock, memoClock); err != nil {
		c.t.Fatal(err)
	}
}

func (c *memoCatalog) run() engine.RunStats {
	c.t.Helper()
	cfg, err := config.Load(c.dir, config.Options{Specs: append(builtin.Specs(), scripting.Spec),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		c.t.Fatal(err)
	}
	st, err := engine.New(cfg, c.db, slog.New(slog.NewTextHandler(io.Discard, nil))).RunOnce(context.Background())
	if err != nil {
		c.t.Fatal(err)
	}
	return st
}

func (c *memoCatalog) label(ref string) string {
	c.t.Helper()
	body, _, err := c.db.Final(ref)
	if err != nil || body == nil {
		c.t.Fatalf("final %s: %v (body %q)", ref, err, body)
	}
	i := strings.Index(string(body), `"seen":"`)
	if i < 0 {
		return ""
	}
	rest := string(body[i+len(`"seen":"`):])
	return rest[:strings.IndexByte(rest, '"')]
}

// Entities of the catalog: root Location, the generated one for the
// config location, a group and a component.
const memoEntities = 4

func TestMemoSkipsUnchangedRuns(t *testing.T) {
	c := newMemoCatalog(t, "", "")
	first := c.run()
	if first.Skipped != 0 || first.Processed != memoEntities {
		t.Fatalf("first run: processed %d, skipped %d; want %d processed, none skipped", first.Processed, first.Skipped, memoEntities)
	}
	second := c.run()
	if second.Skipped != memoEntities || second.Written != 0 {
		t.Fatalf("second run: skipped %d, written %d; want all %d skipped, nothing written", second.Skipped, second.Written, memoEntities)
	}
	if got := c.label("component:default/orders"); got != "yes" {
		t.Fatalf("label = %q, want yes", got)
	}
}

func TestMemoSeesChanges(t *testing.T) {
	tests := []struct {
		name   string
		change func(c *memoCatalog)
		// rerun is how many entities must run again (not skipped).
		rerun int
		check func(t *testing.T, c *memoCatalog)
	}{
		{
			name:   "edited file",
			change: func(c *memoCatalog) { c.write("services/orders.yaml", component2("orders", "boosters")) },
			// The root Location reads the file again and emits a changed
			// component, which runs again.
			rerun: 2,
			check: func(t *testing.T, c *memoCatalog) {
				st, _ := c.db.State("component:default/orders")
				if !strings.Contains(string(st.Processed), `"owner":"boosters"`) {
					t.Errorf("processed = %s, want owner boosters", st.Processed)
				}
			},
		},
		{
			name:   "file added to a glob",
			change: func(c *memoCatalog) { c.write("services/billing.yaml", component2("billing", "rockets")) },
			// The root Location and the new component.
			rerun: 2,
			check: func(t *testing.T, c *memoCatalog) {
				if st, _ := c.db.State("component:default/billing"); st == nil {
					t.Error("billing was not ingested")
				}
			},
		},
		{
			name: "file removed from a glob",
			change: func(c *memoCatalog) {
				if err := os.Remove(filepath.Join(c.dir, "services/orders.yaml")); err != nil {
					c.t.Fatal(err)
				}
			},
			rerun: 1,
			check: func(t *testing.T, c *memoCatalog) {
				if st, _ := c.db.State("component:default/orders"); st != nil {
					t.Error("orders is still there after its file was removed")
				}
			},
		},
		{
			name:   "script edited",
			change: func(c *memoCatalog) { c.write("label.js", fmt.Sprintf(labelJS, "again")) },
			// Every entity goes through the script.
			rerun: memoEntities,
			check: func(t *testing.T, c *memoCatalog) {
				if got := c.label("component:default/orders"); got != "again" {
					t.Errorf("label = %q, want again", got)
				}
			},
		},
		{
			name: "stage setting changed",
			change: func(c *memoCatalog) {
				c.write("pipeline.hcl", strings.Replace(readFile(c.t, filepath.Join(c.dir, "pipeline.hcl")),
					`script = "./label.js"`, "script = \"./label.js\"\n    config = { x = 1 }", 1))
			},
			rerun: memoEntities,
		},
		{
			name: "comment in the pipeline file",
			change: func(c *memoCatalog) {
				c.write("pipeline.hcl", "# a comment changes nothing\n"+readFile(c.t, filepath.Join(c.dir, "pipeline.hcl")))
			},
			rerun: 0,
		},
		{
			name:   "touched file with the same content",
			change: func(c *memoCatalog) { c.write("teams.yaml", readFile(c.t, filepath.Join(c.dir, "teams.yaml"))) },
			// Its stamp moved, so it is hashed again: same content.
			rerun: 0,
		},
		{
			name: "file edited just now, same size",
			change: func(c *memoCatalog) {
				// A fresh modification time is not trusted (racy): the
				// content hash tells.
				p := filepath.Join(c.dir, "services/orders.yaml")
				if err := os.WriteFile(p, []byte(component2("orders", "rackets")), 0o644); err != nil {
					c.t.Fatal(err)
				}
			},
			rerun: 2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newMemoCatalog(t, "", "")
			c.run()
			if st := c.run(); st.Skipped != st.Processed {
				t.Fatalf("unchanged run: skipped %d of %d", st.Skipped, st.Processed)
			}
			c.t = t
			tc.change(c)
			st := c.run()
			if got := st.Processed - st.Skipped; got != tc.rerun {
				t.Errorf("after the change %d entities ran (skipped %d of %d), want %d", got, st.Skipped, st.Processed, tc.rerun)
			}
			if tc.check != nil {
				tc.check(t, c)
			}
			// And then it settles: nothing runs again.
			if st := c.run(); st.Skipped != st.Processed || st.Written != 0 {
				t.Errorf("run after the change: skipped %d of %d, written %d; want all skipped, none written", st.Skipped, st.Processed, st.Written)
			}
		})
	}
}

func TestMemoOff(t *testing.T) {
	tests := []struct {
		name, stage, engine string
	}{
		{name: "always_reprocess", engine: "engine {\n  always_reprocess = true\n}"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newMemoCatalog(t, tc.stage, tc.engine)
			c.run()
			st := c.run()
			if st.Skipped != 0 || st.Processed != memoEntities || st.Written != 0 {
				t.Fatalf("second run: processed %d, skipped %d, written %d; want %d processed, none skipped or written",
					st.Processed, st.Skipped, st.Written, memoEntities)
			}
		})
	}
}

// A pipeline with a stage that does not declare itself Pure never skips:
// the engine cannot know what that stage depends on.
func TestMemoNeedsPureStages(t *testing.T) {
	f := newFixture(t) // memReader and taggers are not Pure
	f.run()
	if st := f.run(); st.Skipped != 0 {
		t.Fatalf("skipped %d runs of a pipeline with impure stages", st.Skipped)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A run skipped after hashing a touched file stores the file's new stamp,
// so that later checks are a stat again rather than a read.
func TestMemoStoresRefreshedStamps(t *testing.T) {
	c := newMemoCatalog(t, "", "")
	c.run()
	const root = "location:default/root"
	memo := func() []byte {
		st, err := c.db.State(root)
		if err != nil || st == nil {
			t.Fatalf("state of %s: %v", root, err)
		}
		return st.Memo
	}
	before := memo()
	c.write("teams.yaml", readFile(t, filepath.Join(c.dir, "teams.yaml"))) // touched
	if st := c.run(); st.Skipped != st.Processed || st.Written != 0 {
		t.Fatalf("skipped %d of %d, written %d", st.Skipped, st.Processed, st.Written)
	}
	after := memo()
	if string(after) == string(before) {
		t.Fatal("the memo still holds the old stamp of the touched file")
	}
	c.run()
	if string(memo()) != string(after) {
		t.Fatal("the memo changed again without any change to its sources")
	}
}
