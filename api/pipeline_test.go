package api

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/catalog-pipeline/pipeline/builtin"
	"github.com/catalog-pipeline/pipeline/engine"
	"github.com/catalog-pipeline/pipeline/engine/config"
	"github.com/catalog-pipeline/pipeline/scripting"
	"github.com/catalog-pipeline/pipeline/store"
)

// The status fixture: a "status" pipeline of builtin stages plus a script
// stage, reading a file location (with three invalid components) and a
// url location served by an httptest server that honours ETags; a second
// pipeline "other" has no location.
const statusScript = `'use strict';
module.exports = {
  postProcessEntity(entity) {
    if (entity.metadata.name === 'explodes') {
      throw new Error('the tagger refuses ' + entity.metadata.name);
    }
    entity.metadata.labels = Object.assign({}, entity.metadata.labels, { tagged: 'yes' });
    return entity;
  },
};
`

const statusCatalog = `apiVersion: backstage.io/v1alpha1
kind: Group
metadata:
  name: rockets
spec:
  type: team
  children: []
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: orders
spec:
  type: service
  lifecycle: production
  owner: rockets
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: bad-a
spec:
  type: service
  owner: rockets
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: bad-b
spec:
  type: service
  owner: rockets
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: explodes
spec:
  type: service
  lifecycle: production
  owner: rockets
`

const remoteCatalog = `apiVersion: backstage.io/v1alpha1
kind: System
metadata:
  name: remote
spec:
  owner: rockets
`

type statusFixture struct {
	*fixture
	hclPath string
	hcl     string
	remote  *httptest.Server
	// notModified counts the 304 answers of the remote server.
	notModified atomic.Int64
}

func newStatusFixture(t *testing.T, opt func(*Options)) *statusFixture {
	t.Helper()
	dir := t.TempDir()
	sf := &statusFixture{}
	sf.remote = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		const etag = `"v1"`
		if r.Header.Get("If-None-Match") == etag {
			sf.notModified.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", etag)
		_, _ = io.WriteString(w, remoteCatalog)
	}))
	t.Cleanup(sf.remote.Close)
	files := map[string]string{
		"catalog/all.yaml":  statusCatalog,
		"scripts/tagger.js": statusScript,
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sf.hcl = `pipeline "status" {
  allow_files = [` + quote(dir) + `]
  allow_hosts = ["127.0.0.1"]
  location "file" {
    target = ` + quote(filepath.Join(dir, "catalog", "all.yaml")) + `
  }
  location "url" {
    target = ` + quote(sf.remote.URL+"/catalog-info.yaml") + `
  }
  stage "placeholders" {}
  stage "builtin-kinds" {}
  stage "file" {}
  stage "url" {}
  stage "tagger" {
    script = "scripts/tagger.js"
  }
  stage "annotate-location" {}
}

pipeline "other" {
  stage "builtin-kinds" {}
}
`
	sf.hclPath = filepath.Join(dir, "status.hcl")
	if err := os.WriteFile(sf.hclPath, []byte(sf.hcl), 0o644); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	opts := config.Options{Specs: append(builtin.Specs(), scripting.Spec), Logger: log}
	cfg, err := config.LoadFiles([]string{sf.hclPath}, opts)
	if err != nil {
		t.Fatalf("load config: %v", err)
	}
	db, err := store.Open(filepath.Join(dir, "data", "c.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	eng := engine.New(cfg, db, log)
	sf.fixture = &fixture{t: t, dir: dir, db: db, eng: eng}
	sf.run()
	o := Options{Catalog: db, Engine: eng, Status: eng, Logger: log, Reload: func() error {
		cfg, err := config.LoadFiles([]string{sf.hclPath}, opts)
		if err != nil {
			return err
		}
		return eng.Reload(cfg)
	}}
	if opt != nil {
		opt(&o)
	}
	sf.h = New(o)
	return sf
}

func TestPipelines(t *testing.T) {
	f := newStatusFixture(t, nil)
	rec := f.do("GET", "/api/pipeline/pipelines", "")
	if rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body.String())
	}
	var out struct{ Items []Pipeline }
	decode(t, rec, &out)
	if len(out.Items) != 2 || out.Items[0].Name != "status" || !out.Items[0].Default || out.Items[1].Name != "other" || out.Items[1].Default {
		t.Fatalf("pipelines %+v", out.Items)
	}
	var got []string
	for _, s := range out.Items[0].Stages {
		got = append(got, s.Name+"/"+s.Kind+"/"+s.Type+"/"+filepath.Base(s.Script))
	}
	want := "placeholders/builtin/placeholders/. builtin-kinds/builtin/builtin-kinds/. file/builtin/file/. url/builtin/url/. tagger/script/script/tagger.js annotate-location/builtin/annotate-location/."
	if strings.Join(got, " ") != want {
		t.Fatalf("stages\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	if s := out.Items[0].Stages[4].Script; !filepath.IsAbs(s) && !strings.HasSuffix(s, "scripts/tagger.js") {
		t.Fatalf("script path %q", s)
	}
	p := out.Items[0]
	if len(p.Locations) != 2 || p.Locations[0].Type != "file" || p.Locations[1].Type != "url" || len(p.AllowFiles) != 1 || len(p.AllowHosts) != 1 {
		t.Fatalf("pipeline %+v", p)
	}
	// Empty lists are [] rather than null.
	if !strings.Contains(rec.Body.String(), `"name":"other","default":false,"stages":[{"name":"builtin-kinds","kind":"builtin","type":"builtin-kinds"}],"locations":[],"allowFiles":[],"allowHosts":[]`) {
		t.Fatalf("other pipeline: %s", rec.Body.String())
	}
}

func TestLocationStatuses(t *testing.T) {
	f := newStatusFixture(t, nil)
	// A second run re-reads the url location with its ETag: a hit.
	f.run()
	if f.notModified.Load() == 0 {
		t.Fatal("the second run sent no conditional request")
	}
	rec := f.do("GET", "/api/pipeline/locations", "")
	if rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body.String())
	}
	var out struct{ Items []LocationState }
	decode(t, rec, &out)
	byTarget := map[string]LocationState{}
	for _, l := range out.Items {
		byTarget[l.Type+":"+filepath.Base(l.Target)] = l
	}
	// The file did not change, so the second run reused the first read
	// (engine/memo.go) instead of reading it again.
	file, ok := byTarget["file:all.yaml"]
	if !ok || file.Source != LocationSourceConfig || file.Pipeline != "status" || file.LastRead == nil || file.Reads != 1 ||
		file.Failures != 0 || file.LastError != "" || file.LastETag != "" || file.Entities != 5 || !strings.HasPrefix(file.EntityRef, "location:default/generated-") {
		t.Fatalf("file location %+v in %s", file, rec.Body.String())
	}
	url, ok := byTarget["url:catalog-info.yaml"]
	if !ok || url.Source != LocationSourceConfig || url.LastETag != ETagHit || url.Requests != 1 || url.NotModified != 1 || url.Reads != 2 || url.Entities != 1 {
		t.Fatalf("url location %+v in %s", url, rec.Body.String())
	}
	if !strings.Contains(rec.Body.String(), `"lastETag":"hit"`) {
		t.Fatalf("body %s", rec.Body.String())
	}

	// A registered location shows up before it is read, then with its id.
	reg := f.do("POST", "/api/catalog/locations", mustJSONBody(map[string]string{"type": "url", "target": f.remote.URL + "/more.yaml"}))
	if reg.Code != 201 {
		t.Fatalf("register: %d %s", reg.Code, reg.Body.String())
	}
	var added addLocationResponse
	decode(t, reg, &added)
	decode(t, f.do("GET", "/api/pipeline/locations", ""), &out)
	var found *LocationState
	for i, l := range out.Items {
		if l.Target == f.remote.URL+"/more.yaml" {
			found = &out.Items[i]
		}
	}
	if found == nil || found.Source != LocationSourceRegistered || found.RegisteredID != added.Location.ID || found.Pipeline != "status" {
		t.Fatalf("registered location %+v in %+v", found, out.Items)
	}

	checkError(t, f.do("POST", "/api/pipeline/locations", ""), 405, MethodNotAllowedErrorName, "POST")
}

func TestProcessingErrors(t *testing.T) {
	f := newStatusFixture(t, nil)
	type page struct {
		Items    []ProcessingErrors
		PageInfo struct{ NextAfter string }
	}
	get := func(target string) page {
		t.Helper()
		rec := f.do("GET", target, "")
		if rec.Code != 200 {
			t.Fatalf("%s: %d %s", target, rec.Code, rec.Body.String())
		}
		var p page
		decode(t, rec, &p)
		return p
	}
	all := get("/api/pipeline/errors")
	var refs []string
	for _, it := range all.Items {
		refs = append(refs, it.EntityRef)
		if it.Location == "" || !strings.HasPrefix(it.Location, "file:") || !strings.HasSuffix(it.Location, "all.yaml") || it.Pipeline != "status" || it.Served || len(it.Errors) == 0 {
			t.Errorf("item %+v", it)
		}
		for _, e := range it.Errors {
			if e.Name == "" || e.Message == "" || e.Stack != "" {
				t.Errorf("error %+v", e)
			}
		}
	}
	if strings.Join(refs, " ") != "component:default/bad-a component:default/bad-b component:default/explodes" || all.PageInfo.NextAfter != "" {
		t.Fatalf("errors %v next %q", refs, all.PageInfo.NextAfter)
	}
	if msg := all.Items[2].Errors[0].Message; !strings.Contains(msg, "the tagger refuses explodes") {
		t.Fatalf("script error %q", msg)
	}
	if msg := all.Items[0].Errors[0].Message; !strings.Contains(msg, "lifecycle") {
		t.Fatalf("validation error %q", msg)
	}

	// Paging with limit and after.
	var paged []string
	target := "/api/pipeline/errors?limit=2"
	for pages := 0; ; pages++ {
		if pages > 3 {
			t.Fatal("paging does not end")
		}
		p := get(target)
		for _, it := range p.Items {
			paged = append(paged, it.EntityRef)
		}
		if p.PageInfo.NextAfter == "" {
			break
		}
		target = "/api/pipeline/errors?limit=2&after=" + p.PageInfo.NextAfter
	}
	if strings.Join(paged, " ") != strings.Join(refs, " ") {
		t.Fatalf("paged %v, want %v", paged, refs)
	}
	if p := get("/api/pipeline/errors?after=component:default/explodes"); len(p.Items) != 0 || p.PageInfo.NextAfter != "" {
		t.Fatalf("past the end: %+v", p)
	}
	if p := get("/api/pipeline/errors?after=Component:Default/Bad-A&limit=1"); len(p.Items) != 1 || p.Items[0].EntityRef != "component:default/bad-b" || p.PageInfo.NextAfter != "component:default/bad-b" {
		t.Fatalf("after, case-insensitive: %+v", p)
	}
	if !strings.Contains(f.do("GET", "/api/pipeline/errors?limit=1", "").Body.String(), `"pageInfo":{"nextAfter":"component:default/bad-a"}`) {
		t.Fatal("pageInfo shape")
	}

	for _, tc := range []struct{ name, target, want string }{
		{"zero limit", "?limit=0", "greater than zero"},
		{"bad limit", "?limit=x", "not an integer"},
		{"huge limit", "?limit=1001", "at most 1000"},
		{"two limits", "?limit=1&limit=2", "single value"},
		{"empty after", "?after=", "invalid after"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkError(t, f.do("GET", "/api/pipeline/errors"+tc.target, ""), 400, InputErrorName, tc.want)
		})
	}
}

func TestReload(t *testing.T) {
	f := newStatusFixture(t, func(o *Options) { o.Token = "tok" })
	auth := "Authorization: Bearer tok"
	tests := []struct {
		name    string
		hcl     string // written before the call; "" keeps the file
		headers []string
		status  int
		errName string
		want    string // in the error message, or in the body on 200
	}{
		{"no token", "", nil, 401, AuthenticationErrorName, "bearer token"},
		{"wrong token", "", []string{"Authorization: Bearer nope"}, 401, AuthenticationErrorName, "invalid bearer token"},
		{"unchanged", "", []string{auth}, 200, "", `"name":"status"`},
		{"new pipeline", "pipeline \"third\" {\n  stage \"builtin-kinds\" {}\n}\n", []string{auth}, 200, "", `"name":"third"`},
		{"invalid", "pipeline \"broken\" {\n  stage \"no-such-stage\" {}\n}\n", []string{auth}, 400, InputErrorName, `unknown stage type "no-such-stage"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.hcl != "" {
				if err := os.WriteFile(f.hclPath, []byte(f.hcl+"\n"+tc.hcl), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			rec := f.do("POST", "/api/pipeline/reload", "", tc.headers...)
			if tc.status != 200 {
				checkError(t, rec, tc.status, tc.errName, tc.want)
				return
			}
			if rec.Code != 200 || !strings.Contains(rec.Body.String(), tc.want) {
				t.Fatalf("%d %s", rec.Code, rec.Body.String())
			}
		})
	}
	// The diagnostics name the file and line; the running configuration
	// is kept.
	rec := f.do("POST", "/api/pipeline/reload", "", auth)
	var e apiError
	decode(t, rec, &e)
	if !strings.Contains(e.Error.Message, "status.hcl:") || !strings.Contains(e.Error.Message, "the running one is kept") {
		t.Fatalf("message %q", e.Error.Message)
	}
	var out struct{ Items []Pipeline }
	decode(t, f.do("GET", "/api/pipeline/pipelines", ""), &out)
	if len(out.Items) != 3 || out.Items[2].Name != "third" {
		t.Fatalf("pipelines after a failed reload: %+v", out.Items)
	}
	checkError(t, f.do("GET", "/api/pipeline/reload", ""), 405, MethodNotAllowedErrorName, "GET")
}

func TestPipelineRoutesUnavailable(t *testing.T) {
	h := New(Options{Logger: quiet()})
	for _, tc := range []struct {
		method, target string
		status         int
		name, want     string
	}{
		{"GET", "/api/pipeline/pipelines", 503, ServiceUnavailableErrorName, "engine status"},
		{"GET", "/api/pipeline/locations/", 503, ServiceUnavailableErrorName, "engine status"},
		{"GET", "/api/pipeline/errors", 503, ServiceUnavailableErrorName, "catalog store"},
		{"POST", "/api/pipeline/reload", 501, NotImplementedErrorName, "not enabled"},
		{"GET", "/api/pipeline/nothing", 404, NotFoundErrorName, "no route"},
	} {
		t.Run(tc.method+" "+tc.target, func(t *testing.T) {
			checkError(t, serve(h, tc.method, tc.target, ""), tc.status, tc.name, tc.want)
		})
	}
	// A reload that fails for another reason than the configuration is a
	// 500.
	h = New(Options{Logger: quiet(), Reload: func() error { return context.DeadlineExceeded }})
	checkError(t, serve(h, "POST", "/api/pipeline/reload", ""), 500, "Error", "deadline")
}
