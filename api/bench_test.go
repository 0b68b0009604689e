package api

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

// catalog10k generates a 10,000-entity catalog: 200 groups and 9,800
// components of four types, each owned by a group and tagged.
func catalog10k() map[string]string {
	var b strings.Builder
	types := []string{"service", "website", "library", "tool"}
	for i := range 200 {
		fmt.Fprintf(&b, "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata:\n  name: team-%d\nspec:\n  type: team\n  children: []\n---\n", i)
	}
	for i := range 9800 {
		fmt.Fprintf(&b, "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: comp-%05d\n  tags: [t%d, shared]\nspec:\n  type: %s\n  lifecycle: production\n  owner: team-%d\n---\n",
			i, i%50, types[i%len(types)], i%200)
	}
	return map[string]string{"catalog/all.yaml": b.String()}
}

// BenchmarkCatalog10k measures the routes the HTTP issue asks figures for,
// on a 10k catalog ingested through the engine, reporting p50 and p99 per
// request (go test -run '^$' -bench Catalog10k ./api/).
func BenchmarkCatalog10k(b *testing.B) {
	start := time.Now()
	f := buildFixture(b, catalog10k(), nil)
	b.Logf("ingested in %v", time.Since(start))
	routes := []struct{ name, method, target string }{
		{"by-name", "GET", "/api/catalog/entities/by-name/component/default/comp-04711"},
		{"by-query kind=component limit=100", "GET", "/api/catalog/entities/by-query?filter=kind=component&limit=100"},
		{"by-query ordered by name", "GET", "/api/catalog/entities/by-query?filter=kind=component&limit=100&orderField=metadata.name,asc"},
		{"facets spec.type", "GET", "/api/catalog/entity-facets?facet=spec.type"},
		{"facets spec.type kind=component", "GET", "/api/catalog/entity-facets?facet=spec.type&filter=kind=component"},
	}
	for _, rt := range routes {
		b.Run(rt.name, func(b *testing.B) {
			durs := make([]time.Duration, 0, b.N)
			for b.Loop() {
				t0 := time.Now()
				rec := httptest.NewRecorder()
				f.h.ServeHTTP(rec, httptest.NewRequest(rt.method, rt.target, nil))
				durs = append(durs, time.Since(t0))
				if rec.Code != http.StatusOK {
					b.Fatalf("%d %s", rec.Code, rec.Body.String())
				}
			}
			slices.Sort(durs)
			pct := func(p float64) float64 { return float64(durs[int(p*float64(len(durs)-1))].Microseconds()) }
			b.ReportMetric(pct(0.50), "p50-µs")
			b.ReportMetric(pct(0.99), "p99-µs")
		})
	}
}
