package api

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"

	"go.yaml.in/yaml/v3"

	"github.com/catalog-pipeline/pipeline/catalog"
)

// OpenAPIPath is where the OpenAPI 3.0 document of the whole API is
// served, with the suffix .yaml (as kept in the repository) or .json.
const OpenAPIPath = "/api/openapi"

// openapiYAML is the OpenAPI document, api/openapi.yaml.
//
//go:embed openapi.yaml
var openapiYAML []byte

// openapiJSON converts the document to JSON once (New calls it, so that
// this happens at startup).
var openapiJSON = sync.OnceValues(func() ([]byte, error) {
	return yamlToJSON(openapiYAML)
})

// yamlToJSON converts a YAML document to JSON. Mapping keys become strings
// (YAML allows others, such as the unquoted status code 200).
func yamlToJSON(b []byte) ([]byte, error) {
	var v any
	if err := yaml.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("parse the OpenAPI document: %w", err)
	}
	return json.Marshal(catalog.NormalizeValue(v))
}

// getOpenAPIYAML serves GET /api/openapi.yaml.
func (s *server) getOpenAPIYAML(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/yaml; charset=utf-8")
	_, _ = w.Write(openapiYAML)
	return nil
}

// getOpenAPIJSON serves GET /api/openapi.json.
func (s *server) getOpenAPIJSON(w http.ResponseWriter, r *http.Request) error {
	b, err := openapiJSON()
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(b)
	return nil
}
