package api

import (
	"cmp"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/catalog-pipeline/pipeline/catalog"
	"github.com/catalog-pipeline/pipeline/engine"
	"github.com/catalog-pipeline/pipeline/engine/config"
	"github.com/catalog-pipeline/pipeline/store"
)

// PipelinePrefix is where the engine's own routes are served: its
// pipelines, the status of the locations it reads, the processing errors
// across the catalog and the reload trigger.
const PipelinePrefix = "/api/pipeline"

// Stage kinds of GET /api/pipeline/pipelines.
const (
	// StageKindBuiltin is a stage implemented in Go (file, url,
	// builtin-kinds, ...).
	StageKindBuiltin = "builtin"
	// StageKindScript is a JavaScript stage; its script path is given.
	StageKindScript = "script"
)

// Stage is one stage of a pipeline, in processing order.
type Stage struct {
	Name string `json:"name"`
	// Kind is StageKindBuiltin or StageKindScript.
	Kind string `json:"kind"`
	// Type is the stage type of the pipeline file ("file", "url",
	// "script", ...).
	Type string `json:"type"`
	// Script is the path of a script stage's file.
	Script string `json:"script,omitempty"`
}

// RootLocation is a location declared in a pipeline file.
type RootLocation struct {
	Type     string `json:"type"`
	Target   string `json:"target"`
	Optional bool   `json:"optional"`
}

// Pipeline describes a configured pipeline.
type Pipeline struct {
	Name string `json:"name"`
	// Default is true for the pipeline that processes locations
	// registered without naming one (the first one configured).
	Default    bool           `json:"default"`
	Stages     []Stage        `json:"stages"`
	Locations  []RootLocation `json:"locations"`
	AllowFiles []string       `json:"allowFiles"`
	AllowHosts []string       `json:"allowHosts"`
}

// pipelinesResponse is GET /api/pipeline/pipelines' and POST
// /api/pipeline/reload's answer.
type pipelinesResponse struct {
	Items []Pipeline `json:"items"`
}

// Location sources of GET /api/pipeline/locations.
const (
	// LocationSourceConfig is a location declared in a pipeline file.
	LocationSourceConfig = "config"
	// LocationSourceRegistered is a location registered over the API.
	LocationSourceRegistered = "registered"
	// LocationSourceEntity is a target of a Location entity found while
	// processing the catalog.
	LocationSourceEntity = "entity"
)

// Values of LocationState.LastETag.
const (
	// ETagHit: every upstream request of the last read answered 304.
	ETagHit = "hit"
	// ETagMiss: no upstream request of the last read answered 304.
	ETagMiss = "miss"
	// ETagPartial: some upstream requests of the last read answered 304.
	ETagPartial = "partial"
)

// LocationState is the status of one location as the engine last read it.
type LocationState struct {
	Pipeline string `json:"pipeline"`
	Type     string `json:"type"`
	Target   string `json:"target"`
	// Source is LocationSourceConfig, LocationSourceRegistered or
	// LocationSourceEntity.
	Source string `json:"source"`
	// RegisteredID is the id of a registered location
	// (/api/catalog/locations/{id}).
	RegisteredID string `json:"registeredId,omitempty"`
	// EntityRef is the ref of the Location entity whose target this is.
	EntityRef string `json:"entityRef,omitempty"`
	// LastRead is absent when this process has not read the location yet.
	LastRead *time.Time `json:"lastRead,omitempty"`
	// LastETag sums up the upstream requests of the last read (ETagHit,
	// ETagMiss, ETagPartial); absent when the read made none (file
	// locations).
	LastETag string `json:"lastETag,omitempty"`
	// Requests and NotModified count the upstream requests of the last
	// read and those answered 304.
	Requests    int64 `json:"requests"`
	NotModified int64 `json:"notModified"`
	// LastError is the error of the last read; absent when it succeeded.
	LastError string `json:"lastError,omitempty"`
	// Entities is how many entities the last read emitted (the entities
	// the location owns).
	Entities int `json:"entities"`
	// Reads and Failures count the reads since the process started.
	Reads    int64 `json:"reads"`
	Failures int64 `json:"failures"`
}

// ProcessingErrors is one entity whose last processing run failed or
// reported errors.
type ProcessingErrors struct {
	EntityRef string `json:"entityRef"`
	// Location is the backstage.io/managed-by-location annotation of the
	// entity as emitted: where it was read from.
	Location string `json:"location,omitempty"`
	Pipeline string `json:"pipeline,omitempty"`
	// Served is true when an earlier successful run is still served
	// (otherwise the entity is invisible through /api/catalog).
	Served bool                      `json:"served"`
	Errors []catalog.SerializedError `json:"errors"`
}

// errorsResponse is GET /api/pipeline/errors' answer.
type errorsResponse struct {
	Items    []ProcessingErrors `json:"items"`
	PageInfo errorsPageInfo     `json:"pageInfo"`
}

type errorsPageInfo struct {
	// NextAfter is the `after` value of the next page; absent on the
	// last page.
	NextAfter string `json:"nextAfter,omitempty"`
}

// Page sizes of GET /api/pipeline/errors.
const (
	defaultErrorsLimit = 100
	maxErrorsLimit     = 1000
)

func (s *server) status() (Status, error) {
	if s.o.Status == nil {
		return nil, apiErr(ServiceUnavailableErrorName, "the engine status is not available")
	}
	return s.o.Status, nil
}

// pipelinesOf converts the engine's pipeline descriptions.
func pipelinesOf(infos []engine.PipelineInfo) []Pipeline {
	out := make([]Pipeline, 0, len(infos))
	for i, p := range infos {
		pl := Pipeline{
			Name: p.Name, Default: i == 0,
			Stages:     make([]Stage, 0, len(p.Stages)),
			Locations:  make([]RootLocation, 0, len(p.Locations)),
			AllowFiles: nonNil(p.AllowFiles), AllowHosts: nonNil(p.AllowHosts),
		}
		for _, st := range p.Stages {
			kind := StageKindBuiltin
			if st.Type == config.ScriptStageType {
				kind = StageKindScript
			}
			pl.Stages = append(pl.Stages, Stage{Name: st.Name, Kind: kind, Type: st.Type, Script: st.Script})
		}
		for _, l := range p.Locations {
			pl.Locations = append(pl.Locations, RootLocation{Type: l.Location.Type, Target: l.Location.Target, Optional: l.Optional})
		}
		out = append(out, pl)
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// getPipelines serves GET /api/pipeline/pipelines: the configured
// pipelines in configuration order, each with its stages in processing
// order.
func (s *server) getPipelines(w http.ResponseWriter, r *http.Request) error {
	st, err := s.status()
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, pipelinesResponse{Items: pipelinesOf(st.Pipelines())})
}

// etagSummary sums up the upstream requests of a read.
func etagSummary(requests, notModified int64) string {
	switch {
	case requests <= 0:
		return ""
	case notModified >= requests:
		return ETagHit
	case notModified <= 0:
		return ETagMiss
	}
	return ETagPartial
}

// getLocationStatuses serves GET /api/pipeline/locations: every location
// the engine read since the process started, plus the configured and
// registered locations it has not read yet (without lastRead), by
// pipeline then type:target.
func (s *server) getLocationStatuses(w http.ResponseWriter, r *http.Request) error {
	st, err := s.status()
	if err != nil {
		return err
	}
	type key struct{ pipeline, loc string }
	source := map[key]string{}
	var out []LocationState
	listed := map[key]bool{}
	add := func(ls LocationState) {
		k := key{ls.Pipeline, ls.Type + ":" + ls.Target}
		if !listed[k] {
			listed[k] = true
			out = append(out, ls)
		}
	}
	pipelines := st.Pipelines()
	for _, p := range pipelines {
		for _, l := range p.Locations {
			source[key{p.Name, l.Location.String()}] = LocationSourceConfig
		}
	}
	registered := map[key]engine.RegisteredLocation{}
	if s.o.Engine != nil {
		regs, err := s.o.Engine.Locations()
		if err != nil {
			return err
		}
		def := ""
		if len(pipelines) > 0 {
			def = pipelines[0].Name
		}
		for _, l := range regs {
			p := l.Pipeline
			if p == "" {
				p = def
			}
			registered[key{p, l.Location.String()}] = l
		}
	}
	for _, ls := range st.LocationStatuses() {
		k := key{ls.Pipeline, ls.Location.String()}
		read := ls.LastRead
		state := LocationState{
			Pipeline: ls.Pipeline, Type: ls.Location.Type, Target: ls.Location.Target,
			Source: LocationSourceEntity, EntityRef: ls.Entity, LastError: ls.LastError,
			LastETag: etagSummary(ls.Requests, ls.NotModified), Requests: ls.Requests, NotModified: ls.NotModified,
			Entities: ls.Entities, Reads: ls.Reads, Failures: ls.Failures,
		}
		if !read.IsZero() {
			state.LastRead = &read
		}
		if src, ok := source[k]; ok {
			state.Source = src
		}
		if reg, ok := registered[k]; ok {
			state.Source, state.RegisteredID = LocationSourceRegistered, reg.ID
		}
		add(state)
	}
	// Locations not read yet.
	for _, p := range pipelines {
		for _, l := range p.Locations {
			add(LocationState{Pipeline: p.Name, Type: l.Location.Type, Target: l.Location.Target, Source: LocationSourceConfig,
				EntityRef: engine.LocationEntity(l.Location, false).Ref().String()})
		}
	}
	for k, l := range registered {
		add(LocationState{Pipeline: k.pipeline, Type: l.Location.Type, Target: l.Location.Target, Source: LocationSourceRegistered,
			RegisteredID: l.ID, EntityRef: l.EntityRef()})
	}
	sortLocationStates(out)
	if out == nil {
		out = []LocationState{}
	}
	return writeJSON(w, http.StatusOK, struct {
		Items []LocationState `json:"items"`
	}{out})
}

func sortLocationStates(s []LocationState) {
	slices.SortStableFunc(s, func(a, b LocationState) int {
		return cmp.Or(cmp.Compare(a.Pipeline, b.Pipeline), cmp.Compare(a.Type+":"+a.Target, b.Type+":"+b.Target))
	})
}

// errStopWalk ends a store walk early.
var errStopWalk = errors.New("stop walk")

// getErrors serves GET /api/pipeline/errors?limit=&after=: the entities
// whose last processing run recorded errors, in ref order, limit per page
// (default 100, at most 1000), starting after the ref `after` (the
// previous page's pageInfo.nextAfter).
func (s *server) getErrors(w http.ResponseWriter, r *http.Request) error {
	cat, err := s.catalog()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	limit, ok, err := intParam(q, "limit", 1)
	if err != nil {
		return err
	}
	if !ok {
		limit = defaultErrorsLimit
	}
	if limit > maxErrorsLimit {
		return inputErr("invalid limit, must be at most %d", maxErrorsLimit)
	}
	after, hasAfter, err := single(q, "after")
	if err != nil {
		return err
	}
	after = strings.ToLower(strings.TrimSpace(after))
	if hasAfter && after == "" {
		return inputErr("invalid after, must be an entity ref (the nextAfter of the previous page)")
	}
	items := make([]ProcessingErrors, 0, min(limit, 64))
	more := false
	err = cat.ForEachError(func(st *store.State) error {
		if after != "" && st.Ref <= after {
			return nil
		}
		if len(items) == limit {
			more = true
			return errStopWalk
		}
		items = append(items, processingErrorsOf(st))
		return nil
	})
	if err != nil && !errors.Is(err, errStopWalk) {
		return err
	}
	out := errorsResponse{Items: items}
	if more {
		out.PageInfo.NextAfter = items[len(items)-1].EntityRef
	}
	return writeJSON(w, http.StatusOK, out)
}

// processingErrorsOf describes an entity's recorded errors.
func processingErrorsOf(st *store.State) ProcessingErrors {
	pe := ProcessingErrors{EntityRef: st.Ref, Pipeline: st.Pipeline, Served: len(st.Processed) > 0}
	var ent struct {
		Metadata struct {
			Annotations map[string]any `json:"annotations"`
		} `json:"metadata"`
	}
	if json.Unmarshal(st.Unprocessed, &ent) == nil {
		pe.Location, _ = ent.Metadata.Annotations[catalog.AnnotationManagedByLocation].(string)
	}
	pe.Errors = make([]catalog.SerializedError, 0, len(st.Errors))
	for _, e := range st.Errors {
		// Stacks are for logs, not for API clients (Backstage only
		// serves them in development).
		pe.Errors = append(pe.Errors, catalog.SerializedError{Name: e.Name, Message: e.Message})
	}
	return pe
}

// postReload serves POST /api/pipeline/reload: the pipeline files are
// loaded again and applied. 200 with the pipelines now in use; 400
// InputError with the configuration diagnostics when the files are
// invalid (the running configuration is kept); 501 when the server was
// started without a reload function.
func (s *server) postReload(w http.ResponseWriter, r *http.Request) error {
	if s.o.Reload == nil {
		return apiErr(NotImplementedErrorName, "reloading the pipeline files is not enabled on this server")
	}
	if err := s.o.Reload(); err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			return inputErr("invalid pipeline configuration; the running one is kept:\n\n%s", ce.Error())
		}
		return err
	}
	out := pipelinesResponse{Items: []Pipeline{}}
	if s.o.Status != nil {
		out.Items = pipelinesOf(s.o.Status.Pipelines())
	}
	return writeJSON(w, http.StatusOK, out)
}
