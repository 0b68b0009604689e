package store

import (
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// syntheticFinal is a served entity shaped like the ones the builtin kinds
// produce: annotations, tags, a link, spec fields and six or seven
// relations (about 35 search rows).
func syntheticFinal(i int) (ref string, body []byte) {
	kinds := []string{"Component", "Component", "Component", "API", "Resource", "System", "Group", "User"}
	types := []string{"service", "website", "library", "openapi", "database", "grpc"}
	kind := kinds[i%len(kinds)]
	// The engine claims new entities in ref order, so a batch of 500 is a
	// contiguous run of refs; successive batches land anywhere in the ref
	// space (discovery is file by file).
	name := fmt.Sprintf("entity-%07d", ((i/500)*7919%1009)*500+i%500)
	ref = fmt.Sprintf("%s:default/%s", lower(kind), name)
	body = fmt.Appendf(nil, `{"apiVersion":"backstage.io/v1alpha1","kind":%q,"metadata":{"etag":"0123456789abcdef0123456789abcdef01234567","uid":"%08x-1111-2222-3333-444455556666",`+
		`"annotations":{"backstage.io/managed-by-location":"file:/catalog/team-%d/catalog-info.yaml","backstage.io/managed-by-origin-location":"file:/catalog/all.yaml","github.com/project-slug":"acme/%s"},`+
		`"description":"Entity number %d of the synthetic catalog.","links":[{"url":"https://docs.example/%s","title":"Docs"}],"name":%q,"namespace":"default","tags":["go","team-%d"],"title":"Entity %d"},`+
		`"spec":{"type":%q,"lifecycle":"production","owner":"team-%d","system":"system-%d","dependsOn":["component:default/entity-%06d"]},`+
		`"relations":[{"type":"dependencyOf","targetRef":"component:default/entity-%06d"},{"type":"dependsOn","targetRef":"component:default/entity-%06d"},{"type":"ownedBy","targetRef":"group:default/team-%d"},{"type":"partOf","targetRef":"system:default/system-%d"},{"type":"providesApi","targetRef":"api:default/entity-%06d"},{"type":"consumesApi","targetRef":"api:default/entity-%06d"}]}`,
		kind, i, i%50, name, i, name, name, i%7, i, types[i%len(types)], i%50, i%20, i+1, i-1, i+1, i%50, i%20, i+3, i+5)
	return ref, body
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func BenchmarkFlatten(b *testing.B) {
	_, body := syntheticFinal(42)
	rows, err := flatten(body)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(rows)), "rows")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	keys := map[string]string{} // as the writer keeps them for a transaction
	for b.Loop() {
		if _, err := flattenWith(body, keys); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStitchIndex measures the search index maintenance alone, in
// transactions of 500 new entities (the engine's batch) on top of a file
// that already serves `base` entities: flattening, the search and facets
// writes, the final entity that the next change is diffed against, and
// the share of the commit they cause. One op is one batch; µs/entity is
// the figure to compare with the stitch budget.
func BenchmarkStitchIndex(b *testing.B) {
	for _, base := range []int{0, 20000} {
		b.Run(fmt.Sprintf("base=%d", base), func(b *testing.B) {
			const batch = 500
			d, err := Open(filepath.Join(b.TempDir(), "c.db"), Options{NoSync: true})
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			type doc struct {
				ref  string
				body []byte
			}
			gen := func(from int) []doc {
				docs := make([]doc, batch)
				for i := range docs {
					docs[i].ref, docs[i].body = syntheticFinal(from + i)
				}
				return docs
			}
			indexBatch := func(docs []doc) error {
				return d.bolt.Update(func(tx *bolt.Tx) error {
					w := &writer{buckets: open(tx)}
					for _, e := range docs {
						if err := w.index(e.ref, e.body); err != nil {
							return err
						}
					}
					return w.flushIndex()
				})
			}
			for i := 0; i < base; i += batch {
				if err := indexBatch(gen(i)); err != nil {
					b.Fatal(err)
				}
			}
			next := base
			var elapsed, cpu time.Duration
			for b.Loop() {
				docs := gen(next)
				start, cpu0 := time.Now(), cpuTime()
				if err := indexBatch(docs); err != nil {
					b.Fatal(err)
				}
				elapsed += time.Since(start)
				cpu += cpuTime() - cpu0
				next += batch
			}
			b.ReportMetric(float64(elapsed.Microseconds())/float64(b.N*batch), "µs/entity")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*batch), "cpu-µs/entity")
		})
	}
}

// cpuTime is the process's user+system CPU time: on a shared machine it
// moves less than wall time with the neighbours' load.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
