package api

import (
	"encoding/base64"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/catalog-pipeline/pipeline/store"
)

// The fuzz targets check that the parsers never panic, that every failure
// is a 400 InputError, and that what they accept is well formed. Seeds are
// in testdata/fuzz/<target>/ (run `go test -fuzz=FuzzParseFilter ./api/`
// to explore further; new failures are written there).

// checkExpr walks an expression: keys are lowercased, no nil inside
// All/Any/Not.
func checkExpr(t *testing.T, e store.Expr, depth int) {
	if depth > 10*maxPredicateDepth {
		t.Fatalf("expression deeper than its input allows")
	}
	switch x := e.(type) {
	case nil:
	case store.All:
		for _, p := range x {
			if p == nil {
				t.Fatal("nil inside All")
			}
			checkExpr(t, p, depth+1)
		}
	case store.Any:
		for _, p := range x {
			if p == nil {
				t.Fatal("nil inside Any")
			}
			checkExpr(t, p, depth+1)
		}
	case store.Not:
		if x.Expr == nil {
			t.Fatal("nil inside Not")
		}
		checkExpr(t, x.Expr, depth+1)
	case store.Eq:
		checkKey(t, x.Key)
	case store.Exists:
		checkKey(t, x.Key)
	case store.In:
		checkKey(t, x.Key)
		if len(x.Values) < 2 {
			t.Fatalf("In with %d values", len(x.Values))
		}
	case store.HasPrefix:
		checkKey(t, x.Key)
	default:
		t.Fatalf("unknown expression %T", e)
	}
}

func checkKey(t *testing.T, k string) {
	if k == "" {
		t.Fatal("empty key")
	}
	if utf8.ValidString(k) && k != strings.ToLower(k) {
		t.Fatalf("key %q is not lowercased", k)
	}
}

func check400(t *testing.T, err error) {
	if ae := asAPIError(err); ae.Status != 400 || ae.Name != InputErrorName {
		t.Fatalf("error %v is %d %s, want 400 InputError", err, ae.Status, ae.Name)
	}
}

// FuzzParseFilter fuzzes the query-string filter grammar; the input is
// split on newlines into repeated `filter` values.
func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{"kind=component", "kind=component,spec.type=service\nmetadata.name", "=x", " , ", "a=b=c,a,a=", "relations.ownedBy=group:default/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := ParseFilter(strings.Split(s, "\n"))
		if err != nil {
			check400(t, err)
			return
		}
		checkExpr(t, e, 0)
	})
}

// FuzzParsePredicate fuzzes the POST predicate parser.
func FuzzParsePredicate(f *testing.F) {
	for _, s := range []string{`{}`, `{"kind":"component"}`, `{"$all":[{"a":1},{"$not":{"b":{"$exists":false}}}]}`,
		`{"$any":[]}`, `{"a":{"$in":["x",2,true]}}`, `{"relations":{"$contains":{"type":"ownedBy","targetRef":{"$in":["a"]}}}}`,
		`7`, `[]`, `{"$all":[],"a":1}`, `{"a":{"$hasPrefix":"x"}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParsePredicate(b)
		if err != nil {
			check400(t, err)
			return
		}
		checkExpr(t, e, 0)
	})
}

// FuzzDecodeCursor fuzzes the by-query cursor decoder, with raw strings and
// with base64 of arbitrary bytes.
func FuzzDecodeCursor(f *testing.F) {
	total := 3
	f.Add(EncodeCursor(&Cursor{Filter: []string{"kind=a"}, OrderFieldValues: []string{"a:b/c"}}), false)
	f.Add(EncodeCursor(&Cursor{Query: []byte(`{"a":{"$in":["b","c"]}}`), OrderFields: []OrderField{{"metadata.name", "desc"}},
		OrderFieldValues: []string{"x", "a:b/c"}, IsPrevious: true, TotalItems: &total}), false)
	f.Add(`{"orderFieldValues":["a"],"query":{"$not":{}}}`, true)
	f.Add(`{"orderFields":[{"field":"a","order":"asc"}],"orderFieldValues":["1"]}`, true)
	f.Add("%%%", false)
	f.Fuzz(func(t *testing.T, s string, encode bool) {
		if encode {
			s = base64.StdEncoding.EncodeToString([]byte(s))
		}
		c, e, err := DecodeCursor(s)
		if err != nil {
			check400(t, err)
			return
		}
		checkExpr(t, e, 0)
		_ = c.position()
		if again, _, err := DecodeCursor(EncodeCursor(c)); err != nil {
			t.Fatalf("a decoded cursor does not re-encode: %v (%+v)", err, again)
		}
		// The other decoders must not panic on the same input either.
		_, _, _ = decodeAfter(s)
		_, _, _ = decodeLocationCursor(s)
	})
}

// FuzzProject fuzzes the fields projection over arbitrary JSON.
func FuzzProject(f *testing.F) {
	f.Add([]byte(`{"metadata":{"name":"a","tags":["x"]}}`), "metadata.name,metadata.tags.0,kind")
	f.Add([]byte(`[1,2]`), "0")
	f.Fuzz(func(t *testing.T, body []byte, fields string) {
		fs, err := ParseFields([]string{fields})
		if err != nil {
			check400(t, err)
			return
		}
		_, _ = Project(body, fs)
	})
}
