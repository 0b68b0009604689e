package builtin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/catalog-pipeline/pipeline/engine"
	"github.com/catalog-pipeline/pipeline/reading"
)

// upstream is a fake file host: path → (body, etag). It records the
// If-None-Match header of every request.
type upstream struct {
	mu          sync.Mutex
	files       map[string][2]string
	ifNoneMatch []string
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.ifNoneMatch = append(u.ifNoneMatch, r.Header.Get("If-None-Match"))
	f, ok := u.files[r.URL.Path]
	u.mu.Unlock()
	switch {
	case r.URL.Path == "/slow":
		select {
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
		}
		return
	case r.URL.Path == "/always-304":
		w.WriteHeader(http.StatusNotModified)
		return
	case r.URL.Path == "/304-without-etag":
		if r.Header.Get("If-None-Match") == "" && len(u.ifNoneMatch) == 1 {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprint(w, entityDoc("after-304"))
		return
	case strings.HasPrefix(r.URL.Path, "/boom"):
		http.Error(w, "upstream exploded", http.StatusInternalServerError)
		return
	case strings.HasPrefix(r.URL.Path, "/redirect"):
		http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
		return
	case !ok:
		http.NotFound(w, r)
		return
	}
	body, etag := f[0], f[1]
	if etag != "" {
		w.Header().Set("ETag", etag)
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	fmt.Fprint(w, body)
}

func (u *upstream) sent() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.ifNoneMatch...)
}

// countingCache is a memoryCache that counts Set calls.
type countingCache struct {
	memoryCache
	sets int
}

func (c *countingCache) Set(k string, v any) { c.sets++; c.memoryCache.Set(k, v) }

func newUpstream(t *testing.T) (*upstream, *httptest.Server) {
	up := &upstream{files: map[string][2]string{
		"/catalog.yaml":    {entityDoc("u1") + "---\n" + entityDoc("u2"), `"etag-1"`},
		"/no-etag.yaml":    {entityDoc("plain"), ""},
		"/partly-bad.yaml": {entityDoc("good") + "---\n[1, 2]\n", `"etag-bad"`},
		"/big.yaml":        {entityDoc("big") + "  padding: " + strings.Repeat("x", 2000) + "\n", `"etag-big"`},
	}}
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	return up, srv
}

func urlPolicy(t *testing.T, srv *httptest.Server) reading.Policy {
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return reading.Policy{Hosts: []string{u.Host}, MaxBytes: 1000, Timeout: 300 * time.Millisecond}
}

func readURL(t *testing.T, st engine.LocationReader, target string, optional bool, cache engine.Cache) (*locLog, error) {
	t.Helper()
	var log locLog
	handled, err := st.ReadLocation(context.Background(), engine.Location{Type: "url", Target: target}, optional, log.emit, cache)
	if !handled {
		t.Fatal("not handled")
	}
	if got := log.refreshKeys(); !reflect.DeepEqual(got, []string{"url:" + target}) {
		t.Errorf("refresh keys %q, want [url:%s]", got, target)
	}
	return &log, err
}

func TestURLStageETagCache(t *testing.T) {
	up, srv := newUpstream(t)
	st := newLocationReader(t, URLSpec, urlPolicy(t, srv), nil)
	target := srv.URL + "/catalog.yaml"
	want := []string{"url:" + target + " u1", "url:" + target + " u2"}

	// First read: 200, entities emitted, cache set with the ETag.
	cache := &countingCache{memoryCache: memoryCache{}}
	log, err := readURL(t, st, target, false, cache)
	if err != nil {
		t.Fatal(err)
	}
	if got := log.entities(); !reflect.DeepEqual(got, want) {
		t.Fatalf("entities %q, want %q", got, want)
	}
	item, ok := cache.memoryCache[urlCacheKey].(map[string]any)
	if !ok || item["etag"] != `"etag-1"` || len(item["entities"].([]any)) != 2 || cache.sets != 1 {
		t.Fatalf("cache after 200: %#v (%d sets)", cache.memoryCache, cache.sets)
	}
	// The cache must survive being persisted as JSON.
	if _, err := json.Marshal(cache.memoryCache); err != nil {
		t.Fatalf("cache is not JSON: %v", err)
	}
	// The engine may change emitted entities; the cache must not follow.
	log.results[1].(engine.EntityResult).Entity.Metadata.Name = "changed"

	// Second read: If-None-Match sent, 304, cached entities emitted again,
	// cache set again so that the carry-over rule keeps it.
	cache.sets = 0
	log, err = readURL(t, st, target, false, cache)
	if err != nil {
		t.Fatal(err)
	}
	if got := log.entities(); !reflect.DeepEqual(got, want) {
		t.Fatalf("entities after 304 %q, want %q", got, want)
	}
	if cache.sets != 1 {
		t.Errorf("cache set %d times on 304, want 1", cache.sets)
	}
	if got := up.sent(); !reflect.DeepEqual(got, []string{"", `"etag-1"`}) {
		t.Errorf("If-None-Match sent %q", got)
	}

	// Third read with the cache as it comes back from JSON after a restart.
	raw, _ := json.Marshal(cache.memoryCache)
	var decoded map[string]any
	if err := json.Unmarshal(raw, &decoded); err != nil {
		t.Fatal(err)
	}
	restarted := &countingCache{memoryCache: memoryCache(decoded)}
	log, err = readURL(t, st, target, false, restarted)
	if err != nil {
		t.Fatal(err)
	}
	if got := log.entities(); !reflect.DeepEqual(got, want) {
		t.Fatalf("entities after restart %q, want %q", got, want)
	}
	if got := up.sent(); got[len(got)-1] != `"etag-1"` {
		t.Errorf("after restart If-None-Match = %q", got[len(got)-1])
	}
	if restarted.sets != 1 {
		t.Errorf("cache set %d times, want 1", restarted.sets)
	}
}

func TestURLStageReads(t *testing.T) {
	_, srv := newUpstream(t)
	forbidden := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, entityDoc("forbidden"))
	}))
	defer forbidden.Close()
	st := newLocationReader(t, URLSpec, urlPolicy(t, srv), nil)
	u := func(p string) string { return srv.URL + p }

	tests := []struct {
		name     string
		target   string
		optional bool
		cache    memoryCache
		entities []string
		errs     []string
		cached   bool // whether "v1" is set afterwards
		retName  string
		retText  string
	}{
		{name: "no ETag: entities but no cache", target: u("/no-etag.yaml"),
			entities: []string{"url:" + u("/no-etag.yaml") + " plain"}},
		{name: "parse errors: good entities, error, no cache", target: u("/partly-bad.yaml"),
			entities: []string{"url:" + u("/partly-bad.yaml") + " good"},
			errs:     []string{u("/partly-bad.yaml") + ":8: expected an object at the root of the document, got array"}},
		{name: "404 required", target: u("/missing.yaml"),
			retName: engine.NotFoundErrorName, retText: "status 404"},
		{name: "404 optional", target: u("/missing.yaml"), optional: true},
		{name: "500", target: u("/boom"),
			retName: engine.GeneralErrorName, retText: "status 500: upstream exploded"},
		{name: "body over the limit", target: u("/big.yaml"),
			retName: engine.GeneralErrorName, retText: "over the limit of 1000 bytes"},
		{name: "timeout", target: u("/slow"),
			retName: engine.GeneralErrorName, retText: "Timeout"},
		{name: "host not allowed", target: forbidden.URL + "/x.yaml",
			retName: engine.GeneralErrorName, retText: "not in the allowed hosts"},
		{name: "redirect to a host not allowed", target: u("/redirect?to=" + url.QueryEscape(forbidden.URL+"/x.yaml")),
			retName: engine.GeneralErrorName, retText: "redirect to " + forbidden.URL + "/x.yaml"},
		{name: "304 without a cache: read again without ETag", target: u("/304-without-etag"),
			entities: []string{"url:" + u("/304-without-etag") + " after-304"}},
		{name: "always 304", target: u("/always-304"),
			retName: engine.GeneralErrorName, retText: "although no ETag was sent"},
		{name: "unusable cache is ignored", target: u("/catalog.yaml"),
			cache:    memoryCache{urlCacheKey: map[string]any{"etag": `"etag-1"`, "entities": "not a list"}},
			entities: []string{"url:" + u("/catalog.yaml") + " u1", "url:" + u("/catalog.yaml") + " u2"},
			cached:   true},
		{name: "cached entity that no longer decodes is ignored", target: u("/catalog.yaml"),
			cache:    memoryCache{urlCacheKey: map[string]any{"etag": `"etag-1"`, "entities": []any{map[string]any{"kind": 5}}}},
			entities: []string{"url:" + u("/catalog.yaml") + " u1", "url:" + u("/catalog.yaml") + " u2"},
			cached:   true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cache := tc.cache
			if cache == nil {
				cache = memoryCache{}
			}
			log, err := readURL(t, st, tc.target, tc.optional, cache)
			if tc.retName == engine.GeneralErrorName && strings.Contains(tc.retText, "Timeout") {
				tc.retText = "" // the exact wording of net/http's timeout varies
				if err == nil || !strings.Contains(strings.ToLower(err.Error()), "timeout") {
					t.Fatalf("returned %v, want a timeout", err)
				}
			}
			checkReturned(t, err, tc.retName, tc.retText)
			if got := log.entities(); !reflect.DeepEqual(got, tc.entities) {
				t.Errorf("entities\n got %q\nwant %q", got, tc.entities)
			}
			errs := log.errors()
			if len(errs) != len(tc.errs) {
				t.Fatalf("emitted errors %v, want %d", errs, len(tc.errs))
			}
			for i, e := range errs {
				if !strings.Contains(e.Err.Error(), tc.errs[i]) || e.Location != (engine.Location{Type: "url", Target: tc.target}) {
					t.Errorf("error %d = %q at %v, want %q", i, e.Err, e.Location, tc.errs[i])
				}
			}
			item, ok := cache[urlCacheKey].(map[string]any)
			if ok != tc.cached {
				t.Errorf("cache item %#v, want cached=%v", item, tc.cached)
			}
			if ok {
				if es, _ := item["entities"].([]any); len(es) != len(tc.entities) {
					t.Errorf("cache item %#v does not hold the %d entities read", item, len(tc.entities))
				}
			}
		})
	}
}

func TestURLStageNotAllowedCause(t *testing.T) {
	_, srv := newUpstream(t)
	st := newLocationReader(t, URLSpec, urlPolicy(t, srv), nil)
	_, err := readURL(t, st, "https://elsewhere.invalid/x.yaml", false, memoryCache{})
	if !errors.Is(err, reading.ErrNotAllowed) {
		t.Fatalf("err = %v, want it to wrap reading.ErrNotAllowed", err)
	}
}

func TestURLStageTimeoutSetting(t *testing.T) {
	_, srv := newUpstream(t)
	p := urlPolicy(t, srv)
	p.Timeout = 5 * time.Second
	st := newLocationReader(t, URLSpec, p, map[string]string{"timeout": "50ms"})
	start := time.Now()
	_, err := readURL(t, st, srv.URL+"/slow", false, memoryCache{})
	if err == nil || time.Since(start) > time.Second {
		t.Fatalf("err = %v after %v, want a timeout after about 50ms", err, time.Since(start))
	}
	if err := URLSpec.Fields[0].Check(ctyString("soon")); err == nil {
		t.Error("timeout setting accepted \"soon\"")
	}
	if err := URLSpec.Fields[0].Check(ctyString("")); err != nil {
		t.Errorf("empty timeout refused: %v", err)
	}
}

func TestURLStageLongErrorIsTruncated(t *testing.T) {
	_, srv := newUpstream(t)
	st := newLocationReader(t, URLSpec, urlPolicy(t, srv), nil)
	target := srv.URL + "/boom/" + strings.Repeat("é", 3000) // 6000 bytes of path
	_, err := readURL(t, st, target, false, memoryCache{})
	var pe *engine.ProcessingError
	if !errors.As(err, &pe) || len(pe.Message) > maxErrorMessage || !strings.HasPrefix(pe.Message, "fetch ") {
		t.Fatalf("returned %v", err)
	}
	if len(pe.Message) < maxErrorMessage-1 || !utf8.ValidString(pe.Message) {
		t.Errorf("message of %d bytes not cut at %d on a character boundary", len(pe.Message), maxErrorMessage)
	}
}

func TestURLStageOtherTypes(t *testing.T) {
	_, srv := newUpstream(t)
	st := newLocationReader(t, URLSpec, urlPolicy(t, srv), nil)
	var log locLog
	handled, err := st.ReadLocation(context.Background(), engine.Location{Type: "file", Target: "/x.yaml"}, false, log.emit, memoryCache{})
	if handled || err != nil || len(log.results) != 0 {
		t.Fatalf("handled=%v err=%v results=%v", handled, err, log.results)
	}
}

func TestSpecs(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range Specs() {
		if s.Name == "" || s.New == nil || s.Summary == "" {
			t.Errorf("incomplete spec %+v", s)
		}
		if seen[s.Name] {
			t.Errorf("duplicate stage name %q", s.Name)
		}
		seen[s.Name] = true
	}
	for _, want := range []string{"file", "url"} {
		if !seen[want] {
			t.Errorf("no %q stage", want)
		}
	}
}
