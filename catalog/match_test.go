package catalog

import (
	"math/rand/v2"
	"regexp"
	"testing"
)

// TestMatchersAgreeWithBackstagePatterns checks the hand-written format
// matchers against Backstage's regular expressions on edge cases and on
// many random strings over the characters that matter.
func TestMatchersAgreeWithBackstagePatterns(t *testing.T) {
	cases := []struct {
		name    string
		pattern *regexp.Regexp
		match   func(string) bool
	}{
		{"dns label", regexp.MustCompile(`^[a-z0-9]+(?:\-+[a-z0-9]+)*$`), matchDNSLabel},
		{"object name", regexp.MustCompile(`^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`), matchObjectName},
		{"kind", regexp.MustCompile(`^[a-zA-Z][a-z0-9A-Z]*$`), matchKind},
		{"version", regexp.MustCompile(`^[a-z0-9A-Z]+$`), matchVersion},
		{"tag", regexp.MustCompile(`^[a-z0-9:+#]+(\-[a-z0-9:+#]+)*$`), matchTag},
	}
	edge := []string{"", "a", "A", "0", "-", "_", ".", "a-", "-a", "a--b", "a-b", "a_b", "a.b", "a.", ".a",
		"aB", "Ab", "1a", "a1", "a:b", "a+b#c", "a-:", ":-a", "é", "aé", "a b", "a\x00"}
	const alphabet = "abzAZ09-_.:+# é"
	rnd := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		b := make([]byte, rnd.IntN(6))
		for i := range b {
			b[i] = alphabet[rnd.IntN(len(alphabet))]
		}
		edge = append(edge, string(b))
	}
	for _, c := range cases {
		for _, s := range edge {
			if got, want := c.match(s), c.pattern.MatchString(s); got != want {
				t.Errorf("%s %q: matcher says %v, pattern says %v", c.name, s, got, want)
			}
		}
	}
}
