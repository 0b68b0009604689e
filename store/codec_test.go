package store

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/klauspost/compress/s2"

	"github.com/catalog-pipeline/pipeline/catalog"
)

// peekStitchInputs reads the same uid, processed entity and errors as
// decodeState, from records with every field set and with few.
func TestPeekStitchInputsMatchesDecodeState(t *testing.T) {
	full := &State{
		Ref: "component:default/a", UID: "u-1", Pipeline: "p", Root: "location:default/r", Failures: 2,
		Contender: "location:default/x", Unprocessed: []byte(`{"kind":"Component"}`), UnprocessedHash: "uh",
		Processed: []byte(`{"kind":"Component","metadata":{"name":"a"}}`), ResultHash: "rh",
		Errors:      []catalog.SerializedError{{Name: "InputError", Message: "bad", Stack: "s"}, {Name: "E2", Message: "m2"}},
		LocationKey: "url:x", Cache: []byte(`{"k":1}`), RefreshKeys: []string{"r1", "r2"},
		Relations: []Relation{{Source: "a", Type: "ownedBy", Target: "b"}}, Memo: []byte("memo"),
	}
	cases := map[string]*State{
		"every field":      full,
		"never processed":  {Ref: "component:default/b", UID: "u-2", Pipeline: "p", Unprocessed: []byte(`{}`), UnprocessedHash: "h"},
		"processed, clean": {Ref: "component:default/c", UID: "u-3", Processed: []byte(`{"metadata":{}}`)},
	}
	for name, st := range cases {
		t.Run(name, func(t *testing.T) {
			v := encodeState(st)
			want, err := decodeState(st.Ref, v)
			if err != nil {
				t.Fatal(err)
			}
			got, err := peekStitchInputs(st.Ref, v, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got.uid != want.UID || string(got.processed) != string(want.Processed) || (got.processed == nil) != (want.Processed == nil) {
				t.Errorf("uid %q processed %q, want %q %q", got.uid, got.processed, want.UID, want.Processed)
			}
			if !reflect.DeepEqual(got.errors, want.Errors) {
				t.Errorf("errors %+v, want %+v", got.errors, want.Errors)
			}
		})
	}
	if _, err := peekStitchInputs("x", encodeStateFields(full)[:20], nil); err == nil {
		t.Error("a truncated record decodes")
	}
}

func TestStoredFormsAreCompressed(t *testing.T) {
	big := &State{Ref: "component:default/big", UID: "u", Pipeline: "p",
		Unprocessed: json.RawMessage(`{"kind":"Component","metadata":{"name":"big","description":"` + strings.Repeat("a long description ", 40) + `"}}`),
		Processed:   json.RawMessage(`{"kind":"Component","metadata":{"name":"big","namespace":"default"}}`)}
	small := &State{Ref: "component:default/small", UID: "u", Pipeline: "p", Unprocessed: json.RawMessage(`{}`)}
	// compressFrom is 0 under STORE_SEGMENTS=1: then both are.
	for _, tc := range []struct {
		st         *State
		compressed bool
	}{{big, true}, {small, len(encodeStateFields(small)) >= compressFrom}} {
		v := encodeState(tc.st)
		if got := v[0] == stateCodecDict; got != tc.compressed {
			t.Errorf("%s: compressed = %v (%d bytes, fields %d)", tc.st.Ref, got, len(v), len(encodeStateFields(tc.st)))
		}
		got, err := decodeState(tc.st.Ref, v)
		if err != nil || string(got.Unprocessed) != string(tc.st.Unprocessed) || string(got.Processed) != string(tc.st.Processed) {
			t.Errorf("%s: decoded %+v, %v", tc.st.Ref, got, err)
		}
	}

	etag := strings.Repeat("e", etagLen)
	for _, body := range []string{`{"a":1}`, `{"description":"` + strings.Repeat("abc", 300) + `"}`} {
		stored, _ := packFinal([]byte(etag+body), nil)
		if compressed := stored[etagLen] == finalCompressedDict; compressed != (len(body) >= compressFrom) || len(body) > 500 && len(stored) >= len(body) {
			t.Errorf("final of %d bytes stored in %d, compressed %v", len(body), len(stored), compressed)
		}
		if string(stored[:etagLen]) != etag {
			t.Errorf("etag %q", stored[:etagLen])
		}
		got, ok, err := appendFinalBody([]byte("prefix"), stored)
		if err != nil || !ok || string(got) != "prefix"+body {
			t.Errorf("body = %q, %v, %v", got, ok, err)
		}
	}
	if b, ok, err := appendFinalBody(nil, []byte(etag)); b != nil || ok || err != nil {
		t.Errorf("no body: %q, %v, %v", b, ok, err)
	}
	bad := append([]byte(etag), finalCompressed, 0xff, 0xff, 0xff)
	if _, err := finalBody(bad); !errors.Is(err, errCorrupt) {
		t.Errorf("corrupt final: %v", err)
	}
}

// The entity dictionary is part of the file format: records written with
// it cannot be read with another. A change to it must come with new
// markers (dict.go), not in place; this test fails on any change.
func TestEntityDictionaryNeverChanges(t *testing.T) {
	sum := sha256.Sum256(entityDict.Bytes())
	if got := hex.EncodeToString(sum[:]); got != entityDictSHA256 {
		t.Errorf("entityDict changed: sha256 %s, want %s", got, entityDictSHA256)
	}
	// And it pays: a generated component compresses to well under what
	// plain s2 makes of it.
	e := []byte(`{"apiVersion":"backstage.io/v1alpha1","kind":"Component","metadata":{"name":"checkout-7","namespace":"default","annotations":{"backstage.io/managed-by-location":"file:/srv/catalog/entities-0007.yaml","backstage.io/managed-by-origin-location":"file:/srv/catalog/catalog-info.yaml"},"description":"Checkout 7 service."},"spec":{"type":"service","lifecycle":"production","owner":"group:default/payments-3","system":"shop-2","dependsOn":["component:default/cart-4"],"providesApis":["api:default/checkout-7-api"]}}`)
	plain, dict := len(s2.Encode(nil, e)), len(entityDict.Encode(nil, e))
	if dict > plain*3/4 {
		t.Errorf("with the dictionary %d bytes, without %d", dict, plain)
	}
}

// entityDictSHA256 is the digest of entityDict as first released (schema 14).
const entityDictSHA256 = "d1d06b25b27b74d87d707bc3ab8a0eeae283bd6dd10b96c4502dc29c62555e42"

// Damaged compressed records are reported as corrupt, never a panic, in
// every stored form.
func TestDamagedCompressedRecords(t *testing.T) {
	st := &State{Ref: "component:default/a", UID: "u", Pipeline: "p",
		Unprocessed: json.RawMessage(`{"apiVersion":"backstage.io/v1alpha1","kind":"Component","metadata":{"name":"a","description":"` + strings.Repeat("words ", 60) + `"}}`)}
	fields := encodeStateFields(st)
	etag := strings.Repeat("e", etagLen)
	body := []byte(`{"apiVersion":"backstage.io/v1alpha1","kind":"Component","metadata":{"name":"a","description":"` + strings.Repeat("words ", 60) + `"}}`)
	records := map[string][]byte{
		"state, dictionary": append([]byte{stateCodecDict}, entityDict.Encode(nil, fields[1:])...),
		"state, plain s2":   append([]byte{stateCodecCompressed}, s2.Encode(nil, fields[1:])...),
	}
	finals := map[string][]byte{
		"final, dictionary": append(append([]byte(etag), finalCompressedDict), entityDict.Encode(nil, body)...),
		"final, plain s2":   append(append([]byte(etag), finalCompressed), s2.Encode(nil, body)...),
	}
	for name, v := range records {
		if got, err := decodeState(st.Ref, v); err != nil || string(got.Unprocessed) != string(st.Unprocessed) {
			t.Fatalf("%s: intact record: %v", name, err)
		}
		for _, cut := range []int{2, len(v) / 2, len(v) - 1} {
			if _, err := decodeState(st.Ref, v[:cut]); !errors.Is(err, errCorrupt) {
				t.Errorf("%s cut at %d: %v, want corrupt", name, cut, err)
			}
		}
	}
	for name, v := range finals {
		if got, ok, err := appendFinalBody(nil, v); err != nil || !ok || string(got) != string(body) {
			t.Fatalf("%s: intact entity: %v", name, err)
		}
		for _, cut := range []int{etagLen + 2, etagLen + (len(v)-etagLen)/2, len(v) - 1} {
			if _, _, err := appendFinalBody(nil, v[:cut]); !errors.Is(err, errCorrupt) {
				t.Errorf("%s cut at %d: %v, want corrupt", name, cut, err)
			}
		}
	}
}
