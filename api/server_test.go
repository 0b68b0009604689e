package api

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/catalog-pipeline/pipeline/engine"
	"github.com/catalog-pipeline/pipeline/store"
)

// panicky is a Catalog whose every call panics or fails.
type panicky struct{ fail error }

func (p panicky) Match(store.Expr) (store.RefSet, error) { return nil, p.err() }
func (p panicky) Count(store.Expr) (int, error)          { return 0, p.err() }
func (p panicky) Page(store.PageQuery) (store.PageResult, error) {
	return store.PageResult{}, p.err()
}
func (p panicky) Facets([]string, store.Expr) (map[string][]store.FacetCount, error) {
	return nil, p.err()
}
func (p panicky) FinalByRefs([]string) ([][]byte, error)      { return nil, p.err() }
func (p panicky) FinalByUID(string) (string, []byte, error)   { return "", nil, p.err() }
func (p panicky) Parents(string) ([]string, error)            { return nil, p.err() }
func (p panicky) ForEachError(func(*store.State) error) error { return p.err() }
func (p panicky) QueueDepth(time.Time) (int, error)           { return 0, p.err() }

func (p panicky) err() error {
	if p.fail != nil {
		return p.fail
	}
	panic("boom")
}

func serve(h http.Handler, method, target, body string) *httptest.ResponseRecorder {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, rd))
	return rec
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestHealth(t *testing.T) {
	h := New(Options{Logger: quiet()})
	if rec := serve(h, "GET", "/healthz", ""); rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != "ok" {
		t.Fatalf("healthz %d %q", rec.Code, rec.Body.String())
	}
	checkError(t, serve(h, "GET", "/readyz", ""), 503, ServiceUnavailableErrorName, "not ready")
	// Without a catalog or engine, their routes answer 503.
	checkError(t, serve(h, "GET", "/api/catalog/entities", ""), 503, ServiceUnavailableErrorName, "store")
	checkError(t, serve(h, "GET", "/api/catalog/locations", ""), 503, ServiceUnavailableErrorName, "engine")

	h = New(Options{Logger: quiet(), Catalog: panicky{fail: errors.New("x")}})
	if rec := serve(h, "GET", "/readyz", ""); rec.Code != 200 {
		t.Fatalf("readyz %d", rec.Code)
	}
}

func TestRecoverAndErrors(t *testing.T) {
	h := New(Options{Logger: quiet(), Catalog: panicky{}})
	rec := serve(h, "GET", "/api/catalog/entities/by-name/a/b/c?x=1", "")
	checkError(t, rec, 500, "Error", "boom")
	var e apiError
	decode(t, rec, &e)
	if e.Request.Method != "GET" || e.Request.URL != "/api/catalog/entities/by-name/a/b/c?x=1" {
		t.Fatalf("request %+v", e.Request)
	}
	// Store errors are 500s with their message.
	h = New(Options{Logger: quiet(), Catalog: panicky{fail: errors.New("disk on fire")}})
	checkError(t, serve(h, "GET", "/api/catalog/entities", ""), 500, "Error", "disk on fire")
	checkError(t, serve(h, "GET", "/api/catalog/nothing", ""), 404, NotFoundErrorName, "no route")
	checkError(t, serve(h, "PATCH", "/api/catalog/entities", ""), 405, MethodNotAllowedErrorName, "PATCH")
	checkError(t, serve(h, "GET", "/api/catalog/refresh", ""), 405, MethodNotAllowedErrorName, "GET")
}

func TestStatusMapping(t *testing.T) {
	for name, want := range map[string]int{
		"InputError": 400, "AuthenticationError": 401, "NotAllowedError": 403, "NotFoundError": 404,
		"ConflictError": 409, "NotImplementedError": 501, "ServiceUnavailableError": 503, "NotModifiedError": 304,
		"Error": 500, "SomethingElse": 500,
	} {
		if got := asAPIError(&engine.ProcessingError{Name: name, Message: "m"}).Status; got != want {
			t.Errorf("%s: %d want %d", name, got, want)
		}
	}
	if got := asAPIError(&Error{Name: "InputError", Status: 422}).Status; got != 422 {
		t.Errorf("explicit status: %d", got)
	}
	if got := asAPIError(errors.New("x")); got.Status != 500 || got.Name != "Error" {
		t.Errorf("plain error: %+v", got)
	}
}

func TestTrailingSlashAndHead(t *testing.T) {
	f := newFixture(t, nil)
	if rec := f.do("GET", "/api/catalog/entities/by-name/component/default/orders/", ""); rec.Code != 200 {
		t.Fatalf("trailing slash: %d", rec.Code)
	}
	if rec := f.do("POST", "/api/catalog/entities/by-query/", `{}`); rec.Code != 200 {
		t.Fatalf("trailing slash post: %d", rec.Code)
	}
	if rec := f.do("HEAD", "/api/catalog/entities", ""); rec.Code != 200 {
		t.Fatalf("head: %d", rec.Code)
	}
	// As in Backstage, GET /locations/by-query is GET /locations/{id}.
	checkError(t, f.do("GET", "/api/catalog/locations/by-query", ""), 404, NotFoundErrorName, "Found no location with ID by-query")
}
