package api

import (
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func TestGetEntities(t *testing.T) {
	f := newFixture(t, nil)
	all := []string{
		"component:default/billing", "component:default/orders", "component:default/web", "component:ops/deployer",
		"group:default/pumps", "group:default/rockets",
	}
	tests := []struct {
		name  string
		query string
		want  []string // sorted refs; nil with wantN checks the count only
		wantN int
	}{
		{name: "all", query: "", wantN: fixtureCount},
		{name: "kind", query: "filter=kind=component", want: all[:4]},
		{name: "and", query: "filter=kind=component,spec.type=service", want: []string{all[0], all[1], all[3]}},
		{name: "same key is or", query: "filter=kind=component,kind=group", want: all},
		{name: "sets are or", query: "filter=kind=group&filter=metadata.name=orders", want: []string{all[1], all[4], all[5]}},
		{name: "exists", query: "filter=metadata.tags", want: []string{all[1], all[2]}},
		{name: "array item as key", query: "filter=metadata.tags.java", want: []string{all[1]}},
		{name: "array item as value", query: "filter=metadata.tags=java", want: []string{all[1]}},
		{name: "relations", query: "filter=" + url.QueryEscape("relations.ownedBy=group:default/rockets"), want: []string{all[0], all[1]}},
		{name: "case and spaces", query: "filter=" + url.QueryEscape(" Kind = COMPONENT , metadata.name=Orders "), want: []string{all[1]}},
		{name: "namespace", query: "filter=metadata.namespace=ops", want: []string{all[3]}},
		{name: "no match", query: "filter=kind=nothing", want: []string{}},
		{name: "empty set ignored", query: "filter=,", wantN: fixtureCount},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := f.do("GET", "/api/catalog/entities?"+tc.query, "")
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
			}
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("content type %q", ct)
			}
			var es []entity
			decode(t, rec, &es)
			if tc.want != nil {
				if got := sorted(refsOf(es)); !reflect.DeepEqual(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			} else if len(es) != tc.wantN {
				t.Fatalf("got %d entities, want %d", len(es), tc.wantN)
			}
		})
	}

	t.Run("fields", func(t *testing.T) {
		rec := f.do("GET", "/api/catalog/entities?filter=metadata.name=orders&fields=kind,metadata.name&fields=metadata.annotations.backstage.io/managed-by-location", "")
		var got []map[string]any
		decode(t, rec, &got)
		if len(got) != 1 {
			t.Fatalf("got %v", got)
		}
		md := got[0]["metadata"].(map[string]any)
		ann := md["annotations"].(map[string]any)
		if got[0]["kind"] != "Component" || md["name"] != "orders" || len(md) != 2 || len(ann) != 1 || len(got[0]) != 2 {
			t.Fatalf("projection %v", got[0])
		}
	})

	errs := []struct{ name, query, want string }{
		{"bad statement", "filter=" + url.QueryEscape("=x"), "not a valid statement"},
		{"array field", "fields=metadata.tags[0]", "array"},
		{"bad order", "order=sideways:metadata.name", "invalid order"},
		{"limit zero", "limit=0", "greater than zero"},
		{"limit not a number", "limit=ten", "not an integer"},
		{"negative offset", "offset=-1", "zero or greater"},
		{"bad after", "after=" + url.QueryEscape("!!!"), "after cursor"},
		{"empty after", "after=", "must not be empty"},
		{"two limits", "limit=1&limit=2", "single value"},
	}
	for _, tc := range errs {
		t.Run("400 "+tc.name, func(t *testing.T) {
			checkError(t, f.do("GET", "/api/catalog/entities?"+tc.query, ""), http.StatusBadRequest, InputErrorName, tc.want)
		})
	}
}

func TestGetEntitiesPaging(t *testing.T) {
	f := newFixture(t, nil)
	var everything []entity
	decode(t, f.do("GET", "/api/catalog/entities", ""), &everything)

	// Walk the Link headers two at a time: every entity once, in ref order.
	var got []string
	next := "/api/catalog/entities?limit=2"
	pages := 0
	for next != "" {
		rec := f.do("GET", next, "")
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", next, rec.Code, rec.Body.String())
		}
		var es []entity
		decode(t, rec, &es)
		if len(es) > 2 {
			t.Fatalf("page of %d", len(es))
		}
		got = append(got, refsOf(es)...)
		next = ""
		if link := rec.Header().Get("Link"); link != "" {
			if !strings.HasSuffix(link, `>; rel="next"`) || !strings.HasPrefix(link, "</api/catalog/entities?") {
				t.Fatalf("link %q", link)
			}
			next = strings.TrimSuffix(strings.TrimPrefix(link, "<"), `>; rel="next"`)
		}
		if pages++; pages > 10 {
			t.Fatal("paging does not end")
		}
	}
	if want := sorted(refsOf(everything)); !reflect.DeepEqual(got, want) {
		t.Fatalf("paged %v\nwant %v", got, want)
	}

	t.Run("offset", func(t *testing.T) {
		var es []entity
		decode(t, f.do("GET", "/api/catalog/entities?offset=1&limit=2", ""), &es)
		if !reflect.DeepEqual(refsOf(es), got[1:3]) {
			t.Fatalf("got %v want %v", refsOf(es), got[1:3])
		}
	})
	t.Run("offset only", func(t *testing.T) {
		rec := f.do("GET", "/api/catalog/entities?offset=6", "")
		var es []entity
		decode(t, rec, &es)
		if !reflect.DeepEqual(refsOf(es), got[6:]) || rec.Header().Get("Link") != "" {
			t.Fatalf("got %v want %v", refsOf(es), got[6:])
		}
	})
	t.Run("order with missing fields last", func(t *testing.T) {
		var es []entity
		decode(t, f.do("GET", "/api/catalog/entities?order=desc:spec.lifecycle&limit=100", ""), &es)
		refs := refsOf(es)
		if len(refs) != fixtureCount || !reflect.DeepEqual(sorted(refs[:3]), []string{"component:default/billing", "component:default/orders", "component:ops/deployer"}) || refs[3] != "component:default/web" {
			t.Fatalf("order %v", refs)
		}
		for _, r := range refs[4:] {
			if strings.HasPrefix(r, "component:") {
				t.Fatalf("entities without spec.lifecycle must come last: %v", refs)
			}
		}
	})
	t.Run("stream with order", func(t *testing.T) {
		var es []entity
		decode(t, f.do("GET", "/api/catalog/entities?order=asc:metadata.name", ""), &es)
		var names []string
		for _, e := range es {
			names = append(names, e.Metadata.Name)
		}
		if len(names) != fixtureCount || names[0] != "billing" || names[1] != "deployer" {
			t.Fatalf("order %v", names)
		}
	})
}

func TestEntitiesByRefs(t *testing.T) {
	f := newFixture(t, nil)
	tests := []struct {
		name, query, body string
		want              []string // "" for null
	}{
		{"order and nulls", "", `{"entityRefs":["group:default/rockets","component:default/nope","Component:Default/Orders"]}`,
			[]string{"group:default/rockets", "", "component:default/orders"}},
		{"no short forms", "", `{"entityRefs":["orders"]}`, []string{""}},
		{"query-string filter", "?filter=kind=component", `{"entityRefs":["group:default/rockets","component:default/orders"]}`,
			[]string{"", "component:default/orders"}},
		{"body query", "", `{"entityRefs":["component:default/web","component:default/orders"],"query":{"spec.type":"website"}}`,
			[]string{"component:default/web", ""}},
		{"empty", "", `{"entityRefs":[]}`, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := f.do("POST", "/api/catalog/entities/by-refs"+tc.query, tc.body)
			if rec.Code != http.StatusOK {
				t.Fatalf("%d %s", rec.Code, rec.Body.String())
			}
			var out struct{ Items []*entity }
			decode(t, rec, &out)
			got := make([]string, len(out.Items))
			for i, e := range out.Items {
				if e != nil {
					got[i] = e.ref()
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v want %v", got, tc.want)
			}
		})
	}
	t.Run("fields", func(t *testing.T) {
		rec := f.do("POST", "/api/catalog/entities/by-refs?fields=kind", `{"entityRefs":["component:default/orders"],"fields":["metadata.name"]}`)
		var out struct{ Items []map[string]any }
		decode(t, rec, &out)
		if len(out.Items) != 1 || len(out.Items[0]) != 2 || out.Items[0]["kind"] != "Component" {
			t.Fatalf("got %v", out.Items)
		}
	})
	for _, tc := range []struct{ name, body, want string }{
		{"no body", "", "missing request body"},
		{"no refs", `{}`, "entityRefs is required"},
		{"refs not strings", `{"entityRefs":[1]}`, "entityRefs"},
		{"not json", `{"entityRefs":`, "malformed request body"},
		{"array body", `["a"]`, "expected a JSON object"},
		{"bad query", `{"entityRefs":[],"query":7}`, "Invalid query"},
	} {
		t.Run("400 "+tc.name, func(t *testing.T) {
			checkError(t, f.do("POST", "/api/catalog/entities/by-refs", tc.body), http.StatusBadRequest, InputErrorName, tc.want)
		})
	}
}

func TestEntityByUID(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Token = "s3cret" })
	var e entity
	decode(t, f.do("GET", "/api/catalog/entities/by-name/component/default/orders", ""), &e)
	if e.Metadata.UID == "" {
		t.Fatal("no uid")
	}
	rec := f.do("GET", "/api/catalog/entities/by-uid/"+e.Metadata.UID, "")
	var got entity
	decode(t, rec, &got)
	if rec.Code != http.StatusOK || got.ref() != "component:default/orders" {
		t.Fatalf("%d %s", rec.Code, rec.Body.String())
	}
	checkError(t, f.do("GET", "/api/catalog/entities/by-uid/nope", ""), http.StatusNotFound, NotFoundErrorName, "No entity with uid nope")

	checkError(t, f.do("DELETE", "/api/catalog/entities/by-uid/"+e.Metadata.UID, ""), http.StatusUnauthorized, AuthenticationErrorName, "bearer token")
	checkError(t, f.do("DELETE", "/api/catalog/entities/by-uid/"+e.Metadata.UID, "", "Authorization: Bearer wrong"), http.StatusUnauthorized, AuthenticationErrorName, "invalid bearer token")
	if rec := f.do("DELETE", "/api/catalog/entities/by-uid/"+e.Metadata.UID, "", "Authorization: Bearer s3cret"); rec.Code != http.StatusNoContent {
		t.Fatalf("delete: %d %s", rec.Code, rec.Body.String())
	}
	checkError(t, f.do("GET", "/api/catalog/entities/by-uid/"+e.Metadata.UID, ""), http.StatusNotFound, NotFoundErrorName, "No entity with uid")
	// Unknown uids delete idempotently, as in Backstage.
	if rec := f.do("DELETE", "/api/catalog/entities/by-uid/nope", "", "Authorization: bearer s3cret"); rec.Code != http.StatusNoContent {
		t.Fatalf("delete unknown: %d %s", rec.Code, rec.Body.String())
	}
	// The parent still emits it: the next run recreates it.
	f.run()
	if rec := f.do("GET", "/api/catalog/entities/by-name/component/default/orders", ""); rec.Code != http.StatusOK {
		t.Fatalf("not recreated: %d", rec.Code)
	}
}

func TestEntityByName(t *testing.T) {
	f := newFixture(t, nil)
	for _, tc := range []struct {
		path   string
		status int
		ref    string
	}{
		{"component/default/orders", 200, "component:default/orders"},
		{"Component/DEFAULT/Orders", 200, "component:default/orders"},
		{"component/ops/deployer", 200, "component:ops/deployer"},
		{"component/default/deployer", 404, ""},
		{"group/default/nope", 404, ""},
	} {
		t.Run(tc.path, func(t *testing.T) {
			rec := f.do("GET", "/api/catalog/entities/by-name/"+tc.path, "")
			if tc.status == 404 {
				parts := strings.Split(tc.path, "/")
				checkError(t, rec, 404, NotFoundErrorName, "No entity named '"+parts[2]+"' found, with kind '"+parts[0]+"' in namespace '"+parts[1]+"'")
				return
			}
			var e entity
			decode(t, rec, &e)
			if rec.Code != tc.status || e.ref() != tc.ref {
				t.Fatalf("%d %s", rec.Code, rec.Body.String())
			}
		})
	}
}

func TestEntityAncestry(t *testing.T) {
	f := newFixture(t, nil)
	rec := f.do("GET", "/api/catalog/entities/by-name/component/default/billing/ancestry", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("%d %s", rec.Code, rec.Body.String())
	}
	var out struct {
		RootEntityRef string `json:"rootEntityRef"`
		Items         []struct {
			Entity           entity   `json:"entity"`
			ParentEntityRefs []string `json:"parentEntityRefs"`
		} `json:"items"`
	}
	decode(t, rec, &out)
	if out.RootEntityRef != "component:default/billing" || len(out.Items) != 3 {
		t.Fatalf("ancestry %s", rec.Body.String())
	}
	if out.Items[0].Entity.ref() != "component:default/billing" || !reflect.DeepEqual(out.Items[0].ParentEntityRefs, []string{"location:default/more"}) {
		t.Fatalf("first item %+v", out.Items[0])
	}
	if out.Items[1].Entity.ref() != "location:default/more" || len(out.Items[1].ParentEntityRefs) != 1 || !strings.HasPrefix(out.Items[1].ParentEntityRefs[0], "location:default/generated-") {
		t.Fatalf("second item %+v", out.Items[1])
	}
	// The root location's parent is the pipeline (a provider key): skipped.
	if out.Items[2].ParentEntityRefs == nil || len(out.Items[2].ParentEntityRefs) != 0 {
		t.Fatalf("root item %+v", out.Items[2])
	}
	if !strings.Contains(rec.Body.String(), `"parentEntityRefs":[]`) {
		t.Fatal("an entity without parents must list [] not null")
	}
	checkError(t, f.do("GET", "/api/catalog/entities/by-name/component/default/nope/ancestry", ""), 404, NotFoundErrorName, "component:default/nope")
}

func TestEntityFacets(t *testing.T) {
	f := newFixture(t, nil)
	type facets struct {
		Facets map[string][]facetValue `json:"facets"`
	}
	tests := []struct {
		name, method, target, body string
		want                       map[string][]facetValue
	}{
		{"kind", "GET", "/api/catalog/entity-facets?facet=kind", "", map[string][]facetValue{
			"kind": {{"Component", 4}, {"Group", 2}, {"Location", 2}}}},
		{"filtered, as given", "GET", "/api/catalog/entity-facets?facet=Spec.Type&facet=metadata.tags&filter=kind=component", "", map[string][]facetValue{
			"Spec.Type":     {{"service", 3}, {"website", 1}},
			"metadata.tags": {{"go", 1}, {"java", 1}, {"payments", 1}}}},
		{"unknown path", "GET", "/api/catalog/entity-facets?facet=spec.nothing", "", map[string][]facetValue{"spec.nothing": {}}},
		{"post", "POST", "/api/catalog/entity-facets", `{"facets":["spec.lifecycle"],"query":{"kind":"component","spec.type":{"$in":["service"]}}}`,
			map[string][]facetValue{"spec.lifecycle": {{"production", 3}}}},
		{"post never", "POST", "/api/catalog/entity-facets", `{"facets":["kind"],"query":{"$any":[]}}`,
			map[string][]facetValue{"kind": {}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := f.do(tc.method, tc.target, tc.body)
			if rec.Code != 200 {
				t.Fatalf("%d %s", rec.Code, rec.Body.String())
			}
			var got facets
			decode(t, rec, &got)
			if !reflect.DeepEqual(got.Facets, tc.want) {
				t.Fatalf("got %+v want %+v", got.Facets, tc.want)
			}
		})
	}
	checkError(t, f.do("GET", "/api/catalog/entity-facets", ""), 400, InputErrorName, "missing facet")
	checkError(t, f.do("GET", "/api/catalog/entity-facets?facet=kind&filter==", ""), 400, InputErrorName, "filter")
	checkError(t, f.do("POST", "/api/catalog/entity-facets", `{"query":{}}`), 400, InputErrorName, "facets is required")
	checkError(t, f.do("POST", "/api/catalog/entity-facets", `{"facets":["kind"],"query":{"$not":{},"kind":"x"}}`), 400, InputErrorName, "cannot be combined")
}

func TestStreamEmptyIsArray(t *testing.T) {
	f := newFixture(t, nil)
	rec := f.do("GET", "/api/catalog/entities?filter=kind=nothing", "")
	if strings.TrimSpace(rec.Body.String()) != "[]" {
		t.Fatalf("got %q", rec.Body.String())
	}
	var v []json.RawMessage
	decode(t, f.do("GET", "/api/catalog/entities?limit=5&filter=kind=nothing", ""), &v)
	if v == nil {
		t.Fatal("paged empty answer must be []")
	}
}
