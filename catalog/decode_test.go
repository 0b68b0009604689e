package catalog

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"
)

// TestParseObjectMatchesEncodingJSON: where the fast parser answers, it
// gives what encoding/json's Decoder gives, and it declines (ok false)
// wherever encoding/json fails, so that the caller's fallback reports its
// error.
func TestParseObjectMatchesEncodingJSON(t *testing.T) {
	cases := []string{
		`{}`, ` {"a":1} `, `{"a":1}trailing`, `{"a":{"b":[1,2,{"c":null}],"d":true,"e":false}}`,
		`{"a":1,"a":2}`, `{"n":-0,"m":1.5e-7,"o":1E+3,"p":0.25,"q":123456789012345678901234567890}`,
		`{"s":"plain","t":"esc\"aped\\","u":"\u00e9\ud83d\ude80","v":"\ud800","w":"tab\tin"}`,
		"{\"x\":\"\xff\xfe\"}", `{"y":"é 日本"}`, "{ \"z\" :\n[ ]\t}",
		// encoding/json rejects these: the parser must decline them.
		`{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":-}`, `{"a":1e}`, `{"a":tru}`, `{"a":1,}`, `{"a" 1}`,
		`{"a":[1,]}`, `{a:1}`, `{"a":"x` + "\x01" + `"}`, `{"a":1e400}`, `{"a":"\x"}`, `{"a":1`, `{`, `[1]`, `null`, ``, `"s"`,
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		cases = append(cases, randomJSON(rng, 0))
	}
	for _, c := range cases {
		var want map[string]any
		wantErr := json.NewDecoder(bytes.NewReader([]byte(c))).Decode(&want)
		got, ok := parseObject([]byte(c))
		switch {
		case ok && wantErr != nil:
			t.Errorf("%q: parsed %v, encoding/json fails: %v", c, got, wantErr)
		case ok && !reflect.DeepEqual(got, want):
			t.Errorf("%q: parsed %#v, want %#v", c, got, want)
		}
	}
	// Everything this package encodes is parsed on the fast path.
	e := &Entity{APIVersion: "v1", Kind: "Component", Metadata: Metadata{Name: "a", Description: "<é>\n", Tags: []string{"x"}},
		Spec: map[string]any{"n": 1.5, "l": []any{true, nil, "s"}}}
	b, _ := e.MarshalJSON()
	if _, ok := parseObject(b); !ok {
		t.Errorf("%s: not parsed", b)
	}
}

// randomJSON is a random object, now and then broken.
func randomJSON(rng *rand.Rand, depth int) string {
	vals := []string{`1`, `-2.5`, `0`, `1e-9`, `"x"`, `"é\n"`, `"\u0041"`, `true`, `false`, `null`, `[]`, `{}`}
	s := "{"
	for i := range rng.IntN(4) {
		if i > 0 {
			s += ","
		}
		s += `"k` + string(rune('a'+rng.IntN(4))) + `":`
		if depth < 3 && rng.IntN(3) == 0 {
			s += randomJSON(rng, depth+1)
		} else {
			s += vals[rng.IntN(len(vals))]
		}
	}
	s += "}"
	if rng.IntN(10) == 0 {
		i := rng.IntN(len(s))
		s = s[:i] + string("{},:\"x"[rng.IntN(6)]) + s[i:]
	}
	return s
}
