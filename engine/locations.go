package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/catalog-pipeline/pipeline/catalog"
	"github.com/catalog-pipeline/pipeline/reading"
	"github.com/catalog-pipeline/pipeline/store"
)

// LocationStore persists the locations registered at run time. store.DB
// implements it; it is separate from Store so that engines that never
// register locations (tests, one-shot runs) need not provide it.
type LocationStore interface {
	PutLocation(store.LocationRecord) error
	DeleteLocation(id string) (bool, error)
	Locations() ([]store.LocationRecord, error)
	MakeDue(refs []string) (int, error)
	Parents(ref string) ([]string, error)
	State(ref string) (*store.State, error)
	DeleteEntity(ref string) (store.CommitStats, error)
}

// RegisteredLocation is a location added over the API.
type RegisteredLocation struct {
	ID       string
	Location Location
	Pipeline string
}

// EntityRef is the ref of the Location entity the location becomes.
func (l RegisteredLocation) EntityRef() string {
	return LocationEntity(l.Location, false).Ref().String()
}

func (e *Engine) locationStore() (LocationStore, error) {
	ls, ok := e.store.(LocationStore)
	if !ok {
		return nil, errors.New("this store cannot keep registered locations")
	}
	return ls, nil
}

// registered lists the registered locations of one pipeline as root
// locations (or of all pipelines when pipeline is "").
func (e *Engine) registered(pipeline string) ([]RootLocation, error) {
	ls, ok := e.store.(LocationStore)
	if !ok {
		return nil, nil
	}
	recs, err := ls.Locations()
	if err != nil {
		return nil, err
	}
	var out []RootLocation
	for _, r := range recs {
		if pipeline == "" || r.Pipeline == pipeline {
			out = append(out, RootLocation{Location: Location{Type: r.Type, Target: r.Target}, Pos: "registered location " + r.ID})
		}
	}
	return out, nil
}

// DefaultPipeline is the pipeline that processes locations registered
// without naming one: the first pipeline of the configuration.
func (e *Engine) DefaultPipeline() string {
	if ps := e.rt.Load().cfg.Pipelines; len(ps) > 0 {
		return ps[0].Name
	}
	return ""
}

// Locations returns the registered locations.
func (e *Engine) Locations() ([]RegisteredLocation, error) {
	ls, err := e.locationStore()
	if err != nil {
		return nil, err
	}
	recs, err := ls.Locations()
	if err != nil {
		return nil, err
	}
	out := make([]RegisteredLocation, len(recs))
	for i, r := range recs {
		out[i] = RegisteredLocation{ID: r.ID, Location: Location{Type: r.Type, Target: r.Target}, Pipeline: r.Pipeline}
	}
	return out, nil
}

// LocationByID finds a registered location; ok is false when unknown.
func (e *Engine) LocationByID(id string) (RegisteredLocation, bool, error) {
	all, err := e.Locations()
	if err != nil {
		return RegisteredLocation{}, false, err
	}
	for _, l := range all {
		if strings.EqualFold(l.ID, id) {
			return l, true, nil
		}
	}
	return RegisteredLocation{}, false, nil
}

// checkLocation refuses what the pipeline does not allow: file targets
// outside its allowed folders, url hosts outside its allowed hosts, and
// types none of its configured locations use (besides file and url).
func checkLocation(p *Pipeline, l Location) error {
	switch l.Type {
	case "file":
		if !filepath.IsAbs(l.Target) {
			return InputError("file location target %q must be an absolute path", l.Target)
		}
		clean := filepath.Clean(l.Target)
		for _, root := range p.AllowFiles {
			if rel, err := filepath.Rel(root, clean); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
				return nil
			}
		}
		return &ProcessingError{Name: "NotAllowedError", Message: fmt.Sprintf("file location %s is outside the folders pipeline %q may read %v", l.Target, p.Name, p.AllowFiles)}
	case "url":
		u, err := url.Parse(l.Target)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return InputError("url location target %q is not an absolute http or https URL", l.Target)
		}
		if !reading.New(reading.Policy{Hosts: p.AllowHosts}).HostAllowed(u) {
			return &ProcessingError{Name: "NotAllowedError", Message: fmt.Sprintf("url location host %s is not among the hosts pipeline %q may read %v", u.Host, p.Name, p.AllowHosts)}
		}
		return nil
	}
	for _, rl := range p.Locations {
		if rl.Location.Type == l.Type {
			return nil
		}
	}
	return InputError("location type %q is not used by pipeline %q; allowed types are file, url and the types of its configured locations", l.Type, p.Name)
}

// RegisterLocation adds a location over the API: it is checked against the
// pipeline's confinement, persisted, and ingested at once. With dryRun
// nothing is stored: the location's tree is processed in memory and the
// entities it would produce are returned. A location already registered is
// a ConflictError.
func (e *Engine) RegisterLocation(ctx context.Context, pipeline string, l Location, dryRun bool) (RegisteredLocation, []json.RawMessage, error) {
	rt := e.rt.Load()
	if pipeline == "" {
		pipeline = e.DefaultPipeline()
	}
	p := rt.pipelines[pipeline]
	if p == nil {
		return RegisteredLocation{}, nil, InputError("pipeline %q is not configured", pipeline)
	}
	if _, err := ParseLocationRef(l.String()); err != nil {
		return RegisteredLocation{}, nil, InputError("%v", err)
	}
	if err := checkLocation(p.Pipeline, l); err != nil {
		return RegisteredLocation{}, nil, err
	}
	existing, err := e.Locations()
	if err != nil {
		return RegisteredLocation{}, nil, err
	}
	var conflict error
	found := RegisteredLocation{}
	for _, x := range existing {
		if x.Location == l {
			found, conflict = x, &ProcessingError{Name: ConflictErrorName, Message: fmt.Sprintf("location %s already exists (id %s)", l, x.ID)}
		}
	}
	for _, rl := range p.Locations {
		if rl.Location == l {
			conflict = &ProcessingError{Name: ConflictErrorName, Message: fmt.Sprintf("location %s is already configured in pipeline %q (%s)", l, p.Name, rl.Pos)}
		}
	}
	if conflict != nil {
		if !dryRun {
			return found, nil, conflict
		}
		// A dry run of a known location still shows what it yields, as
		// Backstage answers entities with exists: true.
		ents, err := e.dryRun(ctx, rt, p, l)
		if err != nil {
			return found, ents, err
		}
		return found, ents, conflict
	}
	reg := RegisteredLocation{ID: uuid.NewString(), Location: l, Pipeline: pipeline}
	if dryRun {
		ents, err := e.dryRun(ctx, rt, p, l)
		return reg, ents, err
	}
	ls, err := e.locationStore()
	if err != nil {
		return RegisteredLocation{}, nil, err
	}
	if err := ls.PutLocation(store.LocationRecord{ID: reg.ID, Type: l.Type, Target: l.Target, Pipeline: pipeline}); err != nil {
		return RegisteredLocation{}, nil, err
	}
	if _, err := e.SyncRoots(); err != nil {
		return reg, nil, err
	}
	e.Wake()
	return reg, nil, nil
}

// DeleteLocation removes a registered location; its subtree goes with it.
func (e *Engine) DeleteLocation(id string) error {
	ls, err := e.locationStore()
	if err != nil {
		return err
	}
	ok, err := ls.DeleteLocation(id)
	if err != nil {
		return err
	}
	if !ok {
		return NotFoundError("location %s does not exist", id)
	}
	if _, err := e.SyncRoots(); err != nil {
		return err
	}
	e.Wake()
	return nil
}

// Refresh makes an entity and every ancestor up to its root location due
// now, as Backstage's POST /refresh does, so that sources are re-read.
func (e *Engine) Refresh(ref string) error {
	ls, err := e.knownEntity(ref)
	if err != nil {
		return err
	}
	refs := []string{ref}
	seen := map[string]bool{ref: true}
	for i := 0; i < len(refs) && i < 1000; i++ {
		parents, err := ls.Parents(refs[i])
		if err != nil {
			return err
		}
		for _, p := range parents {
			if !seen[p] && !strings.HasPrefix(p, store.ProviderPrefix) {
				seen[p] = true
				refs = append(refs, p)
			}
		}
	}
	if _, err := ls.MakeDue(refs); err != nil {
		return err
	}
	e.Wake()
	return nil
}

// knownEntity returns the location store after checking that ref is a
// known entity (a NotFoundError otherwise).
func (e *Engine) knownEntity(ref string) (LocationStore, error) {
	ls, err := e.locationStore()
	if err != nil {
		return nil, err
	}
	st, err := ls.State(ref)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return nil, NotFoundError("entity %s does not exist", ref)
	}
	return ls, nil
}

// DeleteEntity removes an entity and the subtree only it owned; a parent
// that still emits it recreates it on its next run (Backstage semantics).
func (e *Engine) DeleteEntity(ref string) error {
	ls, err := e.knownEntity(ref)
	if err != nil {
		return err
	}
	_, err = ls.DeleteEntity(ref)
	e.Wake()
	return err
}

// ValidateEntity runs an entity through a pipeline's pre-processing,
// validation and post-processing as if it came from location (such as
// "url:https://..."), without reading locations or storing anything. It
// returns the problems found; none means valid.
func (e *Engine) ValidateEntity(ctx context.Context, pipeline string, ent *catalog.Entity, location string) ([]catalog.SerializedError, error) {
	rt := e.rt.Load()
	if pipeline == "" {
		pipeline = e.DefaultPipeline()
	}
	if rt.pipelines[pipeline] == nil {
		return nil, InputError("pipeline %q is not configured", pipeline)
	}
	loc, err := ParseLocationRef(location)
	if err != nil {
		return []catalog.SerializedError{serialize(InputError("%v", err))}, nil
	}
	ent = ent.Clone()
	ent.SetAnnotation(catalog.AnnotationManagedByLocation, loc.String())
	ent.SetAnnotation(catalog.AnnotationManagedByOriginLocation, loc.String())
	body, err := json.Marshal(ent)
	if err != nil {
		return nil, err
	}
	st := &store.State{Ref: ent.Ref().String(), Pipeline: pipeline, Unprocessed: body}
	return e.processWith(ctx, rt, st, processOptions{noRead: true}).Errors, nil
}

// dryRun processes a location's tree in memory, breadth first, and
// returns the processed entities; any failure is returned as an error
// naming the entity.
func (e *Engine) dryRun(ctx context.Context, rt *runtimeConfig, p *pipelineRT, l Location) ([]json.RawMessage, error) {
	root := LocationEntity(l, false)
	body, err := json.Marshal(root)
	if err != nil {
		return nil, err
	}
	queue := []*store.State{{Ref: root.Ref().String(), Pipeline: p.Name, Root: l.String(), Unprocessed: body}}
	seen := map[string]bool{queue[0].Ref: true}
	var out []json.RawMessage
	var problems []string
	const limit = 10000
	for i := 0; i < len(queue) && i < limit; i++ {
		st := queue[i]
		o := e.process(ctx, rt, st)
		if !o.OK || len(o.Errors) > 0 {
			for _, se := range o.Errors {
				problems = append(problems, fmt.Sprintf("%s: %s: %s", st.Ref, se.Name, se.Message))
			}
			if !o.OK {
				continue
			}
		}
		out = append(out, o.Processed)
		for _, c := range o.Children {
			if !seen[c.Ref] {
				seen[c.Ref] = true
				queue = append(queue, &store.State{Ref: c.Ref, Pipeline: p.Name, Root: l.String(), Unprocessed: c.Entity})
			}
		}
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return out, InputError("dry run of %s found problems: %s", l, strings.Join(problems, "; "))
	}
	return out, nil
}
