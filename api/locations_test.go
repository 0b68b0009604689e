package api

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

type addLocation struct {
	Location Location `json:"location"`
	Entities []entity `json:"entities"`
	Exists   *bool    `json:"exists"`
}

func TestLocationsLifecycle(t *testing.T) {
	f := newFixture(t, nil)
	extra := filepath.Join(f.dir, "extra", "extra.yaml")
	body := mustJSONBody(map[string]string{"type": "file", "target": extra})

	// Nothing is registered yet (config locations are not listed).
	if rec := f.do("GET", "/api/catalog/locations", ""); strings.TrimSpace(rec.Body.String()) != "[]" {
		t.Fatalf("locations %d %s", rec.Code, rec.Body.String())
	}

	// Dry run: entities, no writes, not existing; the id is type:target.
	rec := f.do("POST", "/api/catalog/locations?dryRun=true", body)
	if rec.Code != http.StatusCreated {
		t.Fatalf("dry run %d %s", rec.Code, rec.Body.String())
	}
	var dry addLocation
	decode(t, rec, &dry)
	if dry.Exists == nil || *dry.Exists || dry.Location.ID != "file:"+extra || dry.Location.Type != "file" || dry.Location.Target != extra {
		t.Fatalf("dry run answer %s", rec.Body.String())
	}
	got := map[string]bool{}
	for _, e := range dry.Entities {
		got[e.ref()] = true
	}
	if !got["component:default/extra"] || !strings.HasPrefix(dry.Location.EntityRef, "location:default/generated-") {
		t.Fatalf("dry run entities %v", got)
	}
	if rec := f.do("GET", "/api/catalog/locations", ""); strings.TrimSpace(rec.Body.String()) != "[]" {
		t.Fatalf("dry run stored something: %s", rec.Body.String())
	}

	// Register.
	rec = f.do("POST", "/api/catalog/locations", body)
	if rec.Code != http.StatusCreated {
		t.Fatalf("register %d %s", rec.Code, rec.Body.String())
	}
	var added addLocation
	decode(t, rec, &added)
	id := added.Location.ID
	if id == "" || added.Location.Target != extra || added.Entities == nil || added.Exists != nil {
		t.Fatalf("register answer %s", rec.Body.String())
	}
	f.run()
	if rec := f.do("GET", "/api/catalog/entities/by-name/component/default/extra", ""); rec.Code != http.StatusOK {
		t.Fatalf("registered entity not served: %d", rec.Code)
	}

	// Listed, wrapped in {data}.
	var list []struct{ Data Location }
	decode(t, f.do("GET", "/api/catalog/locations", ""), &list)
	if len(list) != 1 || list[0].Data.ID != id {
		t.Fatalf("list %+v", list)
	}
	// By id.
	var one Location
	rec = f.do("GET", "/api/catalog/locations/"+id, "")
	decode(t, rec, &one)
	if rec.Code != 200 || one.ID != id || one.Type != "file" {
		t.Fatalf("get %d %s", rec.Code, rec.Body.String())
	}
	// By entity: the extra component's origin is the registered location.
	rec = f.do("GET", "/api/catalog/locations/by-entity/Component/default/extra", "")
	decode(t, rec, &one)
	if rec.Code != 200 || one.ID != id {
		t.Fatalf("by-entity %d %s", rec.Code, rec.Body.String())
	}
	// Duplicate: 409; onConflict=refresh: 201 and exists; dry run: exists.
	checkError(t, f.do("POST", "/api/catalog/locations", body), http.StatusConflict, ConflictErrorName, "already exists")
	checkError(t, f.do("POST", "/api/catalog/locations?onConflict=reject", body), http.StatusConflict, ConflictErrorName, "already exists")
	rec = f.do("POST", "/api/catalog/locations?onConflict=refresh", body)
	var again addLocation
	decode(t, rec, &again)
	if rec.Code != http.StatusCreated || again.Location.ID != id || again.Exists == nil || !*again.Exists {
		t.Fatalf("refresh on conflict %d %s", rec.Code, rec.Body.String())
	}
	rec = f.do("POST", "/api/catalog/locations?dryRun=1", body)
	again = addLocation{}
	decode(t, rec, &again)
	// Like Backstage, a dry run of a known location still lists what it yields.
	if rec.Code != http.StatusCreated || again.Exists == nil || !*again.Exists || len(again.Entities) == 0 {
		t.Fatalf("dry run of existing %d %s", rec.Code, rec.Body.String())
	}
	// The config location conflicts too.
	cfgLoc := mustJSONBody(map[string]string{"type": "file", "target": filepath.Join(f.dir, "catalog", "all.yaml")})
	checkError(t, f.do("POST", "/api/catalog/locations", cfgLoc), http.StatusConflict, ConflictErrorName, "already configured")

	// PUT is not implemented for known ids.
	checkError(t, f.do("PUT", "/api/catalog/locations/"+id, body), http.StatusNotImplemented, NotImplementedErrorName, "not supported")
	checkError(t, f.do("PUT", "/api/catalog/locations/nope", body), http.StatusNotFound, NotFoundErrorName, "Found no location with ID nope")
	checkError(t, f.do("PUT", "/api/catalog/locations/"+id, `{"type":"file"}`), http.StatusBadRequest, InputErrorName, "target is required")

	// Delete: 204, then gone with its entities.
	if rec := f.do("DELETE", "/api/catalog/locations/"+id, ""); rec.Code != http.StatusNoContent {
		t.Fatalf("delete %d %s", rec.Code, rec.Body.String())
	}
	checkError(t, f.do("GET", "/api/catalog/locations/"+id, ""), 404, NotFoundErrorName, "Found no location with ID")
	checkError(t, f.do("DELETE", "/api/catalog/locations/"+id, ""), 404, NotFoundErrorName, "Found no location with ID")
	f.run()
	if rec := f.do("GET", "/api/catalog/entities/by-name/component/default/extra", ""); rec.Code != http.StatusNotFound {
		t.Fatalf("deleted location's entity still served: %d", rec.Code)
	}
}

func TestPostLocationErrors(t *testing.T) {
	f := newFixture(t, nil)
	extra := filepath.Join(f.dir, "extra", "extra.yaml")
	tests := []struct {
		name, query, body string
		status            int
		errName, want     string
	}{
		{"no body", "", "", 400, InputErrorName, "missing request body"},
		{"no target", "", `{"type":"file"}`, 400, InputErrorName, "target is required"},
		{"no type", "", `{"target":"x"}`, 400, InputErrorName, "type is required"},
		{"unknown key", "", `{"type":"file","target":"x","rules":[]}`, 400, InputErrorName, "unrecognized key(s) in the location: rules"},
		{"not a string", "", `{"type":"file","target":5}`, 400, InputErrorName, "target must be a string"},
		{"bad presence", "", `{"type":"file","target":"x","presence":"maybe"}`, 400, InputErrorName, "presence"},
		{"bad onConflict", "?onConflict=merge", mustJSONBody(map[string]string{"type": "file", "target": extra}), 400, InputErrorName, "onConflict"},
		{"relative file", "", `{"type":"file","target":"extra.yaml"}`, 400, InputErrorName, "absolute path"},
		{"type not allowed", "", `{"type":"github","target":"x"}`, 400, InputErrorName, "not used by pipeline"},
		{"outside the roots", "", `{"type":"file","target":"/etc/passwd"}`, 403, NotAllowedErrorName, "outside the folders"},
		{"url host not allowed", "", `{"type":"url","target":"https://example.com/x.yaml"}`, 403, NotAllowedErrorName, "not among the hosts"},
		{"unknown pipeline", "?pipeline=nope", mustJSONBody(map[string]string{"type": "file", "target": extra}), 400, InputErrorName, "not configured"},
		{"pipelines disagree", "?pipeline=demo", mustJSONBody(map[string]string{"type": "file", "target": extra, "pipeline": "other"}), 400, InputErrorName, "disagree"},
		{"dry run problems", "?dryRun=true", mustJSONBody(map[string]string{"type": "file", "target": filepath.Join(f.dir, "extra", "missing.yaml")}), 400, InputErrorName, "dry run"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkError(t, f.do("POST", "/api/catalog/locations"+tc.query, tc.body), tc.status, tc.errName, tc.want)
		})
	}
	t.Run("body pipeline", func(t *testing.T) {
		rec := f.do("POST", "/api/catalog/locations?dryRun=true", mustJSONBody(map[string]string{"type": "file", "target": extra, "pipeline": "demo"}))
		if rec.Code != http.StatusCreated {
			t.Fatalf("%d %s", rec.Code, rec.Body.String())
		}
	})
}

func TestLocationsReadOnlyAndToken(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.ReadOnly = true; o.Token = "tok" })
	auth := "Authorization: Bearer tok"
	extra := filepath.Join(f.dir, "extra", "extra.yaml")
	body := mustJSONBody(map[string]string{"type": "file", "target": extra})
	checkError(t, f.do("POST", "/api/catalog/locations", body), 401, AuthenticationErrorName, "bearer token")
	checkError(t, f.do("POST", "/api/catalog/locations", body, "Authorization: Basic dG9rOg=="), 401, AuthenticationErrorName, "Bearer scheme")
	checkError(t, f.do("POST", "/api/catalog/locations", body, auth), 403, NotAllowedErrorName, "This operation not allowed in readonly mode")
	checkError(t, f.do("DELETE", "/api/catalog/locations/x", "", auth), 403, NotAllowedErrorName, "readonly")
	checkError(t, f.do("PUT", "/api/catalog/locations/x", body, auth), 403, NotAllowedErrorName, "readonly")
	// A dry run is a read: allowed in read-only mode (with the token).
	if rec := f.do("POST", "/api/catalog/locations?dryRun=true", body, auth); rec.Code != http.StatusCreated {
		t.Fatalf("dry run in readonly mode: %d %s", rec.Code, rec.Body.String())
	}
	// Reads need no token.
	if rec := f.do("GET", "/api/catalog/locations", ""); rec.Code != 200 {
		t.Fatalf("list: %d", rec.Code)
	}
	if rec := f.do("POST", "/api/catalog/locations/by-query", `{}`); rec.Code != 200 {
		t.Fatalf("by-query: %d", rec.Code)
	}
	checkError(t, f.do("POST", "/api/catalog/analyze-location", `{}`), 401, AuthenticationErrorName, "bearer")
}

func TestLocationByEntity(t *testing.T) {
	f := newFixture(t, nil)
	// Entities of config locations have no registered location.
	checkError(t, f.do("GET", "/api/catalog/locations/by-entity/component/default/orders", ""), 404, NotFoundErrorName, "found no registered location")
	checkError(t, f.do("GET", "/api/catalog/locations/by-entity/component/default/nope", ""), 404, NotFoundErrorName, "found no entity")
}

func TestLocationsByQuery(t *testing.T) {
	f := newFixture(t, nil)
	var ids []string
	for _, name := range []string{"extra.yaml", "preview.yaml"} {
		rec := f.do("POST", "/api/catalog/locations", mustJSONBody(map[string]string{"type": "file", "target": filepath.Join(f.dir, "extra", name)}))
		var a addLocation
		decode(t, rec, &a)
		if rec.Code != 201 {
			t.Fatalf("%d %s", rec.Code, rec.Body.String())
		}
		ids = append(ids, a.Location.ID)
	}
	type page struct {
		Items      []Location `json:"items"`
		TotalItems int        `json:"totalItems"`
		PageInfo   pageInfo   `json:"pageInfo"`
	}
	var p page
	decode(t, f.do("POST", "/api/catalog/locations/by-query", `{}`), &p)
	if len(p.Items) != 2 || p.TotalItems != 2 || p.PageInfo.NextCursor != "" || p.Items[0].ID > p.Items[1].ID {
		t.Fatalf("all %+v", p)
	}
	decode(t, f.do("POST", "/api/catalog/locations/by-query", mustJSONBody(map[string]any{"query": map[string]any{"target": map[string]any{"$hasPrefix": strings.ToUpper(filepath.Join(f.dir, "extra", "pre"))}}})), &p)
	if len(p.Items) != 1 || !strings.HasSuffix(p.Items[0].Target, "preview.yaml") || p.TotalItems != 1 {
		t.Fatalf("filtered %+v", p)
	}
	// Paging one at a time.
	p = page{}
	decode(t, f.do("POST", "/api/catalog/locations/by-query", `{"limit":1,"query":{"type":"file"}}`), &p)
	if len(p.Items) != 1 || p.PageInfo.NextCursor == "" || p.TotalItems != 2 {
		t.Fatalf("first %+v", p)
	}
	first := p.Items[0].ID
	cur := p.PageInfo.NextCursor
	p = page{}
	decode(t, f.do("POST", "/api/catalog/locations/by-query", mustJSONBody(map[string]string{"cursor": cur})), &p)
	if len(p.Items) != 1 || p.Items[0].ID == first || p.PageInfo.NextCursor != "" {
		t.Fatalf("second %+v", p)
	}
	for _, tc := range []struct{ body, want string }{
		{`{"limit":0}`, "positive integer"},
		{`{"cursor":""}`, "cursor cannot be empty"},
		{`{"cursor":"%%%"}`, "unknown encoding"},
		{`{"query":"file"}`, "Invalid query"},
	} {
		checkError(t, f.do("POST", "/api/catalog/locations/by-query", tc.body), 400, InputErrorName, tc.want)
	}
}
