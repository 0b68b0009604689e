package store

import (
	"reflect"
	"testing"

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
			got, err := peekStitchInputs(st.Ref, v)
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
	if _, err := peekStitchInputs("x", encodeState(full)[:20]); err == nil {
		t.Error("a truncated record decodes")
	}
}
