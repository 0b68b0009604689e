package catalog

import (
	"bytes"
	"encoding/json"
	"testing"
)

// benchEntityJSON is a generated component as the engine stores it.
var benchEntityJSON = []byte(`{"apiVersion":"backstage.io/v1alpha1","kind":"Component","metadata":{"annotations":{"backstage.io/managed-by-location":"file:/tmp/gen/entities-0001.yaml","backstage.io/managed-by-origin-location":"file:/tmp/gen/catalog-info.yaml","github.com/project-slug":"acme/svc-00012"},"description":"Service 12 handles things for the team","labels":{"bench/lifecycle":"production"},"name":"svc-00012","namespace":"default","tags":["go","rest","postgres"]},"spec":{"consumesApis":["api-00001","api-00002"],"dependsOn":["component:svc-00007","resource:db-00003"],"lifecycle":"production","owner":"group:team-7","providesApis":["api-00012"],"system":"system-0012","type":"service"}}`)

// BenchmarkEntityJSON: decoding and encoding one entity, as every
// processing run does, against encoding/json through maps (the /maps
// cases, what Entity did before decode.go and encode.go).
func BenchmarkEntityJSON(b *testing.B) {
	b.Run("decode", func(b *testing.B) {
		for b.Loop() {
			var e Entity
			if err := e.UnmarshalJSON(benchEntityJSON); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode/maps", func(b *testing.B) {
		for b.Loop() {
			var m map[string]any
			if err := json.NewDecoder(bytes.NewReader(benchEntityJSON)).Decode(&m); err != nil {
				b.Fatal(err)
			}
			if _, err := FromMap(m); err != nil {
				b.Fatal(err)
			}
		}
	})
	var e Entity
	if err := e.UnmarshalJSON(benchEntityJSON); err != nil {
		b.Fatal(err)
	}
	b.Run("encode", func(b *testing.B) {
		for b.Loop() {
			if _, err := e.MarshalJSON(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encode/maps", func(b *testing.B) {
		for b.Loop() {
			if _, err := json.Marshal(e.ToMap()); err != nil {
				b.Fatal(err)
			}
		}
	})
}
