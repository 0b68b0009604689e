package engine_test

// Tests of the ingestion loop as a service (issue 4): scheduling with
// interval and jitter, write avoidance, restitching, orphans, eager delete,
// conflicts and takeover, keep-last-good, Serve and Reload.
//
// No test asserts a duration: schedules are checked against a frozen clock
// (Engine.SetClock), and Serve is observed by polling with generous
// deadlines.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/catalog-pipeline/pipeline/catalog"
	"github.com/catalog-pipeline/pipeline/engine"
	"github.com/catalog-pipeline/pipeline/store"
)

// Refs of the default fixture.
const (
	treeRef     = "location:default/tree"
	rocketsRef  = "group:default/rockets"
	boostersRef = "group:default/boosters"
	ordersRef   = "component:default/orders"
	billingRef  = "component:default/billing"
)

func rootRefOf(target string) string {
	return engine.LocationEntity(engine.Location{Type: "mem", Target: target}, false).Ref().String()
}

var fixtureRefs = []string{rootRefOf("root"), treeRef, rocketsRef, boostersRef, ordersRef, billingRef}

// never is the next-update time of entities whose refresh is off.
var never = time.Unix(0, math.MaxInt64)

// clock is a controllable clock; it only moves when told to.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// breaker fails pre-processing of the entities whose names it holds.
type breaker struct {
	mu    sync.Mutex
	names map[string]bool
}

func (b *breaker) Name() string { return "breaker" }

func (b *breaker) set(name string, broken bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.names == nil {
		b.names = map[string]bool{}
	}
	b.names[name] = broken
}

func (b *breaker) PreProcessEntity(_ context.Context, e *catalog.Entity, _ engine.Location, _ engine.Emit, _ engine.Cache) (*catalog.Entity, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.names[e.Metadata.Name] {
		return nil, errors.New("breaker broke " + e.Metadata.Name)
	}
	return e, nil
}

// clocked is an engine on the fixture with a frozen clock.
func (f *fixture) clocked() (*engine.Engine, *clock) {
	c := newClock()
	e := f.engine()
	e.SetClock(c.Now)
	return e, c
}

func runOnce(t *testing.T, e *engine.Engine) engine.RunStats {
	t.Helper()
	st, err := e.RunOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// step processes, in one batch, what is due at the engine's "now" and
// commits it: one turn of the loop, without RunOnce making everything due.
func step(t *testing.T, e *engine.Engine, db *store.DB, now time.Time) store.CommitStats {
	t.Helper()
	batch, err := db.Claim(now, 1000, nil)
	if err != nil {
		t.Fatal(err)
	}
	outs := make([]*store.Outcome, len(batch))
	for i, st := range batch {
		outs[i] = e.Process(context.Background(), st)
	}
	cs, err := db.Commit(outs)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func nextUpdate(t *testing.T, db *store.DB, ref string) time.Time {
	t.Helper()
	at, ok, err := db.NextUpdate(ref)
	if err != nil || !ok {
		t.Fatalf("next update of %s: ok=%v err=%v", ref, ok, err)
	}
	return at
}

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// serve starts e.Serve; the returned stop cancels it and fails the test
// unless Serve returns nil within a few seconds.
func serve(t *testing.T, e *engine.Engine) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Serve(ctx) }()
	stopped := false
	stop = func() {
		t.Helper()
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve returned %v after cancel, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Serve did not return within 5 s of cancel")
		}
	}
	t.Cleanup(stop)
	select {
	case <-e.CaughtUp():
	case err := <-done:
		t.Fatalf("Serve returned before catching up: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not catch up within 10 s")
	}
	return stop
}

func managedBy(m map[string]any) any { return annotations(m)[catalog.AnnotationManagedByLocation] }

func hasMessage(msgs []string, parts ...string) bool {
	for _, m := range msgs {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(m, p)
		}
		if ok {
			return true
		}
	}
	return false
}

// 1. Interval and jitter.

func TestScheduleIntervalJitterAndOverrides(t *testing.T) {
	f := newFixture(t)
	f.cfg.Engine.Refresh = engine.Refresh{Interval: 100 * time.Second, Jitter: 50 * time.Second}
	f.reader.set("fastroot", group("fast-team"))
	f.reader.set("slowroot", group("slow-team"))
	f.cfg.Pipelines = append(f.cfg.Pipelines, &engine.Pipeline{
		Name:    "fast",
		Refresh: &engine.Refresh{Interval: 30 * time.Second, Jitter: 10 * time.Second},
		Locations: []engine.RootLocation{
			{Location: engine.Location{Type: "mem", Target: "fastroot"}},
			{Location: engine.Location{Type: "mem", Target: "slowroot"}, Refresh: &engine.Refresh{Interval: 5 * time.Minute}},
		},
		Stages: []engine.Stage{f.reader, acceptAll{}},
	})
	e, c := f.clocked()
	now := c.Now()
	if st := runOnce(t, e); st.Processed != 10 {
		t.Fatalf("processed %d, want 10", st.Processed)
	}
	within := func(refs []string, lo, hi time.Duration) {
		t.Helper()
		distinct := map[time.Time]bool{}
		for _, ref := range refs {
			at := nextUpdate(t, f.db, ref)
			distinct[at] = true
			if at.Before(now.Add(lo)) || !at.Before(now.Add(hi)) {
				t.Errorf("%s is due at now+%v, want in [%v, %v)", ref, at.Sub(now), lo, hi)
			}
		}
		if hi-lo > time.Nanosecond && len(refs) > 2 && len(distinct) < 2 {
			t.Errorf("%d entities all drew the same next update: no jitter", len(refs))
		}
	}
	// The engine's schedule.
	within(fixtureRefs, 100*time.Second, 150*time.Second)
	// The pipeline's own.
	within([]string{rootRefOf("fastroot"), "group:default/fast-team"}, 30*time.Second, 40*time.Second)
	// The location's, inherited by what it emits; no jitter is no jitter.
	for _, ref := range []string{rootRefOf("slowroot"), "group:default/slow-team"} {
		if at := nextUpdate(t, f.db, ref); !at.Equal(now.Add(5 * time.Minute)) {
			t.Errorf("%s is due at now+%v, want exactly 5m", ref, at.Sub(now))
		}
	}
}

func TestScheduleOffIsNeverDueUntilChanged(t *testing.T) {
	f := newFixture(t)
	f.cfg.Pipelines[0].Refresh = &engine.Refresh{Off: true}
	e, c := f.clocked()
	runOnce(t, e)
	for _, ref := range fixtureRefs {
		if at := nextUpdate(t, f.db, ref); !at.Equal(never) {
			t.Errorf("%s is due at %v, want never", ref, at)
		}
	}
	// Nothing is due, however late it gets.
	c.Advance(1000 * time.Hour)
	if cs := step(t, e, f.db, c.Now()); cs.Written+cs.Unchanged != 0 {
		t.Fatalf("something was due with refresh off: %+v", cs)
	}

	// The source changes and its Location is refreshed explicitly: what it
	// emits anew with different content is due at once, the rest is not.
	f.reader.set("services", component("orders", "boosters"), component("billing", "boosters"))
	if err := e.Refresh(treeRef); err != nil {
		t.Fatal(err)
	}
	cs := step(t, e, f.db, c.Now())
	if cs.Written != 1 || cs.Unchanged != 1 { // the tree changed, the root did not
		t.Fatalf("refresh step: %+v, want the tree written and the root unchanged", cs)
	}
	if at := nextUpdate(t, f.db, ordersRef); at.After(c.Now()) {
		t.Errorf("changed orders is due at %v, want at once", at)
	}
	for _, ref := range []string{treeRef, billingRef, rocketsRef} {
		if at := nextUpdate(t, f.db, ref); !at.Equal(never) {
			t.Errorf("%s is due at %v, want never", ref, at)
		}
	}
	if cs := step(t, e, f.db, c.Now()); cs.Written != 1 {
		t.Fatalf("orders step: %+v", cs)
	}
	if got := relations(f.final(ordersRef)); !slices.Equal(got, []string{"ownedBy group:default/boosters"}) {
		t.Errorf("orders relations = %v", got)
	}
	if at := nextUpdate(t, f.db, ordersRef); !at.Equal(never) {
		t.Errorf("orders is due at %v after processing, want never", at)
	}
}

func TestRetryBackoff(t *testing.T) {
	f := newFixture(t)
	f.cfg.Engine.Refresh = engine.Refresh{Interval: 30 * time.Second, Jitter: 10 * time.Second}
	b := &breaker{}
	f.cfg.Pipelines[0].Stages = append(f.cfg.Pipelines[0].Stages, b)
	e, c := f.clocked()
	runOnce(t, e)
	b.set("orders", true)
	// 5 s, doubling, capped at the interval (not interval+jitter).
	for i, want := range []time.Duration{5, 10, 20, 30, 30} {
		c.Advance(time.Minute) // backoff is counted from the failed run
		st := runOnce(t, e)
		if st.Failed != 1 {
			t.Fatalf("run %d: failed %d, want 1", i, st.Failed)
		}
		if got := nextUpdate(t, f.db, ordersRef).Sub(c.Now()); got != want*time.Second {
			t.Errorf("failure %d: retry in %v, want %v", i+1, got, want*time.Second)
		}
	}
	if n := f.state(ordersRef).Failures; n != 5 {
		t.Errorf("failures = %d, want 5", n)
	}
	// Recovery resets the count and returns to the interval.
	b.set("orders", false)
	runOnce(t, e)
	if got := nextUpdate(t, f.db, ordersRef).Sub(c.Now()); got < 30*time.Second || got >= 40*time.Second {
		t.Errorf("after recovery due in %v, want [30s, 40s)", got)
	}
	if n := f.state(ordersRef).Failures; n != 0 {
		t.Errorf("failures after recovery = %d, want 0", n)
	}
}

func TestRetryBackoffWithRefreshOff(t *testing.T) {
	f := newFixture(t)
	f.cfg.Engine.Refresh = engine.Refresh{Off: true}
	b := &breaker{}
	f.cfg.Pipelines[0].Stages = append(f.cfg.Pipelines[0].Stages, b)
	e, c := f.clocked()
	runOnce(t, e)
	b.set("orders", true)
	// A failure is retried even when periodic refresh is off, with the
	// backoff capped at 10 minutes (engine.go's maxBackoff).
	for i, want := range []time.Duration{5, 10, 20, 40, 80, 160, 320, 600, 600} {
		runOnce(t, e)
		if got := nextUpdate(t, f.db, ordersRef).Sub(c.Now()); got != want*time.Second {
			t.Errorf("failure %d: retry in %v, want %v", i+1, got, want*time.Second)
		}
	}
}

// 2. Write avoidance.

func TestUnchangedPassWritesOnlyBatchCommits(t *testing.T) {
	f := newFixture(t)
	var docs []map[string]any
	for i := range 30 {
		docs = append(docs, component(fmt.Sprintf("svc-%02d", i), "rockets"))
	}
	f.reader.set("services", docs...)
	f.cfg.Engine.BatchSize = 10
	e, _ := f.clocked()
	const n = 34 // 2 Locations, 2 groups, 30 components
	if st := runOnce(t, e); st.Created != n {
		t.Fatalf("created %d, want %d", st.Created, n)
	}
	var refs []string
	if err := f.db.ForEachFinal("", func(ref string, _ []byte) error {
		refs = append(refs, ref)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	etags := map[string]string{}
	states := map[string]*store.State{}
	for _, ref := range refs {
		etags[ref] = f.etag(ref)
		states[ref] = f.state(ref)
	}
	if len(etags) != n {
		t.Fatalf("%d served, want %d", len(etags), n)
	}

	before := f.db.WriteTxCount()
	st := runOnce(t, e)
	writes := f.db.WriteTxCount() - before
	if st.Processed != n || st.Unchanged != n || st.Written != 0 || st.Stitched != 0 ||
		st.Created != 0 || st.Deleted != 0 || st.Stale != 0 || len(st.Conflicts) != 0 {
		t.Fatalf("unchanged pass: %+v", st)
	}
	// One transaction to sync the roots, one to make everything due, and
	// one per batch of 10 — not one per entity.
	if want := 2 + (n+9)/10; writes != want {
		t.Errorf("%d write transactions for %d unchanged entities, want %d", writes, n, want)
	}
	for ref, etag := range etags {
		if got := f.etag(ref); got != etag {
			t.Errorf("%s: etag changed from %s to %s", ref, etag, got)
		}
		st := f.state(ref)
		// Only the next refresh time moved, and that lives outside the state.
		if !reflect.DeepEqual(st, states[ref]) {
			t.Errorf("%s: state changed on an unchanged pass", ref)
		}
	}
}

func TestUnchangedParentDoesNotTouchChildren(t *testing.T) {
	f := newFixture(t)
	e, c := f.clocked()
	runOnce(t, e)
	kids := []string{rocketsRef, boostersRef, ordersRef, billingRef}
	states := map[string]*store.State{}
	due := map[string]time.Time{}
	for _, ref := range kids {
		states[ref] = f.state(ref)
		due[ref] = nextUpdate(t, f.db, ref)
	}
	if _, err := f.db.MakeDue([]string{treeRef}); err != nil {
		t.Fatal(err)
	}
	before := f.db.WriteTxCount()
	cs := step(t, e, f.db, c.Now())
	if cs.Unchanged != 1 || cs.Written != 0 || cs.Stitched != 0 {
		t.Fatalf("tree step: %+v, want only the tree, unchanged", cs)
	}
	if w := f.db.WriteTxCount() - before; w != 1 {
		t.Errorf("%d write transactions, want the one commit", w)
	}
	for _, ref := range kids {
		if !reflect.DeepEqual(f.state(ref), states[ref]) {
			t.Errorf("%s: state touched by its unchanged parent", ref)
		}
		if at := nextUpdate(t, f.db, ref); !at.Equal(due[ref]) {
			t.Errorf("%s: rescheduled from %v to %v by its unchanged parent", ref, due[ref], at)
		}
	}
}

// 3. Relation change restitches both ends.

func TestRelationChangeRestitchesBothEnds(t *testing.T) {
	f := newFixture(t)
	e, _ := f.clocked()
	runOnce(t, e)
	rockets, boosters, billing := f.etag(rocketsRef), f.etag(boostersRef), f.etag(billingRef)
	uid := f.final(rocketsRef)["metadata"].(map[string]any)["uid"]

	f.reader.set("services", component("orders", "boosters"), component("billing", "boosters"))
	st := runOnce(t, e)
	// Orders itself, and the two groups whose relations it emits.
	if st.Stitched != 3 {
		t.Errorf("stitched %d, want 3 (orders, rockets, boosters)", st.Stitched)
	}
	if got := relations(f.final(ordersRef)); !slices.Equal(got, []string{"ownedBy group:default/boosters"}) {
		t.Errorf("orders relations = %v", got)
	}
	if got := relations(f.final(rocketsRef)); len(got) != 0 {
		t.Errorf("rockets kept %v", got)
	}
	if got := relations(f.final(boostersRef)); !slices.Equal(got, []string{"ownerOf component:default/billing", "ownerOf component:default/orders"}) {
		t.Errorf("boosters relations = %v", got)
	}
	if f.etag(rocketsRef) == rockets {
		t.Error("rockets' etag did not change although it lost a relation")
	}
	if f.etag(boostersRef) == boosters {
		t.Error("boosters' etag did not change although it gained a relation")
	}
	if f.etag(billingRef) != billing {
		t.Error("billing's etag changed although billing did not")
	}
	if got := f.final(rocketsRef)["metadata"].(map[string]any)["uid"]; got != uid {
		t.Errorf("rockets' uid changed from %v to %v", uid, got)
	}
	// The served etag is the one in the document.
	if got := f.final(boostersRef)["metadata"].(map[string]any)["etag"]; got != f.etag(boostersRef) {
		t.Errorf("etag in document %v, stored %v", got, f.etag(boostersRef))
	}
}

// 4. Orphans.

func TestOrphansDeleteSubtreeButSharedDescendants(t *testing.T) {
	f := newFixture(t)
	// tree2 also reads services, so orders and billing have two parents.
	f.reader.set("root", location("tree", "teams", "services"), location("tree2", "services"))
	e, _ := f.clocked()
	runOnce(t, e)
	ordersUID := f.state(ordersRef).UID
	if ps, _ := f.db.Parents(ordersRef); len(ps) != 2 {
		t.Fatalf("orders parents = %v, want tree and tree2", ps)
	}

	f.reader.set("root", location("tree2", "services"))
	st := runOnce(t, e)
	if st.Deleted != 3 {
		t.Errorf("deleted %d, want tree and its 2 groups", st.Deleted)
	}
	for _, ref := range []string{treeRef, rocketsRef, boostersRef} {
		if f.state(ref) != nil || f.final(ref) != nil {
			t.Errorf("%s survived although no parent emits it", ref)
		}
	}
	for _, ref := range []string{ordersRef, billingRef, "location:default/tree2"} {
		if f.final(ref) == nil {
			t.Errorf("%s was deleted although a parent still emits it", ref)
		}
		if _, ok := annotations(f.final(ref))[catalog.AnnotationOrphan]; ok {
			t.Errorf("%s is marked as an orphan", ref)
		}
	}
	if ps, _ := f.db.Parents(ordersRef); !slices.Equal(ps, []string{"location:default/tree2"}) {
		t.Errorf("orders parents = %v", ps)
	}
	if got := f.state(ordersRef).UID; got != ordersUID {
		t.Errorf("orders was recreated (uid %s, was %s)", got, ordersUID)
	}
	// Relations to deleted entities stay (dangling refs are allowed), but
	// nothing is served on what was deleted.
	if got := relations(f.final(ordersRef)); !slices.Equal(got, []string{"ownedBy group:default/rockets"}) {
		t.Errorf("orders relations = %v", got)
	}
	if sum, _ := f.db.Summarize(); sum.States != 4 || sum.Entities != 4 {
		t.Errorf("summary %+v, want 4 entities", sum)
	}
}

func TestOrphansKeepAnnotates(t *testing.T) {
	f := newFixture(t)
	f.cfg.Engine.Orphans = engine.OrphansKeep
	e, _ := f.clocked()
	runOnce(t, e)
	if _, ok := annotations(f.final(treeRef))[catalog.AnnotationOrphan]; ok {
		t.Fatal("tree is an orphan before anything changed")
	}

	f.reader.set("root")
	st := runOnce(t, e)
	if st.Deleted != 0 {
		t.Errorf("deleted %d with orphans kept", st.Deleted)
	}
	tree := f.final(treeRef)
	if tree == nil {
		t.Fatal("the orphaned tree is not served")
	}
	if got := annotations(tree)[catalog.AnnotationOrphan]; got != "true" {
		t.Errorf("tree orphan annotation = %v, want \"true\"", got)
	}
	if got := managedBy(tree); got != "mem:root" {
		t.Errorf("the orphan lost its other annotations: managed-by-location = %v", got)
	}
	// Its subtree stays, and is not orphaned: tree still emits it.
	for _, ref := range []string{rocketsRef, ordersRef} {
		m := f.final(ref)
		if m == nil {
			t.Fatalf("%s under the orphan was deleted", ref)
		}
		if _, ok := annotations(m)[catalog.AnnotationOrphan]; ok {
			t.Errorf("%s is marked orphan although tree emits it", ref)
		}
	}
	etag := f.etag(treeRef)

	// Emitted again: the annotation goes.
	f.reader.set("root", location("tree", "teams", "services"))
	runOnce(t, e)
	tree = f.final(treeRef)
	if _, ok := annotations(tree)[catalog.AnnotationOrphan]; ok {
		t.Errorf("tree is still marked orphan after being emitted again: %v", annotations(tree))
	}
	if f.etag(treeRef) == etag {
		t.Error("tree's etag did not change when the orphan mark went")
	}
	if ps, _ := f.db.Parents(treeRef); !slices.Equal(ps, []string{rootRefOf("root")}) {
		t.Errorf("tree parents = %v", ps)
	}
}

// 5. Eager delete on not found.

func TestNotFoundTargetDeletesItsEntitiesAtOnce(t *testing.T) {
	f := newFixture(t)
	e, _ := f.clocked()
	runOnce(t, e)

	f.reader.remove("services") // the file was deleted
	st := runOnce(t, e)
	if st.Deleted != 2 {
		t.Errorf("deleted %d, want orders and billing", st.Deleted)
	}
	for _, ref := range []string{ordersRef, billingRef} {
		if f.state(ref) != nil {
			t.Errorf("%s survived the deletion of its source", ref)
		}
	}
	for _, ref := range []string{rocketsRef, boostersRef} {
		if f.final(ref) == nil {
			t.Errorf("%s from the other target was removed", ref)
		}
	}
	tree := f.final(treeRef)
	if tree == nil {
		t.Fatal("the Location itself was removed")
	}
	if msgs := statusMessages(tree); len(msgs) != 1 || !hasMessage(msgs, engine.NotFoundErrorName, "services") {
		t.Errorf("tree status.items = %v, want one NotFoundError naming services", msgs)
	}
	// The source comes back: so do its entities, and the error goes.
	f.reader.set("services", component("orders", "rockets"))
	runOnce(t, e)
	if f.final(ordersRef) == nil {
		t.Error("orders did not come back with its source")
	}
	if msgs := statusMessages(f.final(treeRef)); len(msgs) != 0 {
		t.Errorf("tree status.items = %v after the source came back", msgs)
	}
}

// 6. Conflict and takeover after a move.

// moveFixture has two Locations la and lb reading sources a and b; E
// ("moved") starts in a.
func moveFixture(t *testing.T) *fixture {
	f := newFixture(t)
	f.reader.set("root", location("la", "a"), location("lb", "b"))
	f.reader.set("a", component("moved", "rockets"))
	f.reader.set("b")
	return f
}

const movedRef = "component:default/moved"

func TestConflictThenTakeoverAfterMove(t *testing.T) {
	f := moveFixture(t)
	e, _ := f.clocked()
	runOnce(t, e)
	uid := f.state(movedRef).UID

	// b emits E first, a still does: a keeps it, b's Location records the
	// conflict naming both keys.
	f.reader.set("b", component("moved", "boosters"))
	st := runOnce(t, e)
	if len(st.Conflicts) != 1 || st.Conflicts[0].ExistingKey != "mem:a" || st.Conflicts[0].NewKey != "mem:b" {
		t.Fatalf("conflicts = %+v", st.Conflicts)
	}
	moved := f.final(movedRef)
	if managedBy(moved) != "mem:a" || !slices.Equal(relations(moved), []string{"ownedBy group:default/rockets"}) {
		t.Errorf("E was touched by the contender: %v %v", managedBy(moved), relations(moved))
	}
	if got := f.state(movedRef).UID; got != uid {
		t.Error("E was recreated")
	}
	if msgs := statusMessages(f.final("location:default/lb")); !hasMessage(msgs, "ConflictError", "mem:a", "mem:b") {
		t.Errorf("lb status.items = %v, want a ConflictError naming mem:a and mem:b", msgs)
	}
	if msgs := statusMessages(f.final("location:default/la")); len(msgs) != 0 {
		t.Errorf("la status.items = %v", msgs)
	}

	// a lets go: b takes over within two passes.
	f.reader.set("a")
	passes := 0
	for passes < 2 {
		runOnce(t, e)
		passes++
		if m := f.final(movedRef); m != nil && managedBy(m) == "mem:b" {
			break
		}
	}
	moved = f.final(movedRef)
	if moved == nil || managedBy(moved) != "mem:b" {
		t.Fatalf("after %d passes E is %v", passes, moved)
	}
	if got := relations(moved); !slices.Equal(got, []string{"ownedBy group:default/boosters"}) {
		t.Errorf("E has not b's content: %v", got)
	}
	if got := f.state(movedRef).LocationKey; got != "mem:b" {
		t.Errorf("E location key = %s", got)
	}
	if msgs := statusMessages(f.final("location:default/lb")); len(msgs) != 0 {
		t.Errorf("lb still reports %v after taking over", msgs)
	}
}

func TestTakeoverWakesContenderWithoutInterval(t *testing.T) {
	f := moveFixture(t)
	f.cfg.Engine.Refresh = engine.Refresh{Interval: time.Hour} // no periodic help
	e := f.engine()
	serve(t, e)
	eventually(t, "E is served", func() bool { return f.final(movedRef) != nil })

	f.reader.set("b", component("moved", "boosters"))
	if err := e.Refresh("location:default/lb"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "lb reports the conflict", func() bool {
		m := f.final("location:default/lb")
		return m != nil && hasMessage(statusMessages(m), "ConflictError", "mem:a", "mem:b")
	})
	if managedBy(f.final(movedRef)) != "mem:a" {
		t.Fatal("E changed owner while a still emits it")
	}

	// Only la is refreshed; lb is due in an hour, but the store wakes it.
	f.reader.set("a")
	if err := e.Refresh("location:default/la"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b takes E over", func() bool {
		m := f.final(movedRef)
		return m != nil && managedBy(m) == "mem:b" && slices.Equal(relations(m), []string{"ownedBy group:default/boosters"})
	})
	eventually(t, "lb's conflict error clears", func() bool {
		m := f.final("location:default/lb")
		return m != nil && len(statusMessages(m)) == 0
	})
}

// 7. Keep last good.

func TestFailedReadKeepsLastGoodAndBacksOff(t *testing.T) {
	f := newFixture(t)
	f.cfg.Engine.Refresh = engine.Refresh{Interval: time.Minute, Jitter: 30 * time.Second}
	e, c := f.clocked()
	runOnce(t, e)
	kids, _ := f.db.Children(treeRef)
	states := map[string]*store.State{}
	for _, ref := range append(kids, treeRef) {
		states[ref] = f.state(ref)
	}
	ordersEtag := f.etag(ordersRef)

	f.reader.setFail("services", errors.New("upstream down"))
	for i, want := range []time.Duration{5 * time.Second, 10 * time.Second} {
		st := runOnce(t, e)
		if st.Failed != 1 || st.Deleted != 0 {
			t.Fatalf("failing run %d: %+v", i, st)
		}
		if got := nextUpdate(t, f.db, treeRef).Sub(c.Now()); got != want {
			t.Errorf("failing run %d: tree retries in %v, want %v", i, got, want)
		}
	}
	if got, _ := f.db.Children(treeRef); !slices.Equal(got, kids) {
		t.Errorf("children %v, want the last good %v", got, kids)
	}
	for _, ref := range kids {
		if !reflect.DeepEqual(f.state(ref), states[ref]) {
			t.Errorf("%s: state changed while its source failed", ref)
		}
	}
	if f.etag(ordersRef) != ordersEtag {
		t.Error("orders' served entity changed while its source failed")
	}
	tree := f.state(treeRef)
	if string(tree.Processed) != string(states[treeRef].Processed) {
		t.Error("the tree's last good processed entity was replaced")
	}
	if len(tree.Errors) != 1 || !strings.Contains(tree.Errors[0].Message, "upstream down") || tree.Failures != 2 {
		t.Errorf("tree errors %v failures %d", tree.Errors, tree.Failures)
	}
	if msgs := statusMessages(f.final(treeRef)); !hasMessage(msgs, "upstream down") {
		t.Errorf("tree status.items = %v", msgs)
	}

	f.reader.setFail("services", nil)
	runOnce(t, e)
	if got := nextUpdate(t, f.db, treeRef).Sub(c.Now()); got < time.Minute || got >= 90*time.Second {
		t.Errorf("after recovery the tree is due in %v, want the interval", got)
	}
	if msgs := statusMessages(f.final(treeRef)); len(msgs) != 0 {
		t.Errorf("tree status.items = %v after recovery", msgs)
	}
}

// 8. Serve.

func TestServeFollowsSourcesAndStopsCleanly(t *testing.T) {
	f := newFixture(t)
	f.cfg.Engine.Refresh = engine.Refresh{Interval: time.Second}
	e := f.engine()
	stop := serve(t, e)
	for _, ref := range fixtureRefs {
		if f.final(ref) == nil {
			t.Errorf("%s not served after catching up", ref)
		}
	}

	// A source changes; the loop picks it up on its own schedule.
	f.reader.set("services", component("orders", "boosters"), component("payments", "rockets"))
	e.Wake()
	eventually(t, "the catalog follows the source", func() bool {
		o := f.final(ordersRef)
		return f.final("component:default/payments") != nil && f.final(billingRef) == nil &&
			o != nil && slices.Equal(relations(o), []string{"ownedBy group:default/boosters"})
	})
	stop()

	// The store is consistent: everything known is served, and a full pass
	// over the same sources finds nothing to change.
	sum, err := f.db.Summarize()
	if err != nil {
		t.Fatal(err)
	}
	if sum.States != 6 || sum.Entities != 6 || sum.WithErrors != 0 {
		t.Errorf("summary after Serve: %+v", sum)
	}
	st := runOnce(t, f.engine())
	if st.Written != 0 || st.Created != 0 || st.Deleted != 0 || st.Stale != 0 {
		t.Errorf("a pass after Serve changed things: %+v", st)
	}
}

// 9. Reload.

func TestReloadAddsAndRemovesLocations(t *testing.T) {
	f := newFixture(t)
	f.cfg.Engine.Refresh = engine.Refresh{Interval: time.Hour} // no periodic help
	f.reader.set("extra", group("extra-team"))
	e := f.engine()
	serve(t, e)

	withLocations := func(targets ...string) *engine.Config {
		p := *f.cfg.Pipelines[0]
		p.Locations = nil
		for _, target := range targets {
			p.Locations = append(p.Locations, engine.RootLocation{Location: engine.Location{Type: "mem", Target: target}})
		}
		return &engine.Config{Engine: f.cfg.Engine, Pipelines: []*engine.Pipeline{&p}}
	}

	if err := e.Reload(withLocations("root", "extra")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the added location is ingested", func() bool {
		return f.final("group:default/extra-team") != nil
	})
	for _, ref := range fixtureRefs {
		if f.final(ref) == nil {
			t.Errorf("%s went away when a location was added", ref)
		}
	}

	if err := e.Reload(withLocations("extra")); err != nil {
		t.Fatal(err)
	}
	// Removing a root prunes its subtree as part of the reload.
	for _, ref := range fixtureRefs {
		if f.state(ref) != nil {
			t.Errorf("%s survived the removal of its location", ref)
		}
	}
	sum, err := f.db.Summarize()
	if err != nil {
		t.Fatal(err)
	}
	if sum.States != 2 || sum.Entities != 2 {
		t.Errorf("summary %+v, want the extra Location and its group", sum)
	}
	if f.final("group:default/extra-team") == nil {
		t.Error("the remaining location's entity went away")
	}
}

// The same-parent move: one Location reads both a and b, and E moves from a
// to b between two reads (a glob location whose file was renamed). The
// Location both loses the conflict and lets go of E in one commit; it must
// take E over at once, not an interval later (E is missing meanwhile with
// orphans deleted, and stuck with a's content with orphans kept).
func TestMoveWithinOneLocation(t *testing.T) {
	for _, orphans := range []string{engine.OrphansDelete, engine.OrphansKeep} {
		t.Run(orphans, func(t *testing.T) {
			f := newFixture(t)
			f.cfg.Engine.Refresh = engine.Refresh{Interval: time.Hour}
			f.cfg.Engine.Orphans = orphans
			f.reader.set("root", location("both", "a", "b"))
			f.reader.set("a", component("moved", "rockets"))
			f.reader.set("b")
			e := f.engine()
			serve(t, e)
			eventually(t, "E is served", func() bool { return f.final(movedRef) != nil })

			f.reader.set("a")
			f.reader.set("b", component("moved", "boosters"))
			if err := e.Refresh("location:default/both"); err != nil {
				t.Fatal(err)
			}
			eventually(t, "E is owned by mem:b", func() bool {
				m := f.final(movedRef)
				return m != nil && managedBy(m) == "mem:b" && slices.Equal(relations(m), []string{"ownedBy group:default/boosters"})
			})
			eventually(t, "both's conflict error clears", func() bool {
				m := f.final("location:default/both")
				return m != nil && len(statusMessages(m)) == 0
			})
			if _, ok := annotations(f.final(movedRef))[catalog.AnnotationOrphan]; ok {
				t.Error("E is marked orphan after the takeover")
			}
		})
	}
}

// Final entities are rebuilt once per pass, however many batches changed
// them: when 30 components owned by a served group arrive 10 per batch, the
// group is stitched once, not once per batch (deferred stitching).
func TestStitchesEachEntityOncePerPass(t *testing.T) {
	f := newFixture(t)
	f.reader.set("services")
	f.cfg.Engine.BatchSize = 10
	f.run()
	var docs []map[string]any
	for i := range 30 {
		docs = append(docs, component(fmt.Sprintf("svc-%02d", i), "rockets"))
	}
	f.reader.set("services", docs...)
	st := f.run()
	// The 30 new components and rockets, which now owns them.
	if st.Created != 30 || st.Stitched != 31 {
		t.Fatalf("created %d, stitched %d; want 30 created, 31 stitched", st.Created, st.Stitched)
	}
	rels := relations(f.final("group:default/rockets"))
	owns := 0
	for _, r := range rels {
		if strings.HasPrefix(r, "ownerOf ") {
			owns++
		}
	}
	if owns != 30 {
		t.Fatalf("rockets serves %d ownerOf relations, want 30: %v", owns, rels)
	}
}

// Due times are rounded down to a granule (a second for a 100 s interval,
// a hundredth of shorter ones), so that a batch shares a few queue runs;
// the schedule stays within [interval - granule, interval + jitter).
func TestDueTimesAreGranular(t *testing.T) {
	tests := []struct {
		name             string
		interval, jitter time.Duration
		granule          time.Duration
	}{
		{name: "Backstage default", interval: 100 * time.Second, jitter: 50 * time.Second, granule: time.Second},
		{name: "short interval", interval: 10 * time.Second, jitter: 0, granule: 100 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.cfg.Engine.Refresh = engine.Refresh{Interval: tc.interval, Jitter: tc.jitter}
			e, c := f.clocked()
			c.Advance(123456789 * time.Nanosecond) // not on a granule
			now := c.Now()
			runOnce(t, e)
			at := nextUpdate(t, f.db, "component:default/orders")
			if !at.Equal(at.Truncate(tc.granule)) {
				t.Errorf("due at %s, not a multiple of %s", at.Format(time.RFC3339Nano), tc.granule)
			}
			if d := at.Sub(now); d < tc.interval-tc.granule || d >= tc.interval+tc.jitter {
				t.Errorf("due %s after the run, want within [%s, %s)", d, tc.interval-tc.granule, tc.interval+tc.jitter)
			}
		})
	}
}
