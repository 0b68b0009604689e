package gen

import (
	"bytes"
	"strconv"
	"strings"
)

// writer renders entities as YAML by hand: going through a YAML encoder
// would cost most of the generation time for output whose shape is fixed.
// Every value written is either a plain scalar made of [a-z0-9.:/+#-] (names,
// refs, types, tags) or goes through quote.
type writer struct {
	b *bytes.Buffer
	c *catalog
}

const header = "apiVersion: backstage.io/v1alpha1\n"

func (w *writer) s(parts ...string) {
	for _, p := range parts {
		w.b.WriteString(p)
	}
}

// quote renders s as a YAML double-quoted scalar.
func quote(s string) string {
	if !strings.ContainsAny(s, "\"\\") {
		return "\"" + s + "\""
	}
	return "\"" + strings.NewReplacer("\\", "\\\\", "\"", "\\\"").Replace(s) + "\""
}

// title capitalises the first letter of an ASCII word.
func title(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

// words turns a name such as fuel-ledger-service into "Fuel ledger service".
func words(name string) string {
	return title(strings.ReplaceAll(name, "-", " "))
}

func (w *writer) list(key string, items []string) {
	if len(items) == 0 {
		return
	}
	w.s("  ", key, ":\n")
	for _, it := range items {
		w.s("    - ", it, "\n")
	}
}

func (w *writer) groupNames(idx []int) []string {
	out := make([]string, len(idx))
	for i, g := range idx {
		out[i] = w.c.groups[g].name
	}
	return out
}

func (w *writer) group(i int) {
	g := &w.c.groups[i]
	w.s(header, "kind: Group\nmetadata:\n  name: ", g.name, "\n")
	w.s("  description: ", quote(words(g.name)+" "+g.typ+" of Acme Rockets."), "\n")
	w.s("spec:\n  type: ", g.typ, "\n")
	w.s("  profile:\n    displayName: ", quote(words(g.name)), "\n    email: ", g.name, "@acme-rockets.example\n")
	if g.parent >= 0 {
		w.s("  parent: ", w.c.groups[g.parent].name, "\n")
	}
	if len(g.children) == 0 {
		w.s("  children: []\n")
	} else {
		w.list("children", w.groupNames(g.children))
	}
}

func (w *writer) user(i int) {
	u := &w.c.users[i]
	w.s(header, "kind: User\nmetadata:\n  name: ", u.name, "\n")
	w.s("spec:\n  profile:\n    displayName: ", quote(u.display), "\n    email: ", u.name, "@acme-rockets.example\n")
	w.list("memberOf", w.groupNames(u.memberOf))
}

func (w *writer) domain(i int) {
	d := &w.c.domains[i]
	w.s(header, "kind: Domain\nmetadata:\n  name: ", d.name, "\n")
	w.s("  description: ", quote("Everything about "+strings.ReplaceAll(d.name, "-", " ")+"."), "\n")
	w.s("spec:\n  owner: ", w.c.groups[d.owner].name, "\n")
}

func (w *writer) system(i int) {
	s := &w.c.systems[i]
	w.s(header, "kind: System\nmetadata:\n  name: ", s.name, "\n")
	w.s("  description: ", quote(words(s.name)+"."), "\n")
	w.s("spec:\n  owner: ", w.c.groups[s.owner].name, "\n  domain: ", w.c.domains[s.domain].name, "\n")
}

func (w *writer) component(i int) {
	c := &w.c.components[i]
	w.s(header, "kind: Component\nmetadata:\n  name: ", c.name, "\n")
	w.s("  description: ", quote(words(c.name)+", part of "+w.c.systems[c.system].name+"."), "\n")
	w.list("tags", c.tags)
	w.s("  annotations:\n    github.com/project-slug: acme-rockets/", c.name, "\n")
	if i%4 == 0 {
		w.s("  links:\n    - url: https://", c.name, ".internal.acme-rockets.example/\n      title: Dashboard\n      icon: dashboard\n")
	}
	w.s("spec:\n  type: ", c.typ, "\n  lifecycle: ", c.lifecycle, "\n")
	w.s("  owner: ", w.c.groups[c.owner].name, "\n  system: ", w.c.systems[c.system].name, "\n")
	if len(c.provides) > 0 {
		w.s("  providesApis:\n")
		for _, a := range c.provides {
			w.s("    - ", w.c.apis[a].name, "\n")
		}
	}
	if len(c.consumes) > 0 {
		w.s("  consumesApis:\n")
		for _, a := range c.consumes {
			w.s("    - ", w.c.apis[a].name, "\n")
		}
	}
	if len(c.dependsOn) > 0 {
		// dependsOn has no default kind: refs must be complete.
		w.s("  dependsOn:\n")
		for _, d := range c.dependsOn {
			w.s("    - component:default/", w.c.components[d].name, "\n")
		}
	}
}

func (w *writer) api(i int) {
	a := &w.c.apis[i]
	w.s(header, "kind: API\nmetadata:\n  name: ", a.name, "\n")
	w.s("  description: ", quote(strings.Replace(words(a.name), " api", " API", 1)+"."), "\n")
	w.s("  tags:\n    - rest\n")
	w.s("spec:\n  type: openapi\n  lifecycle: production\n")
	w.s("  owner: ", w.c.groups[a.owner].name, "\n  system: ", w.c.systems[a.system].name, "\n")
	// A small but well-formed OpenAPI document, inline, so that ingesting
	// the generated catalog reads no file besides the entity files.
	res := a.noun
	w.s("  definition: |\n")
	w.s("    openapi: 3.0.3\n    info:\n      title: ", quote(strings.Replace(words(a.name), " api", " API", 1)), "\n")
	w.s("      version: ", strconv.Itoa(a.version), ".0.0\n")
	w.s("    paths:\n      /", res, ":\n        get:\n          summary: List ", res, "\n")
	w.s("          responses:\n            \"200\":\n              description: OK\n")
	w.s("      /", res, "/{id}:\n        get:\n          summary: Get one of ", res, "\n")
	w.s("          parameters:\n            - name: id\n              in: path\n              required: true\n              schema:\n                type: string\n")
	w.s("          responses:\n            \"200\":\n              description: OK\n            \"404\":\n              description: Not found\n")
}

func (w *writer) resource(i int) {
	r := &w.c.resources[i]
	w.s(header, "kind: Resource\nmetadata:\n  name: ", r.name, "\n")
	w.s("  description: ", quote(words(r.name)+" database."), "\n")
	w.s("  tags:\n    - postgres\n")
	w.s("spec:\n  type: database\n  owner: ", w.c.groups[r.owner].name, "\n  system: ", w.c.systems[r.system].name, "\n")
}

// Word lists for names. They hold no digits (see catalog.unique) and only
// characters that are valid in entity names and plain YAML scalars.
var (
	areaWords = []string{
		"launch", "orbit", "payload", "fuel", "telemetry", "guidance", "booking",
		"billing", "crew", "ground", "mission", "weather", "range", "recovery",
		"avionics", "thermal", "tracking", "inventory", "supply", "safety",
		"comms", "docking", "navigation", "propellant", "manifest", "pad",
	}
	teamWords = []string{
		"platform", "core", "ops", "data", "web", "infra", "tools", "insights",
		"reliability", "experience", "systems", "integration",
	}
	systemWords = []string{"platform", "suite", "hub", "control", "pipeline", "network", "services"}
	nounWords   = []string{
		"ledger", "events", "metrics", "orders", "slots", "schedules", "alerts",
		"sensors", "routes", "quotes", "invoices", "profiles", "assets", "checks",
		"reports", "frames", "windows", "vehicles", "parts", "permits",
	}
	serviceWords = []string{"service", "worker", "scheduler", "gateway", "processor", "sync", "collector"}
	websiteWords = []string{"portal", "dashboard", "console", "site"}
	libraryWords = []string{"lib", "sdk", "client", "kit"}
	langTags     = []string{"go", "java", "kotlin", "python", "typescript", "rust", "c++"}
	extraTags    = []string{"grpc", "kafka", "postgres", "graphql", "rest", "flight-critical", "pci"}
	firstNames   = []string{
		"ada", "amara", "ben", "carla", "chen", "dara", "diego", "elena", "emeka",
		"farah", "grace", "hana", "ines", "ivan", "jonas", "kenji", "lea", "lucas",
		"maya", "mei", "nadia", "noah", "olu", "omar", "priya", "quinn", "rosa",
		"sami", "sofia", "tariq", "tomas", "uma", "vera", "wei", "yara", "zoe",
	}
	lastNames = []string{
		"adeyemi", "bankole", "costa", "demir", "dubois", "eriksen", "fuentes",
		"garcia", "haddad", "ito", "jensen", "kowalski", "lindqvist", "marchetti",
		"nakamura", "nwosu", "okafor", "petrov", "quispe", "raman", "santos",
		"tanaka", "umarov", "vega", "watanabe", "xu", "yilmaz", "zhang",
	}
)
