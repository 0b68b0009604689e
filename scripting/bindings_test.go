package scripting

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/catalog-pipeline/pipeline/engine"
)

// readScript reads location.target (with an etag and a header when the
// location type says so) and stores what it saw, or the error it caught, in
// the cache.
const readScript = `
exports.readLocation = (location) => {
  const opts = location.type === 'etag' ? { etag: '"v1"', headers: { Authorization: 'Bearer t' } } : undefined;
  try {
    const r = read(location.target, opts);
    cache.set('status', r.status);
    cache.set('etag', r.etag);
    cache.set('type', r.headers['content-type'] || null);
    cache.set('json', r.json());
    cache.set('text', r.text() === r.body);
  } catch (e) {
    cache.set('error', { name: e.name, message: e.message, status: e.status === undefined ? null : e.status, etag: e.etag === undefined ? null : e.etag, isClass: e instanceof Error });
  }
  return true;
};`

func TestRead(t *testing.T) {
	e := newEnv(t)
	e.write("data/x.json", `{"from":"file"}`)
	var mu sync.Mutex
	var auth []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auth = append(auth, r.Header.Get("Authorization"))
		mu.Unlock()
		switch r.URL.Path {
		case "/records":
			w.Header().Set("ETag", `"v1"`)
			if r.Header.Get("If-None-Match") == `"v1"` {
				w.WriteHeader(http.StatusNotModified)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"from":"http"}`)
		case "/hang":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	localhostURL := "http://localhost:" + u.Port() + "/records"

	s := e.stage(readScript, nil)
	tests := []struct {
		name string
		loc  engine.Location
		want map[string]any
	}{
		{"relative file", engine.Location{Type: "x", Target: "data/x.json"},
			map[string]any{"status": 200, "etag": nil, "type": nil, "json": map[string]any{"from": "file"}, "text": true}},
		{"absolute file", engine.Location{Type: "x", Target: e.dir + "/data/x.json"},
			map[string]any{"status": 200, "etag": nil, "type": nil, "json": map[string]any{"from": "file"}, "text": true}},
		{"file URL", engine.Location{Type: "x", Target: "file://" + e.dir + "/data/x.json"},
			map[string]any{"status": 200, "etag": nil, "type": nil, "json": map[string]any{"from": "file"}, "text": true}},
		{"http", engine.Location{Type: "x", Target: srv.URL + "/records"},
			map[string]any{"status": 200, "etag": `"v1"`, "type": "application/json", "json": map[string]any{"from": "http"}, "text": true}},
		{"http 304", engine.Location{Type: "etag", Target: srv.URL + "/records"},
			map[string]any{"error": map[string]any{"name": "NotModifiedError", "message": srv.URL + "/records", "status": 304, "etag": `"v1"`, "isClass": true}}},
		{"http 404", engine.Location{Type: "x", Target: srv.URL + "/nope"},
			map[string]any{"error": map[string]any{"name": "NotFoundError", "message": srv.URL + "/nope", "status": 404, "etag": nil, "isClass": true}}},
		{"missing file", engine.Location{Type: "x", Target: "data/nope.json"},
			map[string]any{"error": map[string]any{"name": "NotFoundError", "message": e.dir + "/data/nope.json", "status": 404, "etag": nil, "isClass": true}}},
		{"host not allowed", engine.Location{Type: "x", Target: localhostURL},
			map[string]any{"error": map[string]any{"name": "NotAllowedError", "message": "host localhost:" + u.Port() + " is not in the allowed hosts", "status": nil, "etag": nil, "isClass": true}}},
		{"path not allowed", engine.Location{Type: "x", Target: "/etc/passwd"},
			map[string]any{"error": map[string]any{"name": "NotAllowedError", "message": "/etc/passwd: outside the allowed folders", "status": nil, "etag": nil, "isClass": true}}},
		{"relative escape", engine.Location{Type: "x", Target: "../outside.json"},
			map[string]any{"error": map[string]any{"name": "NotAllowedError", "message": dirOf(e.dir) + "/outside.json: outside the allowed folders", "status": nil, "etag": nil, "isClass": true}}},
		{"not a target", engine.Location{Type: "x", Target: "ftp://h/x"},
			map[string]any{"error": map[string]any{"name": "Error", "message": "ftp://h/x", "status": nil, "etag": nil, "isClass": true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newMemCache()
			if _, err := s.ReadLocation(ctx, tt.loc, false, (&collector{}).emit, c); err != nil {
				t.Fatal(err)
			}
			// Messages come from the reading package: expect a part of them.
			if ge, ok := c.m["error"].(map[string]any); ok {
				if we, ok := tt.want["error"].(map[string]any); ok && strings.Contains(ge["message"].(string), we["message"].(string)) {
					ge["message"] = we["message"]
				}
			}
			if !reflect.DeepEqual(c.m, tt.want) {
				t.Errorf("got  %#v\nwant %#v", c.m, tt.want)
			}
		})
	}
	mu.Lock()
	if !strings.Contains(strings.Join(auth, ","), "Bearer t") {
		t.Errorf("headers were not sent: %q", auth)
	}
	mu.Unlock()

	// The stage timeout cancels a read that hangs.
	s = e.stage(readScript, map[string]cty.Value{"timeout": cty.StringVal("200ms")})
	start := time.Now()
	_, err := s.ReadLocation(ctx, engine.Location{Type: "x", Target: srv.URL + "/hang"}, false, (&collector{}).emit, newMemCache())
	if err == nil {
		t.Fatal("a hanging read returned")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the hanging read took %s", d)
	}
	mustContain(t, "error", err.Error(), "readLocation timed out after 200ms")
}

func dirOf(p string) string { return p[:strings.LastIndexByte(p, '/')] }

func TestCache(t *testing.T) {
	s := newEnv(t).stage(`
exports.preProcessEntity = (entity) => {
  const seen = cache.get('value');
  entity.spec.seen = seen === undefined ? 'nothing' : JSON.stringify(seen);
  if (seen) { seen.list.push('changed'); }
  cache.set('value', { list: [1, 2.5, { b: null }], s: entity.metadata.name, t: true, skip: undefined });
  return entity;
};
exports.validateEntityKind = () => { cache.get('x'); return true; };`, nil)

	first := newMemCache()
	got, err := s.PreProcessEntity(ctx, testEntity("a"), urlLoc, (&collector{}).emit, first)
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec["seen"] != "nothing" {
		t.Errorf("an empty cache gave %v", got.Spec["seen"])
	}
	want := map[string]any{"list": []any{1, 2.5, map[string]any{"b": nil}}, "s": "a", "t": true}
	if !reflect.DeepEqual(first.m["value"], want) {
		t.Errorf("stored %#v\nwant %#v", first.m["value"], want)
	}

	// The next run sees what was stored, through the cache it is given.
	second := newMemCache("value", first.m["value"])
	got, err = s.PreProcessEntity(ctx, testEntity("b"), urlLoc, (&collector{}).emit, second)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"list":[1,2.5,{"b":null}],"s":"a","t":true}`; got.Spec["seen"] != want {
		t.Errorf("seen %v, want %s", got.Spec["seen"], want)
	}
	if l := first.m["value"].(map[string]any)["list"].([]any); len(l) != 3 {
		t.Errorf("changing the value cache.get returned reached the Go value: %v", l)
	}
	if second.m["value"].(map[string]any)["s"] != "b" {
		t.Errorf("the second cache was not the one written: %v", second.m)
	}
	if first.m["value"].(map[string]any)["s"] != "a" {
		t.Errorf("the first cache was written by the second call: %v", first.m)
	}

	_, err = s.ValidateEntityKind(ctx, testEntity("a"))
	mustContain(t, "validate", errString(err), "TypeError: cache is not available in validateEntityKind")
}

func TestConfig(t *testing.T) {
	s := newEnv(t).stage(`'use strict';
exports.postProcessEntity = (entity) => {
  entity.spec.config = config;
  entity.spec.frozen = Object.isFrozen(config) && Object.isFrozen(config.nested) && Object.isFrozen(config.list);
  try { config.nested.k = false; entity.spec.assigned = true; } catch (e) { entity.spec.assigned = e.name; }
  return entity;
};`, map[string]cty.Value{"config": cty.ObjectVal(map[string]cty.Value{
		"base_url": cty.StringVal("https://h"),
		"n":        cty.NumberIntVal(3),
		"f":        cty.NumberFloatVal(1.5),
		"list":     cty.TupleVal([]cty.Value{cty.StringVal("a"), cty.True}),
		"nested":   cty.ObjectVal(map[string]cty.Value{"k": cty.True, "none": cty.NullVal(cty.String)}),
	})})
	got, err := s.PostProcessEntity(ctx, testEntity("a"), urlLoc, (&collector{}).emit, newMemCache())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"base_url": "https://h", "n": 3, "f": 1.5, "list": []any{"a", true}, "nested": map[string]any{"k": true, "none": nil}}
	if !reflect.DeepEqual(got.Spec["config"], want) {
		t.Errorf("config %#v\nwant %#v", got.Spec["config"], want)
	}
	if got.Spec["frozen"] != true || got.Spec["assigned"] != "TypeError" {
		t.Errorf("config is not deep-frozen: frozen=%v assigned=%v", got.Spec["frozen"], got.Spec["assigned"])
	}
}

func TestLog(t *testing.T) {
	e := newEnv(t)
	s := e.stage(`
log.info('top level');
exports.postProcessEntity = (entity) => {
  log.info('hello', { n: 1, who: entity.metadata.name });
  log.warn('careful');
  console.error('console', { a: 1 }, 2, 'x');
  return entity;
};
exports.readLocation = () => { log.debug('reading'); return true; };`, nil)
	if _, err := s.PostProcessEntity(ctx, testEntity("foo"), urlLoc, (&collector{}).emit, newMemCache()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadLocation(ctx, engine.Location{Type: "system-x", Target: "inv"}, false, (&collector{}).emit, newMemCache()); err != nil {
		t.Fatal(err)
	}
	logs := e.logs.String()
	mustContain(t, "logs", logs,
		`level=INFO msg="top level" pipeline=p stage=js`+"\n",
		`level=INFO msg=hello pipeline=p stage=js hook=postProcessEntity entity=component:default/foo location=`+urlLoc.String()+` n=1 who=foo`,
		`level=WARN msg=careful pipeline=p stage=js hook=postProcessEntity entity=component:default/foo`,
		`level=ERROR msg="console {\"a\":1} 2 x" pipeline=p stage=js hook=postProcessEntity entity=component:default/foo`,
		`level=DEBUG msg=reading pipeline=p stage=js hook=readLocation location=system-x:inv`,
	)
}

// The location a hook receives is frozen: a script cannot change what
// the next call (or the engine) sees.
func TestLocationIsFrozen(t *testing.T) {
	s := newEnv(t).stage(`
exports.postProcessEntity = (entity, location) => {
  if (!Object.isFrozen(location)) throw new Error('location is not frozen');
  location.target = 'elsewhere';
  location.extra = 1;
  entity.spec.seen = location.type + ':' + location.target;
  entity.spec.extra = location.extra === undefined;
  return entity;
};`, nil)
	for range 2 {
		got, err := s.PostProcessEntity(ctx, testEntity("a"), urlLoc, (&collector{}).emit, newMemCache())
		if err != nil {
			t.Fatal(err)
		}
		if got.Spec["seen"] != urlLoc.String() || got.Spec["extra"] != true {
			t.Errorf("spec = %v, want seen %s and no extra property", got.Spec, urlLoc)
		}
	}
}

func TestConcurrency(t *testing.T) {
	s := newEnv(t).stage(`
exports.postProcessEntity = (entity, location) => {
  let x = 0;
  for (let i = 0; i < 200; i++) x += i;
  entity.spec.sum = x;
  entity.spec.copy = entity.metadata.name;
  emit(results.relation({ source: { kind: entity.kind, name: entity.metadata.name }, type: 'ownedBy', target: 'group:' + entity.spec.owner }));
  cache.set('name', entity.metadata.name);
  return entity;
};`, map[string]cty.Value{"pool": cty.NumberIntVal(2)})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				name := fmt.Sprintf("e-%d-%d", g, i)
				c, mc := &collector{}, newMemCache()
				got, err := s.PostProcessEntity(ctx, testEntity(name), urlLoc, c.emit, mc)
				if err != nil {
					errs <- err
					return
				}
				rs := c.all()
				if got.Spec["copy"] != name || len(rs) != 1 || rs[0].(engine.RelationResult).Source.Name != name || mc.m["name"] != name {
					errs <- fmt.Errorf("call for %s got %v, %v, %v", name, got.Spec["copy"], rs, mc.m)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(s.idle); n > 2 {
		t.Errorf("%d idle runtimes for a pool of 2", n)
	}
}
