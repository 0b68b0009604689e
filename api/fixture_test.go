package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/catalog-pipeline/pipeline/builtin"
	"github.com/catalog-pipeline/pipeline/engine"
	"github.com/catalog-pipeline/pipeline/engine/config"
	"github.com/catalog-pipeline/pipeline/store"
)

// The fixture catalog: a root file location (all.yaml) holding two
// groups, two components and a Location whose target (more.yaml) holds two
// more components, one in namespace "ops". extra*.yaml are not read until a
// test registers them over the API.
var fixtureFiles = map[string]string{
	"catalog/all.yaml": `apiVersion: backstage.io/v1alpha1
kind: Group
metadata:
  name: rockets
spec:
  type: team
  children: []
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata:
  name: pumps
spec:
  type: team
  children: []
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: orders
  title: Orders Service
  tags: [java, payments]
spec:
  type: service
  lifecycle: production
  owner: rockets
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: web
  description: The public website
  tags: [go]
spec:
  type: website
  lifecycle: experimental
  owner: pumps
---
apiVersion: backstage.io/v1alpha1
kind: Location
metadata:
  name: more
spec:
  targets: [./more.yaml]
`,
	"catalog/more.yaml": `apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: billing
spec:
  type: service
  lifecycle: production
  owner: group:default/rockets
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: deployer
  namespace: ops
spec:
  type: service
  lifecycle: production
  owner: group:default/pumps
`,
	"extra/extra.yaml": `apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: extra
spec:
  type: library
  lifecycle: production
  owner: rockets
`,
	"extra/preview.yaml": `apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: preview
spec:
  type: library
  lifecycle: production
  owner: rockets
`,
}

// fixtureCount is the number of served entities after the first run: the
// generated root Location, 5 from all.yaml, 2 from more.yaml.
const fixtureCount = 8

type fixture struct {
	t   testing.TB
	dir string
	db  *store.DB
	eng *engine.Engine
	h   http.Handler
}

// newFixture ingests the fixture catalog into a fresh store and builds the
// API over it; opt may adjust the options.
func newFixture(t *testing.T, opt func(*Options)) *fixture {
	t.Helper()
	return buildFixture(t, fixtureFiles, opt)
}

// buildFixture writes files under a temp dir, ingests catalog/all.yaml
// through a "demo" pipeline of the builtin stages and builds the API.
func buildFixture(t testing.TB, files map[string]string, opt func(*Options)) *fixture {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	hcl := `pipeline "demo" {
  allow_files = [` + quote(dir) + `]
  location "file" {
    target = ` + quote(filepath.Join(dir, "catalog", "all.yaml")) + `
  }
  stage "placeholders" {}
  stage "builtin-kinds" {}
  stage "file" {}
  stage "url" {}
  stage "annotate-location" {}
}
`
	hclPath := filepath.Join(dir, "demo.hcl")
	if err := os.WriteFile(hclPath, []byte(hcl), 0o644); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg, err := config.LoadFiles([]string{hclPath}, config.Options{Specs: builtin.Specs(), Logger: log})
	if err != nil {
		t.Fatalf("load config: %v", err)
	}
	db, err := store.Open(filepath.Join(dir, "data", "c.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	eng := engine.New(cfg, db, log)
	f := &fixture{t: t, dir: dir, db: db, eng: eng}
	f.run()
	o := Options{Catalog: db, Engine: eng, Logger: log}
	if opt != nil {
		opt(&o)
	}
	f.h = New(o)
	return f
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// run processes everything due.
func (f *fixture) run() {
	f.t.Helper()
	if _, err := f.eng.RunOnce(context.Background()); err != nil {
		f.t.Fatalf("run once: %v", err)
	}
}

// do sends a request; body "" sends none. headers are "Name: value".
func (f *fixture) do(method, target, body string, headers ...string) *httptest.ResponseRecorder {
	f.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return rec
}

// decode parses a JSON response into v.
func decode(t *testing.T, rec *httptest.ResponseRecorder, v any) {
	t.Helper()
	if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
		t.Fatalf("decode %q: %v", rec.Body.String(), err)
	}
}

// entity is the part of an entity the tests look at.
type entity struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name        string            `json:"name"`
		Namespace   string            `json:"namespace"`
		UID         string            `json:"uid"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec map[string]any `json:"spec"`
}

func (e entity) ref() string {
	ns := e.Metadata.Namespace
	if ns == "" {
		ns = "default"
	}
	return strings.ToLower(e.Kind + ":" + ns + "/" + e.Metadata.Name)
}

func refsOf(es []entity) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.ref()
	}
	return out
}

func sorted(s []string) []string {
	c := append([]string(nil), s...)
	sort.Strings(c)
	return c
}

// apiError is Backstage's error document.
type apiError struct {
	Error struct {
		Name    string `json:"name"`
		Message string `json:"message"`
	} `json:"error"`
	Request struct {
		Method string `json:"method"`
		URL    string `json:"url"`
	} `json:"request"`
	Response struct {
		StatusCode int `json:"statusCode"`
	} `json:"response"`
}

// checkError asserts a Backstage error answer with the given status, name
// and a message containing want.
func checkError(t *testing.T, rec *httptest.ResponseRecorder, status int, name, want string) {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status %d, want %d; body %s", rec.Code, status, rec.Body.String())
	}
	var e apiError
	decode(t, rec, &e)
	if e.Error.Name != name || e.Response.StatusCode != status || e.Request.Method == "" || e.Request.URL == "" {
		t.Fatalf("error document %s, want name %s status %d", rec.Body.String(), name, status)
	}
	if !strings.Contains(e.Error.Message, want) {
		t.Fatalf("error message %q does not contain %q", e.Error.Message, want)
	}
}

func mustJSONBody(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
