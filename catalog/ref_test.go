package catalog

import (
	"strings"
	"testing"
)

func TestParseRef(t *testing.T) {
	group := RefDefaults{Kind: "Group", Namespace: "ops"}
	none := RefDefaults{}
	tests := []struct {
		in      string
		d       RefDefaults
		want    Ref
		wantErr string // substring; "" means success
	}{
		{"team-a", group, Ref{"Group", "ops", "team-a"}, ""},
		{"team-a", RefDefaults{Kind: "Group"}, Ref{"Group", "default", "team-a"}, ""},
		{"other/team-a", group, Ref{"Group", "other", "team-a"}, ""},
		{"user:jane", group, Ref{"user", "ops", "jane"}, ""},
		{"user:jane", none, Ref{"user", "default", "jane"}, ""},
		{"Component:Default/Orders", none, Ref{"Component", "Default", "Orders"}, ""},
		{"component:ns/name", group, Ref{"component", "ns", "name"}, ""},
		// A '/' before the first ':' means there is no kind part.
		{"ns/na:me", group, Ref{"Group", "ns", "na:me"}, ""},
		// Only the first ':' and the first '/' after it split.
		{"kind:ns/na/me", none, Ref{"kind", "ns", "na/me"}, ""},
		{"kind:na:me", none, Ref{"kind", "default", "na:me"}, ""},
		{"  user:jane  ", none, Ref{"user", "default", "jane"}, ""},

		{"", group, Ref{}, "must not be empty"},
		{"   ", group, Ref{}, "must not be empty"},
		{":jane", group, Ref{}, "empty kind"},
		{":ns/jane", group, Ref{}, "empty kind"},
		{"user:", group, Ref{}, "empty name"},
		{"user:/jane", group, Ref{}, "empty namespace"},
		{"/jane", group, Ref{}, "empty namespace"},
		{"ns/", group, Ref{}, "empty name"},
		{"user:ns/", group, Ref{}, "empty name"},
		{"jane", none, Ref{}, "no kind"},
		{"ns/jane", RefDefaults{Namespace: "ops"}, Ref{}, "no kind"},
	}
	for _, tt := range tests {
		got, err := ParseRef(tt.in, tt.d)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("ParseRef(%q): %v", tt.in, err)
		case tt.wantErr == "" && got != tt.want:
			t.Errorf("ParseRef(%q) = %#v, want %#v", tt.in, got, tt.want)
		case tt.wantErr != "" && err == nil:
			t.Errorf("ParseRef(%q) = %#v, want an error", tt.in, got)
		case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
			t.Errorf("ParseRef(%q) error %q, want it to mention %q", tt.in, err, tt.wantErr)
		}
		if err != nil && strings.TrimSpace(tt.in) != "" && !strings.Contains(err.Error(), tt.in) {
			t.Errorf("ParseRef(%q) error %q does not quote the ref", tt.in, err)
		}
	}
}

func TestRefStringAndEqual(t *testing.T) {
	r := Ref{Kind: "Component", Namespace: "Default", Name: "Orders-API"}
	if got := r.String(); got != "component:default/orders-api" {
		t.Errorf("String() = %q", got)
	}
	tests := []struct {
		a, b Ref
		want bool
	}{
		{r, Ref{"component", "default", "orders-api"}, true},
		{r, Ref{"COMPONENT", "DEFAULT", "ORDERS-API"}, true},
		{r, Ref{"Component", "Default", "Orders"}, false},
		{r, Ref{"API", "Default", "Orders-API"}, false},
		{r, Ref{"Component", "other", "Orders-API"}, false},
		{Ref{}, Ref{}, true},
	}
	for _, tt := range tests {
		if got := tt.a.Equal(tt.b); got != tt.want {
			t.Errorf("%#v.Equal(%#v) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
		if got := tt.b.Equal(tt.a); got != tt.want {
			t.Errorf("Equal is not symmetric for %#v, %#v", tt.a, tt.b)
		}
		if (tt.a.String() == tt.b.String()) != tt.want {
			t.Errorf("String equality of %#v and %#v disagrees with Equal", tt.a, tt.b)
		}
	}
	// String and ParseRef round trip.
	back, err := ParseRef(r.String(), RefDefaults{})
	if err != nil || !back.Equal(r) {
		t.Errorf("ParseRef(String()) = %#v, %v", back, err)
	}
}

func TestEntityRef(t *testing.T) {
	e := &Entity{Kind: "Component", Metadata: Metadata{Name: "Orders"}}
	if got := e.Ref(); got != (Ref{"Component", "default", "Orders"}) {
		t.Errorf("Ref() = %#v", got)
	}
	e.Metadata.Namespace = "ops"
	if got := e.Ref().String(); got != "component:ops/orders" {
		t.Errorf("Ref().String() = %q", got)
	}
}

func TestMustParseRef(t *testing.T) {
	if got := MustParseRef("group:ops/a"); got != (Ref{"group", "ops", "a"}) {
		t.Errorf("MustParseRef = %#v", got)
	}
	defer func() {
		if recover() == nil {
			t.Error("MustParseRef of a short ref did not panic")
		}
	}()
	MustParseRef("a")
}
