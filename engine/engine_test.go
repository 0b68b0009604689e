package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/catalog-pipeline/pipeline/catalog"
	"github.com/catalog-pipeline/pipeline/engine"
	"github.com/catalog-pipeline/pipeline/store"
)

// memReader reads "mem" locations from an in-memory map, so engine tests
// need no files. A target maps to YAML-free entity maps, or to an error.
type memReader struct {
	mu      sync.Mutex
	name    string
	sources map[string][]map[string]any
	fail    map[string]error
	// emitErr makes the reader emit an error besides the entities.
	emitErr map[string]string
	// cacheReads makes the reader count its reads in its stage cache.
	cacheReads bool
}

func (m *memReader) Name() string { return m.name }

func (m *memReader) ReadLocation(_ context.Context, loc engine.Location, optional bool, emit engine.Emit, cache engine.Cache) (bool, error) {
	if loc.Type != "mem" {
		return false, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail[loc.Target]; err != nil {
		return true, err
	}
	if msg := m.emitErr[loc.Target]; msg != "" {
		emit(engine.ErrorResult{Location: loc, Err: engine.InputError("%s", msg)})
	}
	docs, ok := m.sources[loc.Target]
	if !ok && !optional {
		return true, engine.NotFoundError("mem %s does not exist", loc.Target)
	}
	for _, d := range docs {
		b, _ := json.Marshal(d)
		e := &catalog.Entity{}
		if err := json.Unmarshal(b, e); err != nil {
			return true, err
		}
		emit(engine.EntityResult{Location: loc, Entity: e})
	}
	if m.cacheReads {
		n, _ := cache.Get("reads")
		f, _ := n.(float64)
		cache.Set("reads", f+1)
	}
	return true, nil
}

// tagger appends its name to the "order" annotation in pre-processing, to
// prove stage order; it can be told to fail.
type tagger struct {
	name string
	fail bool
}

func (t *tagger) Name() string { return t.name }

func (t *tagger) PreProcessEntity(_ context.Context, e *catalog.Entity, _ engine.Location, _ engine.Emit, _ engine.Cache) (*catalog.Entity, error) {
	if t.fail {
		return nil, errors.New("tagger broke")
	}
	if e.Kind == "Component" {
		order := e.Annotation("test/order")
		if order != "" {
			order += ","
		}
		e.SetAnnotation("test/order", order+t.name)
	}
	return e, nil
}

// acceptAll validates every kind but Unknown and emits an ownedBy relation
// for components with spec.owner.
type acceptAll struct{}

func (acceptAll) Name() string { return "accept" }

func (acceptAll) ValidateEntityKind(_ context.Context, e *catalog.Entity) (bool, error) {
	return e.Kind != "Unknown", nil
}

func (acceptAll) PostProcessEntity(_ context.Context, e *catalog.Entity, _ engine.Location, emit engine.Emit, _ engine.Cache) (*catalog.Entity, error) {
	if owner, ok := e.Spec["owner"].(string); ok {
		target, err := catalog.ParseRef(owner, catalog.RefDefaults{Kind: "Group", Namespace: e.Metadata.Namespace})
		if err != nil {
			return nil, err
		}
		emit(engine.RelationResult{Source: e.Ref(), Type: "ownedBy", Target: target})
		emit(engine.RelationResult{Source: target, Type: "ownerOf", Target: e.Ref()})
	}
	return e, nil
}

func component(name, owner string) map[string]any {
	return map[string]any{"apiVersion": "backstage.io/v1alpha1", "kind": "Component",
		"metadata": map[string]any{"name": name},
		"spec":     map[string]any{"type": "service", "owner": owner}}
}

func group(name string) map[string]any {
	return map[string]any{"apiVersion": "backstage.io/v1alpha1", "kind": "Group",
		"metadata": map[string]any{"name": name}, "spec": map[string]any{"type": "team"}}
}

func location(name string, targets ...string) map[string]any {
	ts := make([]any, len(targets))
	for i, t := range targets {
		ts[i] = t
	}
	return map[string]any{"apiVersion": "backstage.io/v1alpha1", "kind": "Location",
		"metadata": map[string]any{"name": name}, "spec": map[string]any{"type": "mem", "targets": ts}}
}

type fixture struct {
	t      *testing.T
	db     *store.DB
	reader *memReader
	tags   []*tagger
	cfg    *engine.Config
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "c.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	r := &memReader{name: "mem", sources: map[string][]map[string]any{
		"root":     {location("tree", "teams", "services")},
		"teams":    {group("rockets"), group("boosters")},
		"services": {component("orders", "rockets"), component("billing", "boosters")},
	}, fail: map[string]error{}, emitErr: map[string]string{}}
	tags := []*tagger{{name: "first"}, {name: "second"}}
	cfg := &engine.Config{Engine: engine.DefaultSettings(), Pipelines: []*engine.Pipeline{{
		Name:      "test",
		Locations: []engine.RootLocation{{Location: engine.Location{Type: "mem", Target: "root"}}},
		Stages:    []engine.Stage{tags[0], tags[1], r, acceptAll{}},
	}}}
	cfg.Engine.Workers = 2
	cfg.Engine.BatchSize = 2 // several commits even for a small tree
	return &fixture{t: t, db: db, reader: r, tags: tags, cfg: cfg}
}

func (f *fixture) run() engine.RunStats {
	f.t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := engine.New(f.cfg, f.db, log).RunOnce(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	return st
}

func (f *fixture) final(ref string) map[string]any {
	f.t.Helper()
	body, _, err := f.db.Final(ref)
	if err != nil {
		f.t.Fatal(err)
	}
	if body == nil {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		f.t.Fatal(err)
	}
	return m
}

func annotations(m map[string]any) map[string]any {
	md, _ := m["metadata"].(map[string]any)
	a, _ := md["annotations"].(map[string]any)
	return a
}

func relations(m map[string]any) []string {
	var out []string
	rs, _ := m["relations"].([]any)
	for _, r := range rs {
		rm := r.(map[string]any)
		out = append(out, fmt.Sprint(rm["type"], " ", rm["targetRef"]))
	}
	return out
}

func statusMessages(m map[string]any) []string {
	var out []string
	st, _ := m["status"].(map[string]any)
	items, _ := st["items"].([]any)
	for _, it := range items {
		out = append(out, it.(map[string]any)["message"].(string))
	}
	return out
}

func TestRunOnceWalksToFixpoint(t *testing.T) {
	f := newFixture(t)
	st := f.run()
	// root Location + "tree" Location + 2 groups + 2 components.
	if st.Processed != 6 || st.Created != 6 {
		t.Fatalf("processed %d created %d, want 6 and 6 (%+v)", st.Processed, st.Created, st)
	}
	rootRef := engine.LocationEntity(engine.Location{Type: "mem", Target: "root"}, false).Ref().String()
	for _, ref := range []string{rootRef, "location:default/tree", "group:default/rockets", "group:default/boosters", "component:default/orders", "component:default/billing"} {
		if f.final(ref) == nil {
			t.Errorf("%s is not served", ref)
		}
	}
	orders := f.final("component:default/orders")
	a := annotations(orders)
	if got := a["test/order"]; got != "first,second" {
		t.Errorf("stage order annotation = %v, want first,second", got)
	}
	if got := a[catalog.AnnotationManagedByLocation]; got != "mem:services" {
		t.Errorf("managed-by-location = %v, want mem:services", got)
	}
	if got := a[catalog.AnnotationManagedByOriginLocation]; got != "mem:root" {
		t.Errorf("managed-by-origin-location = %v, want mem:root", got)
	}
	if got := relations(orders); len(got) != 1 || got[0] != "ownedBy group:default/rockets" {
		t.Errorf("orders relations = %v", got)
	}
	// The reverse relation is emitted by orders but served on the group.
	if got := relations(f.final("group:default/rockets")); len(got) != 1 || got[0] != "ownerOf component:default/orders" {
		t.Errorf("rockets relations = %v", got)
	}
	md := orders["metadata"].(map[string]any)
	if md["uid"] == "" || md["etag"] == "" {
		t.Errorf("uid/etag missing: %v", md)
	}
}

func TestSecondRunWritesNothing(t *testing.T) {
	f := newFixture(t)
	f.run()
	before := f.final("component:default/orders")
	st := f.run()
	if st.Written != 0 || st.Unchanged != 6 || st.Stitched != 0 {
		t.Fatalf("second run: written %d unchanged %d stitched %d, want 0, 6, 0", st.Written, st.Unchanged, st.Stitched)
	}
	after := f.final("component:default/orders")
	if before["metadata"].(map[string]any)["etag"] != after["metadata"].(map[string]any)["etag"] {
		t.Errorf("etag changed although nothing did")
	}
}

func TestFailedStageKeepsLastGood(t *testing.T) {
	f := newFixture(t)
	f.run()
	f.tags[1].fail = true
	st := f.run()
	if st.Failed == 0 {
		t.Fatalf("no failure recorded: %+v", st)
	}
	orders := f.final("component:default/orders")
	if orders == nil {
		t.Fatal("the last good entity was dropped")
	}
	if got := annotations(orders)["test/order"]; got != "first,second" {
		t.Errorf("served entity changed: %v", got)
	}
	msgs := statusMessages(orders)
	if len(msgs) != 1 || !strings.Contains(msgs[0], `stage "second" failed in preProcessEntity: tagger broke`) {
		t.Errorf("status = %v", msgs)
	}
	// Recovering clears the error.
	f.tags[1].fail = false
	f.run()
	if msgs := statusMessages(f.final("component:default/orders")); len(msgs) != 0 {
		t.Errorf("status after recovery = %v", msgs)
	}
}

func TestReadErrorKeepsChildren(t *testing.T) {
	f := newFixture(t)
	f.run()
	// services fails outright: the tree keeps its children.
	f.reader.fail["services"] = errors.New("upstream down")
	f.run()
	if f.final("component:default/orders") == nil {
		t.Fatal("children of a failed read were dropped")
	}
	msgs := statusMessages(f.final("location:default/tree"))
	if len(msgs) != 1 || !strings.Contains(msgs[0], "upstream down") {
		t.Errorf("tree status = %v", msgs)
	}
	// An emitted error keeps old children even when they are not emitted.
	delete(f.reader.fail, "services")
	f.reader.sources["services"] = f.reader.sources["services"][:1]
	f.reader.emitErr["services"] = "bad document at services:3"
	f.run()
	if f.final("component:default/billing") == nil {
		t.Error("billing was removed although its source reported an error")
	}
	// A clean read without billing removes it.
	delete(f.reader.emitErr, "services")
	st := f.run()
	if f.final("component:default/billing") != nil || st.Deleted != 1 {
		t.Errorf("billing still served after its source dropped it (deleted %d)", st.Deleted)
	}
}

func TestRemovedLocationPrunesSubtree(t *testing.T) {
	f := newFixture(t)
	f.run()
	f.reader.sources["root"] = []map[string]any{location("tree", "teams")}
	st := f.run()
	if st.Deleted != 2 {
		t.Errorf("deleted %d, want the 2 components", st.Deleted)
	}
	f.cfg.Pipelines[0].Locations = nil
	f.run()
	sum, err := f.db.Summarize()
	if err != nil {
		t.Fatal(err)
	}
	if sum.States != 0 {
		t.Errorf("%d entities left after removing the only location", sum.States)
	}
}

func TestUnknownKindAndInvalidEntity(t *testing.T) {
	f := newFixture(t)
	f.reader.sources["services"] = append(f.reader.sources["services"],
		map[string]any{"apiVersion": "x/v1", "kind": "Unknown", "metadata": map[string]any{"name": "thing"}},
		map[string]any{"apiVersion": "backstage.io/v1alpha1", "kind": "Component", "metadata": map[string]any{"name": "Bad Name!"}, "spec": map[string]any{}},
	)
	st := f.run()
	if st.Failed != 2 {
		t.Errorf("failed %d, want 2", st.Failed)
	}
	var got []string
	if err := f.db.ForEachError(func(s *store.State) error {
		got = append(got, s.Ref+" "+s.Errors[0].Name+" "+s.Errors[0].Message)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{"component:default/bad name!", "unknown:default/thing"}
	if len(got) != 2 || !strings.HasPrefix(got[0], want[0]+" InputError") || !strings.Contains(got[0], "metadata.name") ||
		!strings.HasPrefix(got[1], want[1]+" InputError") || !strings.Contains(got[1], "no stage recognized") {
		t.Errorf("errors = %q", got)
	}
	if f.final("component:default/orders") == nil {
		t.Error("a valid sibling of invalid entities is missing")
	}
}

func TestConflictFirstClaimantWins(t *testing.T) {
	f := newFixture(t)
	// Within one read, a ref emitted twice keeps the first.
	f.reader.sources["services"] = append(f.reader.sources["services"], component("orders", "boosters"))
	f.run()
	if got := relations(f.final("component:default/orders")); len(got) != 1 || got[0] != "ownedBy group:default/rockets" {
		t.Errorf("orders relations = %v", got)
	}
	if msgs := statusMessages(f.final("location:default/tree")); len(msgs) != 1 || !strings.Contains(msgs[0], "ConflictError") {
		t.Errorf("tree status = %v", msgs)
	}

	// Across locations, the first location key that claimed the ref owns it.
	f = newFixture(t)
	f.run()
	f.reader.sources["root"] = append(f.reader.sources["root"], location("tree2", "copy"))
	f.reader.sources["copy"] = []map[string]any{component("orders", "boosters")}
	st := f.run()
	if len(st.Conflicts) != 1 || st.Conflicts[0].ExistingKey != "mem:services" || st.Conflicts[0].NewKey != "mem:copy" {
		t.Fatalf("conflicts = %+v", st.Conflicts)
	}
	if got := relations(f.final("component:default/orders")); len(got) != 1 || got[0] != "ownedBy group:default/rockets" {
		t.Errorf("orders was overwritten: %v", got)
	}
	msgs := statusMessages(f.final("location:default/tree2"))
	if len(msgs) != 1 || !strings.Contains(msgs[0], "ConflictError") || !strings.Contains(msgs[0], "mem:services") {
		t.Errorf("tree2 status = %v", msgs)
	}
}

func TestStageCacheCarriesOver(t *testing.T) {
	f := newFixture(t)
	reads := func() any {
		t.Helper()
		st, err := f.db.State("location:default/tree")
		if err != nil || st == nil {
			t.Fatal(st, err)
		}
		var c map[string]map[string]map[string]any
		if err := json.Unmarshal(st.Cache, &c); err != nil {
			t.Fatal(err)
		}
		return c["mem"]["services"]["reads"]
	}
	f.reader.cacheReads = true
	f.run()
	if got := reads(); got != 1.0 {
		t.Fatalf("after run 1 reads = %v, want 1", got)
	}
	// A stage that writes nothing keeps its previous values.
	f.reader.cacheReads = false
	f.run()
	if got := reads(); got != 1.0 {
		t.Fatalf("after run 2 reads = %v, want 1 (carried over)", got)
	}
	// Values written in one run are visible in the next, per target.
	f.reader.cacheReads = true
	f.run()
	if got := reads(); got != 2.0 {
		t.Fatalf("after run 3 reads = %v, want 2", got)
	}
}

// set replaces the documents of a mem target (an empty list is an existing,
// empty source); safe while an engine is serving.
func (m *memReader) set(target string, docs ...map[string]any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if docs == nil {
		docs = []map[string]any{}
	}
	m.sources[target] = docs
}

// remove deletes a mem target: reading it answers NotFoundError, as a
// deleted file does.
func (m *memReader) remove(target string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.sources, target)
}

// setFail makes reading target fail with err (nil clears it).
func (m *memReader) setFail(target string, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err == nil {
		delete(m.fail, target)
		return
	}
	m.fail[target] = err
}

// engine builds an engine on the fixture's configuration and store, with
// logs discarded.
func (f *fixture) engine() *engine.Engine {
	return engine.New(f.cfg, f.db, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// etag is the served etag of ref ("" when not served).
func (f *fixture) etag(ref string) string {
	f.t.Helper()
	_, etag, err := f.db.Final(ref)
	if err != nil {
		f.t.Fatal(err)
	}
	return etag
}

// state is the processing state of ref (nil when unknown).
func (f *fixture) state(ref string) *store.State {
	f.t.Helper()
	st, err := f.db.State(ref)
	if err != nil {
		f.t.Fatal(err)
	}
	return st
}
