package api

import (
	"encoding/base64"
	"reflect"
	"strings"
	"testing"

	"github.com/catalog-pipeline/pipeline/store"
)

func TestParseFilter(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   store.Expr
		err    string
	}{
		{name: "none", values: nil, want: nil},
		{name: "empty sets", values: []string{"", " , ,"}, want: nil},
		{name: "exists", values: []string{"metadata.tags"}, want: store.Exists{Key: "metadata.tags"}},
		{name: "eq lowercased trimmed", values: []string{" Kind = Component "}, want: store.Eq{Key: "kind", Value: "component"}},
		{name: "first equals splits", values: []string{"metadata.annotations.a=b=c"}, want: store.Eq{Key: "metadata.annotations.a", Value: "b=c"}},
		{name: "empty value", values: []string{"spec.owner="}, want: store.Eq{Key: "spec.owner", Value: ""}},
		{name: "and", values: []string{"kind=component,spec.type=service"}, want: store.All{
			store.Eq{Key: "kind", Value: "component"}, store.Eq{Key: "spec.type", Value: "service"}}},
		{name: "same key or", values: []string{"kind=component,kind=API"}, want: store.In{Key: "kind", Values: []string{"component", "api"}}},
		{name: "exists with value", values: []string{"kind,kind=group"}, want: store.Eq{Key: "kind", Value: "group"}},
		{name: "sets or", values: []string{"kind=group", "metadata.name=x"}, want: store.Any{
			store.Eq{Key: "kind", Value: "group"}, store.Eq{Key: "metadata.name", Value: "x"}}},
		{name: "relations", values: []string{"relations.ownedBy=Group:default/Rockets"}, want: store.Eq{Key: "relations.ownedby", Value: "group:default/rockets"}},
		{name: "empty key", values: []string{"=x"}, err: "not a valid statement"},
		{name: "empty key later", values: []string{"kind", " = "}, err: "not a valid statement"},
		{name: "too many", values: []string{strings.Repeat("a,", maxFilterConditions+1)}, err: "more than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseFilter(tc.values)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				if asAPIError(err).Status != 400 {
					t.Fatalf("status %d", asAPIError(err).Status)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %#v, %v; want %#v", got, err, tc.want)
			}
		})
	}
}

func TestParsePredicate(t *testing.T) {
	eq := func(k, v string) store.Expr { return store.Eq{Key: k, Value: v} }
	tests := []struct {
		name string
		in   string
		want store.Expr
		err  string
	}{
		{name: "empty object", in: `{}`, want: nil},
		{name: "field", in: `{"Kind":"Component"}`, want: eq("kind", "component")},
		{name: "fields and", in: `{"kind":"a","spec.type":"b"}`, want: store.All{eq("kind", "a"), eq("spec.type", "b")}},
		{name: "number", in: `{"spec.replicas":3.0}`, want: eq("spec.replicas", "3")},
		{name: "big number", in: `{"a":1e21}`, want: eq("a", "1e+21")},
		{name: "small number", in: `{"a":1.5e-7}`, want: eq("a", "1.5e-7")},
		{name: "bool", in: `{"a":true}`, want: eq("a", "true")},
		{name: "exists", in: `{"a":{"$exists":true}}`, want: store.Exists{Key: "a"}},
		{name: "not exists", in: `{"a":{"$exists":false}}`, want: store.Not{Expr: store.Exists{Key: "a"}}},
		{name: "in", in: `{"a":{"$in":["X",2]}}`, want: store.In{Key: "a", Values: []string{"x", "2"}}},
		{name: "in one", in: `{"a":{"$in":["X"]}}`, want: eq("a", "x")},
		{name: "in empty", in: `{"a":{"$in":[]}}`, want: never},
		{name: "in empty folds", in: `{"$any":[{"a":{"$in":[]}},{"b":"c"}]}`, want: eq("b", "c")},
		{name: "prefix", in: `{"a":{"$hasPrefix":"AB"}}`, want: store.HasPrefix{Key: "a", Prefix: "ab"}},
		{name: "contains", in: `{"metadata.tags":{"$contains":"Java"}}`, want: eq("metadata.tags", "java")},
		{name: "contains relation", in: `{"relations":{"$contains":{"type":"ownedBy","targetRef":"Group:default/X"}}}`, want: eq("relations.ownedby", "group:default/x")},
		{name: "contains relation any", in: `{"relations":{"$contains":{"type":"ownedBy"}}}`, want: store.Exists{Key: "relations.ownedby"}},
		{name: "contains relation in", in: `{"relations":{"$contains":{"type":"t","targetRef":{"$in":["a","b"]}}}}`, want: store.In{Key: "relations.t", Values: []string{"a", "b"}}},
		{name: "all", in: `{"$all":[{"a":"b"},{"c":"d"}]}`, want: store.All{eq("a", "b"), eq("c", "d")}},
		{name: "any", in: `{"$any":[{"a":"b"},{"c":"d"}]}`, want: store.Any{eq("a", "b"), eq("c", "d")}},
		{name: "not", in: `{"$not":{"a":"b"}}`, want: store.Not{Expr: eq("a", "b")}},
		{name: "double not", in: `{"$not":{"$not":{"a":"b"}}}`, want: eq("a", "b")},
		{name: "all empty", in: `{"$all":[]}`, want: never},
		{name: "any empty", in: `{"$any":[]}`, want: never},
		{name: "not empty all", in: `{"$not":{"$all":[]}}`, want: nil},
		{name: "all of everything", in: `{"$all":[{}]}`, want: nil},
		{name: "primitive root", in: `7`, err: "Invalid query: top-level primitive"},
		{name: "string root", in: `"kind"`, err: "Invalid query: top-level primitive"},
		{name: "null root", in: `null`, err: "Invalid query"},
		{name: "array root", in: `[]`, err: "Invalid query"},
		{name: "primitive in all", in: `{"$all":[7]}`, err: "primitive"},
		{name: "all not array", in: `{"$all":{}}`, err: "must be an array"},
		{name: "sibling", in: `{"$any":[],"a":"b"}`, err: "cannot be combined"},
		{name: "unknown op", in: `{"$or":[]}`, err: "unknown operator"},
		{name: "unknown value op", in: `{"a":{"$gt":1}}`, err: "unsupported operator"},
		{name: "two value ops", in: `{"a":{"$exists":true,"$in":[]}}`, err: "expected one of"},
		{name: "array value", in: `{"a":[1]}`, err: "an array"},
		{name: "null value", in: `{"a":null}`, err: "null"},
		{name: "prefix not string", in: `{"a":{"$hasPrefix":1}}`, err: "$hasPrefix"},
		{name: "contains not under relations", in: `{"a":{"$contains":{"type":"x"}}}`, err: "$contains"},
		{name: "relation extra key", in: `{"relations":{"$contains":{"type":"x","other":1}}}`, err: "requires a \"type\""},
		{name: "relation bad ref", in: `{"relations":{"$contains":{"type":"x","targetRef":1}}}`, err: "targetRef"},
		{name: "empty path", in: `{"":"x"}`, err: "empty"},
		{name: "trailing data", in: `{} {}`, err: "more than one"},
		{name: "bad json", in: `{`, err: "not valid JSON"},
		{name: "too deep", in: strings.Repeat(`{"$not":`, maxPredicateDepth+2) + `{}` + strings.Repeat(`}`, maxPredicateDepth+2), err: "nested"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePredicate([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				if asAPIError(err).Status != 400 {
					t.Fatalf("status %d", asAPIError(err).Status)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %#v, %v; want %#v", got, err, tc.want)
			}
		})
	}
}

func TestProject(t *testing.T) {
	body := `{"kind":"Component","metadata":{"name":"a","annotations":{"backstage.io/x":"1","y":"2"},"tags":["t1","t2"]},"spec":{"n":12345678901234567890}}`
	tests := []struct {
		fields []string
		want   string
	}{
		{nil, body},
		{[]string{"kind"}, `{"kind":"Component"}`},
		{[]string{"metadata.name", "kind"}, `{"kind":"Component","metadata":{"name":"a"}}`},
		{[]string{"metadata.annotations.backstage.io/x"}, `{"metadata":{"annotations":{"backstage.io/x":"1"}}}`},
		{[]string{"metadata.tags.1"}, `{"metadata":{"tags":[null,"t2"]}}`},
		{[]string{"metadata.tags"}, `{"metadata":{"tags":["t1","t2"]}}`},
		{[]string{"spec.n"}, `{"spec":{"n":12345678901234567890}}`},
		{[]string{"nothing", "kind.x", "metadata.tags.9"}, `{}`},
	}
	for _, tc := range tests {
		got, err := Project([]byte(body), tc.fields)
		if err != nil || string(got) != tc.want {
			t.Errorf("Project(%v) = %s, %v; want %s", tc.fields, got, err, tc.want)
		}
	}
	if _, err := ParseFields([]string{"a,b[0]"}); err == nil {
		t.Error("array syntax accepted")
	}
	if got, _ := ParseFields([]string{" a , ,b", "a"}); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("ParseFields = %v", got)
	}
}

func TestCursorRoundTrip(t *testing.T) {
	total := 12
	c := &Cursor{Filter: []string{"kind=component"}, OrderFields: []OrderField{{"metadata.name", "desc"}},
		OrderFieldValues: []string{"b", "component:default/b"}, FirstSortFieldValues: []string{"z", "component:default/z"},
		FullTextFilter: &FullTextFilter{Term: "x"}, IsPrevious: true, TotalItems: &total}
	got, filter, err := DecodeCursor(EncodeCursor(c))
	if err != nil || !reflect.DeepEqual(got, c) || !reflect.DeepEqual(filter, store.Eq{Key: "kind", Value: "component"}) {
		t.Fatalf("round trip: %+v %v %v", got, filter, err)
	}
	if *got.position() != (store.Position{Value: "b", Ref: "component:default/b"}) {
		t.Fatalf("position %+v", got.position())
	}
	q := &Cursor{Query: []byte(`{"kind":"api"}`), OrderFieldValues: []string{"api:default/x"}}
	if _, filter, err := DecodeCursor(EncodeCursor(q)); err != nil || !reflect.DeepEqual(filter, store.Eq{Key: "kind", Value: "api"}) {
		t.Fatalf("query cursor: %v %v", filter, err)
	}
	enc := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, bad := range []string{
		"", "%%%", enc("null"), enc("[]"), enc(`{"orderFieldValues":[]}`),
		enc(`{"orderFields":[{"field":"a","order":"up"}],"orderFieldValues":["a","b"]}`),
		enc(`{"orderFields":[{"field":"","order":"asc"}],"orderFieldValues":["a","b"]}`),
		enc(`{"orderFieldValues":["a"],"totalItems":-1}`),
		enc(`{"orderFieldValues":["a"],"filter":["=x"]}`),
		enc(`{"orderFieldValues":["a"],"query":7}`),
		enc(`{"orderFieldValues":["a"],"query":{"a":1},"filter":["a"]}`),
		enc(`{"orderFieldValues":["a"],"firstSortFieldValues":["a","b"]}`),
	} {
		if _, _, err := DecodeCursor(bad); err == nil || asAPIError(err).Status != 400 {
			t.Errorf("DecodeCursor(%q) = %v", bad, err)
		}
	}
	if l, o, err := decodeAfter(encodeAfter(5, 10)); err != nil || *l != 5 || *o != 10 {
		t.Fatalf("after round trip %v %v %v", l, o, err)
	}
	for _, bad := range []string{"%%", enc(`{"limit":0}`), enc(`{"offset":-1}`), enc(`{"limit":1.5}`), enc(`[]`)} {
		if _, _, err := decodeAfter(bad); err == nil {
			t.Errorf("decodeAfter(%q) accepted", bad)
		}
	}
}

func TestEvalRow(t *testing.T) {
	row := map[string]string{"type": "file", "target": "/a/b"}
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{`{"type":"FILE"}`, true},
		{`{"type":"url"}`, false},
		{`{"target":{"$hasPrefix":"/A"}}`, true},
		{`{"id":{"$exists":true}}`, false},
		{`{"$not":{"type":{"$in":["url","github"]}}}`, true},
		{`{"$any":[{"type":"url"},{"target":"/a/b"}]}`, true},
	} {
		e, err := ParsePredicate([]byte(tc.in))
		if err != nil {
			t.Fatal(err)
		}
		if got := evalRow(e, row); got != tc.want {
			t.Errorf("%s: %v", tc.in, got)
		}
	}
}
