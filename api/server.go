package api

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/catalog-pipeline/pipeline/catalog"
	"github.com/catalog-pipeline/pipeline/engine"
	"github.com/catalog-pipeline/pipeline/store"
)

// CatalogPrefix is where the catalog API is served.
const CatalogPrefix = "/api/catalog"

// DefaultMaxBody is the request body limit when Options.MaxBody is 0.
const DefaultMaxBody int64 = 1 << 20

// Catalog is what the API reads the served entities through; *store.DB
// implements it.
type Catalog interface {
	// Match returns the refs of the served entities matching e (nil e:
	// all of them).
	Match(e store.Expr) (store.RefSet, error)
	// Page returns one page of matching entities in order (with
	// WithTotal, and the count of the whole walk).
	Page(q store.PageQuery) (store.PageResult, error)
	// Facets counts the values of each path over the entities matching
	// filter.
	Facets(paths []string, filter store.Expr) (map[string][]store.FacetCount, error)
	// FinalByRefs returns the served JSON of each ref (nil when not
	// served), in the order given.
	FinalByRefs(refs []string) ([][]byte, error)
	// FinalByUID finds a served entity by metadata.uid; body is nil when
	// there is none.
	FinalByUID(uid string) (ref string, body []byte, err error)
	// Parents returns the parent keys of ref: entity refs, or
	// store.ProviderPrefix + pipeline for roots.
	Parents(ref string) ([]string, error)
	// ForEachError calls fn with the state of every entity whose last run
	// recorded errors, in ref order (GET /api/pipeline/errors and the
	// catalog_entities_with_errors metric).
	ForEachError(fn func(st *store.State) error) error
	// QueueDepth counts the entities due at or before now (the
	// pipeline_queue_depth metric).
	QueueDepth(now time.Time) (int, error)
}

// Engine is what the API changes the catalog through; *engine.Engine
// implements it. Its errors are *engine.ProcessingError whose Name
// (InputError, NotFoundError, ConflictError, NotAllowedError) picks the
// HTTP status.
type Engine interface {
	// RegisterLocation adds (or, with dryRun, previews) a location for
	// pipeline ("" for the default pipeline).
	RegisterLocation(ctx context.Context, pipeline string, loc engine.Location, dryRun bool) (engine.RegisteredLocation, []json.RawMessage, error)
	// Locations lists the registered locations.
	Locations() ([]engine.RegisteredLocation, error)
	// LocationByID finds a registered location.
	LocationByID(id string) (engine.RegisteredLocation, bool, error)
	// DeleteLocation removes a registered location and its subtree.
	DeleteLocation(id string) error
	// Refresh makes an entity and its ancestors due now.
	Refresh(ref string) error
	// DeleteEntity removes one entity (its parent may recreate it).
	DeleteEntity(ref string) error
	// ValidateEntity processes an entity without storing it and returns
	// the problems found.
	ValidateEntity(ctx context.Context, pipeline string, e *catalog.Entity, location string) ([]catalog.SerializedError, error)
}

// Options configure the API.
type Options struct {
	// Catalog answers entity queries; without it the entity routes
	// answer 503 and /readyz is not ready.
	Catalog Catalog
	// Engine registers locations, refreshes, deletes and validates;
	// without it those routes answer 503.
	Engine Engine
	// Logger receives server errors and, at debug level, one line per
	// request; nil means slog.Default().
	Logger *slog.Logger
	// Token, when set, is the bearer token every mutating route requires
	// (Authorization: Bearer <token>); read-only POSTs (by-query, by-refs,
	// entity-facets, locations/by-query, validate-entity) do not need it.
	Token string
	// ReadOnly makes the mutating location routes answer 403
	// NotAllowedError, like Backstage's catalog.readonly.
	ReadOnly bool
	// MaxBody limits request bodies in bytes; 0 means DefaultMaxBody.
	MaxBody int64
	// Status is the engine's own view, served under /api/pipeline and
	// /metrics; *engine.Engine implements it.
	Status Status
	// Reload reloads the pipeline files (POST /api/pipeline/reload); nil
	// disables the route.
	Reload func() error
}

// Status is what the engine reports about itself, served under
// /api/pipeline and /metrics.
type Status interface {
	// Pipelines describes the configured pipelines, in configuration
	// order (the first is the default pipeline).
	Pipelines() []engine.PipelineInfo
	// LocationStatuses is what the engine last saw when it read each
	// location since the process started.
	LocationStatuses() []engine.LocationStatus
	// HookStats counts the calls, errors and time of every stage hook.
	HookStats() []engine.HookStat
	// ETagStats counts upstream requests answered 304 (hits) and
	// otherwise (misses).
	ETagStats() (hits, misses int64)
}

// The store and the engine are what the API is built for.
var (
	_ Catalog = (*store.DB)(nil)
	_ Engine  = (*engine.Engine)(nil)
	_ Status  = (*engine.Engine)(nil)
)

type server struct {
	o       Options
	log     *slog.Logger
	metrics http.Handler
}

// access says whether a route changes the catalog (and so needs the token
// when one is configured).
type access int

const (
	reads access = iota
	mutates
)

type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// New builds the HTTP handler: a *mux.Router serving /api/catalog,
// /api/pipeline, /healthz, /readyz, /metrics and the OpenAPI document
// (/api/openapi.yaml, /api/openapi.json).
func New(o Options) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxBody <= 0 {
		o.MaxBody = DefaultMaxBody
	}
	s := &server{o: o, log: o.Logger}
	s.metrics = newMetricsHandler(o.Catalog, o.Status, o.Logger)
	if _, err := openapiJSON(); err != nil {
		s.log.Error("the OpenAPI document cannot be served as JSON", "error", err)
	}
	r := mux.NewRouter()
	notFound := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		writeError(w, req, s.log, notFoundErr("no route for %s %s", req.Method, req.URL.Path))
	})
	notAllowed := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		writeError(w, req, s.log, apiErr(MethodNotAllowedErrorName, "method %s is not allowed on %s", req.Method, req.URL.Path))
	})
	r.NotFoundHandler, r.MethodNotAllowedHandler = notFound, notAllowed
	r.Use(s.recoverer, s.logRequests, s.limitBody)

	r.Handle("/healthz", s.wrap(reads, s.healthz)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/readyz", s.wrap(reads, s.readyz)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/metrics", s.wrap(reads, s.getMetrics)).Methods(http.MethodGet, http.MethodHead)
	r.Handle(OpenAPIPath+".yaml", s.wrap(reads, s.getOpenAPIYAML)).Methods(http.MethodGet, http.MethodHead)
	r.Handle(OpenAPIPath+".json", s.wrap(reads, s.getOpenAPIJSON)).Methods(http.MethodGet, http.MethodHead)

	// Routes are registered on the root router with full paths: a mux
	// subrouter answers a method mismatch with 404 instead of 405.
	// A trailing slash is tolerated, as Express routes do; GET routes
	// answer HEAD too.
	under := func(prefix string) func(method, path string, a access, h handlerFunc) {
		return func(method, path string, a access, h handlerFunc) {
			methods := []string{method}
			if method == http.MethodGet {
				methods = append(methods, http.MethodHead)
			}
			r.Handle(prefix+path+"{trailingSlash:/?}", s.wrap(a, h)).Methods(methods...)
		}
	}
	route := under(CatalogPrefix)
	// Entities.
	route(http.MethodGet, "/entities", reads, s.getEntities)
	route(http.MethodGet, "/entities/by-query", reads, s.getEntitiesByQuery)
	route(http.MethodPost, "/entities/by-query", reads, s.postEntitiesByQuery)
	route(http.MethodPost, "/entities/by-refs", reads, s.postEntitiesByRefs)
	route(http.MethodGet, "/entities/by-uid/{uid}", reads, s.getEntityByUID)
	route(http.MethodDelete, "/entities/by-uid/{uid}", mutates, s.deleteEntityByUID)
	route(http.MethodGet, "/entities/by-name/{kind}/{namespace}/{name}", reads, s.getEntityByName)
	route(http.MethodGet, "/entities/by-name/{kind}/{namespace}/{name}/ancestry", reads, s.getEntityAncestry)
	route(http.MethodGet, "/entity-facets", reads, s.getEntityFacets)
	route(http.MethodPost, "/entity-facets", reads, s.postEntityFacets)
	// Locations. The literal paths are registered before /locations/{id}.
	route(http.MethodPost, "/locations/by-query", reads, s.postLocationsByQuery)
	route(http.MethodGet, "/locations/by-entity/{kind}/{namespace}/{name}", reads, s.getLocationByEntity)
	route(http.MethodPost, "/locations", mutates, s.postLocation)
	route(http.MethodGet, "/locations", reads, s.getLocations)
	route(http.MethodGet, "/locations/{id}", reads, s.getLocation)
	route(http.MethodPut, "/locations/{id}", mutates, s.putLocation)
	route(http.MethodDelete, "/locations/{id}", mutates, s.deleteLocation)
	// Processing.
	route(http.MethodPost, "/refresh", mutates, s.postRefresh)
	route(http.MethodPost, "/validate-entity", reads, s.postValidateEntity)
	route(http.MethodPost, "/analyze-location", mutates, s.postAnalyzeLocation)

	// The engine's own view.
	own := under(PipelinePrefix)
	own(http.MethodGet, "/pipelines", reads, s.getPipelines)
	own(http.MethodGet, "/locations", reads, s.getLocationStatuses)
	own(http.MethodGet, "/errors", reads, s.getErrors)
	own(http.MethodPost, "/reload", mutates, s.postReload)
	return r
}

// wrap adds the token check for mutating routes and writes returned errors.
func (s *server) wrap(a access, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a == mutates && s.o.Token != "" {
			if err := s.authenticate(r); err != nil {
				w.Header().Set("WWW-Authenticate", `Bearer realm="catalog"`)
				writeError(w, r, s.log, err)
				return
			}
		}
		if err := h(w, r); err != nil {
			writeError(w, r, s.log, err)
		}
	})
}

// authenticate checks the bearer token in constant time.
func (s *server) authenticate(r *http.Request) error {
	h := r.Header.Get("Authorization")
	if h == "" {
		return apiErr(AuthenticationErrorName, "this route requires a bearer token (Authorization: Bearer <token>)")
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return apiErr(AuthenticationErrorName, "the Authorization header must use the Bearer scheme")
	}
	token = strings.TrimSpace(token)
	if subtle.ConstantTimeCompare([]byte(token), []byte(s.o.Token)) != 1 {
		return apiErr(AuthenticationErrorName, "invalid bearer token")
	}
	return nil
}

// disallowReadonly refuses a mutating location route in read-only mode,
// with Backstage's message.
func (s *server) disallowReadonly() error {
	if s.o.ReadOnly {
		return apiErr(NotAllowedErrorName, "This operation not allowed in readonly mode")
	}
	return nil
}

// recoverer turns a panic into a 500 so that nothing brings the server
// down; http.ErrAbortHandler keeps its meaning (abort the response).
func (s *server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("panic serving request", "method", r.Method, "url", r.URL.RequestURI(), "panic", v, "stack", string(debug.Stack()))
			writeError(w, r, nil, fmt.Errorf("internal error: %v", v))
		}()
		next.ServeHTTP(w, r)
	})
}

// statusWriter records the status for the request log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush lets streaming responses flush through the recorder.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap exposes the underlying writer to http.ResponseController.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.log.Enabled(r.Context(), slog.LevelDebug) {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		s.log.Debug("http request", "method", r.Method, "url", r.URL.RequestURI(), "status", sw.status, "duration", time.Since(start))
	})
}

func (s *server) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, s.o.MaxBody)
		}
		next.ServeHTTP(w, r)
	})
}

func (s *server) catalog() (Catalog, error) {
	if s.o.Catalog == nil {
		return nil, apiErr(ServiceUnavailableErrorName, "the catalog store is not available")
	}
	return s.o.Catalog, nil
}

func (s *server) engine() (Engine, error) {
	if s.o.Engine == nil {
		return nil, apiErr(ServiceUnavailableErrorName, "the ingestion engine is not available")
	}
	return s.o.Engine, nil
}

func (s *server) healthz(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "ok\n")
	return nil
}

func (s *server) readyz(w http.ResponseWriter, r *http.Request) error {
	if s.o.Catalog == nil {
		return apiErr(ServiceUnavailableErrorName, "not ready: the catalog store is not open")
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "ok\n")
	return nil
}

// readBody reads a JSON object body. An absent or empty body gives nil
// when optional and an InputError otherwise; a body over the limit gives a
// 413 PayloadTooLargeError; a Content-Type other than JSON, or a body that
// is not one JSON object, an InputError.
func readBody(r *http.Request, optional bool) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !(mt == "application/json" || strings.HasSuffix(mt, "+json")) {
			return nil, inputErr("illegal Content-Type %q; the body must be application/json", ct)
		}
	}
	if r.Body == nil {
		if optional {
			return nil, nil
		}
		return nil, inputErr("missing request body; expected a JSON object")
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		if optional {
			return nil, nil
		}
		return nil, inputErr("missing request body; expected a JSON object")
	}
	if b[0] != '{' {
		return nil, inputErr("malformed request body: expected a JSON object")
	}
	if !json.Valid(b) {
		var v any
		err := json.Unmarshal(b, &v)
		return nil, inputErr("malformed request body: %v", err)
	}
	return b, nil
}

// decodeBody reads an optional or required JSON object into dst. Type
// mismatches are InputErrors naming the field.
func decodeBody(r *http.Request, dst any, optional bool) (present bool, err error) {
	b, err := readBody(r, optional)
	if err != nil || b == nil {
		return false, err
	}
	if err := json.Unmarshal(b, dst); err != nil {
		return true, inputErr("malformed request body: %s", describeJSONError(err))
	}
	return true, nil
}

// describeJSONError rewords encoding/json type errors for API users.
func describeJSONError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if field == "" {
			field = "(root)"
		}
		return fmt.Sprintf("field %s must be %s, got a JSON %s", field, goTypeName(te.Type.String()), te.Value)
	}
	return err.Error()
}

func goTypeName(t string) string {
	switch {
	case t == "string" || t == "*string":
		return "a string"
	case strings.HasPrefix(t, "[]string"):
		return "an array of strings"
	case strings.HasPrefix(t, "[]"):
		return "an array"
	case t == "int" || t == "*int":
		return "an integer"
	case t == "bool" || t == "*bool":
		return "a boolean"
	}
	return "of type " + t
}

// single returns the one value of a query parameter; several are refused.
func single(q map[string][]string, name string) (string, bool, error) {
	v, ok := q[name]
	if !ok || len(v) == 0 {
		return "", false, nil
	}
	if len(v) > 1 {
		return "", false, inputErr("invalid %s, expected a single value but got %d", name, len(v))
	}
	return v[0], true, nil
}

// maxPageParam bounds limit and offset values, so that their sum cannot
// overflow.
const maxPageParam = 1 << 30

// intParam parses an integer query parameter that must be >= min.
func intParam(q map[string][]string, name string, min int) (int, bool, error) {
	s, ok, err := single(q, name)
	if err != nil || !ok {
		return 0, false, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0, false, inputErr("invalid %s, not an integer on the form [0-9]+: %q", name, s)
	}
	if n > maxPageParam {
		return 0, false, inputErr("invalid %s, must be at most %d", name, maxPageParam)
	}
	if n < min {
		if min == 0 {
			return 0, false, inputErr("invalid %s, must be zero or greater", name)
		}
		return 0, false, inputErr("invalid %s, must be greater than zero", name)
	}
	return n, true, nil
}

// yn parses a boolean query value the way the `yn` package does, with a
// default for anything unrecognised.
func yn(s string, def bool) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "y", "yes", "true", "1", "on":
		return true
	case "n", "no", "false", "0", "off":
		return false
	}
	return def
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
	return nil
}
