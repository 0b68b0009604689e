package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strings"

	"github.com/gorilla/mux"

	"github.com/catalog-pipeline/pipeline/catalog"
	"github.com/catalog-pipeline/pipeline/engine"
	"github.com/catalog-pipeline/pipeline/store"
)

// Location is a registered location as the API serves it. EntityRef is
// the ref of the Location entity it becomes (Backstage added it to its
// Location model).
type Location struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	Target    string `json:"target"`
	EntityRef string `json:"entityRef,omitempty"`
}

func locationOf(l engine.RegisteredLocation) Location {
	return Location{ID: l.ID, Type: l.Location.Type, Target: l.Location.Target, EntityRef: l.EntityRef()}
}

// addLocationResponse is POST /locations' answer.
type addLocationResponse struct {
	Location Location          `json:"location"`
	Entities []json.RawMessage `json:"entities"`
	Exists   *bool             `json:"exists,omitempty"`
}

// locationInput is a decoded {type, target} body, strictly checked.
type locationInput struct {
	Type, Target, Presence, Pipeline string
}

// parseLocationInput decodes a location body: type and target are
// required strings, presence may be "optional" or "required", pipeline
// (this engine's extension) a string when allowPipeline; any other key is
// refused, as Backstage's strict schema does.
func parseLocationInput(r *http.Request, allowPipeline bool) (locationInput, error) {
	var in locationInput
	var m map[string]json.RawMessage
	if _, err := decodeBody(r, &m, false); err != nil {
		return in, err
	}
	allowed := map[string]*string{"type": &in.Type, "target": &in.Target, "presence": &in.Presence}
	if allowPipeline {
		allowed["pipeline"] = &in.Pipeline
	}
	var unknown []string
	for k := range m {
		if _, ok := allowed[k]; !ok {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return in, inputErr("malformed request: unrecognized key(s) in the location: %s", strings.Join(unknown, ", "))
	}
	for _, k := range []string{"type", "target", "presence", "pipeline"} {
		raw, ok := m[k]
		if !ok {
			continue
		}
		if err := json.Unmarshal(raw, allowed[k]); err != nil {
			return in, inputErr("malformed request: %s must be a string", k)
		}
	}
	if strings.TrimSpace(in.Type) == "" {
		return in, inputErr("malformed request: type is required (such as \"url\" or \"file\")")
	}
	if strings.TrimSpace(in.Target) == "" {
		return in, inputErr("malformed request: target is required")
	}
	switch in.Presence {
	case "", "optional", "required":
	default:
		return in, inputErr("malformed request: presence must be \"optional\" or \"required\", got %q", in.Presence)
	}
	return in, nil
}

func isConflict(err error) bool {
	var pe *engine.ProcessingError
	return errors.As(err, &pe) && pe.Name == engine.ConflictErrorName
}

// postLocation serves POST /locations: registers a location (201) or,
// with dryRun, processes its tree in memory and returns the entities it
// would produce (no writes; `exists` tells whether it is registered
// already; the location id is "type:target", as in Backstage). The
// pipeline comes from the `pipeline` query parameter or body field, else
// the default pipeline. A location already registered is a 409 unless
// onConflict=refresh, which refreshes it and answers 201 with exists:
// true. `presence` is accepted and ignored: registered locations are
// required.
func (s *server) postLocation(w http.ResponseWriter, r *http.Request) error {
	eng, err := s.engine()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	dryRunParam, _, err := single(q, "dryRun")
	if err != nil {
		return err
	}
	dryRun := yn(dryRunParam, false)
	onConflict, _, err := single(q, "onConflict")
	if err != nil {
		return err
	}
	switch onConflict {
	case "", "reject", "refresh":
	default:
		return inputErr("invalid onConflict %q, must be reject or refresh", onConflict)
	}
	pipeline, _, err := single(q, "pipeline")
	if err != nil {
		return err
	}
	in, err := parseLocationInput(r, true)
	if err != nil {
		return err
	}
	if in.Pipeline != "" {
		if pipeline != "" && pipeline != in.Pipeline {
			return inputErr("the pipeline query parameter (%q) and body field (%q) disagree", pipeline, in.Pipeline)
		}
		pipeline = in.Pipeline
	}
	if !dryRun {
		if err := s.disallowReadonly(); err != nil {
			return err
		}
	}
	loc := engine.Location{Type: in.Type, Target: in.Target}
	reg, ents, err := eng.RegisterLocation(r.Context(), pipeline, loc, dryRun)
	exists := false
	if err != nil {
		if !isConflict(err) {
			return err
		}
		switch {
		case dryRun:
			exists = true
			reg = engine.RegisteredLocation{Location: loc}
		case onConflict == "refresh" && reg.ID != "":
			if err := eng.Refresh(reg.EntityRef()); err != nil && !isNotFound(err) {
				return err
			}
			exists = true
		default:
			return err
		}
	}
	out := addLocationResponse{Location: locationOf(reg), Entities: ents}
	if dryRun {
		out.Location.ID = loc.String()
		out.Exists = &exists
	} else if exists {
		out.Exists = &exists
	}
	if out.Entities == nil {
		out.Entities = []json.RawMessage{}
	}
	return writeJSON(w, http.StatusCreated, out)
}

// getLocations serves GET /locations: [{data: location}] (wrapped, as in
// Backstage). Only registered locations are listed; those declared in the
// pipeline files are configuration, not API data.
func (s *server) getLocations(w http.ResponseWriter, r *http.Request) error {
	eng, err := s.engine()
	if err != nil {
		return err
	}
	all, err := eng.Locations()
	if err != nil {
		return err
	}
	type wrapped struct {
		Data Location `json:"data"`
	}
	out := make([]wrapped, 0, len(all))
	for _, l := range all {
		out = append(out, wrapped{Data: locationOf(l)})
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *server) findLocation(eng Engine, id string) (engine.RegisteredLocation, error) {
	l, ok, err := eng.LocationByID(id)
	if err != nil {
		return l, err
	}
	if !ok {
		return l, notFoundErr("Found no location with ID %s", id)
	}
	return l, nil
}

// getLocation serves GET /locations/{id}.
func (s *server) getLocation(w http.ResponseWriter, r *http.Request) error {
	eng, err := s.engine()
	if err != nil {
		return err
	}
	l, err := s.findLocation(eng, mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, locationOf(l))
}

// putLocation serves PUT /locations/{id}. Updating a location in place
// (keeping its id and entity ref) needs engine support that does not exist
// yet, so a valid request for a known location answers 501
// NotImplementedError; delete the location and register the new one
// instead.
func (s *server) putLocation(w http.ResponseWriter, r *http.Request) error {
	eng, err := s.engine()
	if err != nil {
		return err
	}
	if _, err := parseLocationInput(r, false); err != nil {
		return err
	}
	if err := s.disallowReadonly(); err != nil {
		return err
	}
	if _, err := s.findLocation(eng, mux.Vars(r)["id"]); err != nil {
		return err
	}
	return apiErr(NotImplementedErrorName, "updating a location in place is not supported; delete it and register the new location")
}

// deleteLocation serves DELETE /locations/{id}: 204; the location's
// entities go with it.
func (s *server) deleteLocation(w http.ResponseWriter, r *http.Request) error {
	eng, err := s.engine()
	if err != nil {
		return err
	}
	if err := s.disallowReadonly(); err != nil {
		return err
	}
	id := mux.Vars(r)["id"]
	if err := eng.DeleteLocation(id); err != nil {
		if isNotFound(err) {
			return notFoundErr("Found no location with ID %s", id)
		}
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// getLocationByEntity serves GET /locations/by-entity/{kind}/{namespace}/{name}:
// the registered location whose "type:target" equals the entity's
// backstage.io/managed-by-origin-location annotation. Locations declared
// in the pipeline files are not registered locations, so entities from them
// answer 404, as config locations do in Backstage.
func (s *server) getLocationByEntity(w http.ResponseWriter, r *http.Request) error {
	cat, err := s.catalog()
	if err != nil {
		return err
	}
	eng, err := s.engine()
	if err != nil {
		return err
	}
	_, key := refFromPath(r)
	bodies, err := cat.FinalByRefs([]string{key})
	if err != nil {
		return err
	}
	if len(bodies) != 1 || bodies[0] == nil {
		return notFoundErr("found no entity for ref %s", key)
	}
	var ent struct {
		Metadata struct {
			Annotations map[string]any `json:"annotations"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(bodies[0], &ent); err != nil {
		return err
	}
	origin, _ := ent.Metadata.Annotations[catalog.AnnotationManagedByOriginLocation].(string)
	if origin == "" {
		return notFoundErr("entity %s has no %s annotation", key, catalog.AnnotationManagedByOriginLocation)
	}
	all, err := eng.Locations()
	if err != nil {
		return err
	}
	for _, l := range all {
		if l.Location.String() == origin {
			return writeJSON(w, http.StatusOK, locationOf(l))
		}
	}
	return notFoundErr("found no registered location %s for entity %s", origin, key)
}

// defaultLocationLimit is POST /locations/by-query's page size.
const defaultLocationLimit = 1000

// postLocationsByQuery serves POST /locations/by-query:
// {items: Location[], totalItems, pageInfo: {nextCursor?}}, locations in
// id order, filtered by a predicate over id, type, target and entityRef
// (case-insensitive, as entity predicates are).
func (s *server) postLocationsByQuery(w http.ResponseWriter, r *http.Request) error {
	eng, err := s.engine()
	if err != nil {
		return err
	}
	var b struct {
		Cursor *string         `json:"cursor"`
		Limit  *int            `json:"limit"`
		Query  json.RawMessage `json:"query"`
	}
	if _, err := decodeBody(r, &b, true); err != nil {
		return err
	}
	cur := locationCursor{Limit: defaultLocationLimit}
	var filter store.Expr
	if b.Cursor != nil {
		c, f, err := decodeLocationCursor(*b.Cursor)
		if err != nil {
			return err
		}
		cur, filter = *c, f
	} else {
		if b.Limit != nil {
			if *b.Limit < 1 {
				return inputErr("limit must be a positive integer >= 1")
			}
			cur.Limit = *b.Limit
		}
		if filter, cur.Query, err = parsePredicateField(b.Query); err != nil {
			return err
		}
	}
	all, err := eng.Locations()
	if err != nil {
		return err
	}
	sort.Slice(all, func(i, j int) bool { return all[i].ID < all[j].ID })
	var matches []Location
	for _, l := range all {
		loc := locationOf(l)
		row := map[string]string{
			"id": strings.ToLower(loc.ID), "type": strings.ToLower(loc.Type),
			"target": strings.ToLower(loc.Target), "entityref": strings.ToLower(loc.EntityRef),
		}
		if filter == nil || evalRow(filter, row) {
			matches = append(matches, loc)
		}
	}
	start := 0
	if cur.AfterID != "" {
		start = sort.Search(len(matches), func(i int) bool { return matches[i].ID > cur.AfterID })
	}
	page := matches[start:]
	more := len(page) > cur.Limit
	if more {
		page = page[:cur.Limit]
	}
	out := struct {
		Items      []Location `json:"items"`
		TotalItems int        `json:"totalItems"`
		PageInfo   pageInfo   `json:"pageInfo"`
	}{Items: page, TotalItems: len(matches)}
	if out.Items == nil {
		out.Items = []Location{}
	}
	if more {
		next := cur
		next.AfterID = page[len(page)-1].ID
		out.PageInfo.NextCursor = encodeLocationCursor(next)
	}
	return writeJSON(w, http.StatusOK, out)
}

// evalRow evaluates an expression against a row of single-valued,
// lowercased fields.
func evalRow(e store.Expr, row map[string]string) bool {
	switch t := e.(type) {
	case nil:
		return true
	case store.All:
		for _, x := range t {
			if !evalRow(x, row) {
				return false
			}
		}
		return true
	case store.Any:
		for _, x := range t {
			if evalRow(x, row) {
				return true
			}
		}
		return false
	case store.Not:
		return !evalRow(t.Expr, row)
	case store.Eq:
		v, ok := row[t.Key]
		return ok && v == t.Value
	case store.Exists:
		v, ok := row[t.Key]
		return ok && v != ""
	case store.In:
		v, ok := row[t.Key]
		if !ok {
			return false
		}
		for _, x := range t.Values {
			if v == x {
				return true
			}
		}
		return false
	case store.HasPrefix:
		v, ok := row[t.Key]
		return ok && strings.HasPrefix(v, t.Prefix)
	}
	return false
}
