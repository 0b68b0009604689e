package api

import (
	"net/http"
	"strings"
	"testing"
)

func TestRefresh(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Token = "tok" })
	auth := "Authorization: Bearer tok"
	tests := []struct {
		name, body string
		status     int
		errName    string
		want       string
	}{
		{"ok", `{"entityRef":"component:default/orders"}`, 200, "", ""},
		{"ok mixed case", `{"entityRef":"Component:Default/Orders","authorizationToken":"ignored"}`, 200, "", ""},
		{"unknown", `{"entityRef":"component:default/nope"}`, 404, NotFoundErrorName, "does not exist"},
		{"missing", `{}`, 400, InputErrorName, "entityRef is required"},
		{"not a ref", `{"entityRef":"orders"}`, 400, InputErrorName, "invalid entityRef"},
		{"wrong type", `{"entityRef":5}`, 400, InputErrorName, "entityRef"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := f.do("POST", "/api/catalog/refresh", tc.body, auth)
			if tc.status == 200 {
				if rec.Code != 200 || rec.Body.Len() != 0 {
					t.Fatalf("%d %q", rec.Code, rec.Body.String())
				}
				return
			}
			checkError(t, rec, tc.status, tc.errName, tc.want)
		})
	}
	checkError(t, f.do("POST", "/api/catalog/refresh", `{"entityRef":"component:default/orders"}`), 401, AuthenticationErrorName, "bearer token")
}

func TestValidateEntity(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Token = "tok" }) // validate-entity needs no token
	good := `{"apiVersion":"backstage.io/v1alpha1","kind":"Component","metadata":{"name":"fresh"},"spec":{"type":"service","lifecycle":"production","owner":"rockets"}}`
	tests := []struct {
		name, body string
		status     int
		want       string // in the first error's message
	}{
		{"valid", `{"entity":` + good + `,"location":"url:https://example.com/catalog-info.yaml"}`, 200, ""},
		{"invalid name", `{"entity":{"apiVersion":"backstage.io/v1alpha1","kind":"Component","metadata":{"name":"bad name!"},"spec":{"type":"service","lifecycle":"production","owner":"x"}},"location":"url:https://example.com/x.yaml"}`, 400, "name"},
		{"missing spec field", `{"entity":{"apiVersion":"backstage.io/v1alpha1","kind":"Component","metadata":{"name":"ok"},"spec":{"type":"service"}},"location":"url:https://example.com/x.yaml"}`, 400, "lifecycle"},
		{"file location", `{"entity":` + good + `,"location":"file:/tmp/x.yaml"}`, 400, "only 'url:<target>' is supported"},
		{"bad location", `{"entity":` + good + `,"location":"nothing"}`, 400, "type:target"},
		{"no location", `{"entity":` + good + `}`, 400, "location is required"},
		{"no entity", `{"location":"url:https://example.com/x.yaml"}`, 400, "entity is required"},
		{"entity not an object", `{"entity":[],"location":"url:https://example.com/x.yaml"}`, 400, "must be an object"},
		{"no kind", `{"entity":{"apiVersion":"a/b","metadata":{"name":"x"}},"location":"url:https://example.com/x.yaml"}`, 400, "kind is required"},
		{"malformed", `{"entity":`, 400, "malformed request body"},
		{"no body", ``, 400, "missing request body"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := f.do("POST", "/api/catalog/validate-entity", tc.body)
			if rec.Code != tc.status {
				t.Fatalf("%d want %d: %s", rec.Code, tc.status, rec.Body.String())
			}
			if tc.status == 200 {
				if rec.Body.Len() != 0 {
					t.Fatalf("body %q", rec.Body.String())
				}
				return
			}
			var out struct {
				Errors []struct{ Name, Message string }
			}
			decode(t, rec, &out)
			if len(out.Errors) == 0 || out.Errors[0].Name == "" || !strings.Contains(strings.Join(func() []string {
				var m []string
				for _, e := range out.Errors {
					m = append(m, e.Message)
				}
				return m
			}(), " | "), tc.want) {
				t.Fatalf("errors %s, want %q", rec.Body.String(), tc.want)
			}
		})
	}
}

func TestAnalyzeLocation(t *testing.T) {
	f := newFixture(t, nil)
	checkError(t, f.do("POST", "/api/catalog/analyze-location", `{"location":{"type":"url","target":"https://example.com"}}`), http.StatusNotImplemented, NotImplementedErrorName, "dryRun=true")
}
