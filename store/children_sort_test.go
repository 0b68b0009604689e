package store

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// sortedChildren is a stable sort by ref: of two children with one ref (a
// Location listing an entity twice), the later one is upserted last.
func TestSortedChildrenIsStable(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for range 200 {
		cs := make([]Child, rng.IntN(300))
		for i := range cs {
			cs[i] = Child{Ref: fmt.Sprintf("component:default/c%d", rng.IntN(len(cs)/3+1)), Hash: fmt.Sprint(i)}
		}
		want := slices.Clone(cs)
		slices.SortStableFunc(want, func(a, b Child) int { return strings.Compare(a.Ref, b.Ref) })
		in := slices.Clone(cs)
		got := sortedChildren(in)
		if !slices.EqualFunc(got, want, func(a, b Child) bool { return a.Ref == b.Ref && a.Hash == b.Hash }) {
			t.Fatalf("sortedChildren(%v) = %v, want %v", cs, got, want)
		}
		if !slices.EqualFunc(in, cs, func(a, b Child) bool { return a.Hash == b.Hash }) {
			t.Fatal("sortedChildren changed its input")
		}
	}
}

func BenchmarkSortedChildren(b *testing.B) {
	rng := rand.New(rand.NewPCG(7, 8))
	cs := make([]Child, 100_000)
	for i := range cs {
		cs[i] = Child{Ref: fmt.Sprintf("component:default/service-%d-%d", rng.IntN(1000), i)}
	}
	for b.Loop() {
		sortedChildren(cs)
	}
}
