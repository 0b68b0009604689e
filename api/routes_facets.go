package api

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"

	"github.com/catalog-pipeline/pipeline/store"
)

// maxFacets bounds the facets of one request.
const maxFacets = 100

// facetValue is one value of a facet with the number of entities having it.
type facetValue struct {
	Value string `json:"value"`
	Count int    `json:"count"`
}

// getEntityFacets serves GET /entity-facets?facet=...&filter=....
func (s *server) getEntityFacets(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	var facets []string
	for _, f := range q["facet"] {
		if f != "" {
			facets = append(facets, f)
		}
	}
	if len(facets) == 0 {
		return inputErr("missing facet parameter")
	}
	filter, err := ParseFilter(q["filter"])
	if err != nil {
		return err
	}
	return s.facets(w, facets, filter)
}

// postEntityFacets serves POST /entity-facets with {facets, query?}.
func (s *server) postEntityFacets(w http.ResponseWriter, r *http.Request) error {
	var b struct {
		Facets *stringList     `json:"facets"`
		Query  json.RawMessage `json:"query"`
	}
	if _, err := decodeBody(r, &b, false); err != nil {
		return err
	}
	if b.Facets == nil {
		return inputErr("malformed request: facets is required (an array of field paths)")
	}
	var facets []string
	for _, f := range *b.Facets {
		if f != "" {
			facets = append(facets, f)
		}
	}
	if len(facets) == 0 {
		return inputErr("missing facets: give at least one field path")
	}
	filter, _, err := parsePredicateField(b.Query)
	if err != nil {
		return err
	}
	return s.facets(w, facets, filter)
}

// facets answers {facets: {<facet as given>: [{value, count}]}}, values
// sorted, counted over the original (case-preserved) values.
func (s *server) facets(w http.ResponseWriter, facets []string, filter store.Expr) error {
	cat, err := s.catalog()
	if err != nil {
		return err
	}
	if len(facets) > maxFacets {
		return inputErr("too many facets: at most %d per request", maxFacets)
	}
	var paths []string
	seen := map[string]bool{}
	for _, f := range facets {
		p := strings.ToLower(f)
		if !seen[p] {
			seen[p] = true
			paths = append(paths, p)
		}
	}
	var res map[string][]store.FacetCount
	if !isNever(filter) {
		if res, err = cat.Facets(paths, filter); err != nil {
			return err
		}
	}
	out := make(map[string][]facetValue, len(facets))
	for _, f := range facets {
		counts, ok := res[strings.ToLower(f)]
		if !ok {
			counts = res[f]
		}
		vals := make([]facetValue, 0, len(counts))
		for _, c := range counts {
			vals = append(vals, facetValue{Value: c.Value, Count: c.Count})
		}
		sort.SliceStable(vals, func(i, j int) bool { return vals[i].Value < vals[j].Value })
		out[f] = vals
	}
	return writeJSON(w, http.StatusOK, map[string]any{"facets": out})
}
