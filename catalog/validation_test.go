package catalog

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// validEntity returns an entity that passes every rule, so each case below
// breaks exactly one thing.
func validEntity() *Entity {
	return &Entity{
		APIVersion: APIVersionV1alpha1,
		Kind:       KindComponent,
		Metadata: Metadata{
			Name:        "orders-service",
			Namespace:   "default",
			Title:       "Orders",
			Labels:      map[string]string{"tier": "backend", "backstage.io/team": "rockets", "empty": ""},
			Annotations: map[string]string{AnnotationManagedByLocation: "url:https://example.com/catalog-info.yaml", "note": "any text at all!"},
			Tags:        []string{"go", "c++", "c#", "team:a", "web-api"},
			Links:       []Link{{URL: "https://example.com/docs", Title: "Docs", Icon: "docs"}},
		},
		Spec: map[string]any{"type": "service", "lifecycle": "production", "owner": "rockets"},
	}
}

// problemPaths returns the paths of a *ValidationError, failing the test if
// err is some other error.
func problemPaths(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v (%T) is not a *ValidationError", err, err)
	}
	paths := make([]string, len(ve.Problems))
	for i, p := range ve.Problems {
		paths[i] = p.Path
	}
	return paths
}

func TestValidateEnvelope(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Entity)
		want   []string
	}{
		{"valid", func(*Entity) {}, nil},
		{"no apiVersion", func(e *Entity) { e.APIVersion = "" }, []string{"apiVersion"}},
		{"no kind", func(e *Entity) { e.Kind = "" }, []string{"kind"}},
		{"no name", func(e *Entity) { e.Metadata.Name = "" }, []string{"metadata.name"}},
		{"nothing", func(e *Entity) { *e = Entity{} }, []string{"apiVersion", "kind", "metadata.name"}},
		// Formats are ValidateFields' business, not the envelope's.
		{"bad formats still pass", func(e *Entity) { e.Kind = "not a kind"; e.Metadata.Name = "Bad Name!" }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := validEntity()
			tt.mutate(e)
			got := problemPaths(t, ValidateEnvelope(e))
			if !slices.Equal(got, tt.want) {
				t.Errorf("problems at %q, want %q", got, tt.want)
			}
		})
	}
}

func TestValidateFields(t *testing.T) {
	s := strings.Repeat
	label63 := s("a", 63)
	subdomain253 := strings.Join([]string{s("a", 63), s("b", 63), s("c", 63), s("d", 61)}, ".") // 63*3+61+3 = 253
	if len(subdomain253) != 253 {
		t.Fatalf("subdomain253 has %d characters", len(subdomain253))
	}
	name := func(v string) func(*Entity) { return func(e *Entity) { e.Metadata.Name = v } }
	ns := func(v string) func(*Entity) { return func(e *Entity) { e.Metadata.Namespace = v } }
	kind := func(v string) func(*Entity) { return func(e *Entity) { e.Kind = v } }
	apiVersion := func(v string) func(*Entity) { return func(e *Entity) { e.APIVersion = v } }
	label := func(k, v string) func(*Entity) {
		return func(e *Entity) { e.Metadata.Labels = map[string]string{k: v} }
	}
	annotation := func(k, v string) func(*Entity) {
		return func(e *Entity) { e.Metadata.Annotations = map[string]string{k: v} }
	}
	tag := func(v string) func(*Entity) { return func(e *Entity) { e.Metadata.Tags = []string{"ok", v} } }
	link := func(l Link) func(*Entity) {
		return func(e *Entity) { e.Metadata.Links = []Link{{URL: "https://a.example"}, l} }
	}

	tests := []struct {
		name   string
		mutate func(*Entity)
		want   []string // nil: valid
	}{
		{"valid entity", func(*Entity) {}, nil},
		{"no optional metadata", func(e *Entity) { e.Metadata = Metadata{Name: "x"} }, nil},

		// metadata.name
		{"name 1 char", name("a"), nil},
		{"name 63 chars", name(label63), nil},
		{"name 64 chars", name(s("a", 64)), []string{"metadata.name"}},
		{"name mixed case and separators", name("Orders_v2.beta-1"), nil},
		{"name with consecutive separators", name("a..b--c"), nil},
		{"name starts with dash", name("-orders"), []string{"metadata.name"}},
		{"name ends with dot", name("orders."), []string{"metadata.name"}},
		{"name with space and bang", name("Bad Name!"), []string{"metadata.name"}},
		{"name with slash", name("a/b"), []string{"metadata.name"}},
		{"name with non-ascii letter", name("ördrs"), []string{"metadata.name"}},
		{"name empty", name(""), []string{"metadata.name"}},

		// metadata.namespace
		{"namespace absent", ns(""), nil},
		{"namespace with dashes", ns("team-a--b"), nil},
		{"namespace digits", ns("2024"), nil},
		{"namespace 63 chars", ns(label63), nil},
		{"namespace 64 chars", ns(s("a", 64)), []string{"metadata.namespace"}},
		{"namespace uppercase", ns("Default"), []string{"metadata.namespace"}},
		{"namespace underscore", ns("my_ns"), []string{"metadata.namespace"}},
		{"namespace dot", ns("my.ns"), []string{"metadata.namespace"}},
		{"namespace leading dash", ns("-ns"), []string{"metadata.namespace"}},
		{"namespace trailing dash", ns("ns-"), []string{"metadata.namespace"}},

		// kind
		{"kind lowercase", kind("component"), nil},
		{"kind single letter", kind("X"), nil},
		{"kind with digits", kind("Widget2"), nil},
		{"kind 63 chars", kind(s("K", 63)), nil},
		{"kind 64 chars", kind(s("K", 64)), []string{"kind"}},
		{"kind starts with digit", kind("1Widget"), []string{"kind"}},
		{"kind with dash", kind("My-Kind"), []string{"kind"}},
		{"kind empty", kind(""), []string{"kind"}},

		// apiVersion
		{"apiVersion v1beta1", apiVersion(APIVersionV1beta1), nil},
		{"apiVersion without prefix", apiVersion("v1"), nil},
		{"apiVersion mixed case version", apiVersion("my-company.example.com/V2Beta"), nil},
		{"apiVersion prefix 253 chars", apiVersion(subdomain253 + "/v1"), nil},
		{"apiVersion prefix 254 chars", apiVersion(subdomain253 + "a/v1"), []string{"apiVersion"}},
		{"apiVersion prefix label 64 chars", apiVersion(s("a", 64) + ".io/v1"), []string{"apiVersion"}},
		{"apiVersion version 63 chars", apiVersion("example.com/" + s("v", 63)), nil},
		{"apiVersion version 64 chars", apiVersion("example.com/" + s("v", 64)), []string{"apiVersion"}},
		{"apiVersion two slashes", apiVersion("a/b/c"), []string{"apiVersion"}},
		{"apiVersion empty prefix", apiVersion("/v1"), []string{"apiVersion"}},
		{"apiVersion empty version", apiVersion("backstage.io/"), []string{"apiVersion"}},
		{"apiVersion uppercase prefix", apiVersion("Backstage.io/v1"), []string{"apiVersion"}},
		{"apiVersion empty prefix label", apiVersion("backstage..io/v1"), []string{"apiVersion"}},
		{"apiVersion dash in version", apiVersion("backstage.io/v1-alpha"), []string{"apiVersion"}},
		{"apiVersion empty", apiVersion(""), []string{"apiVersion"}},

		// labels
		{"label plain key", label("tier", "backend"), nil},
		{"label prefixed key", label("backstage.io/team", "rockets"), nil},
		{"label multi-label prefix", label("a.b-c.example.com/x_y.z", "v"), nil},
		{"label empty value", label("tier", ""), nil},
		{"label key name 63 chars", label("example.com/"+label63, "v"), nil},
		{"label key name 64 chars", label("example.com/"+s("a", 64), "v"), []string{`metadata.labels["example.com/` + s("a", 64) + `"]`}},
		{"label key with space", label("x y", "v"), []string{`metadata.labels["x y"]`}},
		{"label key uppercase prefix", label("Example.com/x", "v"), []string{`metadata.labels["Example.com/x"]`}},
		{"label key two slashes", label("a/b/c", "v"), []string{`metadata.labels["a/b/c"]`}},
		{"label key empty prefix", label("/x", "v"), []string{`metadata.labels["/x"]`}},
		{"label key empty name", label("example.com/", "v"), []string{`metadata.labels["example.com/"]`}},
		{"label key empty", label("", "v"), []string{`metadata.labels[""]`}},
		{"label value with space", label("tier", "back end"), []string{`metadata.labels["tier"]`}},
		{"label value 63 chars", label("tier", label63), nil},
		{"label value 64 chars", label("tier", s("a", 64)), []string{`metadata.labels["tier"]`}},
		{"label bad key and value", label("x y", "a b"), []string{`metadata.labels["x y"]`, `metadata.labels["x y"]`}},

		// annotations
		{"annotation prefixed key", annotation("github.com/project-slug", "org/repo"), nil},
		{"annotation value is free text", annotation("note", " spaces, Üñíçødé and / slashes "), nil},
		{"annotation empty value", annotation("note", ""), nil},
		{"annotation key with space", annotation("bad key", "v"), []string{`metadata.annotations["bad key"]`}},
		{"annotation key uppercase prefix", annotation("GitHub.com/slug", "v"), []string{`metadata.annotations["GitHub.com/slug"]`}},
		{"annotation key trailing dash", annotation("backstage.io/x-", "v"), []string{`metadata.annotations["backstage.io/x-"]`}},

		// tags
		{"tag 63 chars", tag(label63), nil},
		{"tag 64 chars", tag(s("a", 64)), []string{"metadata.tags[1]"}},
		{"tag with symbols", tag("c++:#1"), nil},
		{"tag dashed groups", tag("a-b-c"), nil},
		{"tag uppercase", tag("Java"), []string{"metadata.tags[1]"}},
		{"tag double dash", tag("a--b"), []string{"metadata.tags[1]"}},
		{"tag leading dash", tag("-a"), []string{"metadata.tags[1]"}},
		{"tag trailing dash", tag("a-"), []string{"metadata.tags[1]"}},
		{"tag underscore", tag("a_b"), []string{"metadata.tags[1]"}},
		{"tag dot", tag("v1.2"), []string{"metadata.tags[1]"}},
		{"tag empty", tag(""), []string{"metadata.tags[1]"}},

		// links
		{"link mailto", link(Link{URL: "mailto:team@example.com"}), nil},
		{"link with title and icon", link(Link{URL: "https://example.com/x?y=1#z", Title: "X", Icon: "dashboard", Type: "runbook"}), nil},
		{"link without scheme", link(Link{URL: "example.com/docs"}), []string{"metadata.links[1].url"}},
		{"link relative path", link(Link{URL: "/docs"}), []string{"metadata.links[1].url"}},
		{"link empty url", link(Link{URL: ""}), []string{"metadata.links[1].url"}},
		{"link unparseable url", link(Link{URL: "http://exa mple.com"}), []string{"metadata.links[1].url"}},
		{"link blank title", link(Link{URL: "https://a.example", Title: "  "}), []string{"metadata.links[1].title"}},
		{"link blank icon", link(Link{URL: "https://a.example", Icon: "\t"}), []string{"metadata.links[1].icon"}},

		// root
		{"foreign root fields", func(e *Entity) { e.Extra = map[string]any{"zeta": 1, "alpha": "x"} }, []string{"alpha", "zeta"}},

		// everything is collected, in field order
		{"many problems", func(e *Entity) {
			e.Extra = map[string]any{"extra": true}
			e.APIVersion = "a/b/c"
			e.Kind = "9"
			e.Metadata.Name = "-"
			e.Metadata.Namespace = "NS"
			e.Metadata.Labels = map[string]string{"b b": "ok", "a a": "ok", "ok": "no pe"}
			e.Metadata.Annotations = map[string]string{"y y": "", "x x": ""}
			e.Metadata.Tags = []string{"A", "b", "C"}
			e.Metadata.Links = []Link{{URL: "nope", Title: " "}}
		}, []string{
			"extra", "apiVersion", "kind", "metadata.name", "metadata.namespace",
			`metadata.labels["a a"]`, `metadata.labels["b b"]`, `metadata.labels["ok"]`,
			`metadata.annotations["x x"]`, `metadata.annotations["y y"]`,
			"metadata.tags[0]", "metadata.tags[2]",
			"metadata.links[0].url", "metadata.links[0].title",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := validEntity()
			tt.mutate(e)
			got := problemPaths(t, ValidateFields(e))
			if !slices.Equal(got, tt.want) {
				t.Errorf("problems at %q, want %q\nerror: %v", got, tt.want, ValidateFields(e))
			}
		})
	}
}

func TestValidateFieldsMessages(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Entity)
		want   string
	}{
		{"name", func(e *Entity) { e.Metadata.Name = "Bad Name!" },
			`metadata.name: "Bad Name!" is invalid: must be 1-63 characters of [A-Za-z0-9-_.], beginning and ending with a letter or digit`},
		{"namespace", func(e *Entity) { e.Metadata.Namespace = "Prod" },
			`metadata.namespace: "Prod" is invalid: must be 1-63 characters of [a-z0-9-], beginning and ending with a lowercase letter or digit`},
		{"label key", func(e *Entity) { e.Metadata.Labels = map[string]string{"x y": "v"} },
			`metadata.labels["x y"]: label key "x y" is invalid: must be [prefix/]name`},
		{"label value", func(e *Entity) { e.Metadata.Labels = map[string]string{"k": "v w"} },
			`metadata.labels["k"]: label value "v w" is invalid: must be empty or 1-63 characters`},
		{"annotation key", func(e *Entity) { e.Metadata.Annotations = map[string]string{"a b": ""} },
			`metadata.annotations["a b"]: annotation key "a b" is invalid`},
		{"tag", func(e *Entity) { e.Metadata.Tags = []string{"Go"} },
			`metadata.tags[0]: "Go" is invalid: must be 1-63 characters of [a-z0-9:+#] in groups joined by single dashes`},
		{"link", func(e *Entity) { e.Metadata.Links = []Link{{URL: "docs"}} },
			`metadata.links[0].url: "docs" is invalid: must be an absolute URL with a scheme`},
		{"root", func(e *Entity) { e.Extra = map[string]any{"specs": map[string]any{}} },
			`specs: is not an allowed root field; an entity has only apiVersion, kind, metadata, spec, relations and status`},
		{"required", func(e *Entity) { e.Kind = "" }, `kind: is required`},
		{"long value is cut", func(e *Entity) { e.Metadata.Name = strings.Repeat("ä", 200) },
			`metadata.name: "` + strings.Repeat("ä", 50) + `"... is invalid`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := validEntity()
			tt.mutate(e)
			err := ValidateFields(e)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error\n  %s\nwant prefix\n  %s", err, tt.want)
			}
		})
	}
}

func TestValidationError(t *testing.T) {
	e := validEntity()
	e.Metadata.Name = "Bad Name!"
	e.Metadata.Namespace = "NS"
	err := ValidateFields(e)
	msg := err.Error()
	if got := strings.Count(msg, "; "); got != 1 {
		t.Errorf("%q: want the two problems joined by one \"; \", found %d", msg, got)
	}
	if !strings.HasPrefix(msg, "metadata.name: ") || !strings.Contains(msg, "; metadata.namespace: ") {
		t.Errorf("unexpected message %q", msg)
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Path != "metadata.name" {
		t.Errorf("errors.As found %v, want the metadata.name problem", fe)
	}
	if got := (&ValidationError{}).Error(); got == "" {
		t.Error("empty ValidationError has an empty message")
	}
	// A valid entity must give an untyped nil, not a nil *ValidationError.
	if err := ValidateFields(validEntity()); err != nil {
		t.Errorf("valid entity: %v", err)
	}
	if err := ValidateEnvelope(validEntity()); err != nil {
		t.Errorf("valid envelope: %v", err)
	}
}

func TestValidateFieldsDoesNotAllocate(t *testing.T) {
	e := validEntity()
	e.Metadata.Links = nil // url.Parse allocates; everything else must not
	allocs := testing.AllocsPerRun(100, func() {
		if err := ValidateFields(e); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("ValidateFields allocates %.0f times per valid entity, want 0", allocs)
	}
}

func BenchmarkValidateFields(b *testing.B) {
	e := validEntity()
	b.ReportAllocs()
	for b.Loop() {
		if err := ValidateFields(e); err != nil {
			b.Fatal(err)
		}
	}
}
