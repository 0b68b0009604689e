package catalog

import (
	"slices"
	"strconv"
	"strings"
)

// Kind names of Backstage's builtin kinds. Kinds are matched exactly (as
// Backstage's JSON schemas do) when validating, so "component" is not a
// builtin kind and needs a stage of its own to be accepted.
const (
	KindComponent = "Component"
	KindAPI       = "API"
	KindResource  = "Resource"
	KindSystem    = "System"
	KindDomain    = "Domain"
	KindGroup     = "Group"
	KindUser      = "User"
	KindLocation  = "Location"
	KindTemplate  = "Template"
)

// API versions under which the builtin kinds are defined. Both backstage.io
// versions are accepted for every kind except Template because catalogs in
// the wild still use v1alpha1 and Backstage never dropped it.
const (
	APIVersionV1alpha1          = "backstage.io/v1alpha1"
	APIVersionV1beta1           = "backstage.io/v1beta1"
	APIVersionScaffolderV1beta3 = "scaffolder.backstage.io/v1beta3"
)

// fieldType says what a spec field must hold.
type fieldType uint8

const (
	fString      fieldType = iota // a non-empty string
	fStringArray                  // an array of non-empty strings
	fProfile                      // an object whose displayName/email/picture are non-empty strings
	fPresence                     // "required" or "optional"
	fSteps                        // an array of objects, each with a non-empty string action
)

type fieldRule struct {
	key      string
	typ      fieldType
	required bool
}

type kindRules struct {
	kind        string
	apiVersions []string
	fields      []fieldRule
}

var backstageVersions = []string{APIVersionV1alpha1, APIVersionV1beta1}

// builtinKinds transcribes the spec part of Backstage's kind JSON schemas
// (catalog-model src/schema/kinds/*.schema.json and the scaffolder's
// Template v1beta3 schema). Optional fields are listed too so that a
// wrongly typed value is reported here rather than failing later when
// relations are built from it.
var builtinKinds = []kindRules{
	{KindComponent, backstageVersions, []fieldRule{
		{"type", fString, true},
		{"lifecycle", fString, true},
		{"owner", fString, true},
		{"system", fString, false},
		{"subcomponentOf", fString, false},
		{"providesApis", fStringArray, false},
		{"consumesApis", fStringArray, false},
		{"dependsOn", fStringArray, false},
		{"dependencyOf", fStringArray, false},
	}},
	{KindAPI, backstageVersions, []fieldRule{
		{"type", fString, true},
		{"lifecycle", fString, true},
		{"owner", fString, true},
		{"definition", fString, true},
		{"system", fString, false},
	}},
	{KindResource, backstageVersions, []fieldRule{
		{"type", fString, true},
		{"owner", fString, true},
		{"system", fString, false},
		{"dependsOn", fStringArray, false},
		{"dependencyOf", fStringArray, false},
	}},
	{KindSystem, backstageVersions, []fieldRule{
		{"owner", fString, true},
		{"domain", fString, false},
		{"type", fString, false},
	}},
	{KindDomain, backstageVersions, []fieldRule{
		{"owner", fString, true},
		{"subdomainOf", fString, false},
		{"type", fString, false},
	}},
	{KindGroup, backstageVersions, []fieldRule{
		{"type", fString, true},
		{"children", fStringArray, true},
		{"parent", fString, false},
		{"members", fStringArray, false},
		{"profile", fProfile, false},
	}},
	{KindUser, backstageVersions, []fieldRule{
		{"memberOf", fStringArray, true},
		{"profile", fProfile, false},
	}},
	{KindLocation, backstageVersions, []fieldRule{
		{"type", fString, false},
		{"target", fString, false},
		{"targets", fStringArray, false},
		{"presence", fPresence, false},
	}},
	{KindTemplate, []string{APIVersionScaffolderV1beta3}, []fieldRule{
		{"type", fString, true},
		{"steps", fSteps, true},
		{"owner", fString, false},
	}},
}

// ValidateKind is the builtin kinds' ValidateEntityKind: it knows the
// kind/apiVersion pairs Backstage ships and checks their spec. It returns
// known=false, err=nil for any other pair, so that another stage may accept
// it; known=true with a *ValidationError when the pair is builtin but the spec
// is wrong (a Component without an owner must fail, not fall through).
func ValidateKind(e *Entity) (known bool, err error) {
	rules := findKind(e.Kind, e.APIVersion)
	if rules == nil {
		return false, nil
	}
	var p problems
	if e.Spec == nil {
		p.add("spec", ruleRequired+" for kind "+rules.kind)
		return true, p.err()
	}
	for _, f := range rules.fields {
		v, ok := e.Spec[f.key]
		path := "spec." + f.key
		if !ok {
			if f.required {
				p.add(path, ruleRequired+" for kind "+rules.kind)
			}
			continue
		}
		switch f.typ {
		case fString:
			checkString(&p, path, v)
		case fStringArray:
			checkStringArray(&p, path, v)
		case fProfile:
			checkProfile(&p, path, v)
		case fPresence:
			checkPresence(&p, path, v)
		case fSteps:
			checkSteps(&p, path, v)
		}
	}
	return true, p.err()
}

func findKind(kind, apiVersion string) *kindRules {
	for i := range builtinKinds {
		k := &builtinKinds[i]
		if k.kind == kind {
			if slices.Contains(k.apiVersions, apiVersion) {
				return k
			}
			return nil
		}
	}
	return nil
}

func checkString(p *problems, path string, v any) {
	s, ok := v.(string)
	switch {
	case !ok:
		p.add(path, "must be a string, got "+TypeName(v))
	case s == "":
		p.add(path, "must not be empty")
	}
}

func checkStringArray(p *problems, path string, v any) {
	switch a := v.(type) {
	case []any:
		for i, x := range a {
			checkString(p, path+"["+strconv.Itoa(i)+"]", x)
		}
	case []string:
		for i, s := range a {
			if s == "" {
				p.add(path+"["+strconv.Itoa(i)+"]", "must not be empty")
			}
		}
	default:
		p.add(path, "must be an array of strings, got "+TypeName(v))
	}
}

func checkProfile(p *problems, path string, v any) {
	m, ok := v.(map[string]any)
	if !ok {
		p.add(path, "must be an object, got "+TypeName(v))
		return
	}
	for _, k := range [...]string{"displayName", "email", "picture"} {
		if x, ok := m[k]; ok {
			checkString(p, path+"."+k, x)
		}
	}
}

func checkPresence(p *problems, path string, v any) {
	s, ok := v.(string)
	if !ok {
		p.add(path, `must be "required" or "optional", got `+TypeName(v))
		return
	}
	if s != "required" && s != "optional" {
		p.add(path, quoteValue(s)+` is invalid: must be "required" or "optional"`)
	}
}

func checkSteps(p *problems, path string, v any) {
	steps, ok := v.([]any)
	if !ok {
		p.add(path, "must be an array of steps, got "+TypeName(v))
		return
	}
	for i, x := range steps {
		sp := path + "[" + strconv.Itoa(i) + "]"
		step, ok := x.(map[string]any)
		if !ok {
			p.add(sp, "must be an object, got "+TypeName(x))
			continue
		}
		action, ok := step["action"]
		if !ok {
			p.add(sp+".action", ruleRequired)
			continue
		}
		checkString(p, sp+".action", action)
	}
}

// sortedSpecArrays are the spec arrays whose order carries no meaning;
// Backstage's BuiltinKindsEntityProcessor sorts the same list.
var sortedSpecArrays = [...]string{
	"providesApis", "consumesApis", "dependsOn", "dependencyOf", "memberOf", "children", "members",
}

// SortSpecArrays sorts spec.providesApis, consumesApis, dependsOn,
// dependencyOf, memberOf, children and members in place, for any kind, so that
// reordering a list in a source file does not change the outcome hash and
// cause a rewrite. An array holding anything but strings is left alone
// (validation reports it). The spec is mutated: Clone first if the caller's
// entity must stay untouched.
func SortSpecArrays(e *Entity) {
	if e.Spec == nil {
		return
	}
	for _, key := range sortedSpecArrays {
		switch a := e.Spec[key].(type) {
		case []any:
			if len(a) < 2 || !allStrings(a) {
				continue
			}
			slices.SortStableFunc(a, func(x, y any) int {
				return strings.Compare(x.(string), y.(string))
			})
		case []string:
			slices.Sort(a)
		}
	}
}

func allStrings(a []any) bool {
	for _, x := range a {
		if _, ok := x.(string); !ok {
			return false
		}
	}
	return true
}
