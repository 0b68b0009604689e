package catalog

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
)

// TestAppendEntityMatchesMarshal: the direct encoder must give exactly the
// bytes of json.Marshal(e.ToMap()), which etags and result hashes were
// computed over, for entities of every shape.
func TestAppendEntityMatchesMarshal(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	strs := []string{"", "plain", "with space", `quo"te`, `back\slash`, "<b>&amp;</b>", "a & b", "x > y", "tab\there", "new\nline",
		"\x00\x01\x1f", "é ü ß", "日本語", "\u2028\u2029", "\xff\xfe invalid", "emoji 🚀", "apiVersion", "metadata", "url"}
	nums := []any{0.0, math.Copysign(0, -1), 1.0, -2.5, 1e-7, 1e-6, 123456789.0, 1e20, 1e21, 1.5e300, 5e-324, 0.1, 3, -7, int64(1) << 40}
	var value func(depth int) any
	value = func(depth int) any {
		switch n := rng.IntN(9); {
		case n == 0:
			return nil
		case n == 1:
			return rng.IntN(2) == 0
		case n <= 3:
			return nums[rng.IntN(len(nums))]
		case n == 4 && depth < 3:
			m := map[string]any{}
			for range rng.IntN(5) {
				m[strs[rng.IntN(len(strs))]] = value(depth + 1)
			}
			if rng.IntN(6) == 0 {
				return map[string]any(nil)
			}
			return m
		case n == 5 && depth < 3:
			var l []any
			for range rng.IntN(4) {
				l = append(l, value(depth+1))
			}
			return l
		default:
			return strs[rng.IntN(len(strs))]
		}
	}
	str := func() string { return strs[rng.IntN(len(strs))] }
	for i := range 3000 {
		e := &Entity{APIVersion: str(), Kind: str(), Metadata: Metadata{Name: str(), Namespace: str(), Title: str(),
			Description: str(), UID: str(), Etag: str()}}
		if rng.IntN(2) == 0 {
			e.Spec = map[string]any{}
			for range rng.IntN(6) {
				e.Spec[str()] = value(0)
			}
		}
		if rng.IntN(3) == 0 {
			e.Extra = map[string]any{str(): value(0), "metadata": "shadowed", "zzz": value(1)}
		}
		if rng.IntN(2) == 0 {
			e.Metadata.Labels = map[string]string{str(): str(), str(): str()}
			e.Metadata.Annotations = map[string]string{}
			for range rng.IntN(4) {
				e.Metadata.Annotations[str()] = str()
			}
		}
		if rng.IntN(2) == 0 {
			e.Metadata.Tags = []string{}
			for range rng.IntN(3) {
				e.Metadata.Tags = append(e.Metadata.Tags, str())
			}
		}
		if rng.IntN(3) == 0 {
			e.Metadata.Links = []Link{{URL: str(), Title: str(), Icon: str(), Type: str(),
				Extra: map[string]any{str(): value(1), "url": "shadowed"}}, {URL: str()}}
		}
		if rng.IntN(3) == 0 {
			e.Metadata.Extra = map[string]any{str(): value(0), "name": "shadowed"}
		}
		if rng.IntN(2) == 0 {
			e.Relations = []Relation{}
			for range rng.IntN(3) {
				e.Relations = append(e.Relations, Relation{Type: str(), TargetRef: str()})
			}
		}
		if rng.IntN(3) == 0 {
			e.Status = &Status{}
			for range rng.IntN(3) {
				it := StatusItem{Type: str(), Level: str(), Message: str()}
				if rng.IntN(2) == 0 {
					it.Error = &SerializedError{Name: str(), Message: str(), Stack: str()}
				}
				e.Status.Items = append(e.Status.Items, it)
			}
		}
		want, wantErr := json.Marshal(e.ToMap())
		got, err := e.MarshalJSON()
		if (err != nil) != (wantErr != nil) || !bytes.Equal(got, want) && wantErr == nil {
			t.Fatalf("entity %d:\n got %s (%v)\nwant %s (%v)", i, got, err, want, wantErr)
		}
	}
}

func TestAppendEntityUnsupportedNumbers(t *testing.T) {
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		e := &Entity{Kind: "Component", Metadata: Metadata{Name: "a"}, Spec: map[string]any{"x": f}}
		_, wantErr := json.Marshal(e.ToMap())
		_, err := e.MarshalJSON()
		if err == nil || err.Error() != wantErr.Error() {
			t.Errorf("%v: error %v, want %v", f, err, wantErr)
		}
	}
	// A value encoding/json handles and the fast path does not know.
	e := &Entity{Kind: "Component", Metadata: Metadata{Name: "a"}, Spec: map[string]any{"u": uint8(7), "f": float32(0.5)}}
	want, _ := json.Marshal(e.ToMap())
	if got, err := e.MarshalJSON(); err != nil || !bytes.Equal(got, want) {
		t.Errorf("got %s (%v), want %s", got, err, want)
	}
}
