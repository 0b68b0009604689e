package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/catalog-pipeline/pipeline/catalog"
	"github.com/catalog-pipeline/pipeline/engine"
)

// postRefresh serves POST /refresh {entityRef}: the entity and its
// ancestors up to their root location are made due now; 200 with an empty
// body, 404 when the entity is unknown. authorizationToken is accepted and
// ignored (the bearer token guards this route).
func (s *server) postRefresh(w http.ResponseWriter, r *http.Request) error {
	eng, err := s.engine()
	if err != nil {
		return err
	}
	var b struct {
		EntityRef          *string `json:"entityRef"`
		AuthorizationToken *string `json:"authorizationToken"`
	}
	if _, err := decodeBody(r, &b, false); err != nil {
		return err
	}
	if b.EntityRef == nil || strings.TrimSpace(*b.EntityRef) == "" {
		return inputErr("malformed request: entityRef is required")
	}
	ref, err := catalog.ParseRef(*b.EntityRef, catalog.RefDefaults{})
	if err != nil {
		return inputErr("invalid entityRef: %v", err)
	}
	if err := eng.Refresh(ref.String()); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// validationErrors is validate-entity's 400 answer.
type validationErrors struct {
	Errors []catalog.SerializedError `json:"errors"`
}

// postValidateEntity serves POST /validate-entity {entity, location}: 200
// with an empty body when the pipeline processes the entity cleanly as if
// read from location, else 400 {errors: [{name, message}]} (also for a
// malformed body and for a location that is not url:..., as Backstage
// does). The pipeline is the `pipeline` query parameter, else the default.
func (s *server) postValidateEntity(w http.ResponseWriter, r *http.Request) error {
	eng, err := s.engine()
	if err != nil {
		return err
	}
	fail := func(name, msg string) error {
		return writeJSON(w, http.StatusBadRequest, validationErrors{Errors: []catalog.SerializedError{{Name: name, Message: msg}}})
	}
	pipeline, _, err := single(r.URL.Query(), "pipeline")
	if err != nil {
		return err
	}
	raw, err := readBody(r, false)
	if err != nil {
		ae := asAPIError(err)
		if ae.Status == http.StatusRequestEntityTooLarge {
			return err
		}
		return fail(ae.Name, ae.Message)
	}
	var b struct {
		Entity   json.RawMessage `json:"entity"`
		Location *string         `json:"location"`
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		return fail(InputErrorName, "malformed request: "+describeJSONError(err))
	}
	if b.Location == nil {
		return fail(InputErrorName, "malformed request: location is required (such as \"url:https://host/path\")")
	}
	ent, msg := decodeEntity(b.Entity)
	if ent == nil {
		return fail("TypeError", msg)
	}
	loc, err := engine.ParseLocationRef(*b.Location)
	if err != nil {
		return fail("TypeError", err.Error())
	}
	if loc.Type != "url" {
		return fail("TypeError", "Invalid location ref "+*b.Location+", only 'url:<target>' is supported, e.g. url:https://host/path")
	}
	problems, err := eng.ValidateEntity(r.Context(), pipeline, ent, *b.Location)
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		return writeJSON(w, http.StatusBadRequest, validationErrors{Errors: problems})
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// decodeEntity checks the envelope of an entity given to validate-entity;
// on failure it returns nil and the reason.
func decodeEntity(raw json.RawMessage) (*catalog.Entity, string) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, "malformed request: entity is required"
	}
	if raw[0] != '{' {
		return nil, "the entity must be an object"
	}
	var e catalog.Entity
	if err := json.Unmarshal(raw, &e); err != nil {
		return nil, "invalid entity: " + err.Error()
	}
	switch {
	case e.APIVersion == "":
		return nil, "invalid entity: apiVersion is required"
	case e.Kind == "":
		return nil, "invalid entity: kind is required"
	case e.Metadata.Name == "":
		return nil, "invalid entity: metadata.name is required"
	}
	return &e, ""
}

// postAnalyzeLocation serves POST /analyze-location with 501
// NotImplementedError: analysing a repository for catalog files to create
// is Backstage's scaffolding-side feature, out of this engine's scope.
// POST /locations?dryRun=true previews what a location would ingest.
func (s *server) postAnalyzeLocation(w http.ResponseWriter, r *http.Request) error {
	return apiErr(NotImplementedErrorName, "analyze-location is not implemented by this catalog; use POST /api/catalog/locations?dryRun=true to preview the entities of a location")
}
