package api

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/gorilla/mux"
	"go.yaml.in/yaml/v3"

	"github.com/catalog-pipeline/pipeline/catalog"
)

// openapiDoc is the part of the OpenAPI document the tests read.
type openapiDoc struct {
	OpenAPI string                    `json:"openapi"`
	Paths   map[string]map[string]any `json:"paths"`
}

func loadOpenAPI(t *testing.T) (openapiDoc, map[string]any) {
	t.Helper()
	b, err := openapiJSON()
	if err != nil {
		t.Fatal(err)
	}
	var doc openapiDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	return doc, raw
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// TestOpenAPICoversRoutes walks the router: every route and method it
// serves is in the document, and every operation of the document is
// served. HEAD, which every GET route answers, is implied by GET.
func TestOpenAPICoversRoutes(t *testing.T) {
	doc, _ := loadOpenAPI(t)
	if !strings.HasPrefix(doc.OpenAPI, "3.0.") {
		t.Fatalf("openapi %q, want 3.0.x", doc.OpenAPI)
	}
	router, ok := New(Options{Logger: quiet()}).(*mux.Router)
	if !ok {
		t.Fatal("New does not return a *mux.Router")
	}
	served := map[string]bool{}
	err := router.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tpl, err := route.GetPathTemplate()
		if err != nil {
			return err
		}
		tpl = strings.TrimSuffix(tpl, "{trailingSlash:/?}")
		methods, err := route.GetMethods()
		if err != nil {
			t.Errorf("route %s has no methods", tpl)
			return nil
		}
		for _, m := range methods {
			if m == http.MethodHead {
				if !slices.Contains(methods, http.MethodGet) {
					t.Errorf("route %s answers HEAD without GET", tpl)
				}
				continue
			}
			served[strings.ToLower(m)+" "+tpl] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths {
		for m := range item {
			if slices.Contains(httpMethods, m) {
				documented[m+" "+path] = true
			}
		}
	}
	for _, k := range routeKeys(served) {
		if !documented[k] {
			t.Errorf("route %s is not in api/openapi.yaml", k)
		}
	}
	for _, k := range routeKeys(documented) {
		if !served[k] {
			t.Errorf("api/openapi.yaml documents %s, which the router does not serve", k)
		}
	}
	if len(served) < 25 {
		t.Fatalf("only %d routes walked: %v", len(served), routeKeys(served))
	}
}

func routeKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestOpenAPIConsistent checks that every $ref resolves, that every path
// template variable is declared as a path parameter, and that every
// operation has an id (unique) and responses.
func TestOpenAPIConsistent(t *testing.T) {
	doc, raw := loadOpenAPI(t)
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			if ref, ok := x["$ref"].(string); ok {
				if resolve(raw, ref) == nil {
					t.Errorf("%s: $ref %s does not resolve", path, ref)
				}
			}
			for k, y := range x {
				walk(path+"/"+k, y)
			}
		case []any:
			for _, y := range x {
				walk(path+"[]", y)
			}
		}
	}
	walk("#", raw)

	vars := regexp.MustCompile(`\{([^}]+)\}`)
	ids := map[string]string{}
	for path, item := range doc.Paths {
		declared := map[string]bool{}
		addParams := func(list any) {
			ps, _ := list.([]any)
			for _, p := range ps {
				pm, _ := p.(map[string]any)
				if ref, ok := pm["$ref"].(string); ok {
					pm, _ = resolve(raw, ref).(map[string]any)
				}
				if pm["in"] == "path" {
					declared[pm["name"].(string)] = true
					if pm["required"] != true {
						t.Errorf("%s: path parameter %v is not required", path, pm["name"])
					}
				}
			}
		}
		addParams(item["parameters"])
		for m, op := range item {
			if !slices.Contains(httpMethods, m) {
				continue
			}
			o, _ := op.(map[string]any)
			opDeclared := map[string]bool{}
			for k := range declared {
				opDeclared[k] = true
			}
			saved := declared
			declared = opDeclared
			addParams(o["parameters"])
			for _, v := range vars.FindAllStringSubmatch(path, -1) {
				if !declared[v[1]] {
					t.Errorf("%s %s: path variable {%s} is not a declared parameter", m, path, v[1])
				}
			}
			declared = saved
			id, _ := o["operationId"].(string)
			if id == "" {
				t.Errorf("%s %s has no operationId", m, path)
			} else if prev, dup := ids[id]; dup {
				t.Errorf("operationId %s used by %s and %s %s", id, prev, m, path)
			}
			ids[id] = m + " " + path
			if r, _ := o["responses"].(map[string]any); len(r) == 0 {
				t.Errorf("%s %s has no responses", m, path)
			}
		}
	}
}

// resolve follows a local JSON pointer ("#/components/schemas/Error").
func resolve(doc map[string]any, ref string) any {
	if !strings.HasPrefix(ref, "#/") {
		return nil
	}
	var cur any = doc
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		part = strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		if cur, ok = m[part]; !ok {
			return nil
		}
	}
	return cur
}

func TestOpenAPIServed(t *testing.T) {
	h := New(Options{Logger: quiet()})
	y := serve(h, "GET", "/api/openapi.yaml", "")
	if y.Code != 200 || !strings.HasPrefix(y.Header().Get("Content-Type"), "application/yaml") || y.Body.String() != string(openapiYAML) {
		t.Fatalf("yaml: %d %s", y.Code, y.Header().Get("Content-Type"))
	}
	j := serve(h, "GET", "/api/openapi.json", "")
	if j.Code != 200 || !strings.HasPrefix(j.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("json: %d %s", j.Code, j.Header().Get("Content-Type"))
	}
	// The JSON is the YAML document.
	var fromYAML, fromJSON any
	if err := yaml.Unmarshal(y.Body.Bytes(), &fromYAML); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(j.Body.Bytes(), &fromJSON); err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(catalog.NormalizeValue(fromYAML))
	b, _ := json.Marshal(fromJSON)
	if string(a) != string(b) {
		t.Fatal("the JSON document differs from the YAML one")
	}
	// Response codes are strings, as OpenAPI requires.
	var doc struct {
		Paths map[string]struct {
			Get struct {
				Responses map[string]any `json:"responses"`
			} `json:"get"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(j.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if _, ok := doc.Paths["/api/catalog/entities"].Get.Responses["200"]; !ok {
		t.Fatal("GET /api/catalog/entities has no 200 response")
	}
	if rec := serve(h, "HEAD", "/api/openapi.json", ""); rec.Code != 200 {
		t.Fatalf("HEAD: %d", rec.Code)
	}
}

func TestYAMLToJSON(t *testing.T) {
	got, err := yamlToJSON([]byte("a:\n  200: x\n  true: [1, {b: c}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != `{"a":{"200":"x","true":[1,{"b":"c"}]}}` {
		t.Fatalf("got %s", got)
	}
	if _, err := yamlToJSON([]byte("a: [")); err == nil {
		t.Fatal("no error for bad YAML")
	}
}
