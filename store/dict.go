package store

import "github.com/klauspost/compress/s2"

// entityDict is the s2 dictionary that state records (stateCodecDict) and
// final entities (finalCompressedDict) are compressed with. An entity
// document is a kilobyte or two, too short for s2 to find much to repeat
// within it: most of what it spends is the first occurrence of keys and
// values every entity shares (apiVersion, metadata, annotations,
// relation types, kinds, ref prefixes). With those in a dictionary, a
// generated 100k catalog's final entities took 499 bytes each instead of
// 772, its state records 600 instead of 820, at ~0.8 µs more per encode
// and the same decode speed (BENCHMARKS.md, session 16).
//
// The dictionary is part of the file format: what was written with it is
// read with it, so it must never change. A better one gets markers of its
// own, next to these.
var entityDict = func() *s2.Dict {
	d := s2.MakeDictManual([]byte(entityVocabulary), 0)
	if d == nil {
		panic("store: invalid entity dictionary")
	}
	return d
}()

// entityVocabulary is what Backstage entities have in common: the fields
// of the well-known kinds with their usual values, the annotations the
// catalog and its processors set, every relation type with the kind of
// its targets, and the status of a failed processing. It starts with
// what entities start with: s2 begins its first match there.
const entityVocabulary = `{"apiVersion":"backstage.io/v1alpha1","kind":"Component","metadata":{"name":"","namespace":"default","etag":"","uid":"",` +
	`"annotations":{"backstage.io/managed-by-location":"file:","backstage.io/managed-by-origin-location":"file:","backstage.io/source-location":"url:https://",` +
	`"backstage.io/view-url":"https://","backstage.io/edit-url":"https://","backstage.io/techdocs-ref":"dir:.","backstage.io/orphan":"true",` +
	`"github.com/project-slug":"","backstage.io/kubernetes-id":""},"labels":{},"tags":[],"links":[{"url":"https://","title":"","icon":""}],"title":"","description":""},` +
	`"spec":{"type":"service","lifecycle":"production","owner":"group:default/","system":"","subcomponentOf":"","dependsOn":["component:default/","resource:default/"],` +
	`"dependencyOf":[],"providesApis":["api:default/"],"consumesApis":["api:default/"],"definition":"openapi: 3.0.0\ninfo:\n  title: \n  version: 1.0.0\npaths:\n",` +
	`"domain":"","profile":{"displayName":"","email":"","picture":""},"memberOf":["group:default/"],"children":[],"parent":"","members":[],"targets":[],"target":""},` +
	`"relations":[{"type":"ownedBy","targetRef":"group:default/"},{"type":"ownerOf","targetRef":"component:default/"},{"type":"partOf","targetRef":"system:default/"},` +
	`{"type":"hasPart","targetRef":"component:default/"},{"type":"dependsOn","targetRef":"component:default/"},{"type":"dependencyOf","targetRef":"component:default/"},` +
	`{"type":"providesApi","targetRef":"api:default/"},{"type":"apiProvidedBy","targetRef":"component:default/"},{"type":"consumesApi","targetRef":"api:default/"},` +
	`{"type":"apiConsumedBy","targetRef":"component:default/"},{"type":"memberOf","targetRef":"group:default/"},{"type":"hasMember","targetRef":"user:default/"},` +
	`{"type":"parentOf","targetRef":"group:default/"},{"type":"childOf","targetRef":"group:default/"}],` +
	`"status":{"items":[{"type":"backstage.io/catalog-processing","level":"error","message":"","error":{"name":"","message":""}}]}}` +
	`"kind":"API","kind":"System","kind":"Domain","kind":"Group","kind":"User","kind":"Resource","kind":"Location","kind":"Template",` +
	`"type":"website","type":"library","type":"team","type":"openapi","type":"grpc","type":"database","lifecycle":"experimental","lifecycle":"deprecated"`
