package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/catalog-pipeline/pipeline/engine"
	"github.com/catalog-pipeline/pipeline/internal/golden"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"pipeline": func() { os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr)) },
	})
}

// TestScripts runs the CLI scenarios in testdata/script/*.txtar.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{Dir: "testdata/script"})
}

// TestGoldenExample runs the example pipeline once and compares the served
// entities (uid and etag removed, paths made relative) and the printed
// summary with testdata/golden/.
func TestGoldenExample(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(t.TempDir(), "catalog.db")
	var out, errOut bytes.Buffer
	if code := Main([]string{"run", "--once", "--config", filepath.Join(root, "pipelines"), "--db", db, "--log-level", "warn"}, &out, &errOut); code != exitOK {
		t.Fatalf("run exited %d:\n%s%s", code, out.String(), errOut.String())
	}
	summary := regexp.MustCompile(`processed (\d+) entities in [^ ]+ \(\d+/s\)`).ReplaceAllString(out.String(), "processed $1 entities in DURATION (RATE/s)")
	summary = strings.ReplaceAll(summary, root, "$ROOT")
	golden.Check(t, filepath.Join(root, "testdata/golden/summary.txt"), []byte(summary))

	out.Reset()
	if code := Main([]string{"entities", "--db", db, "--json"}, &out, &errOut); code != exitOK {
		t.Fatalf("entities exited %d: %s", code, errOut.String())
	}
	var ents []map[string]any
	if err := json.Unmarshal(out.Bytes(), &ents); err != nil {
		t.Fatalf("entities --json is not a JSON array: %v", err)
	}
	// The root Location is named after the sha1 of its absolute path, which
	// differs per checkout: give it a stable name and re-sort.
	rootName := engine.LocationEntity(engine.Location{Type: "file",
		Target: filepath.Join(root, "testdata/catalog/catalog-info.yaml")}, false).Metadata.Name
	for _, e := range ents {
		md := e["metadata"].(map[string]any)
		if md["name"] == rootName {
			md["name"] = "generated-ROOT"
		}
		if md["uid"] == "" || md["etag"] == "" {
			t.Errorf("%v lacks uid or etag", md["name"])
		}
		delete(md, "uid")
		delete(md, "etag")
	}
	slices.SortFunc(ents, func(a, b map[string]any) int {
		return strings.Compare(fmt.Sprint(a["kind"], a["metadata"].(map[string]any)["name"]), fmt.Sprint(b["kind"], b["metadata"].(map[string]any)["name"]))
	})
	b, err := json.MarshalIndent(ents, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.ReplaceAll(append(b, '\n'), []byte(root), []byte("$ROOT"))
	golden.Check(t, filepath.Join(root, "testdata/golden/entities.json"), b)
}
