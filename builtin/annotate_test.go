package builtin

import (
	"context"
	"reflect"
	"testing"

	"github.com/catalog-pipeline/pipeline/catalog"
	"github.com/catalog-pipeline/pipeline/engine"
)

func TestAnnotateLocation(t *testing.T) {
	st, err := AnnotateLocationSpec.New(engine.Build{Pipeline: "test", Stage: "annotate"})
	if err != nil {
		t.Fatal(err)
	}
	if st.Name() != "annotate" {
		t.Fatalf("Name() = %q", st.Name())
	}
	pre := st.(engine.PreProcessor)

	const (
		ghBlob = "https://github.com/acme/shop/blob/main/services/cart/catalog-info.yaml"
		ghSHA  = "https://github.com/acme/shop/blob/0123456789abcdef0123456789abcdef01234567/catalog-info.yaml"
		glBlob = "https://gitlab.example.com/acme/shop/-/blob/main/catalog-info.yaml"
		plain  = "https://files.example.com/catalogs/all.yaml?ref=dev#top"
	)
	cases := []struct {
		name string
		loc  engine.Location
		own  map[string]string
		want map[string]string
	}{
		{
			name: "file",
			loc:  engine.Location{Type: "file", Target: "/srv/catalog/catalog-info.yaml"},
			want: map[string]string{
				catalog.AnnotationManagedByLocation:       "file:/srv/catalog/catalog-info.yaml",
				catalog.AnnotationManagedByOriginLocation: "file:/srv/catalog/catalog-info.yaml",
			},
		},
		{
			name: "github blob gets an edit link",
			loc:  engine.Location{Type: "url", Target: ghBlob},
			want: map[string]string{
				catalog.AnnotationManagedByLocation:       "url:" + ghBlob,
				catalog.AnnotationManagedByOriginLocation: "url:" + ghBlob,
				catalog.AnnotationViewURL:                 ghBlob,
				catalog.AnnotationEditURL:                 "https://github.com/acme/shop/edit/main/services/cart/catalog-info.yaml",
				catalog.AnnotationSourceLocation:          "url:https://github.com/acme/shop/blob/main/services/cart/",
			},
		},
		{
			name: "commit sha: no edit link",
			loc:  engine.Location{Type: "url", Target: ghSHA},
			want: map[string]string{
				catalog.AnnotationManagedByLocation:       "url:" + ghSHA,
				catalog.AnnotationManagedByOriginLocation: "url:" + ghSHA,
				catalog.AnnotationViewURL:                 ghSHA,
				catalog.AnnotationSourceLocation:          "url:https://github.com/acme/shop/blob/0123456789abcdef0123456789abcdef01234567/",
			},
		},
		{
			name: "gitlab blob",
			loc:  engine.Location{Type: "url", Target: glBlob},
			want: map[string]string{
				catalog.AnnotationManagedByLocation:       "url:" + glBlob,
				catalog.AnnotationManagedByOriginLocation: "url:" + glBlob,
				catalog.AnnotationViewURL:                 glBlob,
				catalog.AnnotationEditURL:                 "https://gitlab.example.com/acme/shop/-/edit/main/catalog-info.yaml",
				catalog.AnnotationSourceLocation:          "url:https://gitlab.example.com/acme/shop/-/blob/main/",
			},
		},
		{
			name: "other host: edit is the target, folder keeps the query",
			loc:  engine.Location{Type: "url", Target: plain},
			want: map[string]string{
				catalog.AnnotationManagedByLocation:       "url:" + plain,
				catalog.AnnotationManagedByOriginLocation: "url:" + plain,
				catalog.AnnotationViewURL:                 plain,
				catalog.AnnotationEditURL:                 plain,
				catalog.AnnotationSourceLocation:          "url:https://files.example.com/catalogs/?ref=dev",
			},
		},
		{
			name: "the entity's own values win, even empty ones",
			loc:  engine.Location{Type: "url", Target: ghBlob},
			own: map[string]string{
				catalog.AnnotationManagedByOriginLocation: "url:https://example.com/root.yaml",
				catalog.AnnotationEditURL:                 "https://example.com/edit",
				catalog.AnnotationSourceLocation:          "",
				"team":                                    "a",
			},
			want: map[string]string{
				catalog.AnnotationManagedByLocation:       "url:" + ghBlob,
				catalog.AnnotationManagedByOriginLocation: "url:https://example.com/root.yaml",
				catalog.AnnotationViewURL:                 ghBlob,
				catalog.AnnotationEditURL:                 "https://example.com/edit",
				catalog.AnnotationSourceLocation:          "",
				"team":                                    "a",
			},
		},
		{
			name: "no location: nothing added",
			own:  map[string]string{"team": "a"},
			want: map[string]string{"team": "a"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := &catalog.Entity{APIVersion: catalog.APIVersionV1alpha1, Kind: catalog.KindComponent, Metadata: catalog.Metadata{Name: "cart", Annotations: tc.own}}
			var c resultLog
			out, err := pre.PreProcessEntity(context.Background(), e, tc.loc, c.emit, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(out.Metadata.Annotations, tc.want) {
				t.Errorf("annotations =\n%v\nwant\n%v", out.Metadata.Annotations, tc.want)
			}
			if len(c.results) != 0 {
				t.Errorf("emitted %v", c.results)
			}
		})
	}
}

func TestEditURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://github.com/o/r/blob/main/a%20b.yaml":                              "https://github.com/o/r/edit/main/a%20b.yaml",
		"https://github.example.com/o/r/blob/v1/x/catalog.yaml":                    "https://github.example.com/o/r/edit/v1/x/catalog.yaml",
		"https://github.com/o/r/tree/main/":                                        "https://github.com/o/r/tree/main/",
		"https://example.com/o/r/blob/main/x.yaml":                                 "https://example.com/o/r/blob/main/x.yaml",
		"https://raw.githubusercontent.com/o/r/main/x.yaml":                        "https://raw.githubusercontent.com/o/r/main/x.yaml",
		"https://gitlab.com/g/sub/r/-/blob/main/x.yaml":                            "https://gitlab.com/g/sub/r/-/edit/main/x.yaml",
		"https://gitlab.com/g/r/-/blob/0123456789abcdef0123456789abcdef01234567/x": "",
	} {
		if got := editURL(in); got != want {
			t.Errorf("editURL(%q) = %q, want %q", in, got, want)
		}
	}
}
