package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/gorilla/mux"

	"github.com/catalog-pipeline/pipeline/catalog"
	"github.com/catalog-pipeline/pipeline/engine"
	"github.com/catalog-pipeline/pipeline/store"
)

// streamPage is the page size GET /entities reads the store with when it
// streams every match (Backstage streams in pages of 10,000 too).
const streamPage = 10000

var orderParam = regexp.MustCompile(`^(asc|desc):(.+)$`)

// parseOrderParams parses GET /entities' repeatable `order` parameter:
// "asc:<field>" or "desc:<field>".
func parseOrderParams(values []string) ([]OrderField, error) {
	var out []OrderField
	for _, v := range values {
		m := orderParam.FindStringSubmatch(v)
		if m == nil || strings.TrimSpace(m[2]) == "" {
			return nil, inputErr("invalid order parameter %q, expected \"<asc or desc>:<field name>\"", v)
		}
		out = append(out, OrderField{Field: strings.TrimSpace(m[2]), Order: m[1]})
	}
	return out, nil
}

// sortSpec is the order the store applies: a lowercased field (or "" for
// ref order) and its direction.
type sortSpec struct {
	field string
	desc  bool
}

func sortOf(order []OrderField) sortSpec {
	if len(order) == 0 {
		return sortSpec{}
	}
	return sortSpec{field: strings.ToLower(order[0].Field), desc: order[0].Order == "desc"}
}

// walkListOrder visits the entities matching filter in GET /entities'
// order: by the sort field with the entities lacking it last (by ref), or
// by ref. At most want items are read (want < 0: all); fn returns false to
// stop early.
func walkListOrder(cat Catalog, filter store.Expr, sp sortSpec, want int, fn func(store.Item) (bool, error)) error {
	type segment struct {
		filter store.Expr
		field  string
		desc   bool
	}
	segs := []segment{{filter: filter}}
	if sp.field != "" {
		// The store's ordered walk leaves out entities without a value for
		// the field; they follow, in ref order. HasPrefix "" is "has a
		// value" (Exists would also match null and over-long values, which
		// the walk cannot sort).
		hasValue := store.HasPrefix{Key: sp.field}
		segs = []segment{
			{filter: filter, field: sp.field, desc: sp.desc},
			{filter: and(filter, store.Not{Expr: hasValue})},
		}
	}
	seen := 0
	for _, sg := range segs {
		var after *store.Position
		for {
			lim := streamPage
			if want >= 0 {
				lim = min(lim, want-seen)
			}
			if lim <= 0 {
				return nil
			}
			res, err := cat.Page(store.PageQuery{Filter: sg.filter, OrderField: sg.field, Desc: sg.desc, After: after, Limit: lim})
			if err != nil {
				return err
			}
			for _, it := range res.Items {
				seen++
				more, err := fn(it)
				if err != nil || !more {
					return err
				}
			}
			if !res.More || len(res.Items) == 0 {
				break
			}
			p := res.Items[len(res.Items)-1].Sort
			after = &p
		}
	}
	return nil
}

// getEntities serves GET /entities. Without limit, offset or after every
// match is streamed as a JSON array; with them the legacy paged path
// answers one window and a Link header to the next one, whose `after` is
// base64 {"limit","offset"}. With `order`, only the first order field is
// applied by the store (ties are broken by ref), entities lacking it come
// last.
func (s *server) getEntities(w http.ResponseWriter, r *http.Request) error {
	cat, err := s.catalog()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	filter, err := ParseFilter(q["filter"])
	if err != nil {
		return err
	}
	fields, err := ParseFields(q["fields"])
	if err != nil {
		return err
	}
	order, err := parseOrderParams(q["order"])
	if err != nil {
		return err
	}
	offset, hasOffset, err := intParam(q, "offset", 0)
	if err != nil {
		return err
	}
	limit, hasLimit, err := intParam(q, "limit", 1)
	if err != nil {
		return err
	}
	after, hasAfter, err := single(q, "after")
	if err != nil {
		return err
	}
	if hasAfter {
		if after == "" {
			return inputErr("invalid after, must not be empty")
		}
		l, o, err := decodeAfter(after)
		if err != nil {
			return err
		}
		if l != nil {
			limit, hasLimit = *l, true
		}
		if o != nil {
			offset = *o
		}
	}
	if limit > maxPageParam || offset > maxPageParam {
		return inputErr("invalid after cursor: limit and offset must be at most %d", maxPageParam)
	}
	sp := sortOf(order)
	if !hasOffset && !hasLimit && !hasAfter {
		return s.streamEntities(w, cat, filter, sp, fields)
	}

	want := -1
	if hasLimit {
		want = offset + limit + 1
	}
	var bodies [][]byte
	i := 0
	err = walkListOrder(cat, filter, sp, want, func(it store.Item) (bool, error) {
		if i >= offset {
			bodies = append(bodies, it.Body)
		}
		i++
		return true, nil
	})
	if err != nil {
		return err
	}
	if hasLimit && len(bodies) > limit {
		bodies = bodies[:limit]
		u := url.URL{Path: r.URL.Path}
		nq := r.URL.Query()
		nq.Del("offset")
		nq.Set("after", encodeAfter(limit, offset+limit))
		u.RawQuery = nq.Encode()
		w.Header().Set("Link", fmt.Sprintf("<%s>; rel=\"next\"", u.String()))
	}
	items, err := projectAll(bodies, fields)
	if err != nil {
		return err
	}
	return writeRaw(w, http.StatusOK, appendItems(nil, items))
}

// streamEntities writes every match as one JSON array, reading the store
// page by page. A failure after the first byte aborts the response.
func (s *server) streamEntities(w http.ResponseWriter, cat Catalog, filter store.Expr, sp sortSpec, fields []string) error {
	started := false
	n := 0
	err := walkListOrder(cat, filter, sp, -1, func(it store.Item) (bool, error) {
		body, err := Project(it.Body, fields)
		if err != nil {
			return false, err
		}
		if !started {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte{'['})
			started = true
		}
		if n > 0 {
			_, _ = w.Write([]byte{','})
		}
		n++
		_, err = w.Write(body)
		return err == nil, nil
	})
	if err != nil {
		if !started {
			return err
		}
		s.log.Error("streaming entities failed", "error", err)
		panic(http.ErrAbortHandler)
	}
	if !started {
		return writeJSON(w, http.StatusOK, []json.RawMessage{})
	}
	_, _ = w.Write([]byte{']'})
	return nil
}

// projectAll applies a fields projection to served bodies; nil bodies stay
// nil (JSON null).
func projectAll(bodies [][]byte, fields []string) ([]json.RawMessage, error) {
	out := make([]json.RawMessage, len(bodies))
	for i, b := range bodies {
		if b == nil {
			continue
		}
		p, err := Project(b, fields)
		if err != nil {
			return nil, fmt.Errorf("project stored entity: %w", err)
		}
		out[i] = p
	}
	return out, nil
}

// refsBody is the body of POST /entities/by-refs.
type refsBody struct {
	EntityRefs *[]string       `json:"entityRefs"`
	Fields     stringList      `json:"fields"`
	Query      json.RawMessage `json:"query"`
}

// maxBatchRefs bounds one by-refs request.
const maxBatchRefs = 10000

// postEntitiesByRefs serves POST /entities/by-refs: the entities of the
// given refs in the same order, null for refs that are not served or do
// not match the query-string filter and body query. Refs are matched
// lowercased as given, without short-form parsing, as Backstage does.
func (s *server) postEntitiesByRefs(w http.ResponseWriter, r *http.Request) error {
	cat, err := s.catalog()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	filter, err := ParseFilter(q["filter"])
	if err != nil {
		return err
	}
	var b refsBody
	if _, err := decodeBody(r, &b, false); err != nil {
		return err
	}
	if b.EntityRefs == nil {
		return inputErr("malformed request: entityRefs is required (an array of entity refs)")
	}
	if len(*b.EntityRefs) > maxBatchRefs {
		return inputErr("malformed request: more than %d entityRefs", maxBatchRefs)
	}
	fields, err := ParseFields(append(q["fields"], b.Fields...))
	if err != nil {
		return err
	}
	pred, _, err := parsePredicateField(b.Query)
	if err != nil {
		return err
	}
	filter = and(filter, pred)
	refs := make([]string, len(*b.EntityRefs))
	for i, ref := range *b.EntityRefs {
		refs[i] = strings.ToLower(ref)
	}
	bodies, err := cat.FinalByRefs(refs)
	if err != nil {
		return err
	}
	if len(bodies) != len(refs) {
		return fmt.Errorf("store answered %d entities for %d refs", len(bodies), len(refs))
	}
	if filter != nil {
		var ok store.RefSet
		if !isNever(filter) {
			if ok, err = cat.Match(filter); err != nil {
				return err
			}
		}
		for i, ref := range refs {
			if _, in := ok[ref]; !in {
				bodies[i] = nil
			}
		}
	}
	items, err := projectAll(bodies, fields)
	if err != nil {
		return err
	}
	return writeRaw(w, http.StatusOK, append(appendItems([]byte(`{"items":`), items), '}'))
}

// getEntityByUID serves GET /entities/by-uid/{uid}.
func (s *server) getEntityByUID(w http.ResponseWriter, r *http.Request) error {
	cat, err := s.catalog()
	if err != nil {
		return err
	}
	uid := mux.Vars(r)["uid"]
	_, body, err := cat.FinalByUID(uid)
	if err != nil {
		return err
	}
	if body == nil {
		return notFoundErr("No entity with uid %s", uid)
	}
	return writeRaw(w, http.StatusOK, body)
}

// deleteEntityByUID serves DELETE /entities/by-uid/{uid}: 204, also when
// the uid is unknown (Backstage's removeEntityByUid is idempotent too). A
// parent that still emits the entity recreates it on its next run.
func (s *server) deleteEntityByUID(w http.ResponseWriter, r *http.Request) error {
	cat, err := s.catalog()
	if err != nil {
		return err
	}
	eng, err := s.engine()
	if err != nil {
		return err
	}
	ref, _, err := cat.FinalByUID(mux.Vars(r)["uid"])
	if err != nil {
		return err
	}
	if ref != "" {
		if err := eng.DeleteEntity(ref); err != nil && !isNotFound(err) {
			return err
		}
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func isNotFound(err error) bool {
	var pe *engine.ProcessingError
	return errors.As(err, &pe) && pe.Name == engine.NotFoundErrorName
}

// refFromPath builds the canonical ref of the {kind}/{namespace}/{name}
// path variables (compared case-insensitively).
func refFromPath(r *http.Request) (catalog.Ref, string) {
	v := mux.Vars(r)
	ref := catalog.Ref{Kind: v["kind"], Namespace: v["namespace"], Name: v["name"]}
	return ref, ref.String()
}

// getEntityByName serves GET /entities/by-name/{kind}/{namespace}/{name}.
func (s *server) getEntityByName(w http.ResponseWriter, r *http.Request) error {
	_, ref, key, err := s.finalFromPath(r)
	if err != nil {
		return err
	}
	body, err := s.finalBody(key)
	if err != nil {
		return err
	}
	if body == nil {
		return notFoundErr("No entity named '%s' found, with kind '%s' in namespace '%s'", ref.Name, ref.Kind, ref.Namespace)
	}
	return writeRaw(w, http.StatusOK, body)
}

// finalFromPath returns the catalog and the ref named by the route's
// {kind}/{namespace}/{name}, with its store key.
func (s *server) finalFromPath(r *http.Request) (Catalog, catalog.Ref, string, error) {
	cat, err := s.catalog()
	if err != nil {
		return nil, catalog.Ref{}, "", err
	}
	ref, key := refFromPath(r)
	return cat, ref, key, nil
}

// finalBody returns the served JSON of the entity with store key key, or
// nil when it is not served.
func (s *server) finalBody(key string) ([]byte, error) {
	cat, err := s.catalog()
	if err != nil {
		return nil, err
	}
	bodies, err := cat.FinalByRefs([]string{key})
	if err != nil || len(bodies) != 1 {
		return nil, err
	}
	return bodies[0], nil
}

// ancestryItem is one entity of an ancestry answer.
type ancestryItem struct {
	Entity           json.RawMessage `json:"entity"`
	ParentEntityRefs []string        `json:"parentEntityRefs"`
}

// maxAncestry bounds the entities an ancestry walk visits.
const maxAncestry = 1000

// getEntityAncestry serves GET /entities/by-name/{kind}/{namespace}/{name}/ancestry:
// the entity and its ancestors up to the roots, each with the refs of its
// served parents (provider keys are not entities and are skipped), in
// Backstage's walk order (depth first from the root entity).
func (s *server) getEntityAncestry(w http.ResponseWriter, r *http.Request) error {
	cat, _, root, err := s.finalFromPath(r)
	if err != nil {
		return err
	}
	rootBody, err := s.finalBody(root)
	if err != nil {
		return err
	}
	if rootBody == nil {
		return notFoundErr("No such entity %s", root)
	}
	type node struct {
		ref  string
		body []byte
	}
	seen := map[string]bool{root: true}
	todo := []node{{root, rootBody}}
	items := []ancestryItem{}
	for len(todo) > 0 && len(items) < maxAncestry {
		cur := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		parents, err := cat.Parents(cur.ref)
		if err != nil {
			return err
		}
		var refs []string
		for _, p := range parents {
			if !strings.HasPrefix(p, store.ProviderPrefix) {
				refs = append(refs, p)
			}
		}
		served := []string{}
		if len(refs) > 0 {
			pb, err := cat.FinalByRefs(refs)
			if err != nil {
				return err
			}
			for i, p := range refs {
				if i >= len(pb) || pb[i] == nil {
					continue
				}
				served = append(served, p)
				if !seen[p] {
					seen[p] = true
					todo = append(todo, node{p, pb[i]})
				}
			}
		}
		items = append(items, ancestryItem{Entity: cur.body, ParentEntityRefs: served})
	}
	return writeJSON(w, http.StatusOK, map[string]any{"rootEntityRef": root, "items": items})
}

// writeRaw answers a stored JSON document as is.
func writeRaw(w http.ResponseWriter, status int, body []byte) error {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
	return nil
}
