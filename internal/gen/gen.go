// Package gen writes synthetic Backstage catalogs of any size, so that
// benchmarks and tests can ingest a catalog that looks like a real company's
// (an org chart, systems, services, APIs, databases and the relations between
// them) without anyone maintaining thousands of YAML files by hand.
//
// Output depends only on Options: the same Options give byte-identical files,
// so benchmark numbers from different runs and machines compare the same
// input, and a failing test can be reproduced from its seed.
package gen

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
)

// Options says what to generate.
type Options struct {
	// N is the number of entities, counting the root Location. Write
	// generates exactly N (components absorb the rounding of the other
	// kinds' shares); N must be at least MinN so that every kind and
	// relation type appears.
	N int
	// Seed selects one catalog among all those of size N.
	Seed int64
	// EntitiesPerFile is how many entities share one multi-document YAML
	// file (default 100). Fewer per file means more locations to read,
	// which is what a benchmark of the file reader wants to vary.
	EntitiesPerFile int
}

// Stats describes what Write generated, so that a test or benchmark can
// check the ingested catalog against it without re-parsing the files.
type Stats struct {
	// Entities counts every entity written, the root Location included.
	Entities int
	// Files counts the YAML files written: catalog-info.yaml plus the
	// entity files (pipeline.hcl is not counted).
	Files int
	// ByKind counts entities per kind, keyed by the kind as written
	// ("Component", "Location", ...).
	ByKind map[string]int
	// Relations is the number of distinct relations declared through spec
	// fields, each counted once in its forward direction (a team's
	// spec.parent and its department's spec.children declare the same
	// relation and count once). Backstage's builtin-kinds processing emits
	// every relation in both directions, so a fully ingested catalog serves
	// 2*Relations relations.
	Relations int
}

// MinN is the smallest catalog Write generates: below it some kind would
// have no entity, and relations such as dependsOn need two components.
const MinN = 20

// DefaultEntitiesPerFile is used when Options.EntitiesPerFile is zero.
const DefaultEntitiesPerFile = 100

// Shares of each kind among the generated entities (the root Location
// aside); components take what the others leave, about 45%.
const (
	shareGroup    = 0.05
	shareUser     = 0.20
	shareDomain   = 0.01
	shareSystem   = 0.04
	shareAPI      = 0.20
	shareResource = 0.05
)

// Write generates a catalog of about o.N entities into dir (created if
// needed) and returns what it wrote:
//
//   - dir/catalog-info.yaml: a Location whose spec.targets lists every entity
//     file as a ./relative path, sorted;
//   - dir/entities-NNNN.yaml: multi-document YAML streams of o.EntitiesPerFile
//     entities each;
//   - dir/pipeline.hcl: pipeline "generated" reading catalog-info.yaml with the
//     five builtin stages.
//
// Every entity is valid and every ref points at a generated entity. Write
// does not delete files it did not write, so give it a fresh folder: a
// leftover entities file is not listed by the Location but would confuse a
// reader of the folder.
func Write(dir string, o Options) (Stats, error) {
	if o.N < MinN {
		return Stats{}, fmt.Errorf("gen: N is %d, must be at least %d", o.N, MinN)
	}
	if o.EntitiesPerFile < 0 {
		return Stats{}, errors.New("gen: EntitiesPerFile must not be negative")
	}
	if o.EntitiesPerFile == 0 {
		o.EntitiesPerFile = DefaultEntitiesPerFile
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Stats{}, fmt.Errorf("gen: %w", err)
	}
	c := build(o)
	return c.write(dir, o.EntitiesPerFile)
}

// The model of the catalog being generated. Cross-references are indexes
// into the slices of the catalog; names are resolved only when writing.

type group struct {
	name     string
	typ      string // organization, department or team
	parent   int    // index into groups, -1 for the root
	children []int
}

type user struct {
	name, display string
	memberOf      []int // teams
}

type domain struct {
	name  string
	owner int // a department
}

type system struct {
	name   string
	owner  int // a team
	domain int
}

type component struct {
	name, typ, lifecycle string
	owner, system        int
	dependsOn            []int // other components
	provides, consumes   []int // apis
	tags                 []string
}

type api struct {
	name          string
	noun          string // what its paths serve, e.g. "invoices"
	owner, system int
	version       int
}

type resource struct {
	name          string
	owner, system int
}

type catalog struct {
	rng        *rand.Rand
	names      map[string]int // name -> times used, per kind prefix, for dedupe
	groups     []group
	teams      []int // indexes of groups of type team
	depts      []int // indexes of groups of type department
	users      []user
	domains    []domain
	systems    []system
	components []component
	apis       []api
	resources  []resource
	relations  int
}

func share(m int, f float64, minimum int) int {
	n := int(float64(m)*f + 0.5)
	return max(n, minimum)
}

// build draws the whole catalog. All randomness is consumed here, in a fixed
// order, so the output depends on nothing but the options.
func build(o Options) *catalog {
	seed := uint64(o.Seed)
	c := &catalog{
		rng:   rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		names: make(map[string]int, o.N),
	}
	m := o.N - 1 // the root Location is one entity
	nGroups := share(m, shareGroup, 2)
	nUsers := share(m, shareUser, 1)
	nDomains := share(m, shareDomain, 1)
	nSystems := share(m, shareSystem, 1)
	nAPIs := share(m, shareAPI, 1)
	nResources := share(m, shareResource, 1)
	nComponents := max(m-nGroups-nUsers-nDomains-nSystems-nAPIs-nResources, 2)

	c.buildGroups(nGroups)
	c.buildUsers(nUsers)
	c.buildDomains(nDomains)
	c.buildSystems(nSystems)
	c.buildComponents(nComponents)
	c.buildAPIs(nAPIs)
	c.buildResources(nResources)
	return c
}

// unique returns base, or base-2, base-3... when base was already used for
// the same kind, so names stay readable and still unique. A suffixed name
// cannot collide with a later base because the word lists hold no digits.
func (c *catalog) unique(kind, base string) string {
	key := kind + ":" + base
	n := c.names[key] + 1
	c.names[key] = n
	if n == 1 {
		return base
	}
	return base + "-" + strconv.Itoa(n)
}

func (c *catalog) pick(words []string) string { return words[c.rng.IntN(len(words))] }

// buildGroups makes one organization (when there are enough groups), about
// one department per twelve groups, and teams spread over the departments.
func (c *catalog) buildGroups(n int) {
	root := -1
	nDepts := 1
	if n >= 6 {
		root = 0
		nDepts = max(1, (n+6)/12)
		c.groups = append(c.groups, group{name: c.unique("group", "acme-org"), typ: "organization", parent: -1})
	}
	for i := 0; i < nDepts; i++ {
		g := group{name: c.unique("group", c.pick(areaWords)+"-dept"), typ: "department", parent: root}
		c.depts = append(c.depts, len(c.groups))
		if root >= 0 {
			c.groups[root].children = append(c.groups[root].children, len(c.groups))
			c.relations++
		}
		c.groups = append(c.groups, g)
	}
	for len(c.groups) < n {
		d := c.depts[c.rng.IntN(len(c.depts))]
		g := group{name: c.unique("group", c.pick(areaWords)+"-"+c.pick(teamWords)), typ: "team", parent: d}
		c.groups[d].children = append(c.groups[d].children, len(c.groups))
		c.relations++
		c.teams = append(c.teams, len(c.groups))
		c.groups = append(c.groups, g)
	}
}

func (c *catalog) team() int { return c.teams[c.rng.IntN(len(c.teams))] }

func (c *catalog) buildUsers(n int) {
	c.users = make([]user, n)
	for i := range c.users {
		first, last := c.pick(firstNames), c.pick(lastNames)
		u := user{name: c.unique("user", first+"."+last), display: title(first) + " " + title(last)}
		u.memberOf = append(u.memberOf, c.team())
		if c.rng.IntN(2) == 0 && len(c.teams) > 1 {
			for {
				t := c.team()
				if t != u.memberOf[0] {
					u.memberOf = append(u.memberOf, t)
					break
				}
			}
		}
		c.relations += len(u.memberOf)
		c.users[i] = u
	}
}

func (c *catalog) buildDomains(n int) {
	c.domains = make([]domain, n)
	for i := range c.domains {
		c.domains[i] = domain{
			name:  c.unique("domain", c.pick(areaWords)),
			owner: c.depts[c.rng.IntN(len(c.depts))],
		}
		c.relations++
	}
}

func (c *catalog) buildSystems(n int) {
	c.systems = make([]system, n)
	for i := range c.systems {
		c.systems[i] = system{
			name:   c.unique("system", c.pick(areaWords)+"-"+c.pick(systemWords)),
			owner:  c.team(),
			domain: c.rng.IntN(len(c.domains)),
		}
		c.relations += 2
	}
}

// weighted draws 0..len(w)-1 with the given weights (in percent).
func (c *catalog) weighted(w ...int) int {
	r := c.rng.IntN(100)
	for i, p := range w {
		if r < p {
			return i
		}
		r -= p
	}
	return len(w) - 1
}

// buildComponents draws components and their component-to-component
// dependencies. API links are added by buildAPIs, once the APIs exist.
func (c *catalog) buildComponents(n int) {
	c.components = make([]component, n)
	for i := range c.components {
		typ := [...]string{"service", "website", "library"}[c.weighted(60, 15, 25)]
		sys := c.rng.IntN(len(c.systems))
		owner := c.systems[sys].owner
		if c.rng.IntN(5) == 0 { // some components are run by another team than their system's
			owner = c.team()
		}
		suffix := c.pick(serviceWords)
		switch typ {
		case "website":
			suffix = c.pick(websiteWords)
		case "library":
			suffix = c.pick(libraryWords)
		}
		comp := component{
			name:      c.unique("component", c.pick(areaWords)+"-"+c.pick(nounWords)+"-"+suffix),
			typ:       typ,
			lifecycle: [...]string{"production", "experimental", "deprecated"}[c.weighted(70, 20, 10)],
			owner:     owner,
			system:    sys,
			tags:      []string{c.pick(langTags)},
		}
		if c.rng.IntN(3) == 0 {
			comp.tags = append(comp.tags, c.pick(extraTags))
		}
		c.relations += 2 // owner, system
		c.components[i] = comp
	}
	for i := range c.components {
		k := 1 + c.weighted(50, 30, 20)
		k = min(k, n-1)
		for len(c.components[i].dependsOn) < k {
			d := c.rng.IntN(n)
			if d != i && !slices.Contains(c.components[i].dependsOn, d) {
				c.components[i].dependsOn = append(c.components[i].dependsOn, d)
			}
		}
		c.relations += k
	}
}

// buildAPIs gives every API exactly one providing component (preferably a
// service, at most two APIs each), takes owner and system from it, and then
// lets components consume 0-3 APIs.
func (c *catalog) buildAPIs(n int) {
	var services []int
	for i, comp := range c.components {
		if comp.typ == "service" {
			services = append(services, i)
		}
	}
	if len(services) == 0 {
		for i := range c.components {
			services = append(services, i)
		}
	}
	c.apis = make([]api, n)
	for i := range c.apis {
		// Probe from a random service to the next one with room, so that
		// the draw stays O(1) while capacity remains.
		p := c.rng.IntN(len(services))
		provider := -1
		for j := 0; j < len(services); j++ {
			s := services[(p+j)%len(services)]
			if len(c.components[s].provides) < 2 {
				provider = s
				break
			}
		}
		noun := c.pick(nounWords)
		a := api{name: c.unique("api", c.pick(areaWords)+"-"+noun+"-api"), noun: noun, version: 1 + c.rng.IntN(4)}
		if provider >= 0 {
			a.owner, a.system = c.components[provider].owner, c.components[provider].system
			c.components[provider].provides = append(c.components[provider].provides, i)
			c.relations++
		} else {
			a.owner, a.system = c.team(), c.rng.IntN(len(c.systems))
		}
		c.relations += 2 // owner, system
		c.apis[i] = a
	}
	for i := range c.components {
		comp := &c.components[i]
		k := min(c.weighted(35, 35, 20, 10), n-len(comp.provides))
		for len(comp.consumes) < k {
			a := c.rng.IntN(n)
			if !slices.Contains(comp.consumes, a) && !slices.Contains(comp.provides, a) {
				comp.consumes = append(comp.consumes, a)
			}
		}
		c.relations += k
	}
}

func (c *catalog) buildResources(n int) {
	c.resources = make([]resource, n)
	for i := range c.resources {
		sys := c.rng.IntN(len(c.systems))
		c.resources[i] = resource{
			name:   c.unique("resource", c.pick(areaWords)+"-"+c.pick(nounWords)+"-db"),
			owner:  c.systems[sys].owner,
			system: sys,
		}
		c.relations += 2
	}
}

// write renders the catalog. Entities go to files in kind order (org data
// first, like a real catalog's org export), EntitiesPerFile to a file.
func (c *catalog) write(dir string, perFile int) (Stats, error) {
	st := Stats{
		ByKind: map[string]int{
			"Location":  1,
			"Group":     len(c.groups),
			"User":      len(c.users),
			"Domain":    len(c.domains),
			"System":    len(c.systems),
			"Component": len(c.components),
			"API":       len(c.apis),
			"Resource":  len(c.resources),
		},
		Relations: c.relations,
	}
	for _, n := range st.ByKind {
		st.Entities += n
	}
	total := st.Entities - 1
	nFiles := (total + perFile - 1) / perFile
	width := max(4, len(strconv.Itoa(nFiles-1)))

	var files []string
	var buf bytes.Buffer
	inFile := 0
	flush := func() error {
		name := fmt.Sprintf("entities-%0*d.yaml", width, len(files))
		files = append(files, "./"+name)
		if err := os.WriteFile(filepath.Join(dir, name), buf.Bytes(), 0o644); err != nil {
			return fmt.Errorf("gen: %w", err)
		}
		buf.Reset()
		inFile = 0
		return nil
	}
	// next starts an entity's document, flushing the file first when full.
	next := func() error {
		if inFile == perFile {
			if err := flush(); err != nil {
				return err
			}
		}
		if inFile > 0 {
			buf.WriteString("---\n")
		}
		inFile++
		return nil
	}
	w := &writer{b: &buf, c: c}
	for i := range c.groups {
		if err := next(); err != nil {
			return st, err
		}
		w.group(i)
	}
	for i := range c.users {
		if err := next(); err != nil {
			return st, err
		}
		w.user(i)
	}
	for i := range c.domains {
		if err := next(); err != nil {
			return st, err
		}
		w.domain(i)
	}
	for i := range c.systems {
		if err := next(); err != nil {
			return st, err
		}
		w.system(i)
	}
	for i := range c.components {
		if err := next(); err != nil {
			return st, err
		}
		w.component(i)
	}
	for i := range c.apis {
		if err := next(); err != nil {
			return st, err
		}
		w.api(i)
	}
	for i := range c.resources {
		if err := next(); err != nil {
			return st, err
		}
		w.resource(i)
	}
	if inFile > 0 {
		if err := flush(); err != nil {
			return st, err
		}
	}
	slices.Sort(files)
	st.Files = len(files) + 1

	buf.Reset()
	buf.WriteString("# Generated by internal/gen; do not edit.\n")
	buf.WriteString("apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: generated-catalog\n")
	buf.WriteString("  description: Synthetic catalog of " + strconv.Itoa(st.Entities) + " entities.\n")
	buf.WriteString("spec:\n  targets:\n")
	for _, f := range files {
		buf.WriteString("    - " + f + "\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "catalog-info.yaml"), buf.Bytes(), 0o644); err != nil {
		return st, fmt.Errorf("gen: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pipeline.hcl"), []byte(pipelineHCL), 0o644); err != nil {
		return st, fmt.Errorf("gen: %w", err)
	}
	return st, nil
}

// pipelineHCL has the shape of pipelines/example.hcl. It has no engine block,
// so that whoever runs the generated catalog chooses workers and batch size.
const pipelineHCL = `# Generated by internal/gen; do not edit.
pipeline "generated" {
  # Reads stay inside the generated folder.
  allow_files = ["."]

  location "file" {
    target = "./catalog-info.yaml"
  }

  stage "placeholders" {}
  stage "builtin-kinds" {}
  stage "file" {}
  stage "url" {}
  stage "annotate-location" {}
}
`
