package api

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"sort"
	"strings"
	"testing"
)

type queryPage struct {
	Items      []entity `json:"items"`
	TotalItems int      `json:"totalItems"`
	PageInfo   struct {
		NextCursor string `json:"nextCursor"`
		PrevCursor string `json:"prevCursor"`
	} `json:"pageInfo"`
}

func (f *fixture) getQuery(t *testing.T, query string) queryPage {
	t.Helper()
	rec := f.do("GET", "/api/catalog/entities/by-query?"+query, "")
	if rec.Code != http.StatusOK {
		t.Fatalf("by-query %s: %d %s", query, rec.Code, rec.Body.String())
	}
	var p queryPage
	decode(t, rec, &p)
	return p
}

func (f *fixture) postQuery(t *testing.T, body string) queryPage {
	t.Helper()
	rec := f.do("POST", "/api/catalog/entities/by-query", body)
	if rec.Code != http.StatusOK {
		t.Fatalf("by-query %s: %d %s", body, rec.Code, rec.Body.String())
	}
	var p queryPage
	decode(t, rec, &p)
	return p
}

func names(es []entity) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Metadata.Name
	}
	return out
}

func TestGetEntitiesByQuery(t *testing.T) {
	f := newFixture(t, nil)
	tests := []struct {
		name  string
		query string
		want  []string // names in order; nil: don't check
		total int
	}{
		{name: "default", query: "", total: fixtureCount},
		{name: "filter", query: "filter=kind=component&orderField=metadata.name,asc", want: []string{"billing", "deployer", "orders", "web"}, total: 4},
		{name: "desc", query: "filter=kind=component&orderField=metadata.name,desc", want: []string{"web", "orders", "deployer", "billing"}, total: 4},
		{name: "only the first order field", query: "filter=kind=component&orderField=metadata.name,desc&orderField=kind,asc", want: []string{"web", "orders", "deployer", "billing"}, total: 4},
		{name: "lacking the order field excluded", query: "orderField=metadata.title", want: []string{"orders"}, total: 1},
		{name: "full text on a field", query: "fullTextFilterTerm=ORD&fullTextFilterFields=metadata.name", want: []string{"orders"}, total: 1},
		{name: "full text on the sort field", query: "fullTextFilterTerm=+PLOY+&orderField=metadata.name", want: []string{"deployer"}, total: 1},
		{name: "full text several fields", query: "fullTextFilterTerm=public&fullTextFilterFields=metadata.name,metadata.description", want: []string{"web"}, total: 1},
		{name: "total excluded", query: "filter=kind=group&totalItems=exclude&orderField=metadata.name", want: []string{"pumps", "rockets"}, total: 0},
		{name: "limit zero counts", query: "filter=kind=group&limit=0", want: []string{}, total: 2},
		{name: "offset", query: "filter=kind=component&orderField=metadata.name&offset=2", want: []string{"orders", "web"}, total: 4},
		{name: "relations", query: "filter=" + url.QueryEscape("relations.ownerof=component:default/web"), want: []string{"pumps"}, total: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := f.getQuery(t, tc.query)
			if tc.want != nil && !reflect.DeepEqual(names(p.Items), tc.want) && !(len(p.Items) == 0 && len(tc.want) == 0) {
				t.Fatalf("got %v want %v", names(p.Items), tc.want)
			}
			if p.TotalItems != tc.total {
				t.Fatalf("totalItems %d want %d", p.TotalItems, tc.total)
			}
			if p.PageInfo.NextCursor != "" || p.PageInfo.PrevCursor != "" {
				t.Fatalf("single page has cursors: %+v", p.PageInfo)
			}
		})
	}
	t.Run("default limit", func(t *testing.T) {
		rec := f.do("GET", "/api/catalog/entities/by-query", "")
		if !strings.Contains(rec.Body.String(), `"pageInfo":{}`) || !strings.Contains(rec.Body.String(), `"totalItems":8`) {
			t.Fatalf("shape %s", rec.Body.String())
		}
	})
	t.Run("fields", func(t *testing.T) {
		rec := f.do("GET", "/api/catalog/entities/by-query?filter=metadata.name=web&fields=metadata.name", "")
		if !strings.Contains(rec.Body.String(), `"items":[{"metadata":{"name":"web"}}]`) {
			t.Fatalf("got %s", rec.Body.String())
		}
	})
	for _, tc := range []struct{ name, query, want string }{
		{"bad order", "orderField=metadata.name,up", "asc or desc"},
		{"bad cursor", "cursor=" + url.QueryEscape("not base64 at all!"), "malformed cursor"},
		{"cursor not json", "cursor=" + base64.StdEncoding.EncodeToString([]byte("[1,2]")), "malformed cursor"},
		{"cursor bad position", "cursor=" + EncodeCursor(&Cursor{OrderFields: []OrderField{{"metadata.name", "asc"}}, OrderFieldValues: []string{"x"}}), "position"},
		{"cursor bad filter", "cursor=" + EncodeCursor(&Cursor{Filter: []string{"=x"}, OrderFieldValues: []string{"x"}}), "not a valid statement"},
		{"negative limit", "limit=-1", "zero or greater"},
		{"huge limit", "limit=99999999999", "at most"},
		{"bad totalItems", "totalItems=some", "include or exclude"},
		{"bad filter", "filter=,=a", "not a valid statement"},
	} {
		t.Run("400 "+tc.name, func(t *testing.T) {
			checkError(t, f.do("GET", "/api/catalog/entities/by-query?"+tc.query, ""), 400, InputErrorName, tc.want)
		})
	}
}

// walk follows nextCursor from the first page and checks prevCursor on the
// way back; it returns the names of every page.
func walkQuery(t *testing.T, f *fixture, first queryPage, get func(cursor string) queryPage) [][]string {
	t.Helper()
	var pages [][]string
	var cursors []string // the cursor that produced each page after the first
	p := first
	if p.PageInfo.PrevCursor != "" {
		t.Fatal("first page has a prevCursor")
	}
	for {
		pages = append(pages, names(p.Items))
		if p.TotalItems != first.TotalItems {
			t.Fatalf("totalItems changed: %d then %d", first.TotalItems, p.TotalItems)
		}
		if len(pages) > 1 && p.PageInfo.PrevCursor == "" {
			t.Fatalf("page %d has no prevCursor", len(pages))
		}
		if p.PageInfo.NextCursor == "" {
			break
		}
		if len(pages) > 50 {
			t.Fatal("paging does not end")
		}
		cursors = append(cursors, p.PageInfo.NextCursor)
		p = get(p.PageInfo.NextCursor)
	}
	// Walk back from the last page with prevCursor: the same pages.
	for i := len(pages) - 1; i > 0; i-- {
		prev := get(p.PageInfo.PrevCursor)
		if !reflect.DeepEqual(names(prev.Items), pages[i-1]) {
			t.Fatalf("prev of page %d: %v want %v", i, names(prev.Items), pages[i-1])
		}
		if prev.PageInfo.NextCursor == "" {
			t.Fatalf("a previous page %d has no nextCursor", i-1)
		}
		if i-1 == 0 && prev.PageInfo.PrevCursor != "" {
			t.Fatal("walking back to the first page still offers a prevCursor")
		}
		// Forward again from the previous page gives the page we came from.
		again := get(prev.PageInfo.NextCursor)
		if !reflect.DeepEqual(names(again.Items), pages[i]) {
			t.Fatalf("next of prev page %d: %v want %v", i-1, names(again.Items), pages[i])
		}
		p = prev
	}
	return pages
}

func TestByQueryCursorPaging(t *testing.T) {
	f := newFixture(t, nil)
	get := func(c string) queryPage { return f.getQuery(t, "cursor="+url.QueryEscape(c)+"&limit=3") }
	for _, tc := range []struct{ name, query string }{
		{"by ref", "limit=3"},
		{"by name", "limit=3&orderField=metadata.name,asc"},
		{"by name desc", "limit=3&orderField=metadata.name,desc"},
		{"by kind (ties)", "limit=3&orderField=kind,asc"},
		{"filtered", "limit=3&filter=kind=component,kind=group&orderField=metadata.name,desc"},
		{"full text", "limit=1&fullTextFilterTerm=o&fullTextFilterFields=metadata.name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			first := f.getQuery(t, tc.query)
			pages := walkQuery(t, f, first, get)
			var all []string
			for _, p := range pages {
				all = append(all, p...)
			}
			if len(all) != first.TotalItems {
				t.Fatalf("walked %d items, totalItems %d: %v", len(all), first.TotalItems, pages)
			}
			seen := map[string]bool{}
			for _, n := range all {
				if seen[n] {
					t.Fatalf("%s twice: %v", n, pages)
				}
				seen[n] = true
			}
			if strings.Contains(tc.query, "metadata.name,asc") && !sort.StringsAreSorted(all) {
				t.Fatalf("not sorted: %v", all)
			}
		})
	}
	t.Run("cursor fixes the query", func(t *testing.T) {
		first := f.getQuery(t, "limit=1&filter=kind=group&orderField=metadata.name,asc")
		// filter and order given next to a cursor are ignored.
		next := f.getQuery(t, "cursor="+url.QueryEscape(first.PageInfo.NextCursor)+"&filter=kind=component&orderField=metadata.name,desc")
		if !reflect.DeepEqual(names(next.Items), []string{"rockets"}) || next.TotalItems != 2 {
			t.Fatalf("got %v %d", names(next.Items), next.TotalItems)
		}
	})
	t.Run("excluded total stays excluded", func(t *testing.T) {
		first := f.getQuery(t, "limit=1&totalItems=exclude")
		next := f.getQuery(t, "cursor="+url.QueryEscape(first.PageInfo.NextCursor))
		if first.TotalItems != 0 || next.TotalItems != 0 {
			t.Fatalf("totals %d %d", first.TotalItems, next.TotalItems)
		}
	})
	t.Run("url-safe and spaces", func(t *testing.T) {
		first := f.getQuery(t, "limit=2")
		raw, _ := base64.StdEncoding.DecodeString(first.PageInfo.NextCursor)
		for _, c := range []string{base64.RawURLEncoding.EncodeToString(raw), strings.ReplaceAll(first.PageInfo.NextCursor, "+", " ")} {
			if p := f.getQuery(t, "cursor="+url.QueryEscape(c)); len(p.Items) == 0 {
				t.Fatalf("cursor %q gave nothing", c)
			}
		}
	})
}

func TestPostEntitiesByQuery(t *testing.T) {
	f := newFixture(t, nil)
	tests := []struct {
		name, body string
		want       []string
		total      int
	}{
		{"empty body", ``, nil, fixtureCount},
		{"empty object", `{}`, nil, fixtureCount},
		{"fields", `{"query":{"kind":"Component"},"orderBy":[{"field":"metadata.name","order":"asc"}]}`, []string{"billing", "deployer", "orders", "web"}, 4},
		{"in", `{"query":{"kind":"component","spec.type":{"$in":["website","library"]}}}`, []string{"web"}, 1},
		{"not", `{"query":{"$all":[{"kind":"component"},{"$not":{"spec.type":"service"}}]}}`, []string{"web"}, 1},
		{"any", `{"query":{"$any":[{"metadata.name":"web"},{"metadata.name":"pumps"}]},"orderBy":[{"field":"metadata.name"}]}`, []string{"pumps", "web"}, 2},
		{"exists false", `{"query":{"kind":"component","metadata.tags":{"$exists":false}},"orderBy":[{"field":"metadata.name","order":"desc"}]}`, []string{"deployer", "billing"}, 2},
		{"hasPrefix", `{"query":{"metadata.name":{"$hasPrefix":"DE"}}}`, []string{"deployer"}, 1},
		{"contains primitive", `{"query":{"metadata.tags":{"$contains":"Java"}}}`, []string{"orders"}, 1},
		{"contains relation", `{"query":{"relations":{"$contains":{"type":"ownedBy","targetRef":"group:default/pumps"}}},"orderBy":[{"field":"metadata.name"}]}`, []string{"deployer", "web"}, 2},
		{"contains relation type", `{"query":{"relations":{"$contains":{"type":"ownerOf"}}},"orderBy":[{"field":"metadata.name"}]}`, []string{"pumps", "rockets"}, 2},
		{"contains relation in", `{"query":{"relations":{"$contains":{"type":"ownedby","targetRef":{"$in":["group:default/pumps","group:default/nobody"]}}}},"orderBy":[{"field":"metadata.name"}]}`, []string{"deployer", "web"}, 2},
		{"empty all", `{"query":{"$all":[]}}`, []string{}, 0},
		{"legacy orderField", `{"query":{"kind":"group"},"orderField":["metadata.name,desc"]}`, []string{"rockets", "pumps"}, 2},
		{"full text", `{"fullTextFilter":{"term":"pay","fields":["metadata.tags"]}}`, []string{"orders"}, 1},
		{"null query", `{"query":null,"limit":1,"totalItems":"exclude"}`, nil, 0},
		{"number equality", `{"query":{"metadata.name":{"$in":[7,true]}}}`, []string{}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := f.postQuery(t, tc.body)
			if tc.want != nil && !reflect.DeepEqual(names(p.Items), tc.want) && !(len(p.Items) == 0 && len(tc.want) == 0) {
				t.Fatalf("got %v want %v", names(p.Items), tc.want)
			}
			if p.TotalItems != tc.total {
				t.Fatalf("total %d want %d", p.TotalItems, tc.total)
			}
		})
	}
	t.Run("cursor paging", func(t *testing.T) {
		first := f.postQuery(t, `{"limit":2,"query":{"kind":{"$in":["component","group"]}},"orderBy":[{"field":"metadata.name","order":"asc"}]}`)
		get := func(c string) queryPage {
			return f.postQuery(t, mustJSONBody(map[string]any{"cursor": c, "limit": 2}))
		}
		pages := walkQuery(t, f, first, get)
		want := [][]string{{"billing", "deployer"}, {"orders", "pumps"}, {"rockets", "web"}}
		if !reflect.DeepEqual(pages, want) {
			t.Fatalf("pages %v", pages)
		}
		// A GET cursor works in a POST and the other way round.
		g := f.getQuery(t, "cursor="+url.QueryEscape(first.PageInfo.NextCursor)+"&limit=2")
		if !reflect.DeepEqual(names(g.Items), want[1]) {
			t.Fatalf("get with post cursor: %v", names(g.Items))
		}
	})
	for _, tc := range []struct{ name, body, want string }{
		{"primitive root", `{"query":7}`, "Invalid query"},
		{"string root", `{"query":"kind"}`, "Invalid query"},
		{"array root", `{"query":[]}`, "Invalid query"},
		{"all with sibling", `{"query":{"$all":[],"kind":"x"}}`, "cannot be combined"},
		{"not with sibling", `{"query":{"$not":{"kind":"x"},"$any":[]}}`, "cannot be combined"},
		{"unknown op", `{"query":{"$nor":[]}}`, "unknown operator"},
		{"unknown value op", `{"query":{"kind":{"$regex":"x"}}}`, "unsupported operator"},
		{"bad exists", `{"query":{"kind":{"$exists":"yes"}}}`, "$exists"},
		{"bad in", `{"query":{"kind":{"$in":[{}]}}}`, "$in"},
		{"contains object", `{"query":{"spec":{"$contains":{"type":"x"}}}}`, "$contains"},
		{"relation without type", `{"query":{"relations":{"$contains":{"targetRef":"x"}}}}`, "requires a \"type\""},
		{"null value", `{"query":{"kind":null}}`, "null"},
		{"bad json", `{"query":`, "malformed request body"},
		{"bad limit", `{"limit":"ten"}`, "limit"},
		{"huge offset", `{"offset":2000000000}`, "at most"},
		{"bad orderBy", `{"orderBy":[{"field":"x","order":"up"}]}`, "asc or desc"},
		{"empty cursor", `{"cursor":""}`, "cursor cannot be empty"},
		{"bad cursor", `{"cursor":"e30="}`, "malformed cursor"},
		{"fields array", `{"fields":["spec.a[0]"]}`, "array"},
	} {
		t.Run("400 "+tc.name, func(t *testing.T) {
			checkError(t, f.do("POST", "/api/catalog/entities/by-query", tc.body), 400, InputErrorName, tc.want)
		})
	}
	t.Run("415-ish content type", func(t *testing.T) {
		req := `{"query":{}}`
		rec := f.do("POST", "/api/catalog/entities/by-query", req, "Content-Type: text/plain")
		checkError(t, rec, 400, InputErrorName, "Content-Type")
	})
}

func TestBodyLimit(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.MaxBody = 64 })
	body, _ := json.Marshal(map[string]any{"query": map[string]any{"metadata.name": strings.Repeat("x", 200)}})
	checkError(t, f.do("POST", "/api/catalog/entities/by-query", string(body)), http.StatusRequestEntityTooLarge, PayloadTooLargeErrorName, "64 bytes")
	if rec := f.do("POST", "/api/catalog/entities/by-query", `{"limit":1}`); rec.Code != 200 {
		t.Fatalf("small body: %d %s", rec.Code, rec.Body.String())
	}
}
