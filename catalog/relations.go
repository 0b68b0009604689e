package catalog

import (
	"strconv"
	"strings"
)

// Relation types, with Backstage's exact spelling: they are part of the served
// JSON and of `filter=relations.<type>=<ref>` queries, so clients depend on it.
// Each forward type has a reverse one; both directions are always stored so
// either end can be queried without a scan.
const (
	RelationOwnedBy       = "ownedBy"
	RelationOwnerOf       = "ownerOf"
	RelationPartOf        = "partOf"
	RelationHasPart       = "hasPart"
	RelationProvidesAPI   = "providesApi"
	RelationAPIProvidedBy = "apiProvidedBy"
	RelationConsumesAPI   = "consumesApi"
	RelationAPIConsumedBy = "apiConsumedBy"
	RelationDependsOn     = "dependsOn"
	RelationDependencyOf  = "dependencyOf"
	RelationMemberOf      = "memberOf"
	RelationHasMember     = "hasMember"
	RelationChildOf       = "childOf"
	RelationParentOf      = "parentOf"
)

// RelationSpec is one directed relation between two entities, as a stage
// emits it. Refs rather than strings, so the store can key it canonically
// while the served form keeps the author's spelling.
type RelationSpec struct {
	Source Ref
	Type   string
	Target Ref
}

// relationRule is one row of Backstage's relation table: a spec field of a
// kind, the kind a short ref in it defaults to ("" = the ref must name its
// kind), and the relation pair it produces.
type relationRule struct {
	kind        string
	field       string
	defaultKind string
	forward     string
	reverse     string
}

// relationTable is reference §3.5 in its order (BuiltinKindsEntityProcessor
// plus the scaffolder's Template owner relations). The output order of
// KindRelations follows it, so keep rows in this order.
var relationTable = []relationRule{
	{KindComponent, "owner", KindGroup, RelationOwnedBy, RelationOwnerOf},
	{KindComponent, "subcomponentOf", KindComponent, RelationPartOf, RelationHasPart},
	{KindComponent, "providesApis", KindAPI, RelationProvidesAPI, RelationAPIProvidedBy},
	{KindComponent, "consumesApis", KindAPI, RelationConsumesAPI, RelationAPIConsumedBy},
	{KindComponent, "dependsOn", "", RelationDependsOn, RelationDependencyOf},
	{KindComponent, "dependencyOf", "", RelationDependencyOf, RelationDependsOn},
	{KindComponent, "system", KindSystem, RelationPartOf, RelationHasPart},
	{KindAPI, "owner", KindGroup, RelationOwnedBy, RelationOwnerOf},
	{KindAPI, "system", KindSystem, RelationPartOf, RelationHasPart},
	{KindResource, "owner", KindGroup, RelationOwnedBy, RelationOwnerOf},
	{KindResource, "dependsOn", "", RelationDependsOn, RelationDependencyOf},
	{KindResource, "dependencyOf", "", RelationDependencyOf, RelationDependsOn},
	{KindResource, "system", KindSystem, RelationPartOf, RelationHasPart},
	{KindUser, "memberOf", KindGroup, RelationMemberOf, RelationHasMember},
	{KindGroup, "parent", KindGroup, RelationChildOf, RelationParentOf},
	{KindGroup, "children", KindGroup, RelationParentOf, RelationChildOf},
	{KindGroup, "members", KindUser, RelationHasMember, RelationMemberOf},
	{KindSystem, "owner", KindGroup, RelationOwnedBy, RelationOwnerOf},
	{KindSystem, "domain", KindDomain, RelationPartOf, RelationHasPart},
	{KindDomain, "owner", KindGroup, RelationOwnedBy, RelationOwnerOf},
	{KindDomain, "subdomainOf", KindDomain, RelationPartOf, RelationHasPart},
	{KindTemplate, "owner", KindGroup, RelationOwnedBy, RelationOwnerOf},
	{KindTemplate, "owners", KindGroup, RelationOwnedBy, RelationOwnerOf},
}

// KindRelations derives the relations of a builtin kind from its spec: for
// each table row and each value, the forward relation (Source = e.Ref()) and
// then its reverse. Short refs take the row's default kind and e's namespace,
// as in Backstage, so "owner: team-a" in namespace "ops" means
// group:ops/team-a.
//
// The kind is matched case-insensitively and apiVersion is not checked: the
// entity passed validation already (by this package or by another stage), and
// its references still mean the same thing. A field may hold one string or an
// array of strings; an absent, null or empty single value means "none".
//
// A value that does not parse does not hide the others: the relations that
// did parse are returned together with a *ValidationError naming every bad
// value, so a caller records the error and still serves the good relations.
func KindRelations(e *Entity) ([]RelationSpec, error) {
	if e.Spec == nil {
		return nil, nil
	}
	self := e.Ref()
	defaults := RefDefaults{Namespace: self.Namespace}
	n := countRelationValues(e)
	if n == 0 {
		return nil, nil
	}
	out := make([]RelationSpec, 0, 2*n)
	var p problems
	for i := range relationTable {
		rule := &relationTable[i]
		if !strings.EqualFold(rule.kind, e.Kind) {
			continue
		}
		v, ok := e.Spec[rule.field]
		if !ok || v == nil {
			continue
		}
		defaults.Kind = rule.defaultKind
		// Paths are built only for problems: j < 0 names the field itself,
		// otherwise its j-th item.
		emit := func(j int, value string) {
			target, err := ParseRef(value, defaults)
			if err != nil {
				msg := err.Error()
				if rule.defaultKind == "" && refLacksOnlyKind(value, defaults.Namespace) {
					msg += "; spec." + rule.field + " needs full refs: write kind:[namespace/]name"
				}
				p.add(specPath(rule.field, j), msg)
				return
			}
			out = append(out,
				RelationSpec{Source: self, Type: rule.forward, Target: target},
				RelationSpec{Source: target, Type: rule.reverse, Target: self})
		}
		switch t := v.(type) {
		case string:
			if t != "" {
				emit(-1, t)
			}
		case []any:
			for j, x := range t {
				s, ok := x.(string)
				if !ok {
					p.add(specPath(rule.field, j), "must be an entity reference string, got "+TypeName(x))
					continue
				}
				emit(j, s)
			}
		case []string:
			for j, s := range t {
				emit(j, s)
			}
		default:
			p.add(specPath(rule.field, -1), "must be an entity reference string or an array of them, got "+TypeName(v))
		}
	}
	return out, p.err()
}

// countRelationValues sizes the result up front: a relation is 7 strings, so
// growing the slice by appending would copy a lot for a many-API component.
// Values that turn out to be bad only make the estimate generous.
func countRelationValues(e *Entity) int {
	n := 0
	for i := range relationTable {
		rule := &relationTable[i]
		if !strings.EqualFold(rule.kind, e.Kind) {
			continue
		}
		switch t := e.Spec[rule.field].(type) {
		case nil:
		case string:
			if t != "" {
				n++
			}
		case []any:
			n += len(t)
		case []string:
			n += len(t)
		default:
			n++ // reported as an error below
		}
	}
	return n
}

// refLacksOnlyKind reports whether value would parse if it named a kind, so
// the hint about full refs is only given when it is the fix.
func refLacksOnlyKind(value, namespace string) bool {
	_, err := ParseRef(value, RefDefaults{Kind: "x", Namespace: namespace})
	return err == nil
}

func specPath(field string, i int) string {
	if i < 0 {
		return "spec." + field
	}
	return "spec." + field + "[" + strconv.Itoa(i) + "]"
}
